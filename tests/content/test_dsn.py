"""RFC 3464 reports, parsed back with the standard library's email parser."""

from __future__ import annotations

import email
from email.message import Message

from hypothesis import given
from hypothesis import strategies as st

from mssante.content.dsn import Action, RecipientStatus, build_dsn
from mssante.content.headers import (
    HeaderSyntaxError,
    canonical_line_endings,
    check_header_section,
    header_section,
    read_headers,
)

ORIGINAL = (b"From: dupont@ch-xyz.mssante.fr\r\nTo: x@medecin.mssante.fr\r\n"
            b"Subject: =?utf-8?q?Compte_rendu_=C3=A9chographie?=\r\n"
            b"Message-ID: <m1@ch-xyz.mssante.fr>\r\n\r\nCorps du message\r\n")


def report(ret: str | None) -> Message:
    data = build_dsn(
        reporting_mta="mta.ch-xyz.mssante.fr", from_address="postmaster@ch-xyz.mssante.fr",
        to="dupont@ch-xyz.mssante.fr",
        statuses=[RecipientStatus("x@medecin.mssante.fr", Action.FAILED, "5.1.1",
                                  "smtp; 550 5.1.1 No such mailbox", orcpt="rfc822;X@medecin",
                                  remote_mta="127.0.0.1")],
        original=ORIGINAL, envid="ENV 1", ret=ret, arrival=1_700_000_000.0, now=1_700_000_060.0)
    return email.message_from_bytes(data)


def test_structure_of_a_failure_report() -> None:
    msg = report(None)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Auto-Submitted"] == "auto-replied"
    text, status, returned = msg.get_payload()
    assert text.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mta.ch-xyz.mssante.fr"
    assert per_message["Original-Envelope-Id"] == "ENV 1"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Final-Recipient"] == "rfc822; x@medecin.mssante.fr"
    assert per_recipient["Original-Recipient"] == "rfc822;X@medecin"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 No such mailbox"
    # no RET: headers only (RFC 3461 §4.3)
    assert returned.get_content_type() == "text/rfc822-headers"
    assert b"Corps du message" not in returned.as_bytes()


def test_ret_full_returns_the_whole_message() -> None:
    returned = report("FULL").get_payload()[2]
    assert returned.get_content_type() == "message/rfc822"
    assert "Corps du message" in returned.as_string()


def test_subject_is_encoded_and_readable() -> None:
    data = build_dsn(reporting_mta="m", from_address="postmaster@a.mssante.fr", to="d@a.fr",
                     statuses=[RecipientStatus("x@b.fr", Action.DELAYED, "4.4.1")],
                     original=ORIGINAL, envid=None, ret=None, arrival=0.0)
    head = header_section(data)
    assert head.isascii()
    assert read_headers(data).subject == "Delayed Mail (still being retried) / Message retardé"


def test_headers_decode_rfc2047_and_raw_utf8() -> None:
    assert read_headers(ORIGINAL).subject == "Compte rendu échographie"
    raw = "Subject: Résultats\r\nFrom: a@b.fr\r\n\r\nx".encode()
    view = read_headers(raw)
    assert view.subject == "Résultats"
    assert [m.addr_spec for m in view.from_mailboxes] == ["a@b.fr"]


@given(st.binary(max_size=400))
def test_header_reading_never_crashes(data: bytes) -> None:
    body = canonical_line_endings(data)
    assert body.count(b"\r\n") == body.count(b"\n") == body.count(b"\r")
    view = read_headers(body)
    assert all(m.addr_spec for m in view.from_mailboxes)
    try:
        check_header_section(body)
    except HeaderSyntaxError as exc:
        assert str(exc)


def test_delivery_status_part_is_ascii_whatever_the_reason_says() -> None:
    """RFC 3464 §2.1: a DN with an accent and a UTF-8 recipient are escaped (RFC 6533 §3)."""
    data = build_dsn(
        reporting_mta="mta.ch-xyz.mssante.fr", from_address="postmaster@ch-xyz.mssante.fr",
        to="dupont@ch-xyz.mssante.fr",
        statuses=[RecipientStatus("jérôme@medecin.mssante.fr", Action.FAILED, "5.7.1",
                                  "X-mssante; certificate CN=mta,ST=Rhône (69),C=FR\r\nrefused")],
        original=ORIGINAL, envid=None, ret=None, arrival=1_700_000_000.0)
    status = email.message_from_bytes(data).get_payload()[1]
    raw = b"".join(p.as_bytes() for p in status.get_payload())
    assert raw.isascii()
    fields = status.get_payload()[1]
    assert fields["Final-Recipient"] == "utf-8; j\\x{E9}r\\x{F4}me@medecin.mssante.fr"
    assert fields["Diagnostic-Code"] == (
        "X-mssante; certificate CN=mta,ST=Rh\\x{F4}ne (69),C=FR  refused")
    assert fields["Remote-MTA"] is None


def test_local_failure_and_remote_reply_diagnostics() -> None:
    from mssante.queue.client import DeliveryError

    remote = DeliveryError.from_reply(550, "5.1.1 No such mailbox")
    assert (remote.remote, remote.status, remote.permanent) == (True, "5.1.1", True)
    assert remote.diagnostic == "smtp; 550 5.1.1 No such mailbox"
    assert str(remote) == "550 5.1.1 No such mailbox"
    bare = DeliveryError.from_reply(451, "try later")
    assert (bare.status, bare.permanent, bare.diagnostic) == ("4.0.0", False, "smtp; 451 try later")
    local = DeliveryError("4.4.1", "cannot connect to 127.0.0.1:25: Connection refused",
                          permanent=False)
    assert not local.remote
    assert local.diagnostic == "X-mssante; cannot connect to 127.0.0.1:25: Connection refused"
    assert str(local) == "4.4.1 cannot connect to 127.0.0.1:25: Connection refused"
