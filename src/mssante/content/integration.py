"""Integrating the documents a message carries, as the program behind an APP mailbox
does it (MSSanté: accusés d'intégration; IHE ITI TF-1 §16 XDM): find the
``IHE_XDM.ZIP`` of a message, decide whether its documents can be integrated (and
with which error code when not), and write the MDN that says so (RFC 8098). Pure:
bytes in, values and bytes out; the IMAP, the files and the submission are
cli/integrate.py's.

The decision, first reason wins (codes: domain/documents.py):

- 900: the subject announces another XDM version than ``XDM/1.0/``;
- the archive is checked as hostile input (content/xdm.py ``check``); a refusal is
  904 when a reason is a patient mismatch (a CDA's patient not the metadata's, a
  document entry's patientId not the submission set's, subsets naming two
  patients), 903 when that is because the CDA carries no INS, else 906;
- 903: the metadata's patientId is not an INS (its authority is not an INS one), or a
  CDA carries no INS;
- 905: a CDA's INS without one of its four traits (birth name, first given name,
  birth date, sex);
- 901: a list of allowed authors is given and a CDA's author (idNatPs) is not in it;
- 902: a list of known patients is given and the INS is not in it.

The MDN (RFC 8098 §3, in an RFC 6522 ``multipart/report``): the human-readable first
part, ``message/disposition-notification`` with ``Final-Recipient`` (the APP mailbox),
``Original-Message-ID`` and ``Disposition: automatic-action/MDN-sent-automatically;
processed`` or ``…; processed/Error: <code>^<label>`` (with an ``Error:`` field as
well, RFC 8098 §3.2.7), then the original's header section (``text/rfc822-headers``).
On error the subject is ``[KO Intégration système !][<code>] <original subject>`` and
the original ``IHE_XDM.ZIP`` and PDF attachments travel back: RFC 6522 §3 lets the
first part be any type, so it is a ``multipart/mixed`` of the text and the files (the
report's second part stays where readers look for it).
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from email.message import EmailMessage, Message

from mssante.content.ascii import to_ascii
from mssante.content.headers import header_section
from mssante.content.mdn import AUTOMATIC, PROCESSED, File, Original, build_mdn
from mssante.content.xdm import CheckedArchive, check
from mssante.domain.documents import (
    AUTHOR_NOT_ALLOWED,
    INCOMPLETE_TRAITS,
    INS_MISMATCH,
    INTEGRATION_ERRORS,
    NO_INS,
    OTHER_ERROR,
    UNKNOWN_PATIENT,
    WRONG_VERSION,
    XDM_ARCHIVE_NAME,
    XDM_VERSION,
    integration_error_subject,
    subject_xdm_version,
)
from mssante.errors import DocumentRefused

REPORTING_UA = "mssante-integrate; mssante operator integrate"
MDN_DISPOSITION = f"{AUTOMATIC}; {PROCESSED}"
# the reasons of content/xdm.py's check that say two parts name different patients
_MISMATCH = re.compile(r"is not the metadata's|is not the submission set's"
                       r"|the subsets name \d+ patients")
_NO_INS = re.compile(r"the CDA's patient \(no INS\)")


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    mime_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DocumentMessage:
    """What a received message carries for integration."""

    message_id: str | None
    subject: str
    from_address: str | None
    notify_to: str | None  # the Disposition-Notification-To address (RFC 8098 §2.1)
    archive: bytes | None  # the IHE_XDM.ZIP attachment, None without one
    pdfs: tuple[Attachment, ...]  # the PDF renderings beside it
    header_section: bytes
    automatic: bool = False  # a report (multipart/report) or Auto-Submitted (RFC 3834)

    @property
    def for_integration(self) -> bool:
        """Whether the message is one to integrate: it carries an archive or announces
        one (an ``XDM/`` subject), and is not a report or an automatic answer (a KO MDN
        carries the archive back: integrating it would take the sender's copy for a
        new document, and answering it would start a loop)."""
        return (self.archive is not None or self.subject.lstrip().startswith("XDM/")) \
            and not self.automatic

    @property
    def mdn_allowed(self) -> bool:
        """An automatic MDN goes only to the message's sender (RFC 8098 §2.1: not to a
        Disposition-Notification-To another address, which would make the program
        write to anyone on a stranger's behalf)."""
        return self.notify_to is not None and self.notify_to == self.from_address


@dataclass(frozen=True, slots=True)
class Decision:
    """Integrated (``code`` None, ``checked`` set) or refused with a code 900–906."""

    code: int | None
    reasons: tuple[str, ...]
    checked: CheckedArchive | None = None

    @property
    def label(self) -> str:
        return INTEGRATION_ERRORS[self.code] if self.code is not None else ""


def _address(value: str | None) -> str | None:
    if not value:
        return None
    _, address = email.utils.parseaddr(str(value))
    return address.lower() if "@" in address else None


