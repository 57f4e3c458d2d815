"""A patient's one-time login code by mail (auth/emailcode.py): sent through a real
relay on 127.0.0.1, kept hashed in a real store; single use, expiry, attempts, the
patient's choice, and the refusals when no code can be sent."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mssante.auth.emailcode import CodeNotSent, CodeStart, LoginCodes
from mssante.config import NotificationSettings
from mssante.domain.logins import SecondFactorPolicy
from mssante.domain.mailboxes import PersonKind
from mssante.notify.sender import OutsideMail
from mssante.notify.sink import NotificationSink
from mssante.store import Store, open_store

PATIENT = "279035121518989@patient.mssante.fr"
HOME = "eve.noir@example.org"


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[NotificationSink]:
    sink = NotificationSink(tmp_path / "notifications")
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'operator.sqlite3'}")
    await store.create_person(PATIENT, PersonKind.PATIENT, "Eve Noir")
    await store.logins.set_contact(PATIENT, personal_address=HOME)
    await store.create_person("marie.bernard", PersonKind.STAFF, "Marie Bernard")
    try:
        yield store
    finally:
        await store.close()


def notifications(sink: NotificationSink, **changes: object) -> NotificationSettings:
    values: dict[str, object] = {
        "enabled": True, "relay": f"127.0.0.1:{sink.port}", "starttls": False,
        "from_address": "ne-pas-repondre@patient.example",
        "web_url": "https://127.0.0.1:1", "code_attempts": 3, "codes_per_hour": 5}
    values.update(changes)
    return NotificationSettings(**values)  # type: ignore[arg-type]


def codes(store: Store, sink: NotificationSink, **changes: object) -> LoginCodes:
    settings = notifications(sink, **changes)
    return LoginCodes(store.logins, OutsideMail(settings), settings, SecondFactorPolicy())


def last_code(sink: NotificationSink) -> str:
    raw = sink.messages()[-1].read_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["To"] == HOME
    found = re.search(r"connexion : (\d+)", message.get_content())
    assert found is not None
    return found.group(1)


async def test_the_code_sent_logs_in_once(store: Store, sink: NotificationSink) -> None:
    flow = codes(store, sink)
    assert await flow.start(PATIENT) is CodeStart.SENT
    code = last_code(sink)
    assert len(code) == 6 and code.isdigit()
    assert await flow.verify(PATIENT, f" {code[:3]} {code[3:]} ")
    assert not await flow.verify(PATIENT, code)  # single use


async def test_a_code_is_kept_hashed(store: Store, sink: NotificationSink) -> None:
    flow = codes(store, sink, code_digits=8)
    await flow.start(PATIENT)
    code = last_code(sink)
    assert len(code) == 8
    async with store.tx.engine.connect() as conn:  # past the API: what is at rest
        rows = (await conn.exec_driver_sql("SELECT * FROM login_codes")).all()
    assert len(rows) == 1 and code not in repr(rows)


async def test_a_code_expires(store: Store, sink: NotificationSink) -> None:
    flow = codes(store, sink, code_lifetime=600.0)
    await flow.start(PATIENT, now=10_000.0)
    code = last_code(sink)
    assert not await flow.verify(PATIENT, code, now=10_600.0)
    await flow.start(PATIENT, now=20_000.0)
    assert await flow.verify(PATIENT, last_code(sink), now=20_599.0)


async def test_wrong_tries_use_the_code_up(store: Store, sink: NotificationSink) -> None:
    flow = codes(store, sink, code_attempts=3)
    await flow.start(PATIENT)
    code = last_code(sink)
    wrong = "000000" if code != "000000" else "111111"
    assert not await flow.verify(PATIENT, wrong)
    assert not await flow.verify(PATIENT, "not a code")
    assert not await flow.verify(PATIENT, wrong)
    assert not await flow.verify(PATIENT, code)  # three wrong tries: gone


async def test_a_new_code_replaces_the_last(store: Store, sink: NotificationSink) -> None:
    flow = codes(store, sink)
    await flow.start(PATIENT)
    first = last_code(sink)
    await flow.start(PATIENT)
    second = last_code(sink)
    if first != second:
        assert not await flow.verify(PATIENT, first)
    assert await flow.verify(PATIENT, second)


async def test_not_needed_when_off_for_the_patient_or_not_a_patient(
        store: Store, sink: NotificationSink) -> None:
    flow = codes(store, sink)
    await store.logins.set_contact(PATIENT, login_code=False)
    assert await flow.start(PATIENT) is CodeStart.NOT_NEEDED
    assert await flow.start("marie.bernard") is CodeStart.NOT_NEEDED
    assert sink.messages() == []
    assert not await flow.verify(PATIENT, "123456")  # no code was sent: none works


async def test_refused_when_no_code_can_be_sent(store: Store, sink: NotificationSink) -> None:
    flow = codes(store, sink, codes_per_hour=1)
    await flow.start(PATIENT)
    with pytest.raises(CodeNotSent, match="Too many codes"):
        await flow.start(PATIENT)
    off = LoginCodes(store.logins, None, NotificationSettings(), SecondFactorPolicy())
    with pytest.raises(CodeNotSent, match="cannot be sent"):
        await off.start(PATIENT)
    await store.logins.set_contact(PATIENT, personal_address=None)
    with pytest.raises(CodeNotSent, match="no personal address"):
        await flow.start(PATIENT)
    with pytest.raises(CodeNotSent, match="Authentication failed"):
        await flow.start("nobody")
    assert len(sink.messages()) == 1
