"""The webmail: the mailboxes a person may use, their folders, the message lists.

Which mailboxes a login sees, and what it may do in each, are the rules IMAP uses
(domain/mailboxes.py: the home mailbox, then every mailbox beside it with its use),
read from the store at every request: a right revoked counts at once.

Paths (``{address}`` a mailbox address, ``{folder}`` a folder id):
- ``GET /courrier``: the last mailbox shown, else the home, else the first one;
- ``GET /courrier/choisir?boite=``: the form of the mailbox switch (works without
  script);
- ``GET /courrier/{address}/dossiers/{folder}?page=&q=``: the message list, newest
  first, ``PAGE_SIZE`` a page, searched in subject and sender when ``q`` is given; where
  the person may write, each message with a checkbox and the list with the actions of
  actions.py (``\\Flagged`` messages marked ★);
- ``GET .../messages/{uid}``: one message (render.py), marked ``\\Seen`` as an IMAP
  client's FETCH of its body does (only where the person may write: a read-only
  delegate leaves it unread, as IMAP's EXAMINE); IMAP sessions hear of it at once;
  a draft (in the ``\\Drafts`` folder, or flagged ``\\Draft``) offers to be resumed
  (compose.py) instead of replied to; a message the mailbox sent shows its timeline
  (**Suivi de l'envoi**), one asking for a read receipt offers to send it, or, to a
  patient, sends it (receipts.py);
- ``GET /courrier/{address}/conversations``: a patient's conversations, open ones
  first, each with its professionals (named by the directory) and messages;
- ``GET .../messages/{uid}/pieces/{part}``: one attachment, downloaded (images of the
  message itself shown inline with ``?affichage=1``).

Patient conversations (domain/patient.py): on the patient operator, the conversation
a message belongs to and whether it is closed are the ones the store recorded; a
patient may reply only while it is open, and never starts one. On a professional's
side, a conversation with a patient is shown closed once this mailbox's closing message
in it (``X-MSS-MES: FIN`` or ``[FIN]``) was accepted, as the store recorded it
(store/carethreads.py); the list of them is web/patients.py's.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from mssante.audit.events import DOWNLOAD, READ, AuditEvent, actor_of, clip
from mssante.content.headers import read_headers
from mssante.domain.addresses import PATIENT_DOMAIN
from mssante.domain.alerts import ALERT_KEYWORD
from mssante.domain.mailboxes import MailboxType, Use, beside_home, home_mailbox
from mssante.domain.patient import ReadReceipt, thread_root
from mssante.errors import DirectoryUnavailable
from mssante.store.models import Folder
from mssante.web.context import WebContext
from mssante.web.login import session_of, to_login
from mssante.web.receipts import (
    Sent,
    notify_addresses,
    receipt_action,
    send_receipt,
    sent_by,
    shown_timeline,
)
from mssante.web.render import (
    MessageView,
    PartNotFound,
    attachment_content,
    content_disposition,
    render_message,
)
from mssante.web.sessions import WebSession

PAGE_SIZE = 50
MAX_QUERY = 200
MAX_CONVERSATION_MESSAGES = 1000  # a patient's newest messages sorted into conversations
TYPE_LABELS = {MailboxType.PER: "nominative", MailboxType.ORG: "organisationnelle",
               MailboxType.CAB: "cabinet", MailboxType.APP: "applicative",
               MailboxType.PAT: "patient"}
DRAFTS_USE = "\\Drafts"  # RFC 6154 special uses
TRASH_USE = "\\Trash"
DRAFT_FLAG = "\\Draft"  # RFC 9051 §2.3.2
FOLDER_LABELS = {"INBOX": "Boîte de réception", "Sent": "Envoyés", "Drafts": "Brouillons",
                 "Trash": "Corbeille", "Archive": "Archives", "Junk": "Indésirables"}


@dataclass(frozen=True, slots=True)
class MailboxChoice:
    address: str
    type: MailboxType
    use: Use

    @property
    def label(self) -> str:
        return f"{self.address} ({TYPE_LABELS[self.type]})"

    @property
    def writable(self) -> bool:
        return self.use in (Use.WRITE, Use.FULL)


@dataclass(frozen=True, slots=True)
class Row:
    uid: int
    subject: str
    sender: str
    date: str
    unread: bool
    flagged: bool = False  # \Flagged: "important"
    alert: bool = False  # an authority's health alert ($Alerte, domain/alerts.py)


def folder_label(folder: Folder) -> str:
    return FOLDER_LABELS.get(folder.name, folder.name)


async def mailboxes_of(web: WebContext, session: WebSession) -> list[MailboxChoice]:
    """The mailboxes the session's person may open now: the home first, then the others
    by address (the IMAP namespaces' rules)."""
    login = session.identity.login
    holdings = await web.runtime.store.folders.access(login)
    home = home_mailbox(login, holdings)
    found = [MailboxChoice(home.address, home.type, Use.FULL)] \
        if home is not None and home.active else []
    found += [MailboxChoice(h.address, h.type, use) for h, use in beside_home(login, holdings)]
    return found


def _date(text: str | None) -> str:
    if not text:
        return ""
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone().strftime("%d/%m/%Y %H:%M")


Opened = tuple[WebSession, list[MailboxChoice], MailboxChoice]


async def open_mailbox(web: WebContext, request: Request, address: str) -> Opened | Response:
    """The session, its mailboxes and the one at ``address`` if it may open it; else the
    answer to give (the login page, a 404 page)."""
    session = session_of(web, request)
    if session is None:
        return to_login()
    choices = await mailboxes_of(web, session)
    chosen = next((c for c in choices if c.address == address.lower()), None)
    if chosen is None:
        return web.page(request, "error.html", session=session, mailboxes=choices,
                        status=404, title="Boîte introuvable",
                        message="Cette boîte aux lettres n'existe pas ou ne vous est "
                                "pas ouverte.")
    session.mailbox = chosen.address
    return session, choices, chosen


def create_router(web: WebContext) -> APIRouter:
    router = APIRouter()
    store = web.runtime.store

    @router.get("/courrier")
    async def home(request: Request) -> Response:
        session = session_of(web, request)
        if session is None:
            return to_login()
        choices = await mailboxes_of(web, session)
        if not choices:
            return web.page(request, "error.html", session=session, mailboxes=choices,
                            status=403, title="Aucune boîte aux lettres",
                            message="Aucune boîte aux lettres ne vous est ouverte ici.")
        chosen = next((c for c in choices if c.address == session.mailbox), choices[0])
        return await _inbox(chosen.address)

    async def _inbox(address: str) -> Response:
        inbox = await store.folders.get(address, "INBOX")
        if inbox is None:
            return RedirectResponse("/courrier", status_code=303)
        return RedirectResponse(f"/courrier/{address}/dossiers/{inbox.id}", status_code=303)

    @router.get("/courrier/choisir")
    async def choose(request: Request, boite: str = "") -> Response:
        found = await open_mailbox(web, request, boite)
        if isinstance(found, Response):
            return found
        return await _inbox(found[2].address)

    @router.get("/courrier/{address}/dossiers/{folder_id}")
    async def folder_list(request: Request, address: str, folder_id: int, page: int = 1,
                          q: str = "") -> Response:
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        session, choices, chosen = found
        folders = await store.folders.all(chosen.address, viewer=session.identity.login)
        folder = next((f for f in folders if f.id == folder_id), None)
        if folder is None:
            return web.page(request, "error.html", session=session, mailboxes=choices,
                            current=chosen, status=404, title="Dossier introuvable",
                            message="Ce dossier n'existe pas dans cette boîte.")
        query = q.strip()[:MAX_QUERY]
        if query:
            state = await store.folders.state(folder.id)
            uids = list(reversed(state.uids)) if state is not None else []
            flags = dict(zip(state.uids, state.flags, strict=True)) if state else {}
            hits: set[int] = set()
            if query.isascii():
                for field in ("subject", "from"):
                    hits.update(await store.folders.containing(folder.id, field, query))
            else:  # the store's search takes ASCII; accents are compared here
                needle = query.casefold()
                every = await store.folders.summaries(folder.id, uids)
                hits = {uid for uid, (subject, sender, _, _) in every.items()
                        if needle in (subject or "").casefold()
                        or needle in (sender or "").casefold()}
            uids = [u for u in uids if u in hits]
            total = len(uids)
            pages = max(1, -(-total // PAGE_SIZE))
            page = min(max(page, 1), pages)
            shown = uids[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        else:  # one page read from the store, newest first
            page = max(page, 1)
            total, listed = await store.folders.page(folder.id, (page - 1) * PAGE_SIZE,
                                                     PAGE_SIZE)
            pages = max(1, -(-total // PAGE_SIZE))
            if page > pages:
                page = pages
                total, listed = await store.folders.page(folder.id, (page - 1) * PAGE_SIZE,
                                                         PAGE_SIZE)
            if page == 1:  # unread health alerts first (README "Health alerts")
                pinned = await store.folders.unread_with_keyword(folder.id, ALERT_KEYWORD,
                                                                 PAGE_SIZE)
                listed = pinned + [e for e in listed if e not in pinned]
            shown = [uid for uid, _ in listed]
            flags = dict(listed)
        summaries = await store.folders.summaries(folder.id, shown)
        rows = []
        for uid in shown:
            subject, sender, _, date = summaries.get(uid, (None, None, None, None))
            words = flags.get(uid, "").split()
            rows.append(Row(uid, subject or "(sans objet)", sender or "", _date(date),
                            "\\Seen" not in words, "\\Flagged" in words,
                            ALERT_KEYWORD in words))
        return web.page(request, "folder.html", session=session, mailboxes=choices,
                        current=chosen, folders=[(f, folder_label(f)) for f in folders],
                        folder=folder, folder_name=folder_label(folder), rows=rows,
                        page=page, pages=pages, query=query, total=total,
                        in_trash=folder.special_use == TRASH_USE)

    @router.get("/courrier/{address}/dossiers/{folder_id}/messages/{uid}")
    async def read(request: Request, address: str, folder_id: int, uid: int) -> Response:
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        session, choices, chosen = found
        located = await message_of(web, chosen, folder_id, uid)
        if located is None:
            return web.page(request, "error.html", session=session, mailboxes=choices,
                            current=chosen, status=404, title="Message introuvable",
                            message="Ce message n'existe plus dans ce dossier.")
        folder, raw = located
        base = f"/courrier/{chosen.address}/dossiers/{folder.id}/messages/{uid}"
        view = render_message(raw, lambda part: f"{base}/pieces/{part}?affichage=1")
        await store.audit_record([web_event(request, session, READ, chosen, view.message_id,
                                            f"{folder.name} uid {uid}")])
        if chosen.writable:
            await store.folders.store_flags(folder.id, [uid], "+", ["\\Seen"])
        flags = (await store.folders.flags(folder.id, [uid])).get(uid, "").split()
        is_draft = folder.special_use == DRAFTS_USE or DRAFT_FLAG in flags
        receipt, answered = receipt_action(
            raw, view, flags, address=chosen.address, patient=chosen.type is MailboxType.PAT,
            writable=chosen.writable and not is_draft, folder_name=folder.name)
        receipt_sent: Sent | None = None
        if receipt is ReadReceipt.AUTOMATIC:  # a patient cannot refuse it (receipts.py)
            receipt_sent = await send_receipt(
                web.runtime, session.identity, chosen.address, folder.id, uid, raw, view,
                automatic=True, client_host=request.client.host if request.client else None)
        own = sent_by(view, chosen.address, folder.name)
        timeline = await shown_timeline(web.runtime, chosen.address, view) if own else None
        conversation = await patient_conversation(web, session, chosen, view)
        author = await who_wrote(web, view) if chosen.type is MailboxType.PAT else None
        folders = await store.folders.all(chosen.address, viewer=session.identity.login)
        return web.page(request, "message.html", session=session, mailboxes=choices,
                        current=chosen, folders=[(f, folder_label(f)) for f in folders],
                        folder=folder, view=view, uid=uid, base=base,
                        conversation=conversation, author=author,
                        may_write=chosen.writable and chosen.type is not MailboxType.PAT
                        and not is_draft,
                        may_reply=may_reply(chosen, conversation) and not is_draft,
                        may_resume=may_reply(chosen, conversation) and is_draft,
                        flagged="\\Flagged" in flags, in_trash=folder.special_use == TRASH_USE,
                        offer_receipt=receipt is ReadReceipt.OFFER, receipt_sent=receipt_sent,
                        receipt_answered=answered.value,
                        receipt_to=", ".join(notify_addresses(view)), timeline=timeline,
                        own=own)

    @router.get("/courrier/{address}/dossiers/{folder_id}/messages/{uid}/pieces/{part}")
    async def piece(request: Request, address: str, folder_id: int, uid: int, part: str,
                    affichage: int = 0) -> Response:
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        located = await message_of(web, found[2], folder_id, uid)
        if located is None:
            return Response("Message introuvable\n", status_code=404, media_type="text/plain")
        try:
            content = attachment_content(located[1], part)
        except PartNotFound:
            return Response("Pièce introuvable\n", status_code=404, media_type="text/plain")
        attachment = content.attachment
        await store.audit_record([web_event(
            request, found[0], DOWNLOAD, found[2], read_headers(located[1]).message_id,
            f"{located[0].name} uid {uid} part {part}: {attachment.filename}")])
        inline = bool(affichage) and attachment.inline_image
        media = attachment.content_type if inline else "application/octet-stream"
        return Response(content.data, media_type=media, headers={
            "Content-Disposition": content_disposition(attachment.filename, inline=inline),
            "Cache-Control": "private, no-store"})

    @router.get("/courrier/{address}/conversations")
    async def conversations(request: Request, address: str) -> Response:
        """A patient's conversations with professionals: who (named by the directory),
        open or closed, and the professionals' messages in each, newest first."""
        found = await open_mailbox(web, request, address)
        if isinstance(found, Response):
            return found
        session, choices, chosen = found
        if chosen.type is not MailboxType.PAT:
            return RedirectResponse(f"/courrier/choisir?boite={chosen.address}",
                                    status_code=303)
        inbox = await store.folders.get(chosen.address, "INBOX")
        known = await store.conversations(chosen.address)
        items: dict[str, list[Row]] = {c.thread: [] for c in known}
        if inbox is not None:
            _, listed = await store.folders.page(inbox.id, 0, MAX_CONVERSATION_MESSAGES)
            summaries = await store.folders.summaries(inbox.id, [u for u, _ in listed])
            for uid, flags in listed:
                subject, sender, message_id, date = summaries.get(
                    uid, (None, None, None, None))
                threads = await store.threads_of(chosen.address,
                                                 [message_id] if message_id else [])
                if threads and threads[0] in items:
                    items[threads[0]].append(Row(uid, subject or "(sans objet)", sender or "",
                                                 _date(date), "\\Seen" not in flags.split()))
        shown = []
        for conversation in sorted(known, key=lambda c: (c.closed,)):
            names = [await named(web, a) for a in sorted(conversation.professionals)]
            shown.append((conversation, names, items[conversation.thread]))
        folders = await store.folders.all(chosen.address, viewer=session.identity.login)
        return web.page(request, "conversations.html", session=session, mailboxes=choices,
                        current=chosen, folders=[(f, folder_label(f)) for f in folders],
                        inbox=inbox, conversations=shown)

    return router


def web_event(request: Request, session: WebSession, action: str, chosen: MailboxChoice,
              message_id: str | None, detail: str) -> AuditEvent:
    """The audit trail's entry of serving a message's content or an attachment from the
    web, written before it is sent (audit/events.py)."""
    identity = session.identity
    address = request.client.host if request.client else "unknown"
    return AuditEvent(action, actor_of(identity.login,
                                       identity.psc.subject if identity.psc else None),
                      chosen.address, clip(message_id), f"HTTPS {address}", clip(detail))


async def named(web: WebContext, address: str) -> str:
    """A professional's address as a patient reads it: the directory's name and
    profession, else the address itself."""
    if web.directory is None:
        return address
    try:
        found = await web.directory.search(address, limit=5)
    except DirectoryUnavailable:
        return address
    match = next((s for s in found if s.address == address.lower()), None)
    if match is None:
        return address
    detail = ", ".join(p for p in (match.profession, match.specialty, match.organisation) if p)
    return f"{match.display_name} — {detail}" if detail else match.display_name


async def who_wrote(web: WebContext, view: MessageView) -> str | None:
    """For a patient: the professional who wrote, as the national directory names them
    ("Dr Paul DUPONT — Médecin, Cardiologie, CENTRE HOSPITALIER XYZ"); None when the
    message names no author or the directory does not know them."""
    if view.from_ is None or not view.from_.mailboxes:
        return None
    address = view.from_.mailboxes[0].address
    shown = await named(web, address)
    return shown if shown != address else None


def may_reply(chosen: MailboxChoice, conversation: PatientConversation | None) -> bool:
    """A professional replies from a mailbox they may write in; a patient only in an open
    conversation a professional started (domain/patient.py; sending checks it again)."""
    if not chosen.writable:
        return False
    if chosen.type is not MailboxType.PAT:
        return True
    return conversation is not None and not conversation.closed


async def message_of(web: WebContext, chosen: MailboxChoice, folder_id: int, uid: int
                     ) -> tuple[Folder, bytes] | None:
    """A message of a folder of the chosen mailbox, with its octets; None if gone."""
    store = web.runtime.store
    folder = await store.folders.by_id(folder_id)
    if folder is None or folder.mailbox != chosen.address:
        return None
    data = await store.folders.message_data(folder.id, [uid])
    if not data:
        return None
    bodies = await store.folders.bodies([data[0].body_sha256])
    raw = bodies.get(data[0].body_sha256)
    return (folder, raw) if raw is not None else None


@dataclass(frozen=True, slots=True)
class PatientConversation:
    """A patient conversation as the page shows it."""

    thread: str
    closed: bool
    patient_side: bool  # shown to the patient (else to a professional)
    patient: str  # the patient's address
    care_id: int | None = None  # a professional's: the conversation's id (web/patients.py)


async def patient_conversation(web: WebContext, session: WebSession, chosen: MailboxChoice,
                               view: MessageView) -> PatientConversation | None:
    """The patient conversation ``view`` belongs to, if it is one."""
    store = web.runtime.store
    own_id = view.message_id or ""
    if chosen.type is MailboxType.PAT:
        ids = [*view.references, *([view.in_reply_to] if view.in_reply_to else []), own_id]
        threads = await store.threads_of(chosen.address, [i for i in ids if i])
        if not threads:
            return None
        known = {c.thread: c for c in await store.conversations(chosen.address)}
        conversation = known.get(threads[-1])
        closed = conversation is not None and conversation.closed
        return PatientConversation(threads[-1], closed, True, chosen.address)
    people = [m.address for f in (view.from_, view.to, view.cc) if f is not None
              for m in f.mailboxes]
    patient = next((a for a in people if a.lower().endswith("@" + PATIENT_DOMAIN)), None)
    if patient is None:
        return None
    root = thread_root(own_id, view.in_reply_to, " ".join(view.references))
    held = await store.care_thread_of(chosen.address, patient, root)
    return PatientConversation(root, held is not None and held.closed, False, patient,
                               held.id if held is not None else None)
