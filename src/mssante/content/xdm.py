"""IHE XDM archives (``IHE_XDM.ZIP``): building one from CDA documents, and checking one
received from anyone. Bytes in, bytes or values out: no file, no network.

Layout (IHE ITI TF-1 §16, ITI TF-3 §4.2 metadata and §4.3.1 XDM media; ANS MSSanté and
DMP integration guides)::

    README.TXT                       who made the archive, with what
    INDEX.HTM                        an XHTML page linking every document
    IHE_XDM/SUBSET01/METADATA.XML    ebRIM 3.0 lcm:SubmitObjectsRequest
    IHE_XDM/SUBSET01/DOC0001.XML     the CDA R2 document
    IHE_XDM/SUBSET01/DOC0002.PDF     its PDF rendering, a document entry of its own

METADATA.XML holds one ``rim:RegistryPackage`` (the SubmissionSet, classified by
``urn:uuid:a54d6aa5-…``, with submissionTime, author, patientId, sourceId, uniqueId),
one ``rim:ExtrinsicObject`` per document (the DocumentEntry: patientId
``<INS>^^^&<OID>&ISO^NH``, sourcePatientId, sourcePatientInfo, author with the
idNatPs as an XCN, SHA-1 hash and size, class, type, format, confidentiality,
practice setting and facility type codes, creationTime, languageCode, mimeType, URI)
and one HasMember ``rim:Association`` per document. File names are 8.3, upper case.

Checking (``check``) treats the archive as hostile; every reason is collected where
reading can go on, and the archive is refused if there is any:

- the ZIP itself: its size; the number of entries; each name (``..``, absolute, a
  backslash, a drive letter, a control character, too long, the same name twice, also
  when only the case differs); symbolic links and other non-regular entries; encrypted
  entries; compression methods other than stored and deflate; entries whose data
  overlap (the "better zip bomb");
- decompression is streamed and counted as it happens, never trusting the sizes the
  headers claim: a member past its limit, all members past the total, or a
  compression ratio past the limit stops reading at once (zip bomb); a bad CRC is
  refused;
- the XML (METADATA.XML, every XML document): through content/xmlsafe.py (no DTD, no
  entity, no network);
- the metadata: one SubmissionSet per subset with a patientId; every document entry
  with the same patientId, a valid INS when the OID is an INS authority's, a URI
  naming a file of its subset, and that file's SHA-1 and size; a member of the
  submission set;
- each CDA: its header readable (content/cda.py), and its patient the metadata's.

Limits (``Limits``) default to what a 25 MB MSSanté message can carry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import itertools
import re
import stat
import uuid
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from mssante.content.cda import CdaHeader, Code, cda_header, hl7_time, is_cda
from mssante.content.xmlsafe import parse_xml
from mssante.domain.ins import is_ins_oid, validate_ins
from mssante.errors import DocumentRefused, InvalidINS

# --- ebRIM 3.0 and IHE identifiers (ITI TF-3 §4.2.5, Table 4.2.5-1) -------------------

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NSMAP = {"lcm": LCM, "rim": RIM}

SUBMISSION_SET = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
STABLE_DOCUMENT = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_FORMAT = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_FACILITY = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
CLASSIFICATION_OBJECT = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
EXTERNAL_ID_OBJECT = \
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"
ASSOCIATION_OBJECT = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"

# --- codes (CI-SIS terminologies, IHE format codes) -------------------------------------

ID_NAT_PS_OID = "1.2.250.1.71.4.2.1"
ID_NAT_ST_OID = "1.2.250.1.71.4.2.2"
IHE_FORMAT_CODES = "1.3.6.1.4.1.19376.1.2.3"
MIME_TYPE_SUFFICIENT = Code("urn:ihe:iti:xds:2017:mimeTypeSufficient", IHE_FORMAT_CODES,
                            "Format décrit par le type MIME")
# ASS_A12 (CI-SIS): the formatCode of a CDA with a non-structured body, by its mediaType
NON_XML_BODY_FORMATS: dict[str, Code] = {
    "application/pdf": Code("urn:ihe:iti:xds-sd:pdf:2008", IHE_FORMAT_CODES,
                            "Document à corps non structuré en Pdf/A-1"),
    "text/plain": Code("urn:ihe:iti:xds-sd:text:2008", IHE_FORMAT_CODES,
                       "Document à corps non structuré en texte brut"),
    "text/rtf": Code("urn:ihe:iti-fr:xds-sd:rtf:2010", IHE_FORMAT_CODES,
                     "Document à corps non structuré en RTF"),
    "image/jpeg": Code("urn:ihe:iti-fr:xds-sd:jpeg:2010", IHE_FORMAT_CODES,
                       "Document à corps non structuré en JPEG"),
    "image/tiff": Code("urn:ihe:iti-fr:xds-sd:tiff:2010", IHE_FORMAT_CODES,
                       "Document à corps non structuré en TIFF"),
}
# JDV_J06-XdsClassCode-CISIS (1.2.250.1.213.1.1.4.1): the classCode of the document types
# known here; another type needs its class code given (``class_code``).
CLASS_CODES = "1.2.250.1.213.1.1.4.1"
COMPTE_RENDU = Code("10", CLASS_CODES, "Compte rendu")
CLASS_OF_TYPE: dict[str, Code] = {
    "11488-4": COMPTE_RENDU,  # consultation
    "34112-3": COMPTE_RENDU,  # hospitalisation
    "11490-0": COMPTE_RENDU,  # lettre de liaison à la sortie
    "11502-2": COMPTE_RENDU,  # biologie
    "18748-4": COMPTE_RENDU,  # imagerie
    "11526-1": COMPTE_RENDU,  # anatomie et cytologie pathologiques
    "34874-8": COMPTE_RENDU,  # opératoire
    "15508-5": COMPTE_RENDU,  # accouchement
}

SUBSET = "IHE_XDM/SUBSET01"
METADATA = "METADATA.XML"
XML_TYPES = frozenset({"text/xml", "application/xml", "application/hl7-v3+xml"})


@dataclass(frozen=True, slots=True)
class Limits:
    """What ``check`` accepts; the defaults fit a 25 MB MSSanté message."""

    archive: int = 32 * 1024 * 1024  # octets of the ZIP itself
    entries: int = 200  # members, folders included
    member: int = 30 * 1024 * 1024  # octets of one member, decompressed
    total: int = 64 * 1024 * 1024  # octets of all members, decompressed
    ratio: int = 200  # decompressed / compressed octets of a member ...
    ratio_floor: int = 1024 * 1024  # ... once it has given this many
    name: int = 255  # characters of a member's name
    metadata: int = 4 * 1024 * 1024  # octets of one METADATA.XML


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class CheckedDocument:
    """A document of a checked archive: its bytes matched the metadata."""

    name: str  # its path in the archive, e.g. IHE_XDM/SUBSET01/DOC0001.XML
    mime_type: str
    sha1: str
    size: int
    unique_id: str
    title: str
    data: bytes = field(repr=False)
    cda: CdaHeader | None = None  # the header, for a CDA R2 document

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "mime_type": self.mime_type, "sha1": self.sha1,
                "size": self.size, "unique_id": self.unique_id, "title": self.title,
                "cda_code": self.cda.code.code if self.cda else None}


@dataclass(frozen=True, slots=True)
class CheckedArchive:
    patient_id: str  # the metadata's patientId, an HL7 CX
    patient_ins: str | None  # the INS when the patientId's authority is an INS one
    patient_oid: str
    documents: tuple[CheckedDocument, ...]
    warnings: tuple[str, ...] = ()

    @property
    def cdas(self) -> tuple[CdaHeader, ...]:
        return tuple(d.cda for d in self.documents if d.cda is not None)

    def as_json(self) -> dict[str, Any]:
        return {"patient_ins": self.patient_ins, "patient_oid": self.patient_oid,
                "patient_id": self.patient_id,
                "documents": [d.as_json() for d in self.documents],
                "warnings": list(self.warnings)}


# --- building ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """A CDA R2 document to put in an archive, with its PDF rendering if any."""

    cda: bytes
    pdf: bytes | None = None
    class_code: Code | None = None  # when the document type is not in CLASS_OF_TYPE
    name: str = ""  # what a refusal calls it (its file name); else "CDA document <n>"


def new_oid() -> str:
    """A fresh OID under ``2.25`` (ITU-T X.667: the integer of a random UUID)."""
    return f"2.25.{uuid.uuid4().int}"


def _entry_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def patient_cx(header: CdaHeader) -> str:
    """The HL7 CX of the document's patient: the INS (``<INS>^^^&<OID>&ISO^NH``), else
    the first other identifier (``^^^&<root>&ISO^PI``)."""
    patient = header.patient
    if patient.ins and patient.ins_oid:
        return f"{patient.ins}^^^&{patient.ins_oid}&ISO^NH"
    if patient.other_ids:
        extension, root = patient.other_ids[0]
        return f"{_hl7(extension)}^^^&{root}&ISO^PI"
    raise DocumentRefused(["CDA document: the patient has no identifier (patientRole/id)"])


def _hl7(value: str) -> str:
    """A value inside an HL7 v2 data type: the delimiters ``^&~|\\`` escaped (HL7 v2.5
    §2.7)."""
    return (value.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
            .replace("&", "\\T\\").replace("~", "\\R\\"))


def author_xcn(header: CdaHeader) -> str | None:
    """``<idNatPs>^NOM^Prénom^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS`` (ANS samples)."""
    author = header.author
    if author is None or not author.id:
        return None
    kind = "IDNPS" if author.id_root == ID_NAT_PS_OID else "RI"
    return (f"{_hl7(author.id)}^{_hl7(author.family_name)}^{_hl7(author.given_name)}"
            f"^^^^^^&{author.id_root}&ISO^D^^^{kind}")


def _legal_xcn(header: CdaHeader) -> str | None:
    person = header.legal_authenticator
    if person is None or not person.id:
        return None
    kind = "IDNPS" if person.id_root == ID_NAT_PS_OID else "RI"
    return (f"{_hl7(person.id)}^{_hl7(person.family_name)}^{_hl7(person.given_name)}"
            f"^^^^^^&{person.id_root}&ISO^D^^^{kind}")


def _institution_xon(header: CdaHeader) -> str | None:
    """``NAME^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^<idNatSt>`` (ANS samples)."""
    org = header.author_institution
    if org is None or not org.name:
        return None
    if not org.id:
        return _hl7(org.name)
    kind = "IDNST" if org.id_root == ID_NAT_ST_OID else "RI"
    return f"{_hl7(org.name)}^^^^^&{org.id_root}&ISO^{kind}^^^{_hl7(org.id)}"


def format_code(header: CdaHeader) -> Code:
    """The formatCode of a CDA: by its non-structured body's mediaType (CI-SIS ASS_A12),
    else ``mimeTypeSufficient``."""
    if header.body_media_type is not None:
        return NON_XML_BODY_FORMATS.get(header.body_media_type, MIME_TYPE_SUFFICIENT)
    return MIME_TYPE_SUFFICIENT


def _rim(tag: str) -> str:
    return f"{{{RIM}}}{tag}"


def _slot(parent: etree._Element, name: str, *values: str) -> None:
    slot = etree.SubElement(parent, _rim("Slot"), name=name)
    value_list = etree.SubElement(slot, _rim("ValueList"))
    for value in values:
        etree.SubElement(value_list, _rim("Value")).text = value


def _name(parent: etree._Element, text: str, tag: str = "Name") -> None:
    node = etree.SubElement(parent, _rim(tag))
    etree.SubElement(node, _rim("LocalizedString"),
                     {"value": text, "charset": "UTF-8",
                      "{http://www.w3.org/XML/1998/namespace}lang": "fr-FR"})


def _classification(parent: etree._Element, scheme: str, obj: str,
                    code: Code | None = None) -> etree._Element:
    node = etree.SubElement(parent, _rim("Classification"), id=_entry_id(),
                            objectType=CLASSIFICATION_OBJECT, classificationScheme=scheme,
                            classifiedObject=obj,
                            nodeRepresentation=code.code if code else "")
    if code is not None:
        _slot(node, "codingScheme", code.scheme)
        _name(node, code.display or code.code)
    return node


def _external_id(parent: etree._Element, scheme: str, obj: str, value: str,
                 label: str) -> None:
    node = etree.SubElement(parent, _rim("ExternalIdentifier"), id=_entry_id(),
                            objectType=EXTERNAL_ID_OBJECT, identificationScheme=scheme,
                            registryObject=obj, value=value)
    _name(node, label)


def _author(parent: etree._Element, scheme: str, obj: str, header: CdaHeader) -> None:
    person, institution = author_xcn(header), _institution_xon(header)
    if person is None and institution is None:
        return
    node = _classification(parent, scheme, obj)
    if person:
        _slot(node, "authorPerson", person)
    if institution:
        _slot(node, "authorInstitution", institution)
    if header.author_specialty is not None:
        spec = header.author_specialty
        _slot(node, "authorSpecialty", f"{_hl7(spec.code)}^{_hl7(spec.display)}^{spec.scheme}")


@dataclass(frozen=True, slots=True)
class _Entry:
    file: str  # name in the subset, 8.3
    data: bytes
    mime_type: str
    header: CdaHeader
    unique_id: str
    format: Code
    class_code: Code
    title: str


def _source_patient_info(header: CdaHeader) -> list[str]:
    patient = header.patient
    info = [f"PID-5|{_hl7(patient.birth_name)}^{_hl7(patient.given_name)}^^^^^L"]
    if patient.birth_date:
        info.append(f"PID-7|{_hl7(patient.birth_date[:8])}")
    if patient.sex:
        info.append(f"PID-8|{_hl7(patient.sex)}")
    return info


def _document_entry(parent: etree._Element, entry: _Entry, patient_id: str) -> str:
    entry_id = _entry_id()
    header = entry.header
    node = etree.SubElement(parent, _rim("ExtrinsicObject"), id=entry_id,
                            mimeType=entry.mime_type, objectType=STABLE_DOCUMENT)
    creation = hl7_time(header.effective_time) or ""
    _slot(node, "creationTime", creation)
    _slot(node, "languageCode", header.language)
    legal = _legal_xcn(header)
    if legal:
        _slot(node, "legalAuthenticator", legal)
    for name, value in (("serviceStartTime", header.service_start),
                        ("serviceStopTime", header.service_stop)):
        converted = hl7_time(value) if value else None
        if converted:
            _slot(node, name, converted)
    source = patient_id
    if header.patient.other_ids:
        extension, root = header.patient.other_ids[0]
        source = f"{_hl7(extension)}^^^&{root}&ISO^PI"
    _slot(node, "sourcePatientId", source)
    _slot(node, "sourcePatientInfo", *_source_patient_info(header))
    _slot(node, "hash", hashlib.sha1(entry.data).hexdigest())
    _slot(node, "size", str(len(entry.data)))
    _slot(node, "URI", entry.file)
    _name(node, entry.title)
    _author(node, DE_AUTHOR, entry_id, header)
    _classification(node, DE_CLASS, entry_id, entry.class_code)
    _classification(node, DE_CONFIDENTIALITY, entry_id, header.confidentiality)
    _classification(node, DE_FORMAT, entry_id, entry.format)
    if header.facility_type is not None:
        _classification(node, DE_FACILITY, entry_id, header.facility_type)
    if header.practice_setting is not None:
        _classification(node, DE_PRACTICE, entry_id, header.practice_setting)
    _classification(node, DE_TYPE, entry_id, header.code)
    _external_id(node, DE_PATIENT_ID, entry_id, patient_id, "XDSDocumentEntry.patientId")
    _external_id(node, DE_UNIQUE_ID, entry_id, entry.unique_id, "XDSDocumentEntry.uniqueId")
    return entry_id


def _metadata(entries: Sequence[_Entry], *, patient_id: str, source_id: str,
              submission_time: str, content_type: Code | None) -> bytes:
    request = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap=NSMAP)
    objects = etree.SubElement(request, _rim("RegistryObjectList"))
    first = entries[0].header
    ss_id = _entry_id()
    package = etree.SubElement(objects, _rim("RegistryPackage"), id=ss_id)
    _slot(package, "submissionTime", submission_time)
    _name(package, first.title or first.code.display or "Documents")
    _author(package, SS_AUTHOR, ss_id, first)
    if content_type is not None:
        _classification(package, SS_CONTENT_TYPE, ss_id, content_type)
    _external_id(package, SS_UNIQUE_ID, ss_id, new_oid(), "XDSSubmissionSet.uniqueId")
    _external_id(package, SS_SOURCE_ID, ss_id, source_id, "XDSSubmissionSet.sourceId")
    _external_id(package, SS_PATIENT_ID, ss_id, patient_id, "XDSSubmissionSet.patientId")
    etree.SubElement(objects, _rim("Classification"), id=_entry_id(),
                     objectType=CLASSIFICATION_OBJECT, classifiedObject=ss_id,
                     classificationNode=SUBMISSION_SET)
    entry_ids = [_document_entry(objects, entry, patient_id) for entry in entries]
    for entry_id in entry_ids:
        association = etree.SubElement(objects, _rim("Association"), id=_entry_id(),
                                       objectType=ASSOCIATION_OBJECT,
                                       associationType=HAS_MEMBER, sourceObject=ss_id,
                                       targetObject=entry_id)
        _slot(association, "SubmissionSetStatus", "Original")
    return bytes(etree.tostring(request, xml_declaration=True, encoding="UTF-8",
                                pretty_print=True))


def _readme(entries: Sequence[_Entry], sender: str, now: dt.datetime) -> bytes:
    """README.TXT (ITI TF-1 §16: the sender, the application, what the media holds)."""
    header = entries[0].header
    if not sender and header.author is not None:
        sender = " ".join(p for p in (header.author.prefix, header.author.given_name,
                                      header.author.family_name) if p)
    if header.author_institution is not None and header.author_institution.name:
        sender = f"{sender}, {header.author_institution.name}".strip(", ")
    lines = [
        "IHE XDM - Documents de santé / Health documents",
        "",
        f"Émetteur / Sender: {sender or 'unknown'}",
        "Application: mssante - IHE ITI XDM (ITI TF-1 §16), ebRIM 3.0 metadata",
        f"Date: {now.strftime('%Y-%m-%d %H:%M:%S')} UTC",
        "",
        "Contenu / Contents: IHE_XDM/SUBSET01/METADATA.XML and the documents it lists:",
    ]
    lines += [f"  IHE_XDM/SUBSET01/{e.file}  {e.mime_type}  {e.title}" for e in entries]
    lines.append("")
    return "\r\n".join(lines).encode("utf-8")


def _index(entries: Sequence[_Entry]) -> bytes:
    """INDEX.HTM: an XHTML page linking every document (ITI TF-1 §16)."""
    items = "\n".join(
        f'    <li><a href="IHE_XDM/SUBSET01/{e.file}">{html.escape(e.title)}</a>'
        f" ({html.escape(e.mime_type)})</li>" for e in entries)
    page = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="fr" lang="fr">\n'
            "  <head><title>Documents de santé (IHE XDM)</title></head>\n"
            "  <body>\n  <h1>Documents de santé</h1>\n  <ul>\n"
            f"{items}\n  </ul>\n"
            '  <p>Métadonnées : <a href="IHE_XDM/SUBSET01/METADATA.XML">METADATA.XML</a></p>\n'
            "  </body>\n</html>\n")
    return page.encode("utf-8")


def build(documents: Sequence[SourceDocument], *, source_id: str | None = None,
          sender: str = "", content_type: Code | None = None,
          now: dt.datetime | None = None) -> bytes:
    """The ``IHE_XDM.ZIP`` of ``documents`` (one patient): patient, author and codes
    taken from each CDA's header. ``source_id`` (XDS sourceId, the sending system's OID)
    defaults to the root of the first CDA's id. DocumentRefused with the reasons when a
    CDA cannot be read, two CDAs name different patients, or a class code is unknown."""
    if not documents:
        raise DocumentRefused(["no document to put in the archive"])
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    reasons: list[str] = []
    entries: list[_Entry] = []
    patient_id: str | None = None
    for number, document in enumerate(documents, 1):
        what = document.name or f"CDA document {number}"
        try:
            root = parse_xml(document.cda, what)
            header = cda_header(root, what)
            cx = patient_cx(header)
        except DocumentRefused as exc:
            reasons.extend(exc.reasons)
            continue
        if patient_id is None:
            patient_id = cx
        elif cx != patient_id:
            reasons.append(f"{what}: patient {cx} is not the first document's ({patient_id}):"
                           " a message concerns one patient")
            continue
        class_code = document.class_code or CLASS_OF_TYPE.get(header.code.code)
        if class_code is None:
            reasons.append(f"{what}: no class code known for document type "
                           f"{header.code.code} ({header.code.display}); give one")
            continue
        title = header.title or header.code.display or header.code.code
        entries.append(_Entry(f"DOC{len(entries) + 1:04d}.XML", document.cda, "text/xml",
                              header, header.unique_id, format_code(header), class_code,
                              title))
        if document.pdf is not None:
            entries.append(_Entry(f"DOC{len(entries) + 1:04d}.PDF", document.pdf,
                                  "application/pdf", header, new_oid(), MIME_TYPE_SUFFICIENT,
                                  class_code, f"{title} (PDF)"))
    if reasons:
        raise DocumentRefused(reasons)
    assert patient_id is not None
    metadata = _metadata(entries, patient_id=patient_id,
                         source_id=source_id or entries[0].header.id_root,
                         submission_time=moment.strftime("%Y%m%d%H%M%S"),
                         content_type=content_type)
    out = io.BytesIO()
    stamp = moment.timetuple()[:6]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        def put(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, data)
        put("README.TXT", _readme(entries, sender, moment))
        put("INDEX.HTM", _index(entries))
        put(f"{SUBSET}/{METADATA}", metadata)
        for entry in entries:
            put(f"{SUBSET}/{entry.file}", entry.data)
    return out.getvalue()


# --- checking -------------------------------------------------------------------------

_DRIVE = re.compile(r"[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _name_reasons(name: str, limits: Limits) -> list[str]:
    """Why a member name is refused (empty when it is safe)."""
    shown = repr(name)
    reasons = []
    if len(name) > limits.name:
        reasons.append(f"entry name longer than {limits.name} characters: {shown[:80]}…")
    if _CONTROL.search(name):
        reasons.append(f"entry name with a control character: {shown}")
    if "\\" in name:
        reasons.append(f"entry name with a backslash: {shown}")
    if name.startswith("/"):
        reasons.append(f"absolute entry name: {shown}")
    if _DRIVE.match(name):
        reasons.append(f"entry name with a drive letter: {shown}")
    if any(part == ".." for part in re.split(r"[/\\]", name)):
        reasons.append(f"entry name with '..' (path traversal): {shown}")
    if not name.strip("/"):
        reasons.append(f"empty entry name: {shown}")
    return reasons


def _entry_reasons(info: zipfile.ZipInfo) -> list[str]:
    reasons = []
    name = repr(info.filename)
    if info.flag_bits & 0x1:
        reasons.append(f"encrypted entry: {name}")
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_IFMT(mode):  # Unix: the type in the high word
        if stat.S_ISLNK(mode):
            reasons.append(f"symbolic link entry: {name}")
        elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            reasons.append(f"entry that is not a regular file or folder: {name}")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        reasons.append(f"entry compressed with method {info.compress_type} "
                       f"(only stored and deflate are accepted): {name}")
    return reasons


def _is_folder(info: zipfile.ZipInfo) -> bool:
    """``ZipInfo.is_dir``, without its IndexError on an empty name (refused anyway)."""
    return info.filename.endswith("/")


def _overlaps(infos: Sequence[zipfile.ZipInfo]) -> list[str]:
    """Entries whose local data overlap: several names for the same compressed octets
    (D. Fifield, "A better zip bomb", 2019)."""
    spans = sorted((info.header_offset, info.header_offset + 30 + len(info.filename)
                    + info.compress_size, info.filename) for info in infos
                   if not _is_folder(info))
    return [f"entries {a!r} and {b!r} share their data (overlapping entries)"
            for (_, end, a), (start, _, b) in itertools.pairwise(spans)
            if start < end]


class _Budget:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total = 0


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    """The member's octets, read in pieces and counted as they come (the sizes in the
    headers are not trusted); DocumentRefused past a limit (zip bomb) or on a bad CRC."""
    limits = budget.limits
    name = repr(info.filename)
    pieces: list[bytes] = []
    size = 0
    compressed = max(info.compress_size, 1)
    try:
        with archive.open(info) as member:
            while True:
                piece = member.read(65536)
                if not piece:
                    break
                size += len(piece)
                budget.total += len(piece)
                if size > limits.member:
                    raise DocumentRefused([f"entry {name} decompresses to more than "
                                           f"{limits.member} octets (zip bomb)"])
                if budget.total > limits.total:
                    raise DocumentRefused([f"the entries decompress to more than "
                                           f"{limits.total} octets in all (zip bomb)"])
                if size > limits.ratio_floor and size > compressed * limits.ratio:
                    raise DocumentRefused([f"entry {name} has a compression ratio over "
                                           f"{limits.ratio}:1 (zip bomb)"])
                pieces.append(piece)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise DocumentRefused([f"entry {name} cannot be read: {exc}"]) from None
    return b"".join(pieces)


_CX = re.compile(r"(?P<id>[^^]+)\^\^\^(?P<namespace>[^^&]*)&(?P<oid>[0-9.]+)&ISO"
                 r"(?:\^(?P<type>[^^]*))?(?:\^.*)?\Z")


def _parse_cx(value: str, where: str, reasons: list[str]) -> tuple[str, str] | None:
    """(id, assigning authority OID) of an XDS patientId (ITI TF-3 §4.2.3.1.7 CX)."""
    match = _CX.match(value.strip())
    if not match:
        reasons.append(f"{where}: patientId {value!r} is not an HL7 CX "
                       "(<id>^^^&<OID>&ISO)")
        return None
    ident, oid = match.group("id"), match.group("oid")
    if is_ins_oid(oid):
        try:
            validate_ins(ident)
        except InvalidINS as exc:
            reasons.append(f"{where}: patientId: {exc}")
            return None
    return ident, oid


def _children(node: etree._Element, tag: str) -> list[etree._Element]:
    return [child for child in node if child.tag == _rim(tag)]


def _slots(node: etree._Element) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for slot in _children(node, "Slot"):
        values = [value.text or "" for value_list in _children(slot, "ValueList")
                  for value in _children(value_list, "Value")]
        out.setdefault(slot.get("name") or "", []).extend(values)
    return out


def _external(node: etree._Element, scheme: str) -> list[str]:
    return [child.get("value") or "" for child in _children(node, "ExternalIdentifier")
            if child.get("identificationScheme") == scheme]


def _localized(node: etree._Element, tag: str = "Name") -> str:
    for name in _children(node, tag):
        for text in _children(name, "LocalizedString"):
            return text.get("value") or ""
    return ""


@dataclass(slots=True)
class _Subset:
    folder: str  # "IHE_XDM/SUBSET01" as written in the archive
    metadata: str  # the member name of its METADATA.XML


def _safe_uri(uri: str) -> bool:
    return (bool(uri) and not uri.startswith("/") and "\\" not in uri and ":" not in uri
            and ".." not in uri.split("/") and not _CONTROL.search(uri))


def _check_subset(subset: _Subset, members: Mapping[str, bytes],
                  folded: Mapping[str, str], limits: Limits,
                  reasons: list[str]) -> tuple[str, tuple[str, str] | None,
                                              list[CheckedDocument]]:
    """The patientId, its (id, OID) and the checked documents of one subset."""
    where = subset.metadata
    documents: list[CheckedDocument] = []
    try:
        root = parse_xml(members[subset.metadata], where, max_size=limits.metadata)
    except DocumentRefused as exc:
        reasons.extend(exc.reasons)
        return "", None, documents
    if root.tag != f"{{{LCM}}}SubmitObjectsRequest":
        reasons.append(f"{where}: the root is {root.tag!r}, not lcm:SubmitObjectsRequest")
        return "", None, documents
    objects = [child for lists in _children(root, "RegistryObjectList") for child in lists]
    submission_ids = {c.get("classifiedObject") for c in objects
                      if c.tag == _rim("Classification")
                      and c.get("classificationNode") == SUBMISSION_SET}
    packages = [p for p in objects if p.tag == _rim("RegistryPackage")]
    for package in packages:
        for c in _children(package, "Classification"):
            if c.get("classificationNode") == SUBMISSION_SET:
                submission_ids.add(package.get("id"))
    sets = [p for p in packages if p.get("id") in submission_ids]
    if len(sets) != 1:
        reasons.append(f"{where}: {len(sets)} submission sets, one expected")
        return "", None, documents
    submission = sets[0]
    ss_id = submission.get("id") or ""
    ss_patients = _external(submission, SS_PATIENT_ID)
    if len(ss_patients) != 1:
        reasons.append(f"{where}: the submission set has {len(ss_patients)} patientId, "
                       "one expected")
        return "", None, documents
    patient_id = ss_patients[0].strip()
    patient = _parse_cx(patient_id, f"{where}: submission set", reasons)
    members_of = {a.get("targetObject") for a in objects
                  if a.tag == _rim("Association") and a.get("associationType") == HAS_MEMBER
                  and a.get("sourceObject") == ss_id}
    entries = [e for e in objects if e.tag == _rim("ExtrinsicObject")]
    if not entries:
        reasons.append(f"{where}: no document entry")
    seen_files: set[str] = set()
    for number, entry in enumerate(entries, 1):
        entry_id = entry.get("id") or ""
        label = f"{where}: document entry {number}"
        slots = _slots(entry)
        uri = (slots.get("URI") or [""])[0].strip()
        mime_type = (entry.get("mimeType") or "").strip().lower()
        if entry_id not in members_of:
            reasons.append(f"{label}: not a member of the submission set (no HasMember)")
        if not mime_type:
            reasons.append(f"{label}: no mimeType")
        for value in _external(entry, DE_PATIENT_ID):
            if value.strip() != patient_id:
                reasons.append(f"{label}: patientId {value.strip()!r} is not the "
                               f"submission set's ({patient_id!r})")
        if not _external(entry, DE_PATIENT_ID):
            reasons.append(f"{label}: no patientId")
        unique = _external(entry, DE_UNIQUE_ID)
        if not unique:
            reasons.append(f"{label}: no uniqueId")
        if not _safe_uri(uri):
            reasons.append(f"{label}: URI {uri!r} is not a file name of the subset")
            continue
        path = f"{subset.folder}/{uri}"
        member = path if path in members else folded.get(path.casefold())
        if member is None:
            reasons.append(f"{label}: {path} is named in the metadata but missing")
            continue
        if member.casefold() in seen_files:
            reasons.append(f"{label}: {member} is named by two document entries")
            continue
        seen_files.add(member.casefold())
        data = members[member]
        sha1 = hashlib.sha1(data).hexdigest()
        hashes = slots.get("hash") or []
        sizes = slots.get("size") or []
        if not hashes:
            reasons.append(f"{label}: no hash")
        elif hashes[0].strip().lower() != sha1:
            reasons.append(f"{member}: SHA-1 {sha1} differs from the metadata's "
                           f"{hashes[0].strip()!r}")
        if not sizes:
            reasons.append(f"{label}: no size")
        elif sizes[0].strip() != str(len(data)):
            reasons.append(f"{member}: {len(data)} octets, the metadata says "
                           f"{sizes[0].strip()!r}")
        header = _check_xml_document(member, data, mime_type, patient, reasons)
        documents.append(CheckedDocument(
            name=member, mime_type=mime_type, sha1=sha1, size=len(data),
            unique_id=unique[0] if unique else "", title=_localized(entry), data=data,
            cda=header))
    return patient_id, patient, documents


def _check_xml_document(member: str, data: bytes, mime_type: str,
                        patient: tuple[str, str] | None,
                        reasons: list[str]) -> CdaHeader | None:
    """An XML document parsed safely; a CDA's header read and its patient compared."""
    if mime_type not in XML_TYPES and not member.upper().endswith(".XML"):
        return None
    try:
        root = parse_xml(data, member)
        if not is_cda(root):
            return None
        header = cda_header(root, member)
    except DocumentRefused as exc:
        reasons.extend(exc.reasons)
        return None
    if patient is not None:
        ident, oid = patient
        cda = header.patient
        ids = {(cda.ins, cda.ins_oid)} if cda.ins else set()
        ids |= {(extension, root_oid) for extension, root_oid in cda.other_ids}
        if (ident, oid) not in ids:
            shown = f"{cda.ins}^^^&{cda.ins_oid}&ISO" if cda.ins else "no INS"
            reasons.append(f"{member}: the CDA's patient ({shown}) is not the metadata's "
                           f"({ident}^^^&{oid}&ISO)")
    return header


