"""What a login sees: its own mailbox in the personal namespace, the organisational
and practice mailboxes it is authorised on in the shared namespace (RFC 2342).

- Personal namespace, prefix "" and delimiter "/": the folders of the identity's
  home mailbox (the PER or PAT mailbox a person owns; the APP mailbox of a program
  authenticated by its certificate).
- Shared namespace, prefix "Shared/": ``Shared/<address>/<folder>`` for every other
  active mailbox the person holds a role on (ORG and CAB mailboxes, and a second
  owned mailbox if any), with the rights the operator gave (``mssante operator
  mailbox grant [--read-only]``).

Rights (RFC 4314 §2.1): the home mailbox and the responsible of a shared one get
``lrswipkxtea``; "rw" gives ``lrswipkxte``; "r" gives ``lr`` (the folders open
read-only; marking a message seen would change it for every user of the mailbox).
Rights are read again at every command that touches a shared folder, so a
revocation takes effect at the next command of an open session.
"""

from __future__ import annotations

from dataclasses import dataclass

from mssante.domain.mailboxes import MailboxType, Role
from mssante.store.folders import DELIMITER, Access

SHARED = "Shared"
SHARED_PREFIX = SHARED + DELIMITER
ALL_RIGHTS = "lrswipkxtea"
WRITE_RIGHTS = "lrswipkxte"
READ_RIGHTS = "lr"
HOME_TYPES = (MailboxType.PER, MailboxType.PAT)


def rights_for(access: Access) -> str:
    """The rights a person's access gives: none on a closed mailbox, and none on an APP
    mailbox, which only its program uses (domain.mailboxes.may_use)."""
    if not access.active or access.type is MailboxType.APP:
        return ""
    return role_rights(access.role, access.rights)


def role_rights(role: Role, rights: str) -> str:
    if role in (Role.OWNER, Role.RESPONSIBLE):
        return ALL_RIGHTS
    return WRITE_RIGHTS if "w" in rights else READ_RIGHTS


@dataclass(frozen=True, slots=True)
class Place:
    """A name the client uses, resolved: which mailbox, which folder in it."""

    address: str  # lower-case address of the MSSanté mailbox
    folder: str  # the folder's name inside it ("INBOX", "Sent", ...)
    shared: bool  # in the shared namespace (rights are checked at every command)

    def visible_name(self) -> str:
        if not self.shared:
            return self.folder
        return f"{SHARED_PREFIX}{self.address}{DELIMITER}{self.folder}"


def home_of(accesses: list[Access]) -> str | None:
    """The mailbox of the personal namespace: the first active PER or PAT one owned."""
    for access in accesses:
        if access.role is Role.OWNER and access.type in HOME_TYPES and access.active:
            return access.address
    return None


def resolve(name: str, home: str | None) -> Place | None:
    """Where a client's mailbox name points; None when it names nothing possible
    (the shared prefix alone, or ``Shared/<address>`` without a folder)."""
    if name.upper() == "INBOX" or not name.startswith(SHARED_PREFIX):
        if home is None:
            return None
        return Place(home, name, shared=False)
    rest = name[len(SHARED_PREFIX):]
    address, sep, folder = rest.partition(DELIMITER)
    if not sep or not folder or "@" not in address:
        return None
    return Place(address.lower(), folder, shared=True)
