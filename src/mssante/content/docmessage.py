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
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP

from mssante.content.ascii import to_ascii
from mssante.content.cda import CdaHeader
from mssante.content.headers import rfc5322_date
from mssante.content.xdm import CheckedArchive, check
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
_FILE_PART = re.compile(r"[^A-Za-z0-9-]+")


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
                    software_reference=software_reference, now=now)


def _message(checked: CheckedArchive, archive: bytes, *, sender: str, to: Sequence[str],
             text: str, sender_name: str, cc: Sequence[str], label: str | None,
             software_reference: str | None, now: float | None) -> bytes:
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
    return message.as_bytes()
