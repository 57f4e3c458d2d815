"""Whether one typed recipient would be accepted, asked by a form before sending.

The check is sending's own (``sending.check_recipient``, the one submission and the
web's send run), so that the form refuses before sending exactly what sending
would refuse; this module only reads the typed text and turns a refusal into words
for the person typing:

- the text is one address (``domain.addresses``): ``local@domain``, ``<…>``, or a
  pasted ``Nom <local@domain>``, read as the compose form reads its fields
  (``parse_address_list``, then the address alone);
- then, as at sending: a patient sender may write only to a professional who wrote
  to them, in a conversation still open; an address of this operator is an
  existing, open mailbox (seen through the runtime's 2-second mailbox cache, as
  SMTP sees it); another is of a domain on the whitelist; a patient address has a
  valid INS.

The answer is a ``RecipientCheck``: accepted, or a ``Refusal`` kind with ``reason``,
a French sentence naming the address, and ``detail``, the refusal's own text (the
words submission replies with). Sending checks everything again: a mailbox may
close, a conversation end, between the two.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from mssante.auth.identity import Identity
from mssante.domain.addresses import mailboxes, parse_address, parse_address_list
from mssante.domain.policy import check_patient_address
from mssante.errors import InvalidAddress, PolicyViolation
from mssante.operator import sending
from mssante.operator.refusals import (
    BadAddress,
    ClosedMailbox,
    OutsideTrustSpace,
    PatientRule,
    Refused,
    TooManyRecipients,
    UnknownMailbox,
)
from mssante.operator.runtime import OperatorRuntime

_SHOWN: Final = 80  # characters of a text that is no address, quoted in the reason


class Refusal(StrEnum):
    """Why a recipient is refused (the web may choose its own words per kind)."""

    INVALID = "invalid"  # not one mail address
    OUTSIDE = "outside"  # outside the MSSanté trust space (not on the whitelist)
    UNKNOWN = "unknown"  # no such mailbox here, or not a valid patient address
    CLOSED = "closed"  # the mailbox exists here but is closed
    PATIENT = "patient"  # a patient may not write to this address
    TOO_MANY = "too_many"  # more recipients than one message may have


@dataclass(frozen=True, slots=True)
class RecipientCheck:
    """The verdict on one typed recipient."""

    typed: str  # the text as typed
    address: str | None  # the address read from it, as written; None when none
    refusal: Refusal | None = None  # None: accepted
    reason: str = ""  # for the person, in French, naming the address; "" when accepted
    detail: str = ""  # the refusal's own words (English), as submission replies

    @property
    def accepted(self) -> bool:
        return self.refusal is None


def _shown(text: str) -> str:
    """A text that is no address, fit to be quoted: without control characters, cut."""
    clean = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    clean = " ".join(clean.split())
    return clean if len(clean) <= _SHOWN else clean[:_SHOWN - 1] + "…"


def read_address(typed: str) -> str:
    """The one address of ``typed``; InvalidAddress for anything else."""
    try:
        return str(parse_address(typed))
    except InvalidAddress:
        if "<" not in typed:
            raise
    found = mailboxes(parse_address_list(typed))
    if len(found) != 1:
        raise InvalidAddress(f"one address expected, found {len(found) or 'none'}")
    return str(parse_address(found[0].addr_spec))


def _valid_patient_address(address: str) -> bool:
    """Whether ``address`` passes the patient address rule (others always do): which
    of the two reasons of an UnknownMailbox to give."""
    try:
        check_patient_address(parse_address(address))
    except (InvalidAddress, PolicyViolation):
        return False
    return True


def _french(refused: Refused, address: str) -> tuple[Refusal, str]:
    """The kind of a refusal and its reason in French."""
    if isinstance(refused, OutsideTrustSpace):
        domain = address.rpartition("@")[2]
        return Refusal.OUTSIDE, (
            f"{address} est hors de l'espace de confiance MSSanté : le domaine {domain} "
            "n'est pas sur la liste blanche MSSanté, des données de santé ne peuvent pas "
            "y être envoyées.")
    if isinstance(refused, UnknownMailbox):
        if not _valid_patient_address(address):
            return Refusal.UNKNOWN, (
                f"{address} n'est pas une adresse de patient valide : avant « @ » doit "
                "figurer l'INS du patient (15 chiffres).")
        return Refusal.UNKNOWN, f"{address} n'existe pas : aucune boîte aux lettres de ce nom."
    if isinstance(refused, ClosedMailbox):
        return Refusal.CLOSED, f"La boîte aux lettres {address} est fermée."
    if isinstance(refused, PatientRule):
        return Refusal.PATIENT, (
            f"Vous ne pouvez pas écrire à {address} : un patient peut seulement répondre à "
            "un professionnel qui lui a écrit, tant que la conversation est ouverte.")
    if isinstance(refused, TooManyRecipients):
        return Refusal.TOO_MANY, f"{address} : trop de destinataires pour un seul message."
    return Refusal.INVALID, f"« {_shown(address)} » n'est pas une adresse de messagerie valide."


async def check_recipient(ctx: OperatorRuntime, identity: Identity, sender: str,
                          typed: str, *, accepted: int = 0) -> RecipientCheck:
    """Would ``typed`` be accepted as a recipient of a message ``identity`` sends now
    as ``sender`` (a mailbox it may use), beside ``accepted`` recipients already?
    (module docstring)"""
    try:
        address = read_address(typed)
    except InvalidAddress as exc:
        return RecipientCheck(
            typed, None, Refusal.INVALID,
            f"« {_shown(typed)} » n'est pas une adresse de messagerie valide.", str(exc))
    try:
        await sending.check_recipient(ctx, identity, sender, address, accepted=accepted)
    except BadAddress as exc:  # read above already: not expected
        return RecipientCheck(typed, None, Refusal.INVALID, _french(exc, typed)[1], str(exc))
    except Refused as exc:
        refusal, reason = _french(exc, address)
        return RecipientCheck(typed, address, refusal, reason, str(exc))
    return RecipientCheck(typed, address)
