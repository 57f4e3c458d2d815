"""Reading DSNs (RFC 3464) and MDNs (RFC 8098) for a message's timeline: the project's
own DSNs, a mail client's MDN, an ANS integration receipt, and hostile reports, which
are no report rather than an error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.content.dsn import Action, RecipientStatus, build_dsn
from mssante.content.reports import MAX_GROUPS, read_report

ORIGINAL = (b"From: dupont@ch-xyz.mssante.fr\r\nTo: jean.martin@medecin.mssante.fr\r\n"
            b"Subject: CR\r\nMessage-ID: <cr-1@ch-xyz.mssante.fr>\r\n\r\nBonjour\r\n")


def mdn(disposition: str, *, original: str = "<cr-1@ch-xyz.mssante.fr>",
        extra: str = "") -> bytes:
    return (
        "From: jean.martin@medecin.mssante.fr\r\nTo: dupont@ch-xyz.mssante.fr\r\n"
        "Subject: Lu\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report;\r\n"
        ' report-type=disposition-notification; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nLu.\r\n"
        "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Reporting-UA: client.test\r\n"
        "Final-Recipient: rfc822; Jean.Martin@medecin.mssante.fr\r\n"
        f"Original-Message-ID: {original}\r\nDisposition: {disposition}\r\n{extra}"
        "--b--\r\n").encode()


def test_the_projects_own_dsn_is_read_per_recipient() -> None:
    for ret, returned in (("FULL", "message/rfc822"), ("HDRS", "text/rfc822-headers")):
        raw = build_dsn(
            reporting_mta="mx.medecin.mssante.fr", from_address="mailer-daemon@medecin",
            to="dupont@ch-xyz.mssante.fr", original=ORIGINAL, envid=None, ret=ret,
            arrival=0.0, statuses=[
                RecipientStatus(recipient="jean.martin@medecin.mssante.fr",
                                action=Action.DELIVERED, status="2.0.0",
                                diagnostic="X-mssante; delivered to mailbox"),
                RecipientStatus(recipient="nobody@medecin.mssante.fr", action=Action.FAILED,
                                status="5.1.1", diagnostic="smtp; 550 5.1.1 no such user")])
        report = read_report(raw)
        assert returned.encode() in raw
        assert report is not None and report.report_type == "delivery-status"
        assert report.original_message_id == "<cr-1@ch-xyz.mssante.fr>"
        assert [(e.recipient, e.kind, e.status) for e in report.entries] == [
            ("jean.martin@medecin.mssante.fr", "delivered", "2.0.0"),
            ("nobody@medecin.mssante.fr", "failed", "5.1.1")]
        assert report.entries[1].detail == "smtp; 550 5.1.1 no such user"


def test_a_read_receipt_and_an_integration_receipt() -> None:
    read = read_report(mdn("manual-action/MDN-sent-manually; displayed"))
    assert read is not None and read.report_type == "disposition-notification"
    assert read.original_message_id == "<cr-1@ch-xyz.mssante.fr>"
    [entry] = read.entries
    assert (entry.recipient, entry.kind) == ("jean.martin@medecin.mssante.fr", "displayed")
    # the ANS integration error receipt: processed/Error: <code>^<libellé>
    failed = read_report(mdn("automatic-action/MDN-sent-automatically; "
                             "processed/Error: 902^Patient inconnu"))
    assert failed is not None
    assert (failed.entries[0].kind, failed.entries[0].detail) == (
        "processed", "Error: 902^Patient inconnu")


def test_what_is_not_a_report_is_none() -> None:
    assert read_report(ORIGINAL) is None
    assert read_report(mdn("manual-action/MDN-sent-manually; exploded")) is None
    assert read_report(mdn("nonsense")) is None
    not_typed = mdn("x; displayed").replace(b"message/disposition-notification",
                                             b"text/plain")
    assert read_report(not_typed) is None
    no_id = read_report(mdn("a/b; displayed", original="no angle brackets"))
    assert no_id is not None and no_id.original_message_id is None


def test_a_report_of_a_million_recipients_is_cut() -> None:
    groups = "".join(f"\r\nFinal-Recipient: rfc822; r{i}@x.fr\r\nAction: failed\r\n"
                     f"Status: 5.0.0\r\n" for i in range(MAX_GROUPS * 3))
    raw = ("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
           "--b\r\n\r\nx\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
           f"Reporting-MTA: dns; x\r\n{groups}--b--\r\n").encode()
    report = read_report(raw)
    assert report is not None and len(report.entries) <= MAX_GROUPS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from([b"delivery-status",
                                                   b"disposition-notification"]))
def test_hostile_bytes_in_a_report_never_raise(noise: bytes, kind: bytes) -> None:
    raw = (b"Content-Type: multipart/report; report-type=" + kind + b"; boundary=b\r\n\r\n"
           b"--b\r\n\r\nx\r\n--b\r\nContent-Type: message/" + kind + b"\r\n\r\n" + noise
           + b"\r\n--b\r\n" + noise + b"\r\n--b--\r\n")
    report = read_report(raw)
    if report is not None:
        assert all(len(e.detail) <= 998 and len(e.recipient) <= 320 for e in report.entries)
