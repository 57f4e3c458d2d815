"""Health alerts: whom an authority's alert goes to, and who may mark a message as one.

MSSanté reference, "Health alerts": authorities (DGS-Urgent, MARS) send ordinary
messages from an ORG or APP mailbox to a selection of the directory (profession,
specialty, department); receivers must see them as alerts. No alert header is
published for MSSanté, so the project defines its own:

- ``X-MSS-ALERTE: <alert id>`` (beside the reference's ``X-MSS-MES``), with
  ``Priority: urgent`` (RFC 2156 §5.3.6) and ``Importance: high`` (RFC 2156 §5.3.4)
  for clients that know nothing of MSSanté;
- the receiving operator stores the message with the IMAP keyword ``$Alerte``
  (RFC 9051 §2.3.2), announced in FLAGS, **only** when the message comes from a
  mailbox the operator lists as an authority (``[alerts] authorities``): the header
  alone proves nothing, anyone in the trust space can write it.

The selection reads the directory's columns (the public extract's): ``Code
Profession`` (TRE_G15), ``Code savoir-faire``, ``Département structure BAL``,
``Type de BAL`` and ``Identification Structure``. Criteria combine with AND; the
values of one repeated criterion with OR. Nothing here does I/O.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mssante.errors import MSSanteError

ALERT_HEADER = "X-MSS-ALERTE"
ALERT_KEYWORD = "$Alerte"  # RFC 9051 §2.3.2: a keyword (atom), set at delivery
ALERT_HEADERS: tuple[tuple[str, str], ...] = (("Priority", "urgent"), ("Importance", "high"))

# RPPS professions (nomenclature TRE_G15-ProfessionSante), the codes of ``Code Profession``.
PROFESSIONS: dict[str, str] = {
    "10": "Médecin", "21": "Pharmacien", "26": "Audioprothésiste",
    "28": "Opticien-Lunetier", "31": "Assistant dentaire", "32": "Physicien médical",
    "35": "Aide-soignant", "36": "Ambulancier", "37": "Auxiliaire de puériculture",
    "38": "Préparateur en pharmacie hospitalière", "39": "Préparateur en pharmacie",
    "40": "Chirurgien-Dentiste", "50": "Sage-Femme", "60": "Infirmier",
    "69": "Infirmier psychiatrique", "70": "Masseur-Kinésithérapeute",
    "80": "Pédicure-Podologue", "81": "Orthoprothésiste", "82": "Podo-Orthésiste",
    "83": "Orthopédiste-Orthésiste", "84": "Oculariste", "85": "Épithésiste",
    "86": "Technicien de laboratoire médical", "91": "Orthophoniste", "92": "Orthoptiste",
    "94": "Ergothérapeute", "95": "Diététicien", "96": "Psychomotricien",
    "98": "Manipulateur ERM",
}
# The mailbox types an alert may target: a person's (PER) or an organisation's (ORG).
TARGET_TYPES = ("PER", "ORG")

_SPECIALTY = re.compile(r"[A-Z]{1,4}[0-9]{1,4}")  # savoir-faire codes: SM04, SCD01, ...
_DEPARTMENT = re.compile(r"(?:0[1-9]|[1-8][0-9]|9[0-5]|2A|2B|97[1-6])")  # + overseas
_STRUCTURE = re.compile(r"(?:1[0-9A-Z]{9}|3[0-9]{14})")  # idNatSt: 1+FINESS, 3+SIRET
_ALERT_ID = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{8}")
MAX_SUBJECT = 200


class AlertError(MSSanteError):
    """A wrong alert: a criterion, a subject, an id; the message says which."""


@dataclass(frozen=True, slots=True)
class Target:
    """A selection of the directory (an empty tuple: that criterion is not used)."""

    professions: tuple[str, ...] = ()
    specialties: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    structures: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"{name} {', '.join(values)}" for name, values in (
            ("profession", self.professions), ("specialty", self.specialties),
            ("department", self.departments), ("type", self.types),
            ("structure", self.structures)) if values]
        return "; ".join(parts)


def target(*, professions: Iterable[str] = (), specialties: Iterable[str] = (),
           departments: Iterable[str] = (), types: Iterable[str] = (),
           structures: Iterable[str] = ()) -> Target:
    """A checked selection: known codes, well-formed values, at least one criterion
    (an alert to the whole directory is not sent by mistake)."""
    chosen = Target(
        professions=_unique(p.strip() for p in professions),
        specialties=_unique(s.strip().upper() for s in specialties),
        departments=_unique(d.strip().upper() for d in departments),
        types=_unique(t.strip().upper() for t in types),
        structures=_unique(s.strip().upper() for s in structures))
    for code in chosen.professions:
        if code not in PROFESSIONS:
            known = ", ".join(f"{c} {label}" for c, label in PROFESSIONS.items())
            raise AlertError(f"unknown profession code {code!r} (TRE_G15: {known})")
    for code in chosen.specialties:
        if not _SPECIALTY.fullmatch(code):
            raise AlertError(f"specialty {code!r}: a savoir-faire code, e.g. SM04")
    for code in chosen.departments:
        if not _DEPARTMENT.fullmatch(code):
            raise AlertError(f"department {code!r}: 01 to 95, 2A, 2B or 971 to 976")
    for code in chosen.types:
        if code not in TARGET_TYPES:
            raise AlertError(f"mailbox type {code!r}: PER or ORG")
    for code in chosen.structures:
        if not _STRUCTURE.fullmatch(code):
            raise AlertError(f"structure {code!r}: an idNatSt, 1 + FINESS or 3 + SIRET")
    if not chosen.describe():
        raise AlertError("no criterion: give --profession, --specialty, --department, "
                         "--type or --structure")
    return chosen


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def selects(chosen: Target, *, mailbox_type: str, profession: str, specialty: str,
            department: str, structure: str) -> bool:
    """Whether a mailbox of the directory, described by its columns, is selected.
    Only PER and ORG mailboxes receive alerts (not APP: programs; not CAB)."""
    if mailbox_type not in TARGET_TYPES:
        return False
    return all((
        not chosen.types or mailbox_type in chosen.types,
        not chosen.professions or profession in chosen.professions,
        not chosen.specialties or specialty.upper() in chosen.specialties,
        not chosen.departments or department.upper() in chosen.departments,
        not chosen.structures or structure.upper() in chosen.structures,
    ))


def new_alert_id(now: float | None = None) -> str:
    """``20261207T151200-1a2b3c4d``: when (UTC) and a random part."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(4)}"


