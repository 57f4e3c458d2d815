"""The one MDN builder (content/mdn.py): a read receipt as RFC 8098 §3 writes it, read
back by the reports reader (content/reports.py) as the sender's operator reads it."""

from __future__ import annotations

import email
import email.policy

from mssante.content.mdn import Original, read_receipt
from mssante.content.reports import read_report

MARTIN = "jean.martin@medecin.mssante.fr"
DUPONT = "dupont@ch-xyz.mssante.fr"
HEADERS = (b"From: dupont@ch-xyz.mssante.fr\r\nTo: jean.martin@medecin.mssante.fr\r\n"
           b"Subject: =?utf-8?q?R=C3=A9sultats?=\r\nMessage-ID: <cr-1@ch-xyz.mssante.fr>\r\n"
           b"X-Raw: caf\xc3\xa9\r\n\r\n")


def test_a_read_receipt_sent_manually_reads_back_as_displayed() -> None:
    original = Original("<cr-1@ch-xyz.mssante.fr>", "Résultats", HEADERS)
    raw = read_receipt(original, mailbox=MARTIN, to=DUPONT, automatic=False).as_bytes()
    report = read_report(raw)
    assert report is not None and report.report_type == "disposition-notification"
    assert report.original_message_id == "<cr-1@ch-xyz.mssante.fr>"
    [entry] = report.entries
    assert (entry.recipient, entry.kind, entry.status) == (
        MARTIN, "displayed", "manual-action/MDN-sent-manually; displayed")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert (parsed["From"], parsed["To"], parsed["In-Reply-To"]) == (
        MARTIN, DUPONT, "<cr-1@ch-xyz.mssante.fr>")
    assert parsed["Auto-Submitted"] is None  # a person sent it
    assert str(parsed["Subject"]) == "Accusé de lecture : Résultats"
    parts = [p.get_content_type() for p in parsed.iter_parts()]
    assert parts == ["text/plain", "message/disposition-notification",
                     "text/rfc822-headers"]
    assert b"X-Raw: caf??" in raw  # the 8-bit octets of the original's headers: ASCII
    assert raw.isascii()


def test_a_patients_receipt_is_automatic_and_a_subject_cannot_inject_a_field() -> None:
    original = Original("<cr-2@ch-xyz.mssante.fr>", "Bilan\r\nBcc: someone@x", HEADERS)
    raw = read_receipt(original, mailbox="279035121518989@patient.mssante.fr", to=DUPONT,
                       automatic=True).as_bytes()
    report = read_report(raw)
    assert report is not None
    assert report.entries[0].status == "automatic-action/MDN-sent-automatically; displayed"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied"  # RFC 3834 §5
    assert parsed["Bcc"] is None
    assert str(parsed["Subject"]) == "Accusé de lecture : Bilan Bcc: someone@x"
