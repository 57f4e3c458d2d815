"""No accepted message lost, none duplicated, whatever crashes between two operators.

- The receiver committed, then the connection broke before its 250: the sender's
  retry carries the same XMSS-DELIVERY identifiers and is answered 250 without a
  second copy.
- The sender was killed (SIGKILL) between the next hop's 250 and its own "delivered"
  commit: restarted, it takes back the dead process's leases at once (not after the
  15-minute lease), sends again, and one copy arrives. ``queue retry`` gives the
  leases back too.
- A next hop that does not answer is tried about once per back-off period, not once
  per due entry, and its mail goes as soon as it answers again.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mssante.smtp.inbound import InboundHandler
from tests.conftest import RunningEnvironment, running_environment
from tests.e2e.mail import message, send, unique
from tests.e2e.test_queue_resilience import cli, queue, start_operator, stop_operator

DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
CH_XYZ = "ch-xyz.mssante.fr"
MEDECIN = "medecin.mssante.fr"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RunningEnvironment]:
    with running_environment(tmp_path / "env", retry_delays=(0.5, 1.0)) as running:
        yield running


def start_process(script: Path, config: Path) -> subprocess.Popen[str]:
    """``script`` run with the operator's configuration; returns once it says so."""
    proc = subprocess.Popen([sys.executable, str(script), str(config)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    if proc.stdout.readline().strip() != "started":
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the operator process did not start: {err}")
    return proc


def end_process(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()
    return proc.wait()


def copies(env: RunningEnvironment, subject: str) -> int:
    return sum(1 for m in env.messages(MARTIN) if m.subject == subject)


def test_a_retry_of_a_transaction_the_receiver_committed_is_stored_once(
        env: RunningEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiving operator commits, then its connection breaks before the 250."""
    subject = unique("coupe avant le 250")
    dropped: list[str] = []
    original = InboundHandler.handle_DATA

    async def commit_then_drop(self: InboundHandler, server: Any, session: Any,
                               envelope: Any) -> str:
        reply = await original(self, server, session, envelope)
        if not dropped and subject.encode() in (envelope.original_content or b""):
            dropped.append(reply)
            server.transport.abort()  # committed, and the 250 never leaves
            await asyncio.sleep(3600)  # ended by the loss of the connection
        return reply

    monkeypatch.setattr(InboundHandler, "handle_DATA", commit_then_drop)
    send(env, DUPONT, message(DUPONT, MARTIN, subject))
    env.wait_for(lambda: [e.status for e in queue(env, CH_XYZ)] == ["delivered"],
                 what="the entry delivered at its retry")
    assert dropped and dropped[0].startswith("250")
    (entry,) = queue(env, CH_XYZ)
    assert entry.attempts == 1  # the broken attempt, then the retry answered 250
    time.sleep(0.5)
    assert copies(env, subject) == 1


def test_a_sender_killed_between_the_250_and_its_commit_sends_once_more_and_one_copy_arrives(
        env: RunningEnvironment, tmp_path: Path) -> None:
    ch_xyz = stop_operator(env, CH_XYZ)
    # The sending operator in a process of its own, killed by SIGKILL at the moment it
    # would record the delivery: after the next hop's 250, before its own commit.
    script = tmp_path / "killed_sender.py"
    script.write_text(textwrap.dedent("""
        import asyncio, os, signal, sys
        from pathlib import Path
        from mssante.config import load_operator_config
        from mssante.environment.operator import OperatorService
        from mssante.store.store import Store

        async def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        Store.mark_delivered = killed

        async def main():
            service = OperatorService(load_operator_config(Path(sys.argv[1])))
            await service.start()
            print("started", flush=True)
            await asyncio.Event().wait()

        asyncio.run(main())
    """))
    proc = start_process(script, ch_xyz)
    try:
        subject = unique("expéditeur tué")
        send(env, DUPONT, message(DUPONT, MARTIN, subject))
        proc.wait(timeout=30)
    finally:
        assert end_process(proc) == -9  # SIGKILL
    assert copies(env, subject) == 1  # the receiver has it...
    (entry,) = queue(env, CH_XYZ)
    assert entry.status == "queued"  # ... and the sender did not record it
    assert entry.claimed_until > time.time() + 600  # leased for 15 minutes by the dead
    # the administrator's retry gives back the dead process's lease
    assert "1 entry due now" in cli("queue", "retry", env=env)
    assert queue(env, CH_XYZ)[0].claimed_until == 0.0
    started = time.monotonic()
    start_operator(env, ch_xyz)
    env.wait_for(lambda: [e.status for e in queue(env, CH_XYZ)] == ["delivered"],
                 what="the entry delivered after the restart")
    assert time.monotonic() - started < 15  # at once, not when the lease ends
    time.sleep(0.5)
    assert copies(env, subject) == 1  # sent twice, stored once


def test_a_restarted_operator_takes_back_the_killed_ones_leases_at_once(
        env: RunningEnvironment, tmp_path: Path) -> None:
    """Without ``queue retry``: the start itself gives the leases back."""
    medecin = stop_operator(env, MEDECIN)
    ch_xyz = stop_operator(env, CH_XYZ)
    script = tmp_path / "sender.py"
    script.write_text(textwrap.dedent("""
        import asyncio, sys
        from pathlib import Path
        from mssante.config import load_operator_config
        from mssante.environment.operator import OperatorService

        async def main():
            service = OperatorService(load_operator_config(Path(sys.argv[1])))
            await service.start()
            print("started", flush=True)
            await asyncio.Event().wait()

        asyncio.run(main())
    """))
    # the next hop takes the connection and never greets: the attempt, and its lease,
    # last until the client's timeout; the process is killed while it holds the lease
    hop = env.operator(MEDECIN)["smtp"]
    silent = socket.create_server((hop["host"], hop["port"]), reuse_port=False)
    proc = start_process(script, ch_xyz)
    try:
        subject = unique("bail repris")
        send(env, DUPONT, message(DUPONT, MARTIN, subject))
        env.wait_for(lambda: any(e.claimed_until > time.time() + 600
                                 for e in queue(env, CH_XYZ)),
                     what="a lease held by the process", timeout=30)
    finally:
        end_process(proc)
        silent.close()
    start_operator(env, medecin)
    started = time.monotonic()
    start_operator(env, ch_xyz)
    env.wait_message(MARTIN, subject, timeout=15)
    assert time.monotonic() - started < 15
    env.wait_for(lambda: [e.status for e in queue(env, CH_XYZ)] == ["delivered"],
                 what="the entry delivered")


def test_a_dead_next_hop_is_tried_once_per_backoff_period_not_once_per_entry(
        env: RunningEnvironment) -> None:
    """Twelve messages for a peer whose MTA port takes connections and closes them at
    once: a few attempts while it is down (0.5 s, then 1 s between two), where each
    entry tried on its own retry schedule would make dozens; then it is back, and all
    go at once."""
    medecin = stop_operator(env, MEDECIN)
    mta = env.operator(MEDECIN)["smtp"]
    connections: list[float] = []

    async def listen() -> asyncio.Server:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(time.monotonic())
            writer.close()

        return await asyncio.start_server(hang_up, mta["host"], mta["port"],
                                          reuse_address=True)

    server = env.runner.call(listen())
    count = 12
    try:
        subjects = [unique(f"pendant la panne {i}") for i in range(count)]
        for subject in subjects:
            send(env, DUPONT, message(DUPONT, MARTIN, subject))
        env.wait_for(lambda: len(queue(env, CH_XYZ)) == count, what="the entries queued")
        time.sleep(6)
        entries = queue(env, CH_XYZ)
    finally:
        async def close() -> None:
            server.close()
            await server.wait_closed()

        env.runner.call(close())
    window = connections[-1] - connections[0] if connections else 0.0
    # one probe per back-off period (0.5 s, then 1 s), plus those already under way
    # when the first failure came back
    assert len(connections) <= 6 + window, (len(connections), window)
    assert {e.status for e in entries} == {"queued"}
    assert sum(e.attempts for e in entries) > len(connections)  # deferred unconnected
    assert any("not tried again" in e.last_error for e in entries)
    start_operator(env, medecin)
    started = time.monotonic()
    for subject in subjects:
        env.wait_message(MARTIN, subject, timeout=20)
    assert time.monotonic() - started < 15
    env.wait_for(lambda: {e.status for e in queue(env, CH_XYZ)} == {"delivered"},
                 what="all delivered")
