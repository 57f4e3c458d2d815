"""Whether one typed recipient would be accepted, asked by a form before sending.

The same rules as submission's RCPT (``smtp/submission.py``, README "The rules
enforced"), by the same functions of ``domain/``, so that the form refuses
before sending exactly what sending would refuse, and says why:

- the text is one address (``domain.addresses.parse_address``; a pasted
  ``Name <address>`` is read with ``parse_one_mailbox`` first);
- a patient sender (``identity`` a patient, ``sender`` given) may write only to a
  professional who wrote to them, in a conversation still open
  (``domain.patient.check_patient_recipient``);
- an address of this operator's domains: a valid patient address if it is one, and
  an existing, open mailbox (``domain.policy.check_patient_address``,
  ``check_deliverable``, through the runtime's mailbox cache, as SMTP);
- any other: a domain of the trust space on the operator's current whitelist
  (``domain.policy.check_recipient_in_trust_space``) and a valid patient address if
  it is one.

The answer is a ``RecipientCheck``: accepted, or a ``Refusal`` kind with ``reason``,
a French sentence naming the address for the person typing, and ``detail``, the
rule's own text as SMTP replies give it (English).

Nothing here is a second copy of a rule: when the acceptance path moves to
``operator/`` (``operator/sending.py``), ``check_recipient`` becomes a call of its
recipient check and a translation of its refusals.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from mssante.auth.identity import Identity
from mssante.domain.addresses import (
    Address,
    is_trust_space_domain,
    parse_address,
    parse_one_mailbox,
)
from mssante.domain.patient import check_patient_recipient
from mssante.domain.policy import (
    MailboxClosed,
    NoSuchMailbox,
    check_deliverable,
    check_patient_address,
    check_recipient_in_trust_space,
)
from mssante.errors import InvalidAddress, PolicyViolation
from mssante.operator.runtime import OperatorRuntime

_SHOWN: Final = 80  # characters of a text that is no address, quoted in the reason


class Refusal(StrEnum):
    """Why a recipient is refused (the web may choose its own words per kind)."""

    INVALID = "invalid"  # not a mail address
    OUTSIDE = "outside"  # outside the MSSanté trust space (not on the whitelist)
    UNKNOWN = "unknown"  # no such mailbox here, or not a valid patient address
    CLOSED = "closed"  # the mailbox exists here but is closed
    PATIENT = "patient"  # a patient may not write to this address


@dataclass(frozen=True, slots=True)
class RecipientCheck:
    """The verdict on one typed recipient."""

    typed: str  # the text as typed
    address: str | None  # the address read from it, as written; None when none
    refusal: Refusal | None = None  # None: accepted
    reason: str = ""  # for the person, in French, naming the address; "" when accepted
    detail: str = ""  # the rule's own words (English), as submission would reply

    @property
    def accepted(self) -> bool:
        return self.refusal is None


def _shown(text: str) -> str:
    """A text that is no address, fit to be quoted: without control characters, cut."""
    clean = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    clean = " ".join(clean.split())
    return clean if len(clean) <= _SHOWN else clean[:_SHOWN - 1] + "…"


def _parse(typed: str) -> Address:
    try:
        return parse_address(typed)
    except InvalidAddress:
        if "<" not in typed:
            raise
    return parse_address(parse_one_mailbox(typed).addr_spec)


def _refused(typed: str, rcpt: Address, refusal: Refusal, reason: str,
             exc: Exception) -> RecipientCheck:
    return RecipientCheck(typed, str(rcpt), refusal, reason, str(exc))


async def check_recipient(ctx: OperatorRuntime, typed: str, *,
                          identity: Identity | None = None,
                          sender: str | None = None) -> RecipientCheck:
    """Would ``typed`` be accepted as a recipient of a message sent now by
    ``identity`` as ``sender``? (module docstring)"""
    try:
        rcpt = _parse(typed)
    except InvalidAddress as exc:
        return RecipientCheck(
            typed, None, Refusal.INVALID,
            f"« {_shown(typed)} » n'est pas une adresse de messagerie valide.", str(exc))
    if identity is not None and identity.is_patient and sender:
        conversations = await ctx.store.conversations(sender.lower())
        try:
            check_patient_recipient(rcpt.key, rcpt.is_patient, conversations)
        except PolicyViolation as exc:
            return _refused(typed, rcpt, Refusal.PATIENT,
                            f"Vous ne pouvez pas écrire à {rcpt} : un patient peut seulement "
                            "répondre à un professionnel qui lui a écrit, tant que la "
                            "conversation est ouverte.", exc)
    if ctx.is_local(rcpt.key):
        if (refused := _patient_address(typed, rcpt)) is not None:
            return refused
        mailbox = await ctx.mailbox(rcpt.key)
        try:
            check_deliverable(rcpt, exists=mailbox is not None,
                              active=mailbox is not None and mailbox.active)
        except NoSuchMailbox as exc:
            return _refused(typed, rcpt, Refusal.UNKNOWN,
                            f"{rcpt} n'existe pas : aucune boîte aux lettres de ce nom.", exc)
        except MailboxClosed as exc:
            return _refused(typed, rcpt, Refusal.CLOSED,
                            f"La boîte aux lettres {rcpt} est fermée.", exc)
        return RecipientCheck(typed, str(rcpt))
    listed = is_trust_space_domain(rcpt.domain) and ctx.trust.whitelist.is_listed(rcpt.domain)
    try:
        check_recipient_in_trust_space(rcpt, listed)
    except PolicyViolation as exc:
        return _refused(typed, rcpt, Refusal.OUTSIDE,
                        f"{rcpt} est hors de l'espace de confiance MSSanté : le domaine "
                        f"{rcpt.domain} n'est pas sur la liste blanche MSSanté, des "
                        "données de santé ne peuvent pas y être envoyées.", exc)
    return _patient_address(typed, rcpt) or RecipientCheck(typed, str(rcpt))


def _patient_address(typed: str, rcpt: Address) -> RecipientCheck | None:
    try:
        check_patient_address(rcpt)
    except PolicyViolation as exc:
        return _refused(typed, rcpt, Refusal.UNKNOWN,
                        f"{rcpt} n'est pas une adresse de patient valide : avant « @ » "
                        "doit figurer l'INS du patient (15 chiffres).", exc)
    return None
