"""What a login sees: its home in the personal namespace, every other mailbox it may
use in the shared namespace (RFC 2342). Which mailbox is the home, which others are
seen and with what use are the domain's rules (``domain.mailboxes``: ``home_mailbox``,
``beside_home``, ``use_of``); this module gives them their IMAP names and ACL rights.

- Personal namespace, prefix "" and delimiter "/": the folders of the identity's
  home mailbox (the PER or PAT mailbox recorded as the person's home, which stays
  theirs whatever is added later; the APP mailbox of a program authenticated by its
  certificate).
- Shared namespace, prefix "Shared/": ``Shared/<address>/<folder>`` for every other
  open mailbox the person holds a role on: the ORG and CAB mailboxes they are
  responsible for or authorised on (``mssante operator mailbox grant [--read-only]``)
  and their own other PER mailboxes (a second practice context). Every mail client
  lists a shared namespace as ordinary folders under its prefix; an "other users"
  namespace would name someone else's mailboxes, which these are not.

Rights (RFC 4314 §2.1): the home, another PER mailbox of the same person and the
responsible of a shared one get ``lrswipkxtea``; "rw" gives ``lrswipkxte``; "r" gives
``lr`` (the folders open read-only; marking a message seen would change it for every
user of the mailbox). Rights are read again at every command that touches a shared
folder, so a revocation takes effect at the next command of an open session.
"""

from __future__ import annotations

from dataclasses import dataclass

from mssante.domain.mailboxes import Role, Use, beside_home, role_use, use_of
from mssante.store.folders import DELIMITER, Access

SHARED = "Shared"
SHARED_PREFIX = SHARED + DELIMITER
ALL_RIGHTS = "lrswipkxtea"
WRITE_RIGHTS = "lrswipkxte"
READ_RIGHTS = "lr"
_ACL = {Use.NONE: "", Use.READ: READ_RIGHTS, Use.WRITE: WRITE_RIGHTS, Use.FULL: ALL_RIGHTS}


def rights_for(access: Access) -> str:
    """The rights a person's access gives (``domain.mailboxes.use_of``): none on a closed
    mailbox, and none on an APP mailbox, which only its program uses."""
    return _ACL[use_of(access)]


def role_rights(role: Role, rights: str) -> str:
    """The rights a role gives on an open mailbox, as GETACL lists them."""
    return _ACL[role_use(role, rights)]


def shared_mailboxes(login: str, accesses: list[Access]) -> list[tuple[str, str]]:
    """``(address, rights)`` of every mailbox the shared namespace shows ``login``, by
    address: everything but the home that the person may use (``beside_home``)."""
    return [(access.address, _ACL[use]) for access, use in beside_home(login, accesses)]


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
