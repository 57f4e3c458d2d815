"""The message that carries clinical documents (MSSanté Réf#2 §3.8; ANS guides of
document integration): built from an ``IHE_XDM.ZIP``, for ``mssante send`` and the
webmail alike. Pure: bytes in, the RFC 5322 message out.

- the archive is checked first (content/xdm.py ``check``): a message never carries an
  archive its receiver would refuse;
- ``Subject: XDM/1.0/DDM+<label> <NOM> <prénom> <birth date>`` (domain/documents.py),
  the label the first CDA's title unless given, the birth date ``DD/MM/YYYY``;
- ``X-MSS-CODECDA``: each CDA's ``code``, comma-separated; ``X-MSS-INS``: ``O`` when a
  CDA carries a qualified INS, else ``N``; ``X-MSS-NIL``: the sending software's
  reference, when given;
- a ``text/plain; charset=utf-8`` part, then each PDF rendering of the archive as an
  attachment named ``<date>_<type>_<NOM>_<prénom>_<record>.pdf``, then the archive
  itself, ``IHE_XDM.ZIP`` (``application/zip``).

``documents_message`` is the one way from files to that message, for ``mssante send``,
the webmail's form and its REST path alike: each CDA paired with its PDF rendering
(``pair_renderings``: by file name stem, the others in order), the archive built
(content/xdm.py ``build``), then the message above, with the caller's other header
fields and attachments.
"""

from __future__ import annotations

import email
import email.utils
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP

from mssante.content.ascii import to_ascii
from mssante.content.cda import CdaHeader, Code
from mssante.content.headers import rfc5322_date
from mssante.content.xdm import CLASS_CODES, CheckedArchive, SourceDocument, build, check
from mssante.domain.documents import (
    CODECDA_HEADER,
    INS_HEADER,
    XDM_ARCHIVE_NAME,
    codecda_value,
    document_subject,
    ins_value,
)
from mssante.errors import DocumentRefused

NIL_HEADER = "X-MSS-NIL"
DEFAULT_TEXT = "Bonjour,\n\nVeuillez trouver ci-joint le document concernant ce patient.\n"
_FILE_PART = re.compile(r"[^A-Za-z0-9-]+")


@dataclass(frozen=True, slots=True)
class NamedFile:
    """A file as a person or a program hands it in: its name (only its stem is
    read, to pair a rendering with its CDA) and its bytes."""

    name: str
    data: bytes = field(repr=False)

    @property
    def stem(self) -> str:
        base = self.name.replace("\\", "/").rpartition("/")[2]
        return (base.rpartition(".")[0] or base).casefold()


@dataclass(frozen=True, slots=True)
class Attachment:
    """Another attachment of the message (``message/rfc822``: a message, kept whole)."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SentDocument:
    """A document of the archive: the name it was handed in under, its SHA-1 (hex) and
    size, as the archive's metadata records them."""

    name: str
    sha1: str
    size: int

    def as_json(self) -> dict[str, str | int]:
        return {"name": self.name, "sha1": self.sha1, "size": self.size}


@dataclass(frozen=True, slots=True)
class DocumentMessage:
    raw: bytes = field(repr=False)  # the RFC 5322 message, CRLF line endings
    message_id: str
    documents: tuple[SentDocument, ...]


def birth_date_text(value: str) -> str:
    """An HL7 birth date (``YYYYMMDD``) as ``DD/MM/YYYY``; as written when shorter."""
    if len(value) >= 8 and value[:8].isdigit():
        return f"{value[6:8]}/{value[4:6]}/{value[:4]}"
    return value


def _part(text: str) -> str:
    return _FILE_PART.sub("-", to_ascii(text)).strip("-") or "x"


def rendering_name(header: CdaHeader) -> str:
    """``<date>_<type>_<NOM>_<prénom>_<record>.pdf`` (MSSanté reference): the document's
    date, its type code, the patient's birth name and first given name, and the record
    (the document id's extension, else its root), each reduced to ASCII letters, digits
    and hyphens."""
    patient = header.patient
    record = header.id_extension or header.id_root
    parts = (header.effective_time[:8], header.code.code, patient.birth_name.upper(),
             patient.given_name, record)
    return "_".join(_part(p) for p in parts) + ".pdf"


def document_message(*, sender: str, to: Sequence[str], archive: bytes, text: str,
                     sender_name: str = "", cc: Sequence[str] = (),
                     label: str | None = None, software_reference: str | None = None,
                     now: float | None = None) -> bytes:
    """The message carrying ``archive`` (an ``IHE_XDM.ZIP``) from ``sender`` to ``to``,
    with ``text`` as its body; DocumentRefused when the archive is refused or holds no
    CDA document."""
    checked = check(archive)
    return _message(checked, archive, sender=sender, to=to, text=text,
                    sender_name=sender_name, cc=cc, label=label,
                    software_reference=software_reference, now=now).as_bytes()


