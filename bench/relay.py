"""Relay benchmark: submission at one operator → mutual TLS → storage at another.

    python bench/relay.py [--messages 10000] [--size 51200] [--connections 20]
                          [--engines sqlite,postgresql] [--peer postfix|none] [--profile DIR]
                          [--audit both|on|off] [--keep DIR]

For each database engine, the benchmark prepares a fresh local environment, runs the
trust space and the operators ``ch-xyz.mssante.fr`` and ``medecin.mssante.fr`` as
separate processes (as in production: ``mssante trust serve`` and ``mssante operator
serve``), and submits the messages from ``--connections`` concurrent connections
(STARTTLS + AUTH PLAIN as Dr Dupont) to jean.martin@medecin.mssante.fr. Each message
travels: submission → commit at ch-xyz → queue → SMTP with mutual TLS → commit at
medecin. Latency is measured from the moment the client starts sending a message to
the moment the receiving store commits it (its ``received_at``); throughput from the
first send to the last commit. The run then checks that every accepted message was
stored exactly once.

The peer, in the same run: two Postfix instances (Debian's package) doing the same
relay: client → Postfix → STARTTLS with client certificate → Postfix → Maildir
(bench/peers/postfix.py). The table gives the ratio of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine, tree_cpu_seconds
from mssante.environment.local import LocalEnvironment
from mssante.pki.tls import client_context
from mssante.store import open_store

SENDER = "dupont@ch-xyz.mssante.fr"
RECIPIENT = "jean.martin@medecin.mssante.fr"
PG_ADMIN_URL = os.environ.get("MSSANTE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Result:
    stack: str
    engine: str
    messages: int
    accepted: int
    stored: int
    duplicates: int
    missing: int
    seconds: float
    p50_ms: float
    p99_ms: float
    note: str = ""
    cpu_seconds: float = 0.0  # the two MTAs' processes, from the first send to the last store

    @property
    def rate(self) -> float:
        return self.stored / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds of both MTAs per stored message: unlike msg/s, barely moved
        by other work on the machine."""
        return 1000 * self.cpu_seconds / self.stored if self.stored else float("nan")


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_base(span: int = 40) -> int:
    """``span`` free ports below the kernel's ephemeral range: a port inside it may be
    taken as its own port by any outgoing connection (a client's, a delivery's, one to
    PostgreSQL) between two starts of an operator, which then cannot listen there
    (the soak restarts operators many times). Tried from a random place: two benches
    at once, or a soak whose killed operator lets its ports go for a moment, must
    not meet."""
    bases = list(range(20000, _ephemeral_start() - span, 100))
    random.shuffle(bases)
    for base in bases:
        ok = True
        for port in range(base, base + span):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free ports")


def make_body(index: int, size: int) -> bytes:
    """A 50 KB clinical-looking message with a unique Message-ID."""
    head = (f"From: Dr Paul Dupont <{SENDER}>\r\nTo: <{RECIPIENT}>\r\n"
            f"Subject: bench {index}\r\nMessage-ID: <bench-{index}@ch-xyz.mssante.fr>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n").encode()
    line = b"Compte rendu de consultation, examen clinique sans particularite. 0123456789\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


# -- processes ------------------------------------------------------------------------------

class Processes:
    def __init__(self, profile_dir: Path | None) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.profile_dir = profile_dir

    def start(self, name: str, args: list[str], log: Path,
              env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "mssante.cli", *args]
        if self.profile_dir is not None and name != "trust":
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            out = self.profile_dir / f"{name}.txt"
            cmd = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(out),
                   "-m", "mssante.cli", *args]
        fh = log.open("wb")
        self.procs.append((name, subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env else None)))

    def cpu_seconds(self, *names: str) -> float:
        return sum(tree_cpu_seconds(p.pid) for n, p in self.procs if n in names)

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


# -- the client -----------------------------------------------------------------------------

async def submit_all(host: str, port: int, *, messages: int, size: int, connections: int,
                     login: tuple[str, str] | None, ca_file: Path | None,
                     sender: str = SENDER) -> dict[str, float]:
    """Send ``messages`` from ``connections`` connections; returns Message-ID -> send start."""
    started: dict[str, float] = {}
    counter = iter(range(messages))
    tls = client_context(ca_file) if ca_file is not None else None

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=120, start_tls=False)
        await smtp.connect()
        if tls is not None:
            await smtp.starttls(tls_context=tls)
        if login is not None:
            await smtp.login(*login)
        for index in counter:
            body = make_body(index, size)
            t0 = time.time()
            try:
                await smtp.sendmail(sender, [RECIPIENT], body)
            except aiosmtplib.SMTPException as exc:
                print(f"  message {index} refused: {exc}", file=sys.stderr)
                continue
            started[f"<bench-{index}@ch-xyz.mssante.fr>"] = t0
        await smtp.quit()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return started


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summarise(stack: str, engine: str, messages: int, started: dict[str, float],
              stored: list[tuple[str | None, float]], note: str = "") -> Result:
    counts = Counter(mid for mid, _ in stored)
    latencies = []
    first_store: dict[str, float] = {}
    for mid, when in stored:
        if mid is not None and mid not in first_store:
            first_store[mid] = when
    for mid, t0 in started.items():
        if mid in first_store:
            latencies.append((first_store[mid] - t0) * 1000)
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    missing = sum(1 for mid in started if mid not in counts)
    t_first = min(started.values()) if started else 0.0
    t_last = max(first_store.values()) if first_store else t_first
    return Result(stack, engine, messages, len(started), len(first_store), duplicates, missing,
                  t_last - t_first, percentile(latencies, 0.5), percentile(latencies, 0.99), note)


