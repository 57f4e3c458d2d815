"""Notifications to personal addresses, through a real SMTP relay on 127.0.0.1 (the
local environment's sink, aiosmtpd): what the bytes hold, and the limits."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest

from mssante.config import NotificationSettings
from mssante.notify.sender import CODE_SUBJECT, NOTICE_SUBJECT, NotSent, OutsideMail
from mssante.notify.sink import NotificationSink

WEB = "https://webmail.patient.example/espace"


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[NotificationSink]:
    sink = NotificationSink(tmp_path / "notifications")
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


def settings(sink: NotificationSink, **changes: object) -> NotificationSettings:
    values: dict[str, object] = {
        "enabled": True, "relay": f"127.0.0.1:{sink.port}", "starttls": False,
        "from_address": "ne-pas-repondre@patient.example", "web_url": WEB,
        "codes_per_hour": 3, "notice_interval": 3600.0}
    values.update(changes)
    return NotificationSettings(**values)  # type: ignore[arg-type]


async def test_a_code_message_holds_the_code_and_fixed_text(sink: NotificationSink) -> None:
    mail = OutsideMail(settings(sink))
    await mail.send_code("Eve.Noir@example.org", "493027")
    [path] = sink.messages()
    raw = path.read_bytes()
    assert raw.startswith(b"X-Sink-Rcpt: Eve.Noir@example.org\r\n")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["To"] == "Eve.Noir@example.org"
    assert message["From"] == "ne-pas-repondre@patient.example"
    assert message["Subject"] == CODE_SUBJECT
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@patient.example>")
    body = message.get_content()
    assert "493027" in body and "10 minutes" in body


async def test_a_notice_names_only_the_web_address(sink: NotificationSink) -> None:
    mail = OutsideMail(settings(sink))
    await mail.send_notice("eve@example.org")
    [path] = sink.messages()
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == NOTICE_SUBJECT
    assert WEB in message.get_content()
    assert not message.is_multipart()
    assert sorted(message.keys()) == sorted(
        ["X-Sink-Rcpt", "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
         "Content-Type", "Content-Transfer-Encoding", "MIME-Version"])


async def test_codes_to_one_address_are_limited_per_hour(sink: NotificationSink) -> None:
    mail = OutsideMail(settings(sink, codes_per_hour=2))
    await mail.send_code("eve@example.org", "111111")
    await mail.send_code("EVE@example.org", "222222")  # the same address
    assert not mail.may_send_code("eve@example.org")
    with pytest.raises(NotSent, match="Too many codes"):
        await mail.send_code("eve@example.org", "333333")
    await mail.send_code("other@example.org", "444444")  # another address is not held
    assert len(sink.messages()) == 3


async def test_one_notice_per_interval_to_one_address(sink: NotificationSink) -> None:
    mail = OutsideMail(settings(sink, notice_interval=3600.0))
    assert mail.next_notice_at("eve@example.org") == 0.0
    await mail.send_notice("eve@example.org")
    assert mail.next_notice_at("eve@example.org") > 3000.0
    with pytest.raises(NotSent):
        await mail.send_notice("eve@example.org")
    assert len(sink.messages()) == 1


async def test_nothing_goes_to_the_trust_space_or_to_a_non_address(
        sink: NotificationSink) -> None:
    mail = OutsideMail(settings(sink))
    for to in ("279035121518989@patient.mssante.fr", "dupont@ch-xyz.mssante.fr", "eve"):
        with pytest.raises(NotSent, match="not a personal address"):
            await mail.send_code(to, "123456")
    assert sink.messages() == []


async def test_a_relay_that_does_not_answer_is_not_sent(tmp_path: Path) -> None:
    sink = NotificationSink(tmp_path / "n")
    await sink.start()
    port = sink.port
    await sink.close()  # nothing listens there any more
    mail = OutsideMail(NotificationSettings(
        enabled=True, relay=f"127.0.0.1:{port}", starttls=False,
        from_address="a@patient.example", web_url=WEB, timeout=5.0))
    with pytest.raises(NotSent, match="could not be sent") as info:
        await mail.send_notice("eve@example.org")
    assert isinstance(info.value.__cause__, aiosmtplib.SMTPException | OSError)