def _message(checked: CheckedArchive, archive: bytes, *, sender: str, to: Sequence[str],
             text: str, sender_name: str, cc: Sequence[str], label: str | None,
             software_reference: str | None, now: float | None,
             headers: Iterable[tuple[str, str]] = (),
             attachments: Sequence[Attachment] = ()) -> EmailMessage:
    cdas = checked.cdas
    if not cdas:
        raise DocumentRefused(["the archive holds no CDA document: nothing names the "
                               "patient or the document type of the message"])
    first = cdas[0]
    patient = first.patient
    message = EmailMessage(policy=SMTP)
    message["From"] = email.utils.formataddr((sender_name, sender))
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = document_subject(label or first.title or first.code.display,
                                          patient.birth_name, patient.given_name,
                                          birth_date_text(patient.birth_date))
    message["Date"] = rfc5322_date(now)
    message["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2])
    codes = codecda_value([header.code.code for header in cdas])
    if codes is not None:
        message[CODECDA_HEADER] = codes
    qualified = ins_value(True, any(header.patient.qualified for header in cdas))
    if qualified is not None:
        message[INS_HEADER] = qualified
    if software_reference:
        message[NIL_HEADER] = software_reference
    for name, value in headers:  # one field of each name: a caller's replaces ours
        del message[name]
        message[name] = value
    message.set_content(text.replace("\r\n", "\n"), subtype="plain", charset="utf-8")
    current = first
    taken: set[str] = set()
    for document in checked.documents:
        if document.cda is not None:
            current = document.cda
            continue
        if document.mime_type != "application/pdf":
            continue
        name = rendering_name(current)
        stem, number = name[:-4], 1
        while name.casefold() in taken:
            number += 1
            name = f"{stem}-{number}.pdf"
        taken.add(name.casefold())
        message.add_attachment(document.data, maintype="application", subtype="pdf",
                               filename=name)
    message.add_attachment(archive, maintype="application", subtype="zip",
                           filename=XDM_ARCHIVE_NAME)
    for attachment in attachments:
        add_attachment(message, attachment)
    return message


def add_attachment(message: EmailMessage, attachment: Attachment) -> None:
    """``attachment`` added to ``message``; a ``message/rfc822`` one kept whole, as a
    message (RFC 2046 §5.2.1)."""
    if attachment.content_type == "message/rfc822":
        inner = email.message_from_bytes(attachment.data, policy=SMTP)
        message.add_attachment(inner, filename=attachment.filename)
        return
    maintype, _, subtype = attachment.content_type.partition("/")
    message.add_attachment(attachment.data, maintype=maintype or "application",
                           subtype=subtype or "octet-stream", filename=attachment.filename)


def pair_renderings(cdas: Sequence[NamedFile], pdfs: Sequence[NamedFile]
                    ) -> list[tuple[NamedFile, NamedFile | None]]:
    """Each CDA with its PDF rendering: the PDF whose file name stem is the CDA's
    (``CR.pdf`` for ``CR.xml``), else the next PDF left, in the order given.
    DocumentRefused for more PDFs than CDAs, or two PDFs of one CDA."""
    if not cdas:
        raise DocumentRefused(["no CDA document"])
    if len(pdfs) > len(cdas):
        raise DocumentRefused([f"{len(pdfs)} PDF renderings for {len(cdas)} CDA "
                               "documents: one at most for each"])
    paired: list[NamedFile | None] = [None] * len(cdas)
    stems: dict[str, int] = {}
    for rank, cda in enumerate(cdas):
        stems.setdefault(cda.stem, rank)
    left: list[NamedFile] = []
    for pdf in pdfs:
        named = stems.get(pdf.stem)
        if named is None:
            left.append(pdf)
        elif paired[named] is not None:
            raise DocumentRefused([f"{pdf.name}: a second PDF rendering of "
                                   f"{cdas[named].name}"])
        else:
            paired[named] = pdf
    free = [rank for rank, pdf in enumerate(paired) if pdf is None]
    for rank, pdf in zip(free, left, strict=False):
        paired[rank] = pdf
    return list(zip(cdas, paired, strict=True))


def documents_message(cdas: Sequence[NamedFile], pdfs: Sequence[NamedFile] = (), *,
                      sender: str, to: Sequence[str], text: str = DEFAULT_TEXT,
                      sender_name: str = "", cc: Sequence[str] = (),
                      label: str | None = None, subject: str | None = None,
                      software_reference: str | None = None,
                      class_code: str | None = None,
                      headers: Iterable[tuple[str, str]] = (),
                      attachments: Sequence[Attachment] = (),
                      now: float | None = None) -> DocumentMessage:
    """The message carrying the CDA documents ``cdas`` with their renderings ``pdfs``
    (``pair_renderings``) in an ``IHE_XDM.ZIP`` built here, checked as a receiver
    checks it. ``label`` goes in the ``XDM/1.0/DDM+`` subject, ``subject`` replaces
    it whole; ``class_code``, the XDS class code of every document (a type not known
    here); ``headers``, more header fields; ``attachments``, after the renderings.
    DocumentRefused with every reason, PolicyViolation for a subject or code the
    rules refuse. CPU-bound (building and checking): callers on an event loop run it
    in a thread."""
    pairs = pair_renderings(cdas, pdfs)
    code = Code(class_code, CLASS_CODES, class_code) if class_code else None
    archive = build([SourceDocument(cda.data, pdf.data if pdf else None, code, cda.name)
                     for cda, pdf in pairs], sender=sender)
    checked = check(archive)
    handed = [f for cda, pdf in pairs for f in (cda, pdf) if f is not None]
    # build writes one entry per file handed in, in this order: the archive's own
    # SHA-1 and size of each, under the name it came with
    documents = tuple(SentDocument(f.name, d.sha1, d.size)
                      for f, d in zip(handed, checked.documents, strict=True))
    message = _message(checked, archive, sender=sender, to=to, text=text,
                       sender_name=sender_name, cc=cc, label=label,
                       software_reference=software_reference, now=now,
                       headers=[*((("Subject", subject),) if subject else ()), *headers],
                       attachments=attachments)
    return DocumentMessage(message.as_bytes(), str(message["Message-ID"]), documents)
