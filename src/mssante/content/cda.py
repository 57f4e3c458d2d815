"""The header of an HL7 CDA R2 document, as the CI-SIS structures it (Volet Structuration
minimale, CI-SIS "en-tête des documents de santé"): who the patient is, who wrote it,
what it is. Read from bytes by the safe parser (content/xmlsafe.py), no I/O.

Where each field is read (paths in the ``urn:hl7-org:v3`` namespace):

- document id: ``/ClinicalDocument/id`` (``@root``, ``@extension``); ``code`` (LOINC),
  ``title``, ``effectiveTime``, ``confidentialityCode``, ``languageCode``;
- patient: ``recordTarget/patientRole/id`` whose ``@root`` is an INS authority
  (domain/ins.py) is the INS, the other ``id`` (the IPP...) are kept beside it;
  ``patient/name/family[@qualifier='BR']`` (else the first ``family``) the birth name,
  the first ``given``, ``birthTime/@value``, ``administrativeGenderCode/@code``;
- author: ``author/assignedAuthor``: ``id[@root='1.2.250.1.71.4.2.1']`` the idNatPs,
  ``assignedPerson/name``, ``code`` the specialty, ``representedOrganization`` (``id``
  idNatSt ``1.2.250.1.71.4.2.2``, ``name``); ``legalAuthenticator/assignedEntity``;
- practice setting: ``documentationOf/serviceEvent/performer/assignedEntity/``
  ``representedOrganization/standardIndustryClassCode``; service start and stop:
  ``serviceEvent/effectiveTime/low`` and ``high``;
- facility type: ``componentOf/encompassingEncounter/location/healthCareFacility/code``;
- body: ``component/structuredBody``, or ``component/nonXMLBody/text/@mediaType``.

A document without ``code``, ``effectiveTime``, or with no or several ``recordTarget``
(MSSanté: one document, one patient) is refused with the reasons.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from lxml import etree

from mssante.content.xmlsafe import parse_xml
from mssante.domain.ins import INS_OIDS, is_qualified_ins, validate_ins
from mssante.errors import DocumentRefused, InvalidINS

HL7 = "urn:hl7-org:v3"
NS = {"h": HL7}
ID_NAT_PS_OID = "1.2.250.1.71.4.2.1"  # idNatPs (RPPS/ADELI-based)
ID_NAT_ST_OID = "1.2.250.1.71.4.2.2"  # idNatSt (FINESS/SIRET-based)
LOINC_OID = "2.16.840.1.113883.6.1"


@dataclass(frozen=True, slots=True)
class Code:
    """A coded value: code, code system (an OID) and its label."""

    code: str
    scheme: str
    display: str = ""


@dataclass(frozen=True, slots=True)
class Patient:
    ins: str | None  # the matricule INS (15 digits), when the document carries one
    ins_oid: str | None  # its assigning authority (domain/ins.py INS_OIDS)
    other_ids: tuple[tuple[str, str], ...]  # (extension, root): the IPP and others
    birth_name: str
    given_name: str  # the first given name
    birth_date: str  # HL7 TS as written, YYYYMMDD...
    sex: str  # administrativeGenderCode: M, F, U

    @property
    def qualified(self) -> bool:
        """A qualified INS (X-MSS-INS: O): the matricule, its OID and the four traits."""
        return is_qualified_ins(self.ins, self.ins_oid, birth_name=self.birth_name,
                                first_given_name=self.given_name,
                                birth_date=self.birth_date, sex=self.sex)


@dataclass(frozen=True, slots=True)
class Person:
    """A professional: the identifier (idNatPs when ``id_root`` is ID_NAT_PS_OID)."""

    id: str
    id_root: str
    family_name: str
    given_name: str
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class Organisation:
    id: str  # idNatSt when id_root is ID_NAT_ST_OID
    id_root: str
    name: str


@dataclass(frozen=True, slots=True)
class CdaHeader:
    id_root: str
    id_extension: str
    code: Code
    title: str
    effective_time: str  # HL7 TS as written
    confidentiality: Code
    language: str
    patient: Patient
    author: Person | None
    author_specialty: Code | None
    author_institution: Organisation | None
    legal_authenticator: Person | None
    practice_setting: Code | None
    facility_type: Code | None
    service_start: str | None
    service_stop: str | None
    body_media_type: str | None  # None for a structured body, else nonXMLBody's mediaType

    @property
    def unique_id(self) -> str:
        """The document's XDS uniqueId: ``root^extension``, or the root alone (CI-SIS)."""
        return f"{self.id_root}^{self.id_extension}" if self.id_extension else self.id_root


