"""Mailbox types and who may hold or use them.

TRE_R257-TypeBAL: PER (nominative), ORG (organisational), APP (applicative),
CAB (practice). PAT is this project's type for a patient mailbox on
``patient.mssante.fr`` (Mon espace santé); it never appears in the directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mssante.errors import PolicyViolation


class MailboxType(StrEnum):
    PER = "PER"  # nominative: one health professional
    ORG = "ORG"  # organisational: a service, several authorised people
    APP = "APP"  # applicative: a program authenticated by an organisation certificate
    CAB = "CAB"  # practice: the members of a private practice
    PAT = "PAT"  # patient (Mon espace santé)


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
