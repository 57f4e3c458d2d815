"""`mssante operator serve` from several processes (environment/workers.py): real
supervisors and workers, started as an operator starts them, serving the shared
environment's ch-xyz database beside the environment's own operator process.

Which worker serves a connection is read from /proc: the server side of the
connection is a socket one worker holds open."""

from __future__ import annotations

import imaplib
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.imap.conftest import HOSPITAL, fresh_person, tls_context

START_TIMEOUT = 90.0
pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(),
                                reason="reads /proc to see which worker serves")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    process: subprocess.Popen[str]
    imaps: int
    output: list[str]

    def workers(self) -> list[int]:
        """The supervisor's children, the workers."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sorted(int(child) for child in children)


def _env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("SMTP", "SUBMISSION", "SUBMISSIONS", "IMAP", "WEB"):
        env[f"MSSANTE_{name}__PORT"] = "0"
    env.update(overrides)
    return env


@contextmanager
def served(environment: Any, processes: int = 2, **overrides: str) -> Iterator[Served]:
    """The ch-xyz operator served by ``processes`` workers on an IMAPS port of its own."""
    config = environment.service(HOSPITAL).config.path
    imaps = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mssante", "operator", "serve", "--config", str(config)],
        env=_env(MSSANTE_OPERATOR__PROCESSES=str(processes),
                 MSSANTE_IMAPS__PORT=str(imaps), **overrides),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "ready" in line:
                break
        assert output and "ready" in output[-1], "".join(output)
        assert f"({processes} processes)" in output[-1]
        yield Served(process, imaps, output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def serving_pid(client: imaplib.IMAP4, server_port: int) -> int | None:
    """The pid of the process holding the server side of ``client``'s connection."""
    client_port = client.sock.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if (int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port):
            inode = fields[9]
    if inode is None:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
        except OSError:
            continue
    return None


def connect(environment: Any, port: int) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=tls_context(environment),
                             timeout=30)


def test_workers_share_the_port_and_hear_each_others_news_at_once(environment: Any) -> None:
    """Two workers on one IMAPS port: connections land on both; a message stored by
    yet another process (the environment's own operator) reaches the IDLE sessions of
    both at once over the SQLite bus, well before their 5 s poll."""
    person = fresh_person(environment)
    with served(environment) as serve:
        workers = serve.workers()
        assert len(workers) == 2
        idle: list[tuple[imaplib.IMAP4_SSL, int]] = []
        for _ in range(40):
            client = connect(environment, serve.imaps)
            client.login(person.login, person.password)
            client.select("INBOX")
            pid = serving_pid(client, serve.imaps)
            assert pid in workers
            idle.append((client, pid))
            if {p for _, p in idle} == set(workers) and len(idle) >= 4:
                break
        assert {p for _, p in idle} == set(workers), "the kernel never chose one worker"
        for client, _ in idle:
            tag = client._new_tag().decode()
            client.send(f"{tag} IDLE\r\n".encode())
            assert client.readline().startswith(b"+")
        message = EmailMessage()
        message["From"] = person.address
        message["To"] = person.address
        message["Subject"] = "heard by every worker"
        message.set_content("bonjour")
        op = environment.operator(HOSPITAL)
        started = time.monotonic()
        with smtplib.SMTP_SSL(op["submissions"]["host"], op["submissions"]["port"],
                              context=tls_context(environment), timeout=30) as smtp:
            smtp.login(person.login, person.password)
            smtp.send_message(message)
        for client, _ in idle:
            client.sock.settimeout(10)
            assert client.readline() == b"* 1 EXISTS\r\n"
        elapsed = time.monotonic() - started
        assert elapsed < 2.5, f"news took {elapsed:.2f} s: the poll, not the bus"
        for client, _ in idle:
            client.send(b"DONE\r\n")
            client.logout()


def test_a_killed_worker_is_started_again_and_sigterm_stops_them_all(
        environment: Any) -> None:
    person = fresh_person(environment)
    with served(environment) as serve:
        before = serve.workers()
        os.kill(before[1], signal.SIGKILL)
        deadline = time.monotonic() + 30
        after = before
        while time.monotonic() < deadline:
            after = serve.workers()
            if len(after) == 2 and before[1] not in after:
                break
            time.sleep(0.2)
        assert len(after) == 2 and before[0] in after and before[1] not in after
        for _ in range(4):  # whichever worker answers, it serves
            client = connect(environment, serve.imaps)
            client.login(person.login, person.password)
            client.logout()
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(40) == 0
        for pid in after:  # stopped, and waited for by the supervisor
            assert not Path(f"/proc/{pid}").exists()


def test_workers_stop_when_their_supervisor_is_killed(environment: Any) -> None:
    """A supervisor killed with -9 (an administrator's mistake, the OOM killer) must
    not leave workers holding the ports: the next start would find them taken."""
    with served(environment) as serve:
        workers = serve.workers()
        serve.process.kill()
        serve.process.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                Path(f"/proc/{pid}").exists() for pid in workers):
            time.sleep(0.2)
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
        with socket.socket() as probe:  # the port is free again
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", serve.imaps))


def test_a_port_another_process_holds_stops_the_start_with_its_name(
        environment: Any) -> None:
    """SO_REUSEPORT must not let a second operator share a port with a first: the
    supervisor binds each port without it first."""
    config = environment.service(HOSPITAL).config.path
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "mssante", "operator", "serve", "--config", str(config)],
            env=_env(MSSANTE_OPERATOR__PROCESSES="2", MSSANTE_IMAPS__PORT=str(port)),
            capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"imaps.port: cannot listen on 127.0.0.1:{port}" in done.stdout + done.stderr
