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
- ``POST /courrier/{address}/dossiers/{folder}/messages/{uid}/clore``: the professional
  closes a patient conversation: a message in that thread carrying ``X-MSS-MES: FIN``
  (domain/patient.py decides what closes).
"""

from __future__ import annotations

import email.utils
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP

from mssante.domain.addresses import mailboxes, parse_address_list
from mssante.domain.patient import FIN_HEADER, FIN_VALUE
from mssante.errors import InvalidAddress

MAX_ADDRESSES = 100  # recipients a form may name
MAX_FIELD = 1000  # characters of an address field or a subject


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


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


def build_message(draft: Draft, *, now: float | None = None) -> bytes:
    """The RFC 5322 message of a draft, CRLF line endings."""
    message = EmailMessage(policy=SMTP)
    message["From"] = email.utils.formataddr((draft.sender_name, draft.sender))
    if draft.to:
        message["To"] = ", ".join(draft.to)
    if draft.cc:
        message["Cc"] = ", ".join(draft.cc)
    message["Subject"] = draft.subject[:MAX_FIELD]
    message["Date"] = email.utils.formatdate(now, localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=draft.sender.rpartition("@")[2])
    if draft.in_reply_to:
        message["In-Reply-To"] = draft.in_reply_to
        message["References"] = (draft.references + " " + draft.in_reply_to).strip() \
            if draft.in_reply_to not in draft.references else draft.references
    if draft.read_receipt:
        message["Disposition-Notification-To"] = draft.sender  # RFC 8098 §2.1
    if draft.closes:
        message[FIN_HEADER] = FIN_VALUE
    message.set_content(draft.text.replace("\r\n", "\n"), subtype="plain", charset="utf-8")
    for attachment in draft.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.data, maintype=maintype or "application",
                               subtype=subtype or "octet-stream",
                               filename=attachment.filename)
    return message.as_bytes()


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


def unique(addresses: Sequence[str], *, without: Sequence[str] = ()) -> tuple[str, ...]:
    skip = {a.lower() for a in without}
    seen: dict[str, str] = {}
    for address in addresses:
        if address.lower() not in skip:
            seen.setdefault(address.lower(), address)
    return tuple(seen.values())
