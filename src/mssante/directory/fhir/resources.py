"""FHIR R4 rendering of the directory: Practitioner, Organization, PractitionerRole,
their mailboxes as ``telecom``, and searchset Bundles. Pure functions, no I/O.

Invariants:

- A mailbox on the liste rouge is never rendered: ``telecoms`` drops it, whatever
  the caller passed (MSSanté reference, "National directory"; the queries do not
  fetch such mailboxes either).
- Where a mailbox appears (Annuaire Santé IG, as-mailbox-mss): PER and CAB on the
  Practitioner and on the PractitionerRole of the mailbox's organisation, ORG and
  APP on the Organization. The views carry the mailboxes already chosen so.
- Empty values are omitted, never rendered as ``""`` (FHIR R4 json.html: a string
  has at least one character; an element without value is absent); values are
  rendered trimmed.
- Mailboxes are listed by address, so that a resource reads the same every time.
- FHIR ids are the national identifiers (``model``): ``Practitioner/<idNatPs>``,
  ``Organization/<idNatSt>``, ``PractitionerRole/<idNatPs>-<idNatSt>``.

Codings (Annuaire Santé IG, as-practitioner and as-organization examples): identifier
types from fr-core-cs-v2-0203 (IDNPS, RPPS, ADELI, IDNST, FINEG, SIRET); profession
TRE_G15, professional category TRE_R09; savoir-faire assumed TRE_R38 (spécialité
ordinale: the extract does not name the nomenclature of its code).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mssante.directory.fhir.params import ORGANIZATION, PRACTITIONER, PRACTITIONER_ROLE
from mssante.directory.model import (
    ADELI_SYSTEM,
    FINESS_SYSTEM,
    ID_NAT_PS_SYSTEM,
    ID_NAT_ST_SYSTEM,
    RPPS_SYSTEM,
    SIRET_SYSTEM,
    Mailbox,
    Organisation,
    Practitioner,
)

JSON = dict[str, Any]

# Annuaire Santé IG: the telecom of an MSSanté mailbox (as-mailbox-mss).
EMAIL_TYPE_URL = ("https://interop.esante.gouv.fr/ig/fhir/core/StructureDefinition/"
                  "fr-core-contact-point-email-type")
EMAIL_TYPE_SYSTEM = ("https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/"
                     "TRE-R256-TypeMessagerie")
MSSANTE_CODE = "MSSANTE"
METADATA_URL = ("https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
                "as-ext-mailbox-mss-metadata")
MAILBOX_TYPE_SYSTEM = ("https://mos.esante.gouv.fr/NOS/JDV_J139-TypeBAL-RASS/FHIR/"
                       "JDV-J139-TypeBAL-RASS")
# The IG's examples code the type in TRE_R257-TypeBAL; accepted on input.
MAILBOX_TYPE_SYSTEMS = frozenset({
    MAILBOX_TYPE_SYSTEM,
    "https://mos.esante.gouv.fr/NOS/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL",
})

IDENTIFIER_TYPE_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
PROFESSION_SYSTEM = ("https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/"
                     "TRE-G15-ProfessionSante")
CATEGORY_SYSTEM = ("https://mos.esante.gouv.fr/NOS/TRE_R09-CategorieProfessionnelle/FHIR/"
                   "TRE-R09-CategorieProfessionnelle")
SKILL_SYSTEM = ("https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/"
                "TRE-R38-SpecialiteOrdinale")

_PP_SYSTEMS = {"8": (RPPS_SYSTEM, "RPPS"), "0": (ADELI_SYSTEM, "ADELI")}
_ST_SYSTEMS = {"1": (FINESS_SYSTEM, "FINEG"), "3": (SIRET_SYSTEM, "SIRET")}


@dataclass(frozen=True, slots=True)
class PractitionerView:
    practitioner: Practitioner
    mailboxes: tuple[Mailbox, ...]  # PER and CAB

    resource_type = PRACTITIONER

    @property
    def fhir_id(self) -> str:
        return self.practitioner.id_nat_ps


@dataclass(frozen=True, slots=True)
class OrganisationView:
    organisation: Organisation
    mailboxes: tuple[Mailbox, ...]  # ORG and APP

    resource_type = ORGANIZATION

    @property
    def fhir_id(self) -> str:
        return self.organisation.id_nat_st


@dataclass(frozen=True, slots=True)
class RoleView:
    practitioner: Practitioner
    organisation_id: str  # idNatSt
    organisation_name: str
    mailboxes: tuple[Mailbox, ...]  # PER and CAB of the practitioner at this organisation

    resource_type = PRACTITIONER_ROLE

    @property
    def fhir_id(self) -> str:
        return f"{self.practitioner.id_nat_ps}-{self.organisation_id}"


View = PractitionerView | OrganisationView | RoleView


def render(view: View) -> JSON:
    if isinstance(view, PractitionerView):
        return practitioner(view)
    if isinstance(view, OrganisationView):
        return organization(view)
    return practitioner_role(view)


def practitioner(view: PractitionerView) -> JSON:
    p = view.practitioner
    identifiers = [_identifier(ID_NAT_PS_SYSTEM, p.id_nat_ps, "IDNPS", official=True)]
    if p.id_type in _PP_SYSTEMS and p.pp_id.strip():
        system, code = _PP_SYSTEMS[p.id_type]
        identifiers.append(_identifier(system, p.pp_id, code))
    name = _drop_empty({
        "use": "official",
        "family": _text(p.family_name),
        "given": _list(p.given_name),
        "prefix": _list(p.civility),
    })
    qualifications = [{"code": concept} for concept in (
        _concept((PROFESSION_SYSTEM, p.profession_code, p.profession_label),
                 (CATEGORY_SYSTEM, p.profession_category, p.profession_category_label)),
        _concept((SKILL_SYSTEM, p.skill_code, p.skill_label)),
    ) if concept]
    return _drop_empty({
        "resourceType": PRACTITIONER,
        "id": p.id_nat_ps,
        "identifier": identifiers,
        "name": [name] if len(name) > 1 else [],
        "telecom": telecoms(view.mailboxes),
        "qualification": qualifications,
    })


def organization(view: OrganisationView) -> JSON:
    o = view.organisation
    identifiers = [_identifier(ID_NAT_ST_SYSTEM, o.id_nat_st, "IDNST", official=True)]
    if o.id_type in _ST_SYSTEMS and o.national_number.strip():
        system, code = _ST_SYSTEMS[o.id_type]
        identifiers.append(_identifier(system, o.national_number, code))
    street = " ".join(part.strip() for part in (
        o.street_number, o.street_number_complement, o.street_type, o.street_name)
        if part.strip())
    address = _drop_empty({
        "use": "work",
        "line": [line for line in (_text(o.location_complement),
                                   _text(o.distribution_complement), street,
                                   _text(o.locality)) if line],
        "city": _text(o.city),
        "district": _text(o.department),
        "postalCode": _text(o.postal_code),
        "country": _text(o.country),
    })
    return _drop_empty({
        "resourceType": ORGANIZATION,
        "id": o.id_nat_st,
        "identifier": identifiers,
        "name": _text(o.legal_name),
        "alias": _list(o.trade_name),
        "telecom": telecoms(view.mailboxes),
        "address": [address] if len(address) > 1 else [],
    })


def practitioner_role(view: RoleView) -> JSON:
    p = view.practitioner
    person = " ".join(part.strip() for part in (p.given_name, p.family_name) if part.strip())
    return _drop_empty({
        "resourceType": PRACTITIONER_ROLE,
        "id": view.fhir_id,
        "practitioner": _drop_empty({"reference": f"{PRACTITIONER}/{p.id_nat_ps}",
                                     "display": person}),
        "organization": _drop_empty({"reference": f"{ORGANIZATION}/{view.organisation_id}",
                                     "display": _text(view.organisation_name)}),
        "code": [c for c in (_concept(
            (PROFESSION_SYSTEM, p.profession_code, p.profession_label)),) if c],
        "telecom": telecoms(view.mailboxes),
    })


def telecoms(mailboxes: Iterable[Mailbox]) -> list[JSON]:
    """The published mailboxes as ContactPoints, by address; liste rouge dropped."""
    return [telecom(m) for m in sorted(mailboxes, key=lambda m: m.address)
            if not m.liste_rouge]


def telecom(mailbox: Mailbox) -> JSON:
    """Annuaire Santé IG as-mailbox-mss: ``system`` email, the MSSANTE email type and
    the as-ext-mailbox-mss-metadata extension."""
    metadata: list[JSON] = [{"url": "type", "valueCodeableConcept": {"coding": [
        {"system": MAILBOX_TYPE_SYSTEM, "code": mailbox.type.value}]}}]
    for url, value in (("description", mailbox.description), ("service", mailbox.service),
                       ("responsible", mailbox.responsible)):
        if value.strip():
            metadata.append({"url": url, "valueString": value.strip()})
    metadata.append({"url": "digitization", "valueBoolean": mailbox.digitization})
    metadata.append({"url": "listeRouge", "valueBoolean": mailbox.liste_rouge})
    return {
        "extension": [
            {"url": EMAIL_TYPE_URL,
             "valueCoding": {"system": EMAIL_TYPE_SYSTEM, "code": MSSANTE_CODE}},
            {"url": METADATA_URL, "extension": metadata},
        ],
        "system": "email",
        "value": mailbox.address,
    }


def searchset(base: str, matches: Sequence[View], included: Sequence[View], *,
              total: int | None, self_url: str, next_url: str | None) -> JSON:
    """FHIR R4 bundle.html, searchset: ``match`` entries then ``include`` entries,
    each with its absolute ``fullUrl``; ``next`` only when a further page exists."""
    links = [{"relation": "self", "url": self_url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    bundle: JSON = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    entries = [_entry(base, view, "match") for view in matches]
    entries += [_entry(base, view, "include") for view in included]
    if entries:
        bundle["entry"] = entries
    return bundle


def full_url(base: str, view: View) -> str:
    return f"{base}/{view.resource_type}/{view.fhir_id}"


def _entry(base: str, view: View, mode: str) -> JSON:
    return {"fullUrl": full_url(base, view), "resource": render(view),
            "search": {"mode": mode}}


def _identifier(system: str, value: str, type_code: str, *, official: bool = False) -> JSON:
    identifier: JSON = {"use": "official"} if official else {}
    identifier["type"] = {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": type_code}]}
    identifier["system"] = system
    identifier["value"] = value.strip()
    return identifier


def _concept(*codings: tuple[str, str, str]) -> JSON:
    """A CodeableConcept of the codings that have a code (``{}`` when none has one)."""
    # FHIR R4 §2.24.0.1 code: no leading or trailing whitespace, single inner spaces.
    rendered = [_drop_empty({"system": system, "code": " ".join(code.split()),
                             "display": display.strip()})
                for system, code, display in codings if code.strip()]
    return {"coding": rendered} if rendered else {}


def _text(value: str) -> str:
    return value.strip()


def _list(value: str) -> list[str]:
    return [value.strip()] if value.strip() else []


def _drop_empty(values: JSON) -> JSON:
    return {key: value for key, value in values.items() if value not in ("", [], {}, None)}
