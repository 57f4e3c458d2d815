"""Writing a message in the webmail, sent through the one acceptance path
(operator/sending.py): the same rules, the same Sent copy, the same queue as
submission.

- ``GET /courrier/{address}/nouveau``: the form (``À``, ``Cc``, ``Objet``,
  ``Message``, attachments with the operator's size limit shown, a delivery status
  notification and a read receipt to ask for). ``?repondre={folder}:{uid}`` (and
  ``&tous=1``) or ``?transferer={folder}:{uid}`` fill it from a message.
- ``POST /courrier/{address}/envoyer``: each address is checked by
  ``sending.check_recipient`` before anything is sent; a refusal shows the form again
  with a ``role=alert`` naming the address and the reason. Then the message is built
  (``build_message``: UTF-8, MIME, RFC 5322 threading headers, RFC 8098
  ``Disposition-Notification-To`` for a read receipt, RFC 3461 ``NOTIFY=SUCCESS,FAILURE``
  for a delivery status notification) and submitted as the chosen mailbox.
  With clinical documents (``cda``, CDA R2 files, and ``pdf``, their renderings), it is
  the document message of content/docmessage.py instead (``build_document_message``:
  ``IHE_XDM.ZIP``, ``XDM/1.0/DDM+`` subject whose label is the ``Objet`` typed, if any,
  ``X-MSS-CODECDA``, ``X-MSS-INS``), built in a thread; documents refused show the form
  again with every reason, nothing sent. A draft does not keep clinical documents.
- ``POST /courrier/{address}/brouillon`` (the form's **Enregistrer le brouillon**):
  the same form kept as a draft (drafts.py: in the Drafts folder, ``\\Draft``),
  replacing the version it was resumed from; then the form again, from the draft, with
  the status **Brouillon enregistré**. Addresses are read, not checked: that is for
  sending. ``GET .../nouveau?brouillon={folder}:{uid}`` resumes a draft: its fields,
  options and attachments (each kept unless unticked); sending it removes it.

Closing a patient conversation (a message carrying ``X-MSS-MES: FIN``) is patients.py's.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import html
import mimetypes
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.policy import SMTP

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from mssante.content.docmessage import (
    DEFAULT_TEXT,
    Attachment,
    DocumentMessage,
    NamedFile,
    add_attachment,
    documents_message,
)
from mssante.domain.addresses import mailboxes, parse_address_list
from mssante.domain.mailboxes import MailboxType
from mssante.domain.patient import FIN_HEADER, FIN_VALUE
from mssante.errors import DocumentRefused, InvalidAddress, PolicyViolation
from mssante.operator import sending
from mssante.operator.accept import RcptParams
from mssante.operator.refusals import Refused
from mssante.web import drafts
from mssante.web.context import WEB_PROTOCOL, WebContext
from mssante.web.drafts import StoredDraft
from mssante.web.mail import (
    MailboxChoice,
    Opened,
    folder_label,
    message_of,
    open_mailbox,
)
from mssante.web.render import AddressField, PartNotFound, attachment_content, render_message
from mssante.web.render import Attachment as StoredAttachment
from mssante.web.sessions import same_token

MAX_ADDRESSES = 100  # recipients a form may name
MAX_QUOTE = 100_000  # characters of a message quoted in a reply
MAX_FIELD = 1000  # characters of an address field or a subject


@dataclass(frozen=True, slots=True)
class Draft:
    """A message as the form gives it."""

    sender: str
    sender_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    text: str
    attachments: tuple[Attachment, ...] = ()
    in_reply_to: str = ""
    references: str = ""
    delivery_status: bool = False  # RFC 3461: NOTIFY=SUCCESS,FAILURE
    read_receipt: bool = False  # RFC 8098: Disposition-Notification-To
    closes: bool = False  # X-MSS-MES: FIN
    forward: str = ""  # "{folder}:{uid}" of a message forwarded as an attachment
    stored: str = ""  # "{folder}:{uid}" of the draft it was resumed from (drafts.py)
    stored_attachments: tuple[StoredAttachment, ...] = ()  # that draft's, still kept
    cdas: tuple[NamedFile, ...] = ()  # clinical documents (CDA R2): a document message
    pdfs: tuple[NamedFile, ...] = ()  # their PDF renderings

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.to, *self.cc)))


def split_addresses(text: str) -> tuple[str, ...]:
    """The addresses typed in a field (commas or semicolons between them), each as the
    one address parser reads it; InvalidAddress naming the one it cannot read."""
    text = text[:MAX_FIELD * 10].replace(";", ",")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) > MAX_ADDRESSES:
        raise InvalidAddress(f"at most {MAX_ADDRESSES} recipients")
    found: list[str] = []
    for part in parts:
        try:
            items = mailboxes(parse_address_list(part))
        except InvalidAddress as exc:
            raise InvalidAddress(f"{part} : adresse illisible ({exc})") from None
        found.extend(m.addr_spec for m in items)
    return tuple(found)


def build_message(draft: Draft, *, now: float | None = None,
                  forwarded: bytes | None = None,
                  headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """The RFC 5322 message of a draft, CRLF line endings; ``forwarded``, a message
    attached whole (``message/rfc822``, RFC 2046 §5.2.1); ``headers``, more fields."""
    message = EmailMessage(policy=SMTP)
    message["From"] = email.utils.formataddr((draft.sender_name, draft.sender))
    if draft.to:
        message["To"] = ", ".join(draft.to)
    if draft.cc:
        message["Cc"] = ", ".join(draft.cc)
    message["Subject"] = draft.subject[:MAX_FIELD]
    message["Date"] = email.utils.formatdate(now, localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=draft.sender.rpartition("@")[2])
    for name, value in (*draft_headers(draft), *headers):
        message[name] = value
    message.set_content(draft.text.replace("\r\n", "\n"), subtype="plain", charset="utf-8")
    for attachment in others(draft, forwarded):
        add_attachment(message, attachment)
    return message.as_bytes()


def draft_headers(draft: Draft) -> list[tuple[str, str]]:
    """The fields a draft's options and threading add: RFC 5322 §3.6.4 ``In-Reply-To``
    and ``References``, RFC 8098 ``Disposition-Notification-To``, ``X-MSS-MES: FIN``."""
    fields: list[tuple[str, str]] = []
    if draft.in_reply_to:
        fields.append(("In-Reply-To", draft.in_reply_to))
        fields.append(("References", (draft.references + " " + draft.in_reply_to).strip()
                       if draft.in_reply_to not in draft.references else draft.references))
    if draft.read_receipt:
        fields.append(("Disposition-Notification-To", draft.sender))  # RFC 8098 §2.1
    if draft.closes:
        fields.append((FIN_HEADER, FIN_VALUE))
    return fields


def others(draft: Draft, forwarded: bytes | None) -> list[Attachment]:
    """The draft's attachments, then the message it forwards (``message/rfc822``, kept
    whole: RFC 2046 §5.2.1)."""
    found = list(draft.attachments)
    if forwarded is not None:
        found.append(Attachment("message.eml", "message/rfc822", forwarded))
    return found


def build_document_message(draft: Draft, *, forwarded: bytes | None = None,
                           now: float | None = None) -> DocumentMessage:
    """The message of a draft that carries clinical documents (content/docmessage.py,
    as ``mssante send`` and the REST path build it): the ``Objet`` typed is the
    subject's label, the text typed (else the usual one) its body, with the draft's
    threading, options and other attachments. DocumentRefused, PolicyViolation."""
    return documents_message(draft.cdas, draft.pdfs, sender=draft.sender,
                             sender_name=draft.sender_name, to=draft.to, cc=draft.cc,
                             text=draft.text if draft.text.strip() else DEFAULT_TEXT,
                             label=draft.subject.strip()[:MAX_FIELD] or None,
                             headers=draft_headers(draft),
                             attachments=others(draft, forwarded), now=now)


def content_type_of(filename: str, given: str | None) -> str:
    """A sane type for an uploaded file: the browser's when well formed, else guessed."""
    if given and given.count("/") == 1 and given.isascii() and " " not in given \
            and given.lower() != "application/x-www-form-urlencoded":
        return given.lower()
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def reply_subject(subject: str, prefix: str) -> str:
    """``Re: `` or ``Tr : `` before a subject that does not carry it already."""
    stripped = subject.strip()
    if stripped.lower().startswith(prefix.lower().strip()):
        return stripped
    return f"{prefix}{stripped}"