def check(data: bytes, limits: Limits = DEFAULT_LIMITS) -> CheckedArchive:
    """The archive ``data`` checked as hostile input (see the module's docstring);
    DocumentRefused with every reason found."""
    if len(data) > limits.archive:
        raise DocumentRefused([f"the archive has {len(data)} octets, more than "
                               f"{limits.archive}"])
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
            NotImplementedError) as exc:
        raise DocumentRefused([f"not a ZIP archive: {exc}"]) from None
    with archive:
        return _check_archive(archive, len(data), limits)


def _check_archive(archive: zipfile.ZipFile, size: int, limits: Limits) -> CheckedArchive:
    infos = archive.infolist()
    if len(infos) > limits.entries:
        raise DocumentRefused([f"the archive has {len(infos)} entries, more than "
                               f"{limits.entries}"])
    reasons: list[str] = []
    seen: dict[str, str] = {}
    for info in infos:
        reasons += _name_reasons(info.filename, limits)
        reasons += _entry_reasons(info)
        key = info.filename.rstrip("/").casefold()
        if key in seen:
            same = "the same name" if seen[key] == info.filename.rstrip("/") else \
                f"the same name as {seen[key]!r} but for case"
            reasons.append(f"duplicate entry {info.filename!r} ({same})")
        seen.setdefault(key, info.filename.rstrip("/"))
        if info.header_offset + info.compress_size > size:
            reasons.append(f"entry {info.filename!r} claims data past the archive's end")
    reasons += _overlaps(infos)
    if reasons:
        raise DocumentRefused(reasons)
    budget = _Budget(limits)
    members = {info.filename: _read_member(archive, info, budget)
               for info in infos if not _is_folder(info)}
    folded = {name.casefold(): name for name in members}
    warnings = [f"no {name} at the archive's root (IHE ITI TF-1 §16)"
                for name in ("README.TXT", "INDEX.HTM") if name.casefold() not in folded]
    subsets = sorted(
        (_Subset(name.rpartition("/")[0], name) for name in members
         if re.fullmatch(r"IHE_XDM/[^/]+/METADATA\.XML", name, re.I)),
        key=lambda s: s.folder)
    if not subsets:
        raise DocumentRefused(["no IHE_XDM/<subset>/METADATA.XML in the archive"])
    documents: list[CheckedDocument] = []
    patients: set[str] = set()
    first: tuple[str, str] | None = None
    patient_id = ""
    for subset in subsets:
        cx, patient, found = _check_subset(subset, members, folded, limits, reasons)
        documents += found
        if patient is not None:
            patients.add(f"{patient[0]}^^^&{patient[1]}&ISO")
            if first is None:
                first, patient_id = patient, cx
    if len(patients) > 1:
        reasons.append(f"the subsets name {len(patients)} patients "
                       f"({', '.join(sorted(patients))}): an archive concerns one patient")
    if reasons:
        raise DocumentRefused(reasons)
    assert first is not None
    ident, oid = first
    return CheckedArchive(patient_id=patient_id,
                          patient_ins=ident if is_ins_oid(oid) else None, patient_oid=oid,
                          documents=tuple(documents), warnings=tuple(warnings))
