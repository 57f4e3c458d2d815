"""What the receiving program decides for each message (codes 900–906), and the MDN it
writes, read back by the sender's side (content/reports.py)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from tests.content.xdmtools import CDA, CONSULTATION, CONSULTATION_PDF, valid_archive, with_document

from mssante.content.docmessage import document_message
from mssante.content.integration import Decision, decide, integration_mdn, read_message
from mssante.content.reports import read_report
from mssante.content.xdm import SourceDocument, build

APP = "app@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
INS_ID = b'<id root="1.2.250.1.213.1.4.10" extension="279035121518989"/>'


def mail(archive: bytes, *, checked: bool = True, subject: str | None = None) -> bytes:
    if checked:
        raw = document_message(sender=MARTIN, to=[APP], archive=archive, text="Bonjour")
        msg = email.message_from_bytes(raw, policy=email.policy.SMTP)
    else:
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"], msg["To"] = MARTIN, APP
        msg["Subject"] = "XDM/1.0/DDM+CR"
        msg["Message-ID"] = "<m1@medecin.mssante.fr>"
        msg.set_content("Bonjour")
        msg.add_attachment(archive, maintype="application", subtype="zip",
                           filename="IHE_XDM.ZIP")
    if subject is not None:
        msg.replace_header("Subject", subject)
    msg["Disposition-Notification-To"] = MARTIN
    return msg.as_bytes()


def code_of(raw: bytes, **lists: frozenset[str]) -> int | None:
    return decide(read_message(raw), **lists).code


def test_a_sound_message_is_integrated() -> None:
    message = read_message(mail(valid_archive()))
    assert (message.notify_to, message.archive is not None, len(message.pdfs)) == \
        (MARTIN, True, 1)
    decision = decide(message)
    assert decision.code is None and decision.checked is not None
    assert len(decision.checked.documents) == 2


def test_another_xdm_version_is_900() -> None:
    assert code_of(mail(valid_archive(), subject="XDM/2.0/DDM+CR DUPONT")) == 900


def test_author_not_allowed_is_901_and_unknown_patient_902() -> None:
    raw = mail(valid_archive())
    assert code_of(raw, authors=frozenset({"899999999999"})) == 901
    assert code_of(raw, authors=frozenset({"810102727017"})) is None
    assert code_of(raw, patients=frozenset({"185079935012361"})) == 902
    assert code_of(raw, patients=frozenset({"279035121518989"})) is None


def test_document_without_ins_is_903() -> None:
    without = CONSULTATION.replace(INS_ID, b"")
    # the metadata names the patient by the hospital's identifier: no INS anywhere
    assert code_of(mail(build([SourceDocument(without)]))) == 903
    # the metadata names the INS, the CDA has none
    assert code_of(mail(with_document(valid_archive(), CDA, without), checked=False)) == 903


def test_patient_mismatch_is_904() -> None:
    other = CONSULTATION.replace(b'extension="279035121518989"',
                                 b'extension="185079935012361"')
    assert code_of(mail(with_document(valid_archive(), CDA, other), checked=False)) == 904


def test_ins_without_its_traits_is_905() -> None:
    without_sex = CONSULTATION.replace(b'<administrativeGenderCode code="F"',
                                       b'<administrativeGenderCode code=""')
    assert code_of(mail(build([SourceDocument(without_sex)]), checked=False)) == 905


@pytest.mark.parametrize("archive", [b"not a zip", b""])
def test_anything_else_is_906(archive: bytes) -> None:
    assert code_of(mail(archive, checked=False)) == 906


def test_the_mdn_reads_back_as_processed_or_as_its_error() -> None:
    raw = mail(valid_archive())
    message = read_message(raw)
    ok = integration_mdn(message, decide(message), mailbox=APP, to=MARTIN).as_bytes()
    report = read_report(ok)
    assert report is not None and report.original_message_id == message.message_id
    assert [(e.recipient, e.kind, e.detail) for e in report.entries] == [(APP, "processed", "")]
    assert b"IHE_XDM.ZIP" not in ok
    ko = integration_mdn(message, Decision(904, ("mismatch",)), mailbox=APP, to=MARTIN)
    assert str(ko["Subject"]).startswith("[KO Intégration système !][904] XDM/1.0/DDM+")
    report = read_report(ko.as_bytes())
    assert report is not None
    assert report.entries[0].detail == "Error: 904^INS incoherent"
    names = [part.get_filename() for part in ko.walk() if part.get_filename()]
    assert names[0] == "IHE_XDM.ZIP" and names[1].endswith(".pdf")
    assert CONSULTATION_PDF in b"".join(
        part.get_payload(decode=True) for part in ko.walk()  # type: ignore[misc]
        if part.get_filename())


def test_a_ko_mdn_carrying_the_archive_back_is_not_integrated_again() -> None:
    message = read_message(mail(valid_archive()))
    ko = integration_mdn(message, Decision(906, ("x",)), mailbox=APP, to=MARTIN)
    back = read_message(ko.as_bytes())
    assert back.archive is not None and not back.for_integration
    assert message.for_integration


def test_the_mdn_goes_only_to_the_sender() -> None:
    raw = mail(valid_archive()).replace(
        f"Disposition-Notification-To: {MARTIN}".encode(),
        b"Disposition-Notification-To: victim@medecin.mssante.fr")
    message = read_message(raw)
    assert message.notify_to == "victim@medecin.mssante.fr" and not message.mdn_allowed
    assert read_message(mail(valid_archive())).mdn_allowed