def quote(text: str, author: str, date: str) -> str:
    lines = text.splitlines() or [""]
    head = f"Le {date}, {author} a écrit :" if date else f"{author} a écrit :"
    return "\n\n" + head + "\n" + "\n".join(f"> {line}" for line in lines)


def unique(addresses: Iterable[str], *, without: Iterable[str] = ()) -> tuple[str, ...]:
    skip = {a.lower() for a in without}
    seen: dict[str, str] = {}
    for address in addresses:
        if address.lower() not in skip:
            seen.setdefault(address.lower(), address)
    return tuple(seen.values())


# -- the routes ----------------------------------------------------------------------

MAX_FILES = 20
MAX_KEPT = 100  # attachments of a resumed draft a form may keep
PATIENT_ONLY_REPLIES = "Un patient ne peut que répondre à un professionnel qui lui a écrit."
DOCUMENTS_REFUSED = ("Documents cliniques refusés, rien n'a été envoyé. Corrigez-les puis "
                     "joignez-les à nouveau :")


def create_router(web: WebContext) -> APIRouter:
    router = APIRouter()
    runtime = web.runtime

    async def form_page(request: Request, found: Opened, draft: Draft | None, *,
                        error: str = "", status: int = 200, field: str = "",
                        reasons: list[str] | None = None) -> Response:
        session, choices, chosen = found
        folders = await runtime.store.folders.all(chosen.address,
                                                  viewer=session.identity.login)
        return web.page(request, "compose.html", session=session, mailboxes=choices,
                        current=chosen, folders=[(f, folder_label(f)) for f in folders],
                        draft=draft, error=error, error_field=field, status=status,
                        reasons=reasons or [],
                        documents=chosen.type is not MailboxType.PAT,
                        limit=_megabytes(runtime.settings.max_message_size))

    @router.get("/courrier/{address}/nouveau")
    async def new(request: Request, address: str) -> Response:
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        chosen = found[2]
        if not chosen.writable:
            return await form_page(request, found, None, status=403,
                             error="Vous ne pouvez pas écrire depuis cette boîte.")
        reference = request.query_params.get("brouillon", "")
        if reference:
            stored = await drafts.find(web, chosen, reference)
            if stored is None:
                return await form_page(request, found, None, status=404,
                                 error="Ce brouillon n'existe plus.")
            again = resumed(stored)
            if not await drafts.patient_may_keep(web, chosen, again.in_reply_to,
                                                 again.references):
                return await form_page(request, found, None, status=403, error=PATIENT_ONLY_REPLIES)
            return await form_page(request, found, again)
        prefill = await reply_draft(web, found, request.query_params)
        if chosen.type is MailboxType.PAT and (prefill is None or prefill.forward):
            return await form_page(request, found, None, status=403, error=PATIENT_ONLY_REPLIES)
        return await form_page(request, found, prefill)

    @router.post("/courrier/{address}/envoyer")
    async def send(request: Request, address: str) -> Response:
        return await _with_form(request, address, _send)

    @router.post("/courrier/{address}/brouillon")
    async def save_draft(request: Request, address: str) -> Response:
        return await _with_form(request, address, _save_draft)

    async def _with_form(request: Request, address: str,
                         handle: Callable[[Request, Opened, FormData], Awaitable[Response]]
                         ) -> Response:
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        limit = runtime.settings.max_message_size
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit * 4 // 3 + 1024 * 1024:
            return await form_page(request, found, None, status=413,
                             error=f"Message trop volumineux : {_megabytes(limit)} au plus.")
        form = await request.form(max_files=MAX_FILES, max_fields=40 + MAX_KEPT)
        try:
            return await handle(request, found, form)
        finally:
            await form.close()  # the uploads' temporary files

    async def _filled(request: Request, found: Opened, form: FormData
                      ) -> tuple[Draft, StoredDraft | None] | Response:
        """The draft the form holds, with its attachments (uploaded, and those kept of
        the draft it was resumed from), and that stored draft; or the page saying what
        is wrong with it."""
        session, _, chosen = found
        limit = runtime.settings.max_message_size
        if not same_token(str(form.get("csrf", "")), session.csrf):
            return await form_page(request, found, None, status=400,
                             error="Le formulaire a expiré : renvoyez-le.")
        text = {k: str(form.get(k, ""))[:MAX_FIELD * 100] for k in
                ("a", "cc", "objet", "message", "in_reply_to", "references", "transferer",
                 "brouillon")}
        stored = await drafts.find(web, chosen, text["brouillon"][:40]) \
            if text["brouillon"] else None
        kept: list[Attachment] = []
        shown: list[StoredAttachment] = []
        if stored is not None:
            for part_id in dict.fromkeys(str(p) for p in form.getlist("garder")[:MAX_KEPT]):
                try:
                    content = attachment_content(stored.raw, part_id)
                except PartNotFound:
                    continue
                shown.append(content.attachment)
                kept.append(Attachment(content.attachment.filename,
                                       content.attachment.content_type, content.data))
        draft = Draft(chosen.address, "", (), (), text["objet"][:MAX_FIELD], text["message"],
                      in_reply_to=text["in_reply_to"][:MAX_FIELD],
                      references=text["references"][:MAX_FIELD * 10],
                      delivery_status=form.get("accuse_remise") == "1",
                      read_receipt=form.get("accuse_lecture") == "1",
                      forward=text["transferer"][:40],
                      stored=stored.reference if stored is not None else "",
                      stored_attachments=tuple(shown))
        try:
            to, cc = split_addresses(text["a"]), split_addresses(text["cc"])
        except InvalidAddress as exc:
            return await form_page(request, found, draft, status=400, field="a",
                             error=f"Adresse refusée : {exc}")
        draft = replace(draft, to=to, cc=cc)
        if not chosen.writable:
            return await form_page(request, found, draft, status=403,
                             error="Vous ne pouvez pas écrire depuis cette boîte.")
        attachments = list(kept)
        total = sum(len(a.data) for a in kept)
        for upload in form.getlist("pieces"):
            if not isinstance(upload, UploadFile) or not upload.filename:
                continue
            data = await upload.read(limit + 1)
            total += len(data)
            if total > limit:
                return await form_page(request, found, draft, status=413,
                                 error=f"Pièces jointes trop volumineuses : "
                                       f"{_megabytes(limit)} au plus pour le message.")
            attachments.append(Attachment(upload.filename[:255],
                                          content_type_of(upload.filename,
                                                          upload.content_type), data))
        documents: dict[str, list[NamedFile]] = {"cda": [], "pdf": []}
        for name, files in documents.items():
            for upload in form.getlist(name):
                if not isinstance(upload, UploadFile) or not upload.filename:
                    continue
                data = await upload.read(limit + 1)
                total += len(data)
                if total > limit:
                    return await form_page(request, found, draft, status=413,
                                           error=f"Documents trop volumineux : "
                                                 f"{_megabytes(limit)} au plus pour le "
                                                 "message.")
                files.append(NamedFile(upload.filename[:255], data))
        person = await runtime.store.get_person(session.identity.login)
        own = chosen.type in (MailboxType.PER, MailboxType.PAT)
        draft = replace(draft, sender_name=person.display_name if person and own else "",
                        attachments=tuple(attachments), cdas=tuple(documents["cda"]),
                        pdfs=tuple(documents["pdf"]))
        return draft, stored

    async def _forwarded(chosen: MailboxChoice, draft: Draft) -> bytes | None:
        folder_text, _, uid_text = draft.forward.partition(":")
        if folder_text.isdigit() and uid_text.isdigit():
            located = await message_of(web, chosen, int(folder_text), int(uid_text))
            return located[1] if located is not None else None
        return None

    async def _send(request: Request, found: Opened, form: FormData) -> Response:
        session, _, chosen = found
        filled = await _filled(request, found, form)
        if isinstance(filled, Response):
            return filled
        draft, stored = filled
        if not draft.recipients:
            return await form_page(request, found, draft, status=400, field="a",
                             error="Indiquez au moins un destinataire.")
        identity = session.identity
        for accepted, recipient in enumerate(draft.recipients):
            try:
                await sending.check_recipient(runtime, identity, chosen.address, recipient,
                                              accepted=accepted)
            except Refused as exc:
                return await form_page(request, found, draft, status=400, field="a",
                                 error=f"Adresse refusée : {exc.address or recipient} — "
                                       f"{exc.reason}")
        forwarded = await _forwarded(chosen, draft)
        if draft.cdas or draft.pdfs:
            try:
                body = (await asyncio.to_thread(build_document_message, draft,
                                                forwarded=forwarded)).raw
            except DocumentRefused as exc:
                return await form_page(request, found, draft, status=400, field="cda",
                                       error=DOCUMENTS_REFUSED, reasons=list(exc.reasons))
            except (PolicyViolation, ValueError) as exc:
                return await form_page(request, found, draft, status=400, field="cda",
                                       error=DOCUMENTS_REFUSED, reasons=[str(exc)])
        else:
            body = build_message(draft, forwarded=forwarded)
        notify = frozenset({"SUCCESS", "FAILURE"}) if draft.delivery_status else frozenset()
        submission = sending.Submission(
            chosen.address, [(r, RcptParams(notify=notify)) for r in draft.recipients], body)
        client = sending.Client(WEB_PROTOCOL, request.client.host if request.client else None)
        try:
            await sending.submit(runtime, identity, submission, client)
        except Refused as exc:
            where = f"{exc.address} — " if exc.address else ""
            return await form_page(request, found, draft, status=400,
                             error=f"Message refusé : {where}{exc.reason}")
        if stored is not None:
            await drafts.discard(web, stored)
        session.notice = "Message envoyé."
        inbox = await runtime.store.folders.get(chosen.address, "INBOX")
        target = f"/courrier/{chosen.address}/dossiers/{inbox.id}" if inbox else "/courrier"
        return RedirectResponse(target, status_code=303)

    async def _save_draft(request: Request, found: Opened, form: FormData) -> Response:
        session, _, chosen = found
        filled = await _filled(request, found, form)
        if isinstance(filled, Response):
            return filled
        draft, stored = filled
        if not await drafts.patient_may_keep(web, chosen, draft.in_reply_to,
                                             draft.references):
            return await form_page(request, found, draft, status=403, error=PATIENT_ONLY_REPLIES)
        info = drafts.draft_info(delivery_status=draft.delivery_status,
                                 read_receipt=draft.read_receipt)
        body = build_message(draft, forwarded=await _forwarded(chosen, draft),
                             headers=[(drafts.DRAFT_INFO, info)])
        limit = runtime.settings.max_message_size
        if len(body) > limit:
            return await form_page(request, found, draft, status=413,
                             error=f"Brouillon trop volumineux : {_megabytes(limit)} au plus.")
        folder, uid = await drafts.save(web, chosen.address, body, stored)
        session.notice = "Brouillon enregistré."
        return RedirectResponse(
            f"/courrier/{chosen.address}/nouveau?brouillon={folder.id}:{uid}",
            status_code=303)

    return router