def read_message(raw: bytes) -> DocumentMessage:
    """The parts of ``raw`` integration needs: the ``IHE_XDM.ZIP`` attachment (by its
    file name, case ignored), the PDF attachments, and the headers."""
    parsed: Message = email.message_from_bytes(raw, policy=email.policy.default)
    archive: bytes | None = None
    pdfs: list[Attachment] = []
    for part in parsed.walk():
        if part.is_multipart():
            continue
        name = part.get_filename() or ""
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if name.upper() == XDM_ARCHIVE_NAME and archive is None:
            archive = payload
        elif part.get_content_type() == "application/pdf" or name.lower().endswith(".pdf"):
            pdfs.append(Attachment(name or "document.pdf", "application/pdf", payload))
    auto = str(parsed["Auto-Submitted"] or "no").strip().lower().split(";")[0].strip()
    return DocumentMessage(
        message_id=(str(parsed["Message-ID"]).strip() or None) if parsed["Message-ID"] else None,
        subject=str(parsed["Subject"] or ""), from_address=_address(parsed["From"]),
        notify_to=_address(parsed["Disposition-Notification-To"]), archive=archive,
        pdfs=tuple(pdfs), header_section=header_section(raw),
        automatic=parsed.get_content_type() == "multipart/report" or auto != "no")


def decide(message: DocumentMessage, *, authors: Collection[str] | None = None,
           patients: Collection[str] | None = None) -> Decision:
    """Whether the documents of ``message`` can be integrated (see the module's
    docstring for the order of the reasons). ``authors`` (idNatPs) and ``patients``
    (INS): the program's lists, when it keeps them."""
    version = subject_xdm_version(message.subject)
    if version is not None and version != XDM_VERSION:
        return Decision(WRONG_VERSION, (f"the subject announces XDM version {version}, "
                                        f"this program reads {XDM_VERSION}",))
    if message.archive is None:
        return Decision(OTHER_ERROR, (f"no {XDM_ARCHIVE_NAME} attachment",))
    try:
        checked = check(message.archive)
    except DocumentRefused as exc:
        if any(_NO_INS.search(reason) for reason in exc.reasons):
            return Decision(NO_INS, exc.reasons)
        mismatch = any(_MISMATCH.search(reason) for reason in exc.reasons)
        return Decision(INS_MISMATCH if mismatch else OTHER_ERROR, exc.reasons)
    cdas = checked.cdas
    if not cdas:
        return Decision(OTHER_ERROR, ("the archive holds no CDA document",), checked)
    if checked.patient_ins is None:
        return Decision(NO_INS, (f"the metadata's patientId {checked.patient_id} is not "
                                 "an INS",), checked)
    for header in cdas:
        patient = header.patient
        if patient.ins is None:
            return Decision(NO_INS, (f"the CDA {header.unique_id} carries no INS",), checked)
        missing = [name for name, value in (
            ("birth name", patient.birth_name), ("first given name", patient.given_name),
            ("birth date", patient.birth_date), ("sex", patient.sex)) if not value.strip()]
        if missing:
            return Decision(INCOMPLETE_TRAITS, (
                f"the CDA {header.unique_id}: INS without its {', '.join(missing)}",),
                checked)
    if authors is not None:
        for header in cdas:
            author = header.author.id if header.author is not None else ""
            if author not in authors:
                return Decision(AUTHOR_NOT_ALLOWED, (
                    f"the author {author or '(none)'} of {header.unique_id} is not "
                    "allowed here",), checked)
    if patients is not None and checked.patient_ins not in patients:
        return Decision(UNKNOWN_PATIENT, (f"the patient {checked.patient_ins} is not "
                                          "known here",), checked)
    return Decision(None, (), checked)


def disposition(decision: Decision) -> str:
    """The ``Disposition`` field's value (RFC 8098 §3.2.6; ANS integration codes)."""
    if decision.code is None:
        return MDN_DISPOSITION
    return f"{MDN_DISPOSITION}/Error: {decision.code}^{to_ascii(decision.label)}"


def integration_mdn(message: DocumentMessage, decision: Decision, *, mailbox: str,
                    to: str, now: float | None = None) -> EmailMessage:
    """The MDN ``mailbox`` (the APP mailbox that received ``message``) sends to ``to``
    (the original's Disposition-Notification-To), written by content/mdn.py."""
    subject = message.subject or "(sans objet)"
    files: list[File] = []
    if decision.code is None:
        mdn_subject = f"Intégration réussie : {subject}"
        text = ("Les documents du message ont été intégrés.\n"
                f"Message : {message.message_id or '(sans identifiant)'}\n")
    else:
        mdn_subject = integration_error_subject(decision.code, subject)
        text = (f"Les documents du message n'ont pas pu être intégrés : erreur "
                f"{decision.code} ({decision.label}).\n"
                f"Message : {message.message_id or '(sans identifiant)'}\n\n"
                + "".join(f"- {reason}\n" for reason in decision.reasons))
        if message.archive is not None:
            files.append(File(XDM_ARCHIVE_NAME, "application", "zip", message.archive))
        files += [File(pdf.name, "application", "pdf", pdf.data) for pdf in message.pdfs]
    return build_mdn(
        Original(message.message_id, subject, message.header_section), mailbox=mailbox,
        to=to, disposition=disposition(decision), subject=mdn_subject, text=text,
        reporting_ua=REPORTING_UA, files=files, now=now,
        error=f"{decision.code}^{to_ascii(decision.label)}"
        if decision.code is not None else None)
