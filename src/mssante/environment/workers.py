"""Serving one operator from several processes: the supervisor and its workers.

``mssante operator serve`` with ``operator.processes`` other than 1 runs this
supervisor. It starts that many workers, each a fresh interpreter running the
operator (``mssante operator serve`` again, told by the environment that it is worker
``i`` of ``n``), and keeps them running:

- Each worker listens on every configured port with ``SO_REUSEPORT``: the kernel
  spreads the connections over them. Before starting any, the supervisor binds each
  port once without it, so a port another program (or another operator) holds stops
  the start with a clear message, instead of two operators sharing a port.
- A worker says it is ready by writing one line to a pipe the supervisor gave it;
  ``ready`` is printed once every worker is. A worker that ends before that stops the
  start (its exit status is the supervisor's).
- A worker that dies afterwards is started again: after 1 s, doubling up to 30 s
  while it keeps dying within a minute of its start. A worker that ends before every
  worker was ready stops the start instead (a configuration or a database that does
  not work is told at once, not retried for ever).
- A supervisor killed outright takes its workers with it: each asked the kernel for
  SIGTERM at its parent's death (``PR_SET_PDEATHSIG``), and stops cleanly.
- SIGTERM or SIGINT to the supervisor is passed to every worker, which stops
  cleanly (entries in flight go back to the queue); one still running after
  ``STOP_SECONDS`` is killed.
- Worker 0 runs what must run once per operator (environment/operator.py).

The supervisor opens no database and serves nothing: it stays small and has nothing
to crash on.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mssante.config import Listener, OperatorConfig
from mssante.errors import ConfigError

log = logging.getLogger(__name__)

WORKER_VARIABLE = "MSSANTE_WORKER"  # "<index>/<count>" in a worker's environment
READY_VARIABLE = "MSSANTE_READY_FD"  # the pipe a worker writes "ready" to
LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "web")
START_SECONDS = 120.0  # a worker not ready by then stops the start
STOP_SECONDS = 30.0
FIRST_RESTART = 1.0
LAST_RESTART = 30.0
STABLE_SECONDS = 60.0  # a worker that lived this long restarts after FIRST_RESTART again


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """Which worker this process is: ``index`` of ``count``."""

    index: int
    count: int

    @property
    def runs_singletons(self) -> bool:
        return self.index == 0


def worker_role(environ: dict[str, str] | None = None) -> WorkerRole | None:
    """This process's role, when a supervisor started it; None otherwise."""
    value = (os.environ if environ is None else environ).get(WORKER_VARIABLE)
    if not value:
        return None
    index, _, count = value.partition("/")
    try:
        role = WorkerRole(int(index), int(count))
    except ValueError:
        raise ConfigError(f"{WORKER_VARIABLE}={value!r}: expected <index>/<count>") from None
    if not 0 <= role.index < role.count:
        raise ConfigError(f"{WORKER_VARIABLE}={value!r}: index out of range")
    return role


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def follow_supervisor() -> None:
    """In a worker: be sent SIGTERM if the supervisor dies (killed with -9, say), so that
    no worker goes on holding the ports after it: the next start would find them
    taken. Linux only; elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    supervisor = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    except (OSError, AttributeError) as exc:
        log.warning("this worker will not stop with its supervisor: %s", exc)
        return
    if os.getppid() != supervisor or supervisor == 1:  # it died before prctl took hold
        os.kill(os.getpid(), signal.SIGTERM)


def tell_ready() -> None:
    """In a worker: tell the supervisor it listens (nothing outside a supervisor)."""
    fd = os.environ.get(READY_VARIABLE)
    if not fd:
        return
    try:
        os.write(int(fd), b"ready\n")
        os.close(int(fd))
    except (OSError, ValueError) as exc:
        log.warning("cannot tell the supervisor this worker is ready: %s", exc)
    os.environ.pop(READY_VARIABLE, None)


def listening(config: OperatorConfig) -> dict[str, int]:
    """The ports the workers listen on, by listener name."""
    return {name: getattr(config, name).port for name in LISTENERS
            if getattr(config, name).port}


def check_ports_free(config: OperatorConfig) -> None:
    """Bind each configured port once, without SO_REUSEPORT: a port held by another
    process (an operator's workers included) is refused here, with its name."""
    for name in LISTENERS:
        listener: Listener = getattr(config, name)
        if not listener.port:
            continue
        family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
        probe = socket.socket(family, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((listener.host, listener.port))
        except OSError as exc:
            raise ConfigError(f"{name}.port: cannot listen on {listener.host}:"
                              f"{listener.port}: {exc.strerror or exc}") from None
        finally:
            probe.close()


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    ready_fd: int | None = None  # the read end of its pipe, until it is ready
    ready: bool = False
    started: float = 0.0
    delay: float = FIRST_RESTART
    restart_at: float | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    """Runs ``count`` workers of the command ``argv`` until told to stop."""

    argv: Sequence[str]
    count: int
    announce: Callable[[], None] = lambda: None  # called once every worker is ready
    clock: Callable[[], float] = time.monotonic
    _workers: list[_Worker] = field(default_factory=list)
    _stopping: bool = False

    def run(self) -> int:
        """Start, wait for readiness, supervise; the exit status of the whole."""
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM,
                                                                   signal.SIGINT)}
        try:
            self._workers = [_Worker(i) for i in range(self.count)]
            for worker in self._workers:
                self._spawn(worker)
            status = self._wait_ready()
            if status is not None:
                return status
            self.announce()
            while not self._stopping:
                self._tend()
                time.sleep(0.2)
            return 0
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, _signum: int, _frame: object) -> None:
        self._stopping = True

    def _spawn(self, worker: _Worker) -> None:
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env[WORKER_VARIABLE] = f"{worker.index}/{self.count}"
        env[READY_VARIABLE] = str(write_fd)
        try:
            worker.process = subprocess.Popen(list(self.argv), env=env, pass_fds=(write_fd,))
        finally:
            os.close(write_fd)
        if worker.ready_fd is not None:
            os.close(worker.ready_fd)
        worker.ready_fd = read_fd
        worker.ready = False
        worker.started = self.clock()
        worker.restart_at = None

    def _wait_ready(self) -> int | None:
        deadline = self.clock() + START_SECONDS
        while not all(w.ready for w in self._workers):
            if self._stopping:
                return 1
            for worker in self._workers:
                assert worker.process is not None
                status = worker.process.poll()
                if status is not None:
                    log.error("worker %d ended while starting (status %d)",
                              worker.index, status)
                    return status or 1
            waiting = [w.ready_fd for w in self._workers if w.ready_fd is not None]
            if self.clock() > deadline:
                log.error("%d worker(s) not ready after %g s", len(waiting), START_SECONDS)
                return 1
            if not waiting:  # a pipe closed without "ready": its exit is coming
                time.sleep(0.2)
                continue
            readable, _, _ = select.select(waiting, [], [], 0.2)
            for worker in self._workers:
                if worker.ready_fd in readable:
                    self._read_ready(worker)
        return None

    @staticmethod
    def _read_ready(worker: _Worker) -> None:
        """The worker wrote to its pipe: ``ready``, or nothing (it ended: the pipe is
        closed, and its exit is seen by ``poll``)."""
        assert worker.ready_fd is not None
        said = os.read(worker.ready_fd, 64)
        if said.startswith(b"ready") or not said:
            os.close(worker.ready_fd)
            worker.ready_fd = None
            worker.ready = bool(said)

    def _tend(self) -> None:
        """Start again the workers that died, each after its delay."""
        now = self.clock()
        for worker in self._workers:
            if worker.restart_at is not None:
                if now >= worker.restart_at:
                    worker.restarts += 1
                    log.warning("starting worker %d again", worker.index)
                    self._spawn(worker)
                continue
            assert worker.process is not None
            status = worker.process.poll()
            if status is None:
                if worker.ready_fd is not None and _readable(worker.ready_fd):
                    self._read_ready(worker)
                continue
            lived = now - worker.started
            if lived >= STABLE_SECONDS or not worker.restarts:
                worker.delay = FIRST_RESTART
            else:  # dying again soon after its restart: wait longer each time
                worker.delay = min(worker.delay * 2, LAST_RESTART)
            log.error("worker %d (pid %d) ended with status %d after %.0f s; "
                      "starting it again in %g s", worker.index, worker.process.pid, status,
                      lived, worker.delay)
            worker.restart_at = now + worker.delay

    def _stop_all(self) -> None:
        running = [w.process for w in self._workers
                   if w.process is not None and w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in %g s: killed", process.pid,
                          STOP_SECONDS)
                process.kill()
                process.wait()
        for worker in self._workers:
            if worker.ready_fd is not None:
                os.close(worker.ready_fd)
                worker.ready_fd = None

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process is not None]


def _readable(fd: int) -> bool:
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def worker_command(config_path: Path, *, verbose: bool) -> list[str]:
    """The command a worker runs: ``mssante operator serve`` with the same file."""
    command = [sys.executable, "-m", "mssante", "operator", "serve", "--config",
               str(config_path)]
    return [*command, "--verbose"] if verbose else command