# -- mssante --------------------------------------------------------------------------------

async def reset_postgres(names: list[str]) -> dict[str, str]:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return {name: f"{base}/{name}" for name in names}


def run_mssante(engine: str, args: argparse.Namespace, workdir: Path, *,
                audit: bool = True) -> Result:
    data_dir = workdir / f"mssante-{engine}-{'audit' if audit else 'noaudit'}"
    urls: dict[str, str] = {}
    if engine == "postgresql":
        dbs = asyncio.run(reset_postgres(["mssante_bench_chxyz", "mssante_bench_medecin"]))
        urls = {"ch-xyz.mssante.fr": dbs["mssante_bench_chxyz"],
                "medecin.mssante.fr": dbs["mssante_bench_medecin"]}
    env = LocalEnvironment(data_dir, free_port_base(), database_urls=urls,
                           retry_delays=(1.0, 5.0))
    asyncio.run(env.prepare())
    d = env.description
    ops = {o["domain"]: o for o in d["operators"]}
    procs = Processes(Path(args.profile) / engine if args.profile else None)
    try:
        procs.start("trust", ["trust", "serve", "--config", str(data_dir / "trust.toml")],
                    data_dir / "trust.log")
        wait_port(env.base_port)
        for domain, name in (("medecin.mssante.fr", "medecin"), ("ch-xyz.mssante.fr", "ch-xyz")):
            overrides = {"MSSANTE_OPERATOR__PROCESSES": str(args.processes)}
            if not audit:
                overrides["MSSANTE_AUDIT__ENABLED"] = "false"
            procs.start(name, ["operator", "serve", "--config", ops[domain]["config"]],
                        data_dir / f"{name}.log", env=overrides)
        for domain in ("medecin.mssante.fr", "ch-xyz.mssante.fr"):
            wait_port(ops[domain]["smtp"]["port"])
            wait_port(ops[domain]["submission"]["port"])
        login = next(a for a in d["accounts"] if a["login"] == SENDER)
        sub = ops["ch-xyz.mssante.fr"]["submission"]
        cpu_before = procs.cpu_seconds("ch-xyz", "medecin")
        started = asyncio.run(submit_all(
            sub["host"], sub["port"], messages=args.messages, size=args.size,
            connections=args.connections, login=(login["login"], login["password"]),
            ca_file=Path(d["ca_file"])))
        stored = asyncio.run(wait_stored(ops["medecin.mssante.fr"]["config"], len(started),
                                         args.timeout))
        cpu = procs.cpu_seconds("ch-xyz", "medecin") - cpu_before
    finally:
        procs.stop()
    processes = args.processes or len(os.sched_getaffinity(0))
    result = summarise(f"mssante → mssante, {processes} process{'es' if processes > 1 else ''}"
                     " per operator" + ("" if audit else " (no audit trail)"), engine,
                     args.messages, started, stored,
                     "submission: STARTTLS + AUTH; relay: mutual TLS + whitelist"
                     + ("; audit trail on (entries in each transaction, sealed every "
                        "second)" if audit else "; [audit] enabled = false"))
    result.cpu_seconds = cpu
    return result


