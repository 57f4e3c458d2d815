"""Mailbox types and who may hold or use them.

TRE_R257-TypeBAL: PER (nominative), ORG (organisational), APP (applicative),
CAB (practice). PAT is this project's type for a patient mailbox on
``patient.mssante.fr`` (Mon espace santé); it never appears in the directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from mssante.errors import PolicyViolation


class MailboxType(StrEnum):
    PER = "PER"  # nominative: one health professional
    ORG = "ORG"  # organisational: a service, several authorised people
    APP = "APP"  # applicative: a program authenticated by an organisation certificate
    CAB = "CAB"  # practice: the members of a private practice
    PAT = "PAT"  # patient (Mon espace santé)


# How a person is told the type of a mailbox (French, as the MSSanté documentation
# names them: "boîte aux lettres nominative", "organisationnelle", "applicative").
TYPE_LABELS: Final[Mapping[MailboxType, str]] = {
    MailboxType.PER: "Nominative",
    MailboxType.ORG: "Organisationnelle",
    MailboxType.APP: "Applicative",
    MailboxType.CAB: "Cabinet",
    MailboxType.PAT: "Patient",
}


class PersonKind(StrEnum):
    HEALTH = "professional"  # health professional, RPPS identified
    SOCIAL = "social"  # social-sector professional
    STAFF = "staff"  # other authorised staff, e.g. a medical secretary
    PATIENT = "patient"


class Role(StrEnum):
    OWNER = "owner"  # holder of a PER or PAT mailbox
    RESPONSIBLE = "responsible"  # responsible professional of ORG/APP/CAB
    AUTHORISED = "authorised"  # allowed to use an ORG/CAB mailbox


PROFESSIONAL_TYPES = frozenset({MailboxType.PER, MailboxType.ORG, MailboxType.APP,
                                MailboxType.CAB})


@dataclass(frozen=True, slots=True)
class Rules:
    """Settings that change who may hold what.

    ``social_may_hold_per``: the announced evolution that lets social-sector
    professionals hold PER mailboxes and be responsible for ORG mailboxes.
    """

    social_may_hold_per: bool = False


def check_owner(mailbox_type: MailboxType, kind: PersonKind, rules: Rules) -> None:
    """Raise PolicyViolation unless a person of ``kind`` may own a mailbox of this type."""
    if mailbox_type is MailboxType.PER:
        if kind is PersonKind.HEALTH:
            return
        if kind is PersonKind.SOCIAL and rules.social_may_hold_per:
            return
        raise PolicyViolation(
            "only health professionals may hold a nominative (PER) mailbox"
            + ("" if kind is not PersonKind.SOCIAL else
               " (social-sector professionals need the social_may_hold_per setting)"))
    if mailbox_type is MailboxType.PAT:
        if kind is not PersonKind.PATIENT:
            raise PolicyViolation("a patient mailbox belongs to a patient")
        return
    raise PolicyViolation(f"a {mailbox_type} mailbox has responsible and authorised "
                          "people, not an owner")


def check_responsible(mailbox_type: MailboxType, kind: PersonKind, rules: Rules) -> None:
    """Raise PolicyViolation unless ``kind`` may be responsible for this mailbox type."""
    if mailbox_type not in (MailboxType.ORG, MailboxType.APP, MailboxType.CAB):
        raise PolicyViolation(f"a {mailbox_type} mailbox has no responsible professional")
    if kind is PersonKind.HEALTH:
        return
    if kind is PersonKind.SOCIAL and rules.social_may_hold_per:
        return
    raise PolicyViolation(f"the responsible of a {mailbox_type} mailbox must be a health "
                          "professional")


def check_authorised(mailbox_type: MailboxType, kind: PersonKind) -> None:
    """Raise PolicyViolation unless ``kind`` may be authorised on this mailbox type.

    Anyone but a patient may be authorised on ORG or CAB mailboxes: health and
    social-sector professionals and staff (secretaries), under the responsible's
    authority. An ORG mailbox always keeps a responsible health professional,
    which the store enforces.
    """
    if mailbox_type not in (MailboxType.ORG, MailboxType.CAB):
        raise PolicyViolation(f"people are authorised on ORG and CAB mailboxes, not "
                              f"{mailbox_type}")
    if kind is PersonKind.PATIENT:
        raise PolicyViolation("a patient cannot use a professional mailbox")


class CertificateAlreadyBound(PolicyViolation):
    """The certificate DN already identifies another APP mailbox."""


def check_certificate_binding(address: str, dn: str, bound_to: str | None) -> None:
    """One certificate DN identifies one APP mailbox: a program logs in with its
    organisation certificate alone (SASL EXTERNAL at IMAP and submission, RFC 4422
    Appendix A), and the DN is all that says which mailbox it acts as; bound to two,
    one certificate would open both, or whichever came first. ``bound_to``: the APP
    mailbox the same DN (``pki.names.same_dn``) is bound to already, if any; raises
    CertificateAlreadyBound when it is another than ``address``."""
    if bound_to is not None and bound_to.lower() != address.lower():
        raise CertificateAlreadyBound(
            f"the certificate {dn} already identifies the APP mailbox {bound_to}: one "
            "certificate DN identifies one APP mailbox; give this one a certificate of "
            "its own (another DN, e.g. another CN)")


def may_use(mailbox_type: MailboxType, role: Role) -> bool:
    """Whether a person with ``role`` on a mailbox of this type may send as it.

    APP mailboxes are used by programs (organisation certificate), never by a
    person's login, even their responsible's.
    """
    if mailbox_type is MailboxType.APP:
        return False
    if mailbox_type in (MailboxType.PER, MailboxType.PAT):
        return role is Role.OWNER
    return role in (Role.RESPONSIBLE, Role.AUTHORISED)


# ------------------------------------------------------------------ practice contexts
#
# A professional who practises in several places holds several PER mailboxes (a
# consultation address beside the hospital one). Their login keeps one home, which
# mail clients show as INBOX and its folders, and never changes because another
# mailbox is added; every other mailbox the person may see (their other PER
# mailboxes, the ORG and CAB mailboxes they are responsible for or authorised on) is
# shown beside it, each under its own address.

HOME_TYPES = frozenset({MailboxType.PER, MailboxType.PAT})


@dataclass(frozen=True, slots=True)
class Holding:
    """A person's role on one mailbox, as the rules about it need it."""

    address: str  # lower case
    type: MailboxType
    role: Role
    rights: str  # "rw" or "r": what the operator granted (owners and responsibles: "rw")
    active: bool  # closed mailboxes keep their roles
    mailbox_id: int  # creation order: a mailbox created later has a greater id
    home: bool  # recorded as the person's home (at most one per person)

    @property
    def may_be_home(self) -> bool:
        return self.role is Role.OWNER and self.type in HOME_TYPES