def _text(node: etree._Element | None) -> str:
    if node is None:
        return ""
    return " ".join("".join(node.itertext()).split())


def _first(node: etree._Element, path: str) -> etree._Element | None:
    found = node.xpath(path, namespaces=NS)
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return found[0]
    return None


def _all(node: etree._Element, path: str) -> list[etree._Element]:
    found = node.xpath(path, namespaces=NS)
    return [item for item in found if isinstance(item, etree._Element)] \
        if isinstance(found, list) else []


def _attr(node: etree._Element | None, name: str) -> str:
    if node is None:
        return ""
    value = node.get(name)
    return value.strip() if value else ""


def _code(node: etree._Element | None) -> Code | None:
    code = _attr(node, "code")
    if not code:
        return None
    return Code(code, _attr(node, "codeSystem"), _attr(node, "displayName"))


def _person(node: etree._Element | None, root: str) -> Person | None:
    """The professional of an ``assignedAuthor`` or ``assignedEntity``."""
    if node is None:
        return None
    ident = _first(node, f"h:id[@root='{root}']")
    if ident is None:
        ident = _first(node, "h:id")
    name = _first(node, "h:assignedPerson/h:name")
    if ident is None and name is None:
        return None
    return Person(id=_attr(ident, "extension"), id_root=_attr(ident, "root"),
                  family_name=_text(_first(name, "h:family")) if name is not None else "",
                  given_name=_text(_first(name, "h:given")) if name is not None else "",
                  prefix=_text(_first(name, "h:prefix")) if name is not None else "")


def _patient(role: etree._Element, reasons: list[str]) -> Patient:
    ins = ins_oid = None
    others: list[tuple[str, str]] = []
    for ident in _all(role, "h:id"):
        root, extension = _attr(ident, "root"), _attr(ident, "extension")
        if root in INS_OIDS and ins is None:
            try:
                ins = validate_ins(extension)
                ins_oid = root
            except InvalidINS as exc:
                reasons.append(f"CDA patient: {exc}")
        elif extension:
            others.append((extension, root))
    patient = _first(role, "h:patient")
    name = _first(patient, "h:name") if patient is not None else None
    birth = family = given = None
    if name is not None:
        birth = _first(name, "h:family[@qualifier='BR']")
        family = birth if birth is not None else _first(name, "h:family")
        given = _first(name, "h:given")
    return Patient(
        ins=ins, ins_oid=ins_oid, other_ids=tuple(others),
        birth_name=_text(family), given_name=_text(given),
        birth_date=_attr(_first(patient, "h:birthTime"), "value") if patient is not None else "",
        sex=_attr(_first(patient, "h:administrativeGenderCode"), "code")
        if patient is not None else "")


def read_cda(data: bytes, what: str = "CDA document") -> CdaHeader:
    """The header of the CDA R2 document ``data``; DocumentRefused with every reason
    when it cannot be trusted or lacks what identifies it."""
    root = parse_xml(data, what)
    return cda_header(root, what)


def is_cda(root: etree._Element) -> bool:
    return root.tag == f"{{{HL7}}}ClinicalDocument"


