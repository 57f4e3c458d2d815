"""The outbound queue: a peer down then up, and a restart of the sending operator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mssante.cli import app
from mssante.config import load_operator_config
from mssante.environment.operator import OperatorService
from mssante.store import open_store
from tests.conftest import (
    RunningEnvironment,
    running_environment,
    start_environment,
    stop_environment,
)
from tests.e2e.mail import message, send, unique

DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningEnvironment]:
    with running_environment(tmp_path / "env", retry_delays=(0.5, 1.0)) as running:
        yield running


def stop_operator(env: RunningEnvironment, domain: str) -> Path:
    service = env.service(domain)
    env.runner.call(service.stop())
    env.env.operators.remove(service)
    return service.config.path


def start_operator(env: RunningEnvironment, config_path: Path) -> None:
    service = OperatorService(load_operator_config(config_path))
    env.runner.call(service.start())
    env.env.operators.append(service)


def queue(env: RunningEnvironment, domain: str) -> list:
    url = load_operator_config(
        env.env.data_dir / "operators" / domain / "operator.toml").database_url

    async def read() -> list:
        store = await open_store(url)
        try:
            return await store.queue_entries()
        finally:
            await store.close()

    return asyncio.run(read())


def test_peer_down_then_up_is_delivered_after_a_retry(env: RunningEnvironment) -> None:
    medecin = stop_operator(env, "medecin.mssante.fr")
    subject = unique("pendant la panne")
    send(env, DUPONT, message(DUPONT, MARTIN, subject))
    env.wait_for(lambda: any(e.attempts >= 1 and e.status == "queued"
                             for e in queue(env, "ch-xyz.mssante.fr")),
                 what="a deferred queue entry")
    (entry,) = queue(env, "ch-xyz.mssante.fr")
    assert "cannot connect" in (entry.last_error or "")
    assert entry.last_error.count("cannot connect") == 1  # said once, not once per layer
    assert entry.last_error.count("127.0.0.1") == 1
    # the administrator sees it and asks for an immediate retry
    listed = json.loads(cli("queue", "list", "--status", "queued", "--json", env=env))
    assert [(e["id"], e["to"]) for e in listed] == [(entry.id, MARTIN)]
    assert "due now" in cli("queue", "retry", str(entry.id), env=env)
    start_operator(env, medecin)
    env.wait_message(MARTIN, subject)
    env.wait_for(lambda: [e.status for e in queue(env, "ch-xyz.mssante.fr")] == ["delivered"],
                 what="the entry marked delivered")
    (delivered,) = queue(env, "ch-xyz.mssante.fr")
    assert delivered.last_error == ""  # the failure of the first attempt is not its story


def cli(*args: str, env: RunningEnvironment) -> str:
    config = env.env.data_dir / "operators" / "ch-xyz.mssante.fr" / "operator.toml"
    result = CliRunner().invoke(app, ["operator", *args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


def test_administrator_deletes_a_stuck_entry(env: RunningEnvironment) -> None:
    stop_operator(env, "medecin.mssante.fr")
    send(env, DUPONT, message(DUPONT, MARTIN, unique("à supprimer")))
    env.wait_for(lambda: bool(queue(env, "ch-xyz.mssante.fr")), what="a queue entry")
    (entry,) = queue(env, "ch-xyz.mssante.fr")
    assert f"deleted queue entry {entry.id}" in cli("queue", "delete", str(entry.id), env=env)
    assert queue(env, "ch-xyz.mssante.fr") == []


def test_queue_survives_a_restart_and_delivers_once(env: RunningEnvironment) -> None:
    medecin = stop_operator(env, "medecin.mssante.fr")
    subjects = [unique(f"message {i}") for i in range(5)]
    for subject in subjects:
        send(env, DUPONT, message(DUPONT, MARTIN, subject))
    ch_xyz = stop_operator(env, "ch-xyz.mssante.fr")
    assert {e.status for e in queue(env, "ch-xyz.mssante.fr")} == {"queued"}
    assert len(queue(env, "ch-xyz.mssante.fr")) == 5
    start_operator(env, medecin)
    start_operator(env, ch_xyz)
    for subject in subjects:
        env.wait_message(MARTIN, subject)
    env.wait_for(lambda: {e.status for e in queue(env, "ch-xyz.mssante.fr")} == {"delivered"},
                 what="all delivered")
    received = [m.subject for m in env.messages(MARTIN)]
    assert sorted(s for s in received if s in subjects) == sorted(subjects)  # exactly once


@pytest.fixture
def impatient_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[RunningEnvironment]:
    """Operators that send a "delayed" DSN after 1 s and give up after 4 s."""
    monkeypatch.setenv("MSSANTE_QUEUE__DELAY_NOTICE_AFTER", "1")
    monkeypatch.setenv("MSSANTE_QUEUE__MAX_LIFETIME", "4")
    running = start_environment(tmp_path / "env", retry_delays=(0.5,))
    try:
        yield running
    finally:
        stop_environment(running)


def dsn_bodies(env: RunningEnvironment, address: str, subject_start: str) -> list[bytes]:
    url = env.service(address.rpartition("@")[2]).config.database_url

    async def read() -> list[bytes]:
        store = await open_store(url)
        try:
            return [await store.get_body(m.body_sha256) for m in await store.list_messages(address)
                    if (m.subject or "").startswith(subject_start)]
        finally:
            await store.close()

    return asyncio.run(read())


def test_delay_then_expiry_produce_dsns(impatient_env: RunningEnvironment) -> None:
    env = impatient_env
    stop_operator(env, "medecin.mssante.fr")
    subject = unique("jamais distribué")
    from tests.e2e.mail import submission

    with submission(env, "ch-xyz.mssante.fr", DUPONT) as smtp:
        smtp.send_message(message(DUPONT, MARTIN, subject),
                          rcpt_options=["NOTIFY=DELAY,FAILURE"])
    env.wait_for(lambda: bool(dsn_bodies(env, DUPONT, "Delayed Mail")), what="a delayed DSN")
    (delayed,) = dsn_bodies(env, DUPONT, "Delayed Mail")
    assert b"Action: delayed" in delayed and b"Will-Retry-Until:" in delayed
    assert subject.split()[-1].encode() in delayed  # the returned headers name the message
    env.wait_for(lambda: bool(dsn_bodies(env, DUPONT, "Undelivered Mail")),
                 what="a failure DSN after the lifetime")
    (failed,) = dsn_bodies(env, DUPONT, "Undelivered Mail")
    assert b"Action: failed" in failed and b"Status: 4.4.7" in failed
    assert [e.status for e in queue(env, "ch-xyz.mssante.fr")
            if e.recipient == MARTIN] == ["failed"]