async def reply_draft(web: WebContext, found: Opened, params: Mapping[str, str]
                      ) -> Draft | None:
    """A draft filled from the message named by ``repondre`` (``&tous=1``: to everyone)
    or ``transferer`` (``{folder}:{uid}``); None for a new message or one that cannot
    be read."""
    _, _, chosen = found
    reference = params.get("repondre") or params.get("transferer") or ""
    folder_text, _, uid_text = reference.partition(":")
    if not (folder_text.isdigit() and uid_text.isdigit()):
        return None
    located = await message_of(web, chosen, int(folder_text), int(uid_text))
    if located is None:
        return None
    view = render_message(located[1])
    subject = view.full_subject
    own = {chosen.address}
    author = view.from_.mailboxes[0] if view.from_ and view.from_.mailboxes else None
    author_text = view.from_.text if view.from_ else ""
    quoted = quote(plain_text(located[1]), author_text,
                   view.date.astimezone().strftime("%d/%m/%Y %H:%M") if view.date else "")
    if params.get("transferer"):
        return Draft(chosen.address, "", (), (), reply_subject(subject, "Tr : "), quoted,
                     forward=reference)
    answer_to = view.reply_to or view.from_
    to = unique([m.address for m in answer_to.mailboxes] if answer_to else [], without=own)
    cc: tuple[str, ...] = ()
    if params.get("tous"):
        others = [m.address for f in (view.to, view.cc) if f for m in f.mailboxes]
        cc = unique(others, without=(*own, *to))
    if not to and author is not None:
        to = (author.address,)
    references = " ".join((*view.references, view.message_id or "")).strip()
    return Draft(chosen.address, "", to, cc, reply_subject(subject, "Re: "), quoted,
                 in_reply_to=view.message_id or "", references=references)


