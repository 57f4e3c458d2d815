"""What the sending operator reports when a delivery fails for a reason of its own.

No remote server answered: the DSN has no ``Remote-MTA`` and no ``smtp`` diagnostic
(RFC 3464 §2.3.5-2.3.6), and its delivery-status part is US-ASCII (§2.1) even when
the reason quotes a DN with an accent. A connection to a server whose certificate is
refused is closed at once instead of waiting in the pool.
"""

from __future__ import annotations

import asyncio
import email
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from mssante.queue.nexthop import NextHops
from mssante.store import open_store
from tests.conftest import (
    RunningEnvironment,
    running_environment,
    start_environment,
    stop_environment,
)
from tests.e2e.mail import message, send, unique
from tests.e2e.test_queue_resilience import queue

DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"


@pytest.fixture
def impatient_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[RunningEnvironment]:
    """Operators that give up after 3 s."""
    monkeypatch.setenv("MSSANTE_QUEUE__MAX_LIFETIME", "3")
    running = start_environment(tmp_path / "env", retry_delays=(0.5,))
    try:
        yield running
    finally:
        stop_environment(running)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningEnvironment]:
    with running_environment(tmp_path / "env", retry_delays=(0.5, 1.0)) as running:
        yield running


def reports(env: RunningEnvironment, address: str) -> list[Message]:
    url = env.service(address.rpartition("@")[2]).config.database_url

    async def read() -> list[bytes]:
        store = await open_store(url)
        try:
            return [await store.get_body(m.body_sha256) for m in await store.list_messages(address)
                    if (m.subject or "").startswith("Undelivered Mail")]
        finally:
            await store.close()

    return [email.message_from_bytes(b) for b in asyncio.run(read())]


def delivery_status(report: Message) -> tuple[bytes, Message]:
    """The raw delivery-status part and its per-recipient fields."""
    part = report.get_payload()[1]
    assert part.get_content_type() == "message/delivery-status"
    raw = b"\r\n".join(p.as_bytes() for p in part.get_payload())
    return raw, part.get_payload()[1]


def test_a_next_hop_whose_dn_is_not_listed_is_left_at_once_and_reported_as_ours(
        impatient_env: RunningEnvironment) -> None:
    env = impatient_env
    medecin_mta = env.operator("medecin.mssante.fr")["smtp"]
    worker = env.service("ch-xyz.mssante.fr").worker
    # the patient domain routed to medecin's MTA, whose certificate is not listed for it
    worker.hops = NextHops({"patient.mssante.fr": f"127.0.0.1:{medecin_mta['port']}"})
    send(env, DUPONT, message(DUPONT, PATIENT, unique("mauvais MTA")))
    env.wait_for(lambda: any(e.attempts >= 1 for e in queue(env, "ch-xyz.mssante.fr")),
                 what="a failed attempt")
    (entry,) = queue(env, "ch-xyz.mssante.fr")
    assert "is not listed for patient.mssante.fr" in entry.last_error
    assert worker.pool.idle_count() == 0  # not kept for later
    env.wait_for(lambda: bool(reports(env, DUPONT)), what="the failure DSN")
    (report,) = reports(env, DUPONT)
    raw, fields = delivery_status(report)
    assert raw.isascii()  # RFC 3464 §2.1, although the DN says "Rhône"
    assert fields["Status"] == "4.4.7"
    assert fields["Remote-MTA"] is None  # no remote server answered
    assert fields["Diagnostic-Code"].startswith("X-mssante; ")
    assert "ST=Rh\\x{F4}ne (69)" in fields["Diagnostic-Code"]  # RFC 6533 §3 escape


def test_a_domain_off_the_whitelist_bounces_without_a_remote_diagnostic(
        env: RunningEnvironment) -> None:
    service = env.service("medecin.mssante.fr")
    env.runner.call(service.stop())
    env.env.operators.remove(service)
    send(env, DUPONT, message(DUPONT, MARTIN, unique("retiré de la liste")))
    env.wait_for(lambda: any(e.attempts >= 1 for e in queue(env, "ch-xyz.mssante.fr")),
                 what="a failed attempt")
    assert env.env.trust_space is not None
    env.env.trust_space.publisher.remove("medecin.mssante.fr", None)
    env.refresh_trust()
    env.wait_for(lambda: bool(reports(env, DUPONT)), what="the failure DSN")
    (report,) = reports(env, DUPONT)
    raw, fields = delivery_status(report)
    assert raw.isascii()
    assert fields["Status"] == "5.7.1"
    assert fields["Remote-MTA"] is None
    assert fields["Diagnostic-Code"] == (
        "X-mssante; medecin.mssante.fr is not on the MSSant\\x{E9} whitelist")
    (entry,) = queue(env, "ch-xyz.mssante.fr")
    assert entry.status == "failed"
