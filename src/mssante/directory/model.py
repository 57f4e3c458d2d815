"""The directory's objects: professionals, organisations, practice roles, mailboxes.

MSSanté reference, "National directory": a professional (Practitioner) is known by
their idNatPs (``8`` + RPPS or ``0`` + ADELI), an organisation (Organization) by its
idNatSt (``1`` + FINESS or ``3`` + SIRET); a practice role (PractitionerRole) is a
professional at an organisation. A mailbox is a ``telecom`` of the resource that holds
it: PER and CAB on the professional (and on their role at the mailbox's structure),
ORG and APP on the organisation. A mailbox's address and type never change.

A mailbox on the liste rouge works but is never returned by a public interface
(FHIR, autocomplete, search, the published extract).

The FHIR ids are the national identifiers themselves (digits, valid FHIR ids):
``Practitioner/<idNatPs>``, ``Organization/<idNatSt>``,
``PractitionerRole/<idNatPs>-<idNatSt>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mssante.domain.mailboxes import MailboxType

# Identifier systems (MSSanté reference: ``identifier=urn:oid:1.2.250.1.71.4.2.1|8…``).
ID_NAT_PS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"  # idNatPs
ID_NAT_ST_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"  # idNatSt
RPPS_SYSTEM = "https://rpps.esante.gouv.fr"  # Identifiant PP when its type is 8
ADELI_SYSTEM = "https://adeli.esante.gouv.fr"  # Identifiant PP when its type is 0
FINESS_SYSTEM = "https://finess.esante.gouv.fr"  # structure id when its type is 1
SIRET_SYSTEM = "https://sirene.fr"  # structure id when its type is 3

PRACTITIONER_TYPES = frozenset({MailboxType.PER, MailboxType.CAB})
ORGANISATION_TYPES = frozenset({MailboxType.ORG, MailboxType.APP})


class ResourceKind(StrEnum):
    """The FHIR resources that hold mailboxes and that operators patch."""

    PRACTITIONER = "Practitioner"
    ORGANIZATION = "Organization"

    def holds(self, mailbox_type: MailboxType) -> bool:
        types = PRACTITIONER_TYPES if self is ResourceKind.PRACTITIONER else ORGANISATION_TYPES
        return mailbox_type in types


@dataclass(frozen=True, slots=True)
class Practitioner:
    """A professional; field meanings are the extract's columns of the same name."""

    id_nat_ps: str  # Identification nationale PP: the FHIR id
    id_type: str  # Type Identifiant PP: "8" RPPS, "0" ADELI
    pp_id: str  # Identifiant PP
    civility: str = ""
    family_name: str = ""
    given_name: str = ""
    profession_category: str = ""
    profession_category_label: str = ""
    profession_code: str = ""
    profession_label: str = ""
    skill_code: str = ""  # savoir-faire
    skill_label: str = ""


@dataclass(frozen=True, slots=True)
class Organisation:
    """An organisation (structure); address lines are the extract's L2…L6."""

    id_nat_st: str  # Identification Structure: the FHIR id
    id_type: str  # Type identifiant structure: "1" FINESS, "3" SIRET
    legal_name: str = ""  # raison sociale
    trade_name: str = ""  # enseigne commerciale
    location_complement: str = ""  # L2
    distribution_complement: str = ""  # L3
    street_number: str = ""  # L4 numéro
    street_number_complement: str = ""
    street_type: str = ""
    street_name: str = ""
    locality: str = ""  # L5
    routing_line: str = ""  # L6: "<postal code> <CITY>"
    postal_code: str = ""
    department: str = ""
    country: str = ""

    @property
    def national_number(self) -> str:
        """FINESS or SIRET: the idNatSt without its one-digit type prefix."""
        return self.id_nat_st[1:] if self.id_nat_st[:1] == self.id_type else self.id_nat_st

    @property
    def city(self) -> str:
        """The city of the routing line (L6 without its leading postal code)."""
        line = self.routing_line.strip()
        if self.postal_code and line.startswith(self.postal_code):
            line = line[len(self.postal_code):].strip()
        return line


@dataclass(frozen=True, slots=True)
class PracticeRole:
    """A professional at an organisation."""

    practitioner: str  # idNatPs
    organisation: str  # idNatSt

    @property
    def fhir_id(self) -> str:
        return f"{self.practitioner}-{self.organisation}"


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A mailbox as the directory holds it (the telecom entry and its metadata)."""

    address: str  # lower case
    type: MailboxType  # PER, ORG, APP or CAB
    practitioner: str = ""  # idNatPs of the holder (PER, CAB)
    organisation: str = ""  # idNatSt of its structure
    service: str = ""
    description: str = ""
    responsible: str = ""
    liste_rouge: bool = False
    digitization: bool = False
    publisher: str = ""  # the operator certificate DN that published it; "" = imported


@dataclass(frozen=True, slots=True)
class TelecomInsert:
    """FHIRPath Patch ``insert``/``add`` of a telecom: publish a new mailbox."""

    mailbox: Mailbox  # practitioner/organisation are set from the patched resource


@dataclass(frozen=True, slots=True)
class TelecomReplace:
    """``replace`` of ``telecom.where(value='<address>')``: change a mailbox's metadata."""

    address: str
    mailbox: Mailbox


@dataclass(frozen=True, slots=True)
class TelecomDelete:
    """``delete`` of ``telecom.where(value='<address>')``: withdraw a mailbox."""

    address: str


TelecomOp = TelecomInsert | TelecomReplace | TelecomDelete