async def wait_stored(config_path: str, expected: int, timeout: float
                      ) -> list[tuple[str | None, float]]:
    from mssante.config import load_operator_config

    store = await open_store(load_operator_config(Path(config_path)).database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await store.count_messages(RECIPIENT) >= expected:
                break
            await asyncio.sleep(0.2)
        return [(m.message_id, m.received_at) for m in await store.list_messages(RECIPIENT)]
    finally:
        await store.close()


# -- postfix --------------------------------------------------------------------------------

def run_postfix(args: argparse.Namespace, workdir: Path) -> Result:
    from bench.peers.postfix import PostfixPair, ensure_postfix_installed
    from mssante.pki.ca import PKI

    version = ensure_postfix_installed()
    pki = PKI.create_or_load(workdir / "postfix-pki")
    certs = workdir / "postfix-certs"
    certs.mkdir(exist_ok=True)
    server = pki.issue_server("mta.medecin.mssante.fr", organisation="MEDECIN",
                              ip_addresses=["127.0.0.1"], out_dir=certs, name="receiver")
    client = pki.issue_server("mta.ch-xyz.mssante.fr", organisation="CH XYZ",
                              ip_addresses=["127.0.0.1"], out_dir=certs, name="sender")
    base = free_port_base()
    # the sender keeps its TLS connections to the receiver open and reuses them
    # (tlsproxy), as mssante's connection pool does
    pair = PostfixPair(workdir / "postfix", sender_port=base, receiver_port=base + 1,
                       tls_cert=server.cert_file, tls_key=server.key_file,
                       ca_file=pki.root_cert_file, client_cert=client.cert_file,
                       client_key=client.key_file,
                       sender_main_cf={"smtp_tls_connection_reuse": "yes"})
    pair.start()
    try:
        masters = [pid for pid in (pair.sender.master_pid(), pair.receiver.master_pid())
                   if pid is not None]
        cpu_before = sum(tree_cpu_seconds(pid) for pid in masters)
        started = asyncio.run(submit_all("127.0.0.1", base, messages=args.messages,
                                         size=args.size, connections=args.connections,
                                         login=None, ca_file=None))
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and len(pair.delivered()) < len(started):
            time.sleep(0.2)
        stored = [(m.header("Message-ID"), m.mtime) for m in pair.delivered()]
        cpu = sum(tree_cpu_seconds(pid) for pid in masters) - cpu_before
    finally:
        pair.stop()
    result = summarise(f"Postfix {version} → Postfix", "Maildir", args.messages, started, stored,
                     "submission: plain, no AUTH; relay: STARTTLS + client certificate, "
                     "smtp_tls_connection_reuse = yes")
    result.cpu_seconds = cpu
    return result


# -- main -----------------------------------------------------------------------------------

def table(results: list[Result]) -> Iterator[str]:
    yield ("| stack | store | messages | accepted | stored | duplicates | missing | msg/s "
           "| p50 ms | p99 ms | CPU ms/msg |")
    yield "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for r in results:
        yield (f"| {r.stack} | {r.engine} | {r.messages} | {r.accepted} | {r.stored} | "
               f"{r.duplicates} | {r.missing} | {r.rate:.0f} | {r.p50_ms:.0f} | {r.p99_ms:.0f} | "
               f"{r.cpu_ms:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=50 * 1024)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--peer", choices=["postfix", "none"], default="postfix")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--profile", help="write a pyinstrument profile per operator here")
    parser.add_argument("--audit", choices=["both", "on", "off"], default="both",
                        help="run mssante with the audit trail, without it, or both "
                             "(its cost, in the same run)")
    parser.add_argument("--keep", help="keep the environments and logs in this folder")
    parser.add_argument("--processes", type=int, default=0,
                        help="operator.processes of each mssante operator (0: one per "
                             "core; use 1 with --profile, which profiles one process)")
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mssante-bench-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        for engine in [e for e in args.engines.split(",") if e]:
            for audit in {"both": (True, False), "on": (True,), "off": (False,)}[args.audit]:
                print(f"running mssante on {engine}, audit trail "
                      f"{'on' if audit else 'off'}…", file=sys.stderr)
                results.append(run_mssante(engine, args, workdir, audit=audit))
        if args.peer == "postfix":
            print("running Postfix → Postfix…", file=sys.stderr)
            results.append(run_postfix(args, workdir))
    print(f"machine: {machine()}")
    print(f"workload: {args.messages} messages of {args.size} bytes, {args.connections} "
          "concurrent submission connections, one recipient at another operator")
    print()
    for line in table(results):
        print(line)
    print()
    for r in results:
        print(f"- {r.stack} ({r.engine}): {r.note}")
    peers = [r for r in results if r.stack.startswith("Postfix")]
    ours = [r for r in results if r.stack.startswith("mssante")]
    if peers and peers[0].rate:
        for r in ours:
            print(f"ratio mssante ({r.engine}) / Postfix: {r.rate / peers[0].rate:.2f}× "
                  f"throughput, {peers[0].cpu_ms / r.cpu_ms:.2f}× CPU efficiency "
                  "(Postfix's CPU per message / mssante's)")
    for engine in {r.engine for r in ours}:
        on = next((r for r in ours if r.engine == engine and "no audit" not in r.stack), None)
        off = next((r for r in ours if r.engine == engine and "no audit" in r.stack), None)
        if on is not None and off is not None and off.rate:
            print(f"audit trail cost ({engine}): {on.rate / off.rate:.2f}× the throughput "
                  "without it")
    bad = [r for r in results if r.duplicates or r.missing]
    if bad:
        print("EXACTLY-ONCE CHECK FAILED for: " + ", ".join(f"{r.stack} {r.engine}" for r in bad))
        sys.exit(1)
    print("every accepted message was stored exactly once")


if __name__ == "__main__":
    main()
