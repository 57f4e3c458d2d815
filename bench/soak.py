"""Soak: relay load while the operators are killed with SIGKILL and started again.

    python -m bench.soak [--engine sqlite|postgresql] [--duration 300] [--clients 20]
                         [--kills 20] [--kill-mode group|worker|mixed] [--chaos trust]
                         [--pg-restart] [--processes N] [--rate R] [--seed S] [--keep DIR]

A fresh local environment (as ``mssante up`` prepares it) with its trust space and two
operators, each a process of its own as in production (``mssante trust serve``,
``mssante operator serve``): ``ch-xyz.mssante.fr`` (the sender) and
``medecin.mssante.fr`` (the receiver), on SQLite files or on fresh PostgreSQL databases
(127.0.0.1:5432, trust authentication; ``MSSANTE_BENCH_POSTGRES`` names the admin URL).
``--clients`` connections (STARTTLS + AUTH PLAIN as Dr Dupont) submit messages of
``--size`` bytes, each with its own Message-ID, to jean.martin@medecin.mssante.fr for
``--duration`` seconds. A message counts as accepted only once the client has read the
``250`` to its DATA.

Meanwhile the chaos loop, at ``--kills`` moments drawn from ``--seed``, kills the sender
or the receiver with SIGKILL and starts it again after a pause of 0.5 to 3 s:

- ``--kill-mode group`` (the default): the operator's whole process group, the
  supervisor and every worker at once, as a machine crash or ``kill -9`` of the
  service would; the soak starts ``mssante operator serve`` again.
- ``--kill-mode worker``: one worker process, chosen at random; the supervisor starts
  it again (environment/workers.py), the soak does nothing.
- ``--kill-mode mixed``: either, at random.

``--chaos trust`` adds the trust space to the targets (killed, started again).
``--pg-restart`` adds restarts of the PostgreSQL cluster itself
(``pg_ctlcluster --skip-systemctl-redirect <version> main restart``): it is shared with
whatever else uses the server, so it is never on by default.

At the end every component runs again; the soak waits until the sender's queue holds
nothing more to deliver (or ``--drain-timeout``), then reads the receiver's store and
the bounces (DSNs) in the sender's INBOX, and prints one table: messages accepted,
stored exactly once, lost (accepted, but neither stored, nor returned in a DSN, nor
still in the sender's queue), duplicated, returned in a DSN, still queued, delivered
more than 60 s after both their acceptance and the last restart before their delivery,
and the p50 and p99 delay from the ``250`` to the receiver's commit. It exits with
status 1 when a message is lost (``--strict``: also when one is duplicated, late or
still queued).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine
from bench.relay import (
    PG_ADMIN_URL,
    RECIPIENT,
    SENDER,
    free_port_base,
    percentile,
    reset_postgres,
)
from mssante.config import load_operator_config
from mssante.environment.local import LocalEnvironment
from mssante.pki.tls import client_context
from mssante.store import open_store

SENDING = "ch-xyz.mssante.fr"
RECEIVING = "medecin.mssante.fr"
LATE_SECONDS = 60.0  # the goal of the issue: delivered within a minute after a restart
# A queue entry leased for longer than this from now was claimed by a worker that is no
# more: no delivery runs that long between two claims (queue/worker.py LEASE_SECONDS).
STRANDED_AFTER = 600.0
KILL_MODES = ("group", "worker", "mixed")
MESSAGE_ID = re.compile(rb"<soak-[0-9a-f]+-\d+-\d+@ch-xyz\.mssante\.fr>")


# -- the components -------------------------------------------------------------------------

@dataclass
class Component:
    """One program of the environment, run in a process group (session) of its own so
    that SIGKILL to the group takes it with every process it started."""

    name: str
    args: list[str]
    log: Path
    ports: list[int]
    env: dict[str, str] = field(default_factory=dict)
    expected: int = 1  # processes that listen: the workers under a supervisor
    announces: bytes = b" ready: "  # what it prints once every process serves
    process: subprocess.Popen[bytes] | None = None
    _offset: int = 0  # the log's size when it was last started

    def start(self) -> None:
        self._offset = self.log.stat().st_size if self.log.exists() else 0

        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mssante", *self.args], stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                start_new_session=True)

    async def ready(self, timeout: float = 120.0, *, announced: bool = True) -> None:
        """Every process serving: each worker (or the process itself, alone) listens on
        each port, and (``announced``) the start printed its ready line. A port that
        answers is not enough: under a supervisor the first worker opens it while the
        others still start, and a worker that dies before it says it is ready stops
        the supervisor's start (environment/workers.py)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} ended with status "
                                   f"{self.process.returncode}; see {self.log}")
            serving = self.workers() or ([self.process.pid] if self.process else [])
            if serving and len(serving) >= self.expected and all(
                    set(self.ports) <= _listening(pid) for pid in serving) and (
                    not announced or self._announced()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: not listening on {self.ports} after "
                                   f"{timeout:.0f} s; see {self.log}")
            await asyncio.sleep(0.1)

    def _announced(self) -> bool:
        with self.log.open("rb") as log:
            log.seek(self._offset)
            return self.announces in log.read()

    def kill_group(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for port in self.ports:  # an orphan still listening would be a bug
            _wait_closed(port)

    def workers(self) -> list[int]:
        """The worker pids under the supervisor (none when it serves alone)."""
        assert self.process is not None
        pid = self.process.pid
        with contextlib.suppress(OSError):
            return [int(p) for p in
                    Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _listening(pid: int) -> set[int]:
    """The TCP ports ``pid`` listens on (its socket inodes matched in /proc/net/tcp*)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: TCP_LISTEN
                    ports.add(int(fields[1].rpartition(":")[2], 16))
    return ports


def _wait_closed(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} still answers after SIGKILL of its group")
        time.sleep(0.05)


# -- the clients ----------------------------------------------------------------------------

@dataclass
class Load:
    """What the clients saw: Message-ID -> the time the ``250`` to DATA was read."""

    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    accepted: dict[str, float] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    attempted: int = 0


def make_message(message_id: str, size: int) -> bytes:
    head = (f"From: Dr Paul Dupont <{SENDER}>\r\nTo: <{RECIPIENT}>\r\n"
            f"Subject: soak {message_id}\r\nMessage-ID: {message_id}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n").encode()
    line = b"Compte rendu de consultation, examen clinique sans particularite. 0123456789\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


async def client(index: int, load: Load, *, host: str, port: int, login: tuple[str, str],
                 ca_file: Path, size: int, until: float, pause: float) -> None:
    """Submit until ``until``; reconnect after any failure (the operator was killed)."""
    tls = client_context(ca_file)
    sequence = 0
    while time.time() < until:
        smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=30, start_tls=False)
        try:
            await smtp.connect()
            await smtp.starttls(tls_context=tls)
            await smtp.login(*login)
            while time.time() < until:
                message_id = f"<soak-{load.run}-{index}-{sequence}@{SENDING}>"
                sequence += 1
                load.attempted += 1
                await smtp.sendmail(SENDER, [RECIPIENT], make_message(message_id, size))
                load.accepted[message_id] = time.time()  # only after the 250
                if pause:
                    await asyncio.sleep(pause)
        except (aiosmtplib.SMTPException, OSError) as exc:
            load.refused[_reason(exc)] += 1
            await asyncio.sleep(0.2)
        finally:
            smtp.close()


def _reason(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code > 0:
        return f"{code} {str(getattr(exc, 'message', '')).split(' ', 1)[0]}"
    return type(exc).__name__


# -- chaos ----------------------------------------------------------------------------------

@dataclass
class Chaos:
    components: dict[str, Component]
    targets: list[str]
    kill_mode: str
    rng: random.Random
    pg_version: str | None = None
    events: list[tuple[float, str, str]] = field(default_factory=list)  # at, target, how
    restarts: list[float] = field(default_factory=list)  # when each target answered again
    downtime: list[float] = field(default_factory=list)  # seconds from each kill to then

    def moments(self, kills: int, duration: float) -> list[float]:
        """``kills`` offsets within the run, sorted, none in its first or last 5 s."""
        low, high = min(5.0, duration / 4), max(duration - 5.0, duration * 3 / 4)
        return sorted(self.rng.uniform(low, high) for _ in range(kills))

    async def run(self, start: float, moments: list[float]) -> None:
        for offset in moments:
            await asyncio.sleep(max(0.0, start + offset - time.time()))
            await self.strike(self.rng.choice(self.targets))

    async def strike(self, target: str) -> None:
        pause = self.rng.uniform(0.5, 3.0)
        if target == "postgresql":
            self.events.append((time.time(), target, "restart"))
            await asyncio.to_thread(restart_postgresql, self.pg_version or "")
            self.restarts.append(time.time())
            self.downtime.append(self.restarts[-1] - self.events[-1][0])
            return
        component = self.components[target]
        how = self.kill_mode if self.kill_mode != "mixed" else self.rng.choice(
            ("group", "worker"))
        workers = component.workers() if how == "worker" else []
        if how == "worker" and workers:
            victim = self.rng.choice(workers)
            self.events.append((time.time(), target, f"SIGKILL worker {victim}"))
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
            await self._workers_back(component, victim)
            self.downtime.append(self.restarts[-1] - self.events[-1][0])
            return
        self.events.append((time.time(), target, "SIGKILL group"))
        await asyncio.to_thread(component.kill_group)
        await asyncio.sleep(pause)
        component.start()
        await component.ready()
        self.restarts.append(time.time())
        self.downtime.append(self.restarts[-1] - self.events[-1][0])

    async def _workers_back(self, component: Component, victim: int) -> None:
        """Wait for the supervisor to replace the killed worker, and for it to listen."""
        deadline = time.monotonic() + 120
        while victim in component.workers() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await component.ready(announced=False)  # the supervisor announces its start only
        self.restarts.append(time.time())


def restart_postgresql(version: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                   check=True, capture_output=True, timeout=120)


def postgresql_version() -> str:
    out = subprocess.run(["pg_lsclusters", "--no-header"], check=True, capture_output=True,
                         text=True).stdout.split()
    return out[0]


# -- the databases --------------------------------------------------------------------------

async def drop_databases(names: list[str]) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# -- the outcome ----------------------------------------------------------------------------

@dataclass
class Outcome:
    engine: str
    seconds: float
    kills: int
    attempted: int
    accepted: int
    stored_once: int
    lost: int
    duplicated: int
    bounced: int
    queued: int
    late: int
    p50_s: float
    p99_s: float
    max_s: float
    unacknowledged: int  # stored, but the client never read the 250 (killed before)
    refused: Counter[str]
    lost_ids: list[str]
    duplicated_ids: list[str]
    drained_in: float | None
    stranded: int  # of the still queued: held by the lease of a killed process

    @property
    def failed(self) -> bool:
        return self.lost > 0


async def read_outcome(config: dict[str, Path]
                       ) -> tuple[Counter[str], dict[str, float], set[str], set[str]]:
    """Receiver: Message-ID -> copies and first commit; sender: the Message-IDs
    returned in DSNs and those still in its queue."""
    receiver = await open_store(load_operator_config(config[RECEIVING]).database_url)
    try:
        stored = await receiver.list_messages(RECIPIENT)
    finally:
        await receiver.close()
    copies: Counter[str] = Counter(m.message_id for m in stored if m.message_id)
    first: dict[str, float] = {}
    for m in stored:
        if m.message_id and m.message_id not in first:
            first[m.message_id] = m.received_at
    sender = await open_store(load_operator_config(config[SENDING]).database_url)
    try:
        bounced: set[str] = set()
        for m in await sender.list_messages(SENDER):  # DSNs come back to Dr Dupont's INBOX
            bounced.update(i.decode() for i in MESSAGE_ID.findall(
                await sender.get_body(m.body_sha256)))
        queued: set[str] = set()
        for entry in await sender.queue_entries(status="queued"):
            head = (await sender.get_body(entry.body_sha256))[:4096]
            queued.update(i.decode() for i in MESSAGE_ID.findall(head))
    finally:
        await sender.close()
    return copies, first, bounced, queued


async def queued_count(config_path: Path) -> tuple[int, int]:
    """The sender's queued entries: (those it is working on or will retry, those held
    by the lease of a process that was killed: due again only when the lease ends)."""
    store = await open_store(load_operator_config(config_path).database_url)
    try:
        entries = await store.queue_entries(status="queued")
    finally:
        await store.close()
    now = time.time()
    stranded = sum(1 for e in entries if e.claimed_until > now + STRANDED_AFTER)
    return len(entries) - stranded, stranded


def summarise(engine: str, seconds: float, load: Load, chaos: Chaos,
              copies: Counter[str], first: dict[str, float], bounced: set[str],
              queued: set[str], drained_in: float | None, stranded: int) -> Outcome:
    accepted = load.accepted
    restarts = sorted(chaos.restarts)
    delays: list[float] = []
    late = 0
    for mid, at in accepted.items():
        if mid not in first:
            continue
        delays.append(first[mid] - at)
        before = [r for r in restarts if r <= first[mid]]
        since = max([at, *before[-1:]])
        if first[mid] - since > LATE_SECONDS:
            late += 1
    lost_ids = sorted(m for m in accepted if m not in copies and m not in bounced
                      and m not in queued)
    duplicated_ids = sorted(m for m in accepted if copies[m] > 1)
    ours = {m for m in copies if m.startswith(f"<soak-{load.run}-")}
    return Outcome(
        engine=engine, seconds=seconds, kills=len(chaos.events), attempted=load.attempted,
        accepted=len(accepted),
        stored_once=sum(1 for m in accepted if copies[m] == 1),
        lost=len(lost_ids), duplicated=len(duplicated_ids),
        bounced=sum(1 for m in accepted if m in bounced and m not in copies),
        queued=sum(1 for m in accepted if m in queued and m not in copies),
        late=late, p50_s=percentile(delays, 0.5), p99_s=percentile(delays, 0.99),
        max_s=max(delays, default=float("nan")),
        unacknowledged=len(ours - accepted.keys()), refused=load.refused,
        lost_ids=lost_ids, duplicated_ids=duplicated_ids, drained_in=drained_in,
        stranded=stranded)


def table(outcome: Outcome) -> Iterator[str]:
    yield ("| store | kills | accepted (250) | stored once | lost | duplicated | came back "
           "as DSN | still queued | delivered > 60 s after a restart | p50 delay | p99 delay "
           "| max delay |")
    yield "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    o = outcome
    yield (f"| {o.engine} | {o.kills} | {o.accepted} | {o.stored_once} | {o.lost} | "
           f"{o.duplicated} | {o.bounced} | {o.queued} | {o.late} | {o.p50_s:.2f} s | "
           f"{o.p99_s:.2f} s | {o.max_s:.1f} s |")


# -- the run --------------------------------------------------------------------------------

@dataclass
class Options:
    engine: str = "sqlite"
    duration: float = 300.0
    clients: int = 20
    size: int = 20 * 1024
    kills: int = 20
    kill_mode: str = "group"
    chaos: tuple[str, ...] = ()  # "trust"
    pg_restart: bool = False
    processes: int | None = None  # operator.processes; None: the configuration's (0)
    rate: float = 0.0  # messages per second per client; 0: as fast as they go
    seed: int = 1
    drain_timeout: float = 1000.0
    retry_delays: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0)  # `mssante up`'s
    # wait for the entries a killed process held until its lease ends (15 min), or stop
    # waiting once only they are left (they count as still queued, not as lost)
    wait_stranded: bool = True
    quiet: bool = False


def soak(options: Options, workdir: Path) -> tuple[Outcome, Chaos]:
    """Run the soak in ``workdir``; the outcome and what the chaos loop did."""
    return asyncio.run(_soak(options, workdir))


async def _soak(o: Options, workdir: Path) -> tuple[Outcome, Chaos]:
    rng = random.Random(o.seed)
    databases: list[str] = []
    urls: dict[str, str] = {}
    if o.engine == "postgresql":
        suffix = uuid.uuid4().hex[:8]
        databases = [f"mssante_soak_{suffix}_chxyz", f"mssante_soak_{suffix}_medecin"]
        made = await reset_postgres(databases)
        urls = {SENDING: made[databases[0]], RECEIVING: made[databases[1]]}
    env = LocalEnvironment(workdir, free_port_base(), database_urls=urls,
                           retry_delays=o.retry_delays)
    _say(o, "preparing the environment…")
    await env.prepare()
    description = env.description
    operators = {op["domain"]: op for op in description["operators"]}
    extra = {} if o.processes is None else {"MSSANTE_OPERATOR__PROCESSES": str(o.processes)}
    components = {
        "trust": Component("trust", ["trust", "serve", "--config", str(workdir / "trust.toml")],
                           workdir / "trust.log", [env.base_port],
                           announces=b"trust space listening on "),
        **{name: Component(name, ["operator", "serve", "--config", operators[domain]["config"]],
                           workdir / f"{name}.log",
                           [operators[domain]["smtp"]["port"],
                            operators[domain]["submission"]["port"]], env=extra,
                           expected=o.processes or len(os.sched_getaffinity(0)))
           for name, domain in (("receiver", RECEIVING), ("sender", SENDING))}}
    targets = ["sender", "receiver", *(["trust"] if "trust" in o.chaos else []),
               *(["postgresql"] if o.pg_restart else [])]
    chaos = Chaos(components, targets, o.kill_mode, rng,
                  pg_version=postgresql_version() if o.pg_restart else None)
    config = {domain: Path(operators[domain]["config"]) for domain in (SENDING, RECEIVING)}
    try:
        for component in components.values():
            component.start()
            await component.ready()
        _say(o, f"running: load for {o.duration:.0f} s, {o.kills} kills")
        load = Load()
        login = next(a for a in description["accounts"] if a["login"] == SENDER)
        submission = operators[SENDING]["submission"]
        start = time.time()
        until = start + o.duration
        clients = [asyncio.create_task(client(
            i, load, host=submission["host"], port=submission["port"],
            login=(login["login"], login["password"]), ca_file=Path(description["ca_file"]),
            size=o.size, until=until, pause=1.0 / o.rate if o.rate else 0.0))
            for i in range(o.clients)]
        await chaos.run(start, chaos.moments(o.kills, o.duration))
        await asyncio.gather(*clients)
        seconds = time.time() - start
        _say(o, f"{len(load.accepted)} messages accepted in {seconds:.0f} s; draining the "
                "sender's queue…")
        drained_at = time.monotonic()
        drained_in: float | None = None
        stranded = 0
        while time.monotonic() - drained_at < o.drain_timeout:
            pending, stranded = await queued_count(config[SENDING])
            if pending == 0 and (stranded == 0 or not o.wait_stranded):
                drained_in = time.monotonic() - drained_at
                break
            await asyncio.sleep(1.0)
        copies, first, bounced, queued = await read_outcome(config)
        outcome = summarise(o.engine, seconds, load, chaos, copies, first, bounced, queued,
                            drained_in, stranded)
    finally:
        for component in reversed(components.values()):
            component.stop()
        if databases:
            await drop_databases(databases)
    return outcome, chaos


def _say(o: Options, text: str) -> None:
    if not o.quiet:
        print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--size", type=int, default=20 * 1024, help="bytes per message")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--kill-mode", choices=KILL_MODES, default="group")
    parser.add_argument("--chaos", default="", help="more targets, comma-separated: trust")
    parser.add_argument("--pg-restart", action="store_true",
                        help="also restart the PostgreSQL cluster (shared: never by default)")
    parser.add_argument("--processes", type=int, help="operator.processes of both operators")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="messages per second per client (0: as fast as it goes)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain-timeout", type=float, default=1000.0,
                        help="seconds to wait for the sender's queue to empty")
    parser.add_argument("--retry-delays", default="5,30,120,600",
                        help="the operators' [queue] retry_delays (default: mssante up's)")
    parser.add_argument("--no-wait-stranded", action="store_true",
                        help="stop draining once only entries held by a killed process's "
                             "lease are left (reported as still queued)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 also on a duplicate, a late or a still queued message")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON too")
    parser.add_argument("--keep", help="keep the environment and the logs in this folder")
    args = parser.parse_args()
    chaos = tuple(c for c in args.chaos.split(",") if c)
    if set(chaos) - {"trust"}:
        parser.error("--chaos: only 'trust' (PostgreSQL restarts: --pg-restart)")
    if args.pg_restart and args.engine != "postgresql":
        parser.error("--pg-restart needs --engine postgresql")
    options = Options(engine=args.engine, duration=args.duration, clients=args.clients,
                      size=args.size, kills=args.kills, kill_mode=args.kill_mode, chaos=chaos,
                      pg_restart=args.pg_restart, processes=args.processes, rate=args.rate,
                      seed=args.seed, drain_timeout=args.drain_timeout,
                      retry_delays=tuple(float(d) for d in args.retry_delays.split(",")),
                      wait_stranded=not args.no_wait_stranded)
    with tempfile.TemporaryDirectory(prefix="mssante-soak-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        outcome, done = soak(options, workdir / "env")
    print(f"machine: {machine(sqlite=args.engine == 'sqlite')}")
    targets = ["sender", "receiver", *chaos, *(["postgresql"] if args.pg_restart else [])]
    print(f"workload: {args.clients} submission clients, {args.size} bytes per message, "
          f"{args.duration:.0f} s; {outcome.kills} kills ({args.kill_mode}) of "
          f"{', '.join(targets)}; seed {args.seed}")
    print()
    for line in table(outcome):
        print(line)
    print()
    drained = (f"in {outcome.drained_in:.0f} s" if outcome.drained_in is not None
               else f"NOT within {args.drain_timeout:.0f} s")
    print(f"sender's queue drained {drained} ({outcome.stranded} entries left held by the "
          f"lease of a killed process); {outcome.attempted - outcome.accepted} "
          f"submissions without a 250 ({outcome.unacknowledged} of them stored all the same); "
          f"client errors: {dict(outcome.refused.most_common(6))}")
    for (at, target, how), down in zip(done.events, done.downtime, strict=False):
        print(f"  {time.strftime('%H:%M:%S', time.localtime(at))} {target}: {how}, "
              f"answering again {down:.1f} s later")
    if args.json:
        print(json.dumps({k: v for k, v in vars(outcome).items() if k != "refused"}))
    if outcome.lost_ids:
        print("LOST: " + " ".join(outcome.lost_ids[:20]))
    if outcome.duplicated_ids:
        print("DUPLICATED: " + " ".join(outcome.duplicated_ids[:20]))
    bad = outcome.failed or (args.strict and (outcome.duplicated or outcome.late
                                              or outcome.queued))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