def check_alert_id(text: str) -> str:
    if not _ALERT_ID.fullmatch(text):
        raise AlertError(f"alert id {text!r}: expected the id `alert send` printed, "
                         "e.g. 20261207T151200-1a2b3c4d")
    return text


def message_id(alert_id: str, domain: str) -> str:
    """The Message-ID of an alert: its id maps to it, so the status needs no table."""
    return f"<alerte.{check_alert_id(alert_id)}@{domain.lower()}>"


def check_subject(text: str) -> str:
    subject = text.strip()
    if not subject:
        raise AlertError("--subject: an alert needs a subject")
    if len(subject) > MAX_SUBJECT or not subject.isprintable():
        raise AlertError(f"--subject: printable, at most {MAX_SUBJECT} characters")
    return subject


def is_alert(*, alert_header: str | None, envelope_from: str,
             from_addresses: Sequence[str], authorities: Iterable[str]) -> bool:
    """Whether a message is stored as an alert (keyword ``ALERT_KEYWORD``): it carries
    the header, and both its envelope sender and its one From mailbox are authorities'
    mailboxes. The acceptance checked beforehand that the sending identity may use
    them (submission) or that the sending operator vouches for their domain (MTA)."""
    if not alert_header or not alert_header.strip():
        return False
    allowed = {a.lower() for a in authorities}
    return (bool(allowed) and envelope_from.lower() in allowed and len(from_addresses) == 1
            and from_addresses[0].lower() in allowed)
