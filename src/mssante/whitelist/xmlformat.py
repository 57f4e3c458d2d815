"""The ANS XML format of the whitelist (namespace ``https://listeblanche.mssante.fr/schema``).

Parsing goes through defusedxml (no entities, no external references: the file
comes from the network). ``Description``, the contacts and ``DateMAJ`` are optional
on input (``DateMAJ`` falls back to ``DateDeGeneration``); ``Nom`` and
``DNCertificatOperateur`` are required. Dates are written ``2025-03-13T14:54:10Z``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from mssante.errors import WhitelistError
from mssante.whitelist.model import Whitelist, WhitelistEntry, to_utc

NAMESPACE = "https://listeblanche.mssante.fr/schema"
_NS = f"{{{NAMESPACE}}}"
ROOT = "ListeBlancheMSSante"


def format_date(moment: datetime) -> str:
    return to_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise WhitelistError(f"{where}: not a date: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_utc(moment)


def to_xml(whitelist: Whitelist) -> bytes:
    """Serialise ``whitelist`` as UTF-8 XML with a declaration."""
    root = ET.Element(ROOT, xmlns=NAMESPACE)
    ET.SubElement(root, "DateDeGeneration").text = format_date(whitelist.generated_at)
    domains = ET.SubElement(root, "ListeDomaines")
    for entry in whitelist.entries:
        element = ET.SubElement(domains, "Domaine")
        ET.SubElement(element, "Nom").text = entry.name
        ET.SubElement(element, "Description").text = entry.description
        ET.SubElement(element, "DNCertificatOperateur").text = entry.operator_dn
        ET.SubElement(element, "ResponsableContact").text = entry.responsible_contact
        ET.SubElement(element, "SupportContact").text = entry.support_contact
        ET.SubElement(element, "DateMAJ").text = format_date(entry.updated_at)
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"


def _text(element: ET.Element, tag: str) -> str | None:
    child = element.find(_NS + tag)
    if child is None:
        return None
    return (child.text or "").strip()


def from_xml(data: bytes) -> Whitelist:
    """Parse the XML whitelist or raise WhitelistError saying what is wrong."""
    try:
        root = DET.fromstring(data, forbid_dtd=True)
    except ET.ParseError as exc:
        raise WhitelistError(f"whitelist is not well-formed XML: {exc}") from None
    except DefusedXmlException as exc:
        raise WhitelistError(f"whitelist XML refused: {exc!r}") from None
    if root.tag != _NS + ROOT:
        raise WhitelistError(f"whitelist root element is {root.tag!r}, expected "
                             f"{ROOT!r} in namespace {NAMESPACE}")
    generated_text = _text(root, "DateDeGeneration")
    if not generated_text:
        raise WhitelistError("whitelist has no DateDeGeneration")
    generated_at = parse_date(generated_text, "DateDeGeneration")
    domains = root.find(_NS + "ListeDomaines")
    if domains is None:
        raise WhitelistError("whitelist has no ListeDomaines")
    entries: list[WhitelistEntry] = []
    for index, element in enumerate(domains.iterfind(_NS + "Domaine"), start=1):
        where = f"Domaine #{index}"
        name = _text(element, "Nom")
        if not name:
            raise WhitelistError(f"{where}: missing Nom")
        dn = _text(element, "DNCertificatOperateur")
        if not dn:
            raise WhitelistError(f"{where} ({name}): missing DNCertificatOperateur")
        updated = _text(element, "DateMAJ")
        entries.append(WhitelistEntry(
            name=name,
            description=_text(element, "Description") or "",
            operator_dn=dn,
            responsible_contact=_text(element, "ResponsableContact") or "",
            support_contact=_text(element, "SupportContact") or "",
            updated_at=parse_date(updated, f"{where} ({name}) DateMAJ") if updated
            else generated_at))
    return Whitelist(generated_at=generated_at, entries=tuple(entries))