def cda_header(root: etree._Element, what: str = "CDA document") -> CdaHeader:
    """``read_cda`` on a parsed root element."""
    if not is_cda(root):
        raise DocumentRefused([f"{what}: not a CDA R2 document (root {root.tag!r}, "
                               f"expected ClinicalDocument in {HL7})"])
    reasons: list[str] = []
    ident = _first(root, "h:id")
    code = _code(_first(root, "h:code"))
    effective = _attr(_first(root, "h:effectiveTime"), "value")
    if ident is None or not _attr(ident, "root"):
        reasons.append(f"{what}: no document id (ClinicalDocument/id/@root)")
    if code is None:
        reasons.append(f"{what}: no document code (ClinicalDocument/code/@code)")
    if not effective:
        reasons.append(f"{what}: no effectiveTime")
    elif hl7_time(effective) is None:
        reasons.append(f"{what}: effectiveTime {effective!r} is not an HL7 date")
    roles = _all(root, "h:recordTarget/h:patientRole")
    if len(roles) != 1:
        reasons.append(f"{what}: {len(roles)} patients (recordTarget), one expected")
    patient = _patient(roles[0], reasons) if roles else Patient(None, None, (), "", "", "", "")
    assigned = _first(root, "h:author/h:assignedAuthor")
    organisation = _first(assigned, "h:representedOrganization") \
        if assigned is not None else None
    institution = None
    if organisation is not None:
        org_id = _first(organisation, f"h:id[@root='{ID_NAT_ST_OID}']")
        if org_id is None:
            org_id = _first(organisation, "h:id")
        institution = Organisation(_attr(org_id, "extension"), _attr(org_id, "root"),
                                   _text(_first(organisation, "h:name")))
    event = _first(root, "h:documentationOf/h:serviceEvent")
    body = _first(root, "h:component/h:nonXMLBody/h:text")
    if reasons:
        raise DocumentRefused(reasons)
    assert code is not None and ident is not None
    return CdaHeader(
        id_root=_attr(ident, "root"), id_extension=_attr(ident, "extension"),
        code=code, title=_text(_first(root, "h:title")), effective_time=effective,
        confidentiality=_code(_first(root, "h:confidentialityCode"))
        or Code("N", "2.16.840.1.113883.5.25", "Normal"),
        language=_attr(_first(root, "h:languageCode"), "code") or "fr-FR",
        patient=patient,
        author=_person(assigned, ID_NAT_PS_OID),
        author_specialty=_code(_first(assigned, "h:code")) if assigned is not None else None,
        author_institution=institution,
        legal_authenticator=_person(_first(root, "h:legalAuthenticator/h:assignedEntity"),
                                    ID_NAT_PS_OID),
        practice_setting=_code(_first(
            root, "h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity"
                  "/h:representedOrganization/h:standardIndustryClassCode")),
        facility_type=_code(_first(
            root, "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility"
                  "/h:code")),
        service_start=_attr(_first(event, "h:effectiveTime/h:low"), "value") or None
        if event is not None else None,
        service_stop=_attr(_first(event, "h:effectiveTime/h:high"), "value") or None
        if event is not None else None,
        body_media_type=(_attr(body, "mediaType") or "text/plain") if body is not None else None,
    )


# HL7 V3 TS: YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]
_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?"
                 r"([+-]\d{4})?\Z")


def hl7_time(value: str) -> str | None:
    """An HL7 TS as XDS wants it (ITI TF-3 §4.2.3.1.7 DTM, UTC, at the precision given:
    ``YYYY[MM[DD[hh[mm[ss]]]]]``); None when ``value`` is not a TS. A time with a zone
    offset is converted to UTC; one without is taken as written."""
    match = _TS.match(value.strip())
    if not match:
        return None
    parts = [p for p in match.groups()[:6] if p is not None]  # optional groups nest
    zone = match.group(7)
    try:
        n = [int(p) for p in parts] + [1, 1, 0, 0, 0][len(parts) - 1:]
        moment = dt.datetime(n[0], n[1], n[2], n[3], n[4], n[5])
        offset = dt.timedelta(0)
        if zone:
            offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:]))
            if zone[0] == "-":
                offset = -offset
    except ValueError:
        return None
    if zone and len(parts) >= 4:
        moment = moment - offset
    return moment.strftime("%Y%m%d%H%M%S")[:4 + 2 * (len(parts) - 1)]