def resumed(stored: StoredDraft) -> Draft:
    """The form filled from a stored draft: its recipients, subject, text, threading,
    options and attachments (each kept unless unticked)."""
    view = render_message(stored.raw)

    def addresses(field: AddressField | None) -> tuple[str, ...]:
        return unique(m.address for m in field.mailboxes) if field is not None else ()

    text = plain_text(stored.raw, limit=None)
    # the line end build_message gave the last line, and the message's CRLF
    text = text.replace("\r\n", "\n").removesuffix("\n")
    return Draft(stored.folder.mailbox, "", addresses(view.to), addresses(view.cc),
                 view.full_subject, text,
                 in_reply_to=view.in_reply_to or "", references=" ".join(view.references),
                 delivery_status=drafts.asks_delivery_status(stored.raw),
                 read_receipt=view.read_receipt_requested, stored=stored.reference,
                 stored_attachments=view.attachments[:MAX_KEPT])


def plain_text(raw: bytes, *, limit: int | None = MAX_QUOTE) -> str:
    """The text of a message to quote in a reply (``limit`` characters of it; all of it
    for a draft resumed): its text/plain body, else its HTML body's text; "" when
    neither can be read."""
    try:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        body = parsed.get_body(("plain", "html"))
        if body is None:
            return ""
        text = body.get_content()
    except Exception:  # a hostile message quotes as nothing
        return ""
    if not isinstance(text, str):
        return ""
    if body.get_content_subtype() == "html":
        text = re.sub(r"<[^>]*>", " ", text)
        text = html.unescape(text)
    return text[:limit] if limit is not None else text


def _megabytes(octets: int) -> str:
    return f"{octets / (1024 * 1024):.0f} Mo"