class Use(StrEnum):
    """What a login may do in a mailbox it sees beside its home."""

    NONE = "none"  # not shown: closed, or an APP mailbox (its program's only)
    READ = "read"  # granted read only
    WRITE = "write"  # granted read and write
    FULL = "full"  # owner or responsible: everything a holder does, administration too


def home_mailbox(login: str, holdings: Iterable[Holding]) -> Holding | None:
    """The home of ``login``: the mailbox its personal namespace shows, open or closed.

    1. The one recorded as home (``Holding.home``). The store records the first PER
       or PAT mailbox a person is given, and keeps it whatever is added later.
    2. Else (none recorded: the database predates the record, or the home was
       deleted) the PER or PAT mailbox the person owns whose address is the login,
    3. else the first one they were given (lowest mailbox id, never by address).

    None for a person who owns no PER or PAT mailbox (staff, a responsible only).
    The store records the answer whenever it is not recorded yet, so that a rule
    of steps 2 and 3 never moves an existing home either.
    """
    candidates = [h for h in holdings if h.may_be_home]
    for holding in candidates:
        if holding.home:
            return holding
    key = login.lower()
    for holding in candidates:
        if holding.address == key:
            return holding
    return min(candidates, key=lambda h: h.mailbox_id, default=None)


def personal_mailbox(login: str, holdings: Iterable[Holding]) -> str | None:
    """The address of the personal namespace: the home while it is open. A closed home
    leaves the personal namespace empty; it never hands it to another mailbox."""
    home = home_mailbox(login, holdings)
    return home.address if home is not None and home.active else None


def use_of(holding: Holding) -> Use:
    """What a role gives on a mailbox seen beside the home: an owner (another PER mailbox
    of the same person) and a responsible everything; an authorised person what the
    operator granted; nothing on a closed mailbox or an APP mailbox."""
    if not holding.active or holding.type is MailboxType.APP:
        return Use.NONE
    return role_use(holding.role, holding.rights)


def role_use(role: Role, rights: str) -> Use:
    """What a role with the granted ``rights`` ("rw" or "r") gives on an open mailbox."""
    if role in (Role.OWNER, Role.RESPONSIBLE):
        return Use.FULL
    return Use.WRITE if "w" in rights else Use.READ


def beside_home(login: str, holdings: Iterable[Holding]) -> list[tuple[Holding, Use]]:
    """The mailboxes ``login`` sees beside its home, by address (a stable order that
    does not depend on when each was added), each with what it may do there."""
    held = list(holdings)
    home = home_mailbox(login, held)
    shown = [(h, use_of(h)) for h in held if home is None or h.address != home.address]
    return sorted(((h, use) for h, use in shown if use is not Use.NONE),
                  key=lambda pair: pair[0].address)


def may_send_from(holding: Holding) -> bool:
    """Whether a person may send as this mailbox: open, their role allows it
    (``may_use``: every PER mailbox they own, never an APP one) and granted writing."""
    return holding.active and "w" in holding.rights and may_use(holding.type, holding.role)
