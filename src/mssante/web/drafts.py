"""Drafts: a message being written in the webmail, kept in the mailbox as an IMAP client
keeps it, so that Thunderbird shows it too and the webmail reopens Thunderbird's.

- Saving APPENDs the whole message (RFC 5322, as it would be sent) with the flags
  ``\\Draft`` and ``\\Seen`` to the folder of special use ``\\Drafts`` (RFC 6154), made
  when the mailbox has none (``FolderStore.special``); the version it replaces is then
  flagged ``\\Deleted`` and expunged by UID (RFC 4315 UID EXPUNGE): the steps of an IMAP
  client, through the store operations IMAP uses, so that IMAP sessions hear each one.
  The new version is stored before the old one goes: a failure leaves two, never none.
- What no header of the message says is written as Thunderbird writes it, in
  ``X-Mozilla-Draft-Info`` (``DSN=1``: a delivery status notification is asked for);
  the read receipt is the message's ``Disposition-Notification-To`` (RFC 8098).
- A draft is named ``{folder}:{uid}``. Only a message of a folder of the chosen mailbox
  that is its ``\\Drafts`` folder, or that is flagged ``\\Draft``, counts as one: a
  forged name never replaces nor removes another message.
- Patients (domain/patient.py: a patient never starts a conversation): a patient's
  draft is only a reply in a conversation still open; saving and resuming check it,
  sending checks it again (operator/sending.py).
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass

from mssante.domain.mailboxes import MailboxType
from mssante.domain.patient import message_ids
from mssante.errors import NotFound
from mssante.store.models import Folder
from mssante.web.context import WebContext
from mssante.web.mail import DRAFT_FLAG as DRAFT
from mssante.web.mail import DRAFTS_USE as DRAFTS
from mssante.web.mail import MailboxChoice, message_of

DRAFTS_NAME = "Drafts"  # the name of the folder made when the mailbox has none
DRAFT_FLAGS = (DRAFT, "\\Seen")
DRAFT_INFO = "X-Mozilla-Draft-Info"  # Thunderbird's header of a draft's options


@dataclass(frozen=True, slots=True)
class StoredDraft:
    folder: Folder
    uid: int
    raw: bytes

    @property
    def reference(self) -> str:
        return f"{self.folder.id}:{self.uid}"


def draft_info(*, delivery_status: bool, read_receipt: bool) -> str:
    """The ``X-Mozilla-Draft-Info`` value Thunderbird writes, with these options."""
    return (f"internal/draft; vcard=0; receipt={int(read_receipt)}; "
            f"DSN={int(delivery_status)}; uuencode=0")


def asks_delivery_status(raw: bytes) -> bool:
    """Whether a stored draft asks for a delivery status notification (``DSN=1``)."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    value = str(headers.get(DRAFT_INFO, "") or "")
    options = {k.strip().lower(): v.strip() for k, _, v in
               (p.partition("=") for p in value.split(";"))}
    return options.get("dsn") == "1"


async def find(web: WebContext, chosen: MailboxChoice, reference: str) -> StoredDraft | None:
    """The draft named ``{folder}:{uid}`` in the chosen mailbox; None when there is none
    (any more), or when that message is no draft."""
    folder_text, _, uid_text = reference.partition(":")
    if not (folder_text.isdigit() and uid_text.isdigit()):
        return None
    located = await message_of(web, chosen, int(folder_text), int(uid_text))
    if located is None:
        return None
    folder, raw = located
    uid = int(uid_text)
    if folder.special_use != DRAFTS:
        flags = await web.runtime.store.folders.flags(folder.id, [uid])
        if DRAFT not in flags.get(uid, "").split():
            return None
    return StoredDraft(folder, uid, raw)


async def save(web: WebContext, address: str, body: bytes,
               replaces: StoredDraft | None) -> tuple[Folder, int]:
    """Keep ``body`` as the mailbox's draft, in place of ``replaces``; returns where."""
    store = web.runtime.store
    folder = await store.folders.special(address, DRAFTS, DRAFTS_NAME)
    _, uid = await store.folders.append(folder.id, body, flags=DRAFT_FLAGS)
    if replaces is not None:
        await discard(web, replaces)
    return folder, uid


async def discard(web: WebContext, draft: StoredDraft) -> None:
    """Remove a draft (sent, or replaced by a newer version): ``\\Deleted``, then UID
    EXPUNGE of that message only."""
    folders = web.runtime.store.folders
    try:
        await folders.store_flags(draft.folder.id, [draft.uid], "+", ["\\Deleted"])
        await folders.expunge(draft.folder.id, [draft.uid])
    except NotFound:
        pass  # its folder was deleted meanwhile: the draft is gone with it


async def patient_may_keep(web: WebContext, chosen: MailboxChoice, in_reply_to: str,
                           references: str) -> bool:
    """Whether this draft may be kept in the chosen mailbox: anyone's but a patient's;
    a patient's only when it replies in a conversation still open (the thread its
    ``References`` and ``In-Reply-To`` name among those the store recorded)."""
    if chosen.type is not MailboxType.PAT:
        return True
    store = web.runtime.store
    ids = [*message_ids(references), *message_ids(in_reply_to)]
    threads = await store.threads_of(chosen.address, ids) if ids else []
    if not threads:
        return False
    known = {c.thread: c for c in await store.conversations(chosen.address)}
    conversation = known.get(threads[-1])
    return conversation is None or not conversation.closed
