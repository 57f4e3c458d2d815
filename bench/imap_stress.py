"""IMAP under concurrent writes: many clients on one mailbox, mssante beside Dovecot.

    python bench/imap_stress.py [--clients 10] [--seconds 20] [--messages 500]
                                [--only mssante|dovecot|both] [--store sqlite|postgres]
                                [--processes N] [--audit on|off] [--profile FILE]

The workload of an imaptest-like stress: ``--clients`` connections, all on the main
account's INBOX, each repeating for ``--seconds`` the cycle

    LOGIN, SELECT INBOX, UID FETCH 1:* (FLAGS), UID FETCH of 3 bodies,
    UID STORE +FLAGS (\\Seen $Label<k>) on 3 messages, UID STORE +FLAGS.SILENT (\\Deleted)
    on one, EXPUNGE, APPEND of a 4 KB message, LOGOUT

so that every connection sees the others' flags, expunges and new messages while it
works. Each command is timed from its first byte to its tagged reply; the table gives,
per command, p50 and p99 in milliseconds, the cycles completed, the CPU time the
server's processes spent per cycle (which a machine shared with other work does not
inflate as much as the latencies), and the ratio to Dovecot (higher is better for
mssante). The clients check what IMAP requires of the
server while they run: a keyword shown in a FETCH must have been announced in the
session's ``* FLAGS`` (RFC 3501 §7.2.6) — each one that was not counts as a
"keyword not announced".

Both servers are started by bench/imap.py's ``start_mssante`` (the IMAP server alone,
``--processes`` of them on one port, as an operator's workers) and ``start_dovecot``,
with the same corpus; the machine is named, and the client's CPU time is shown (one
client process drives both servers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.imap import (
    ClientCPU,
    Corpus,
    ImapError,
    ServerHandle,
    log,
    raise_fd_limit,
    start_dovecot,
    start_mssante,
)
from bench.machine import machine

COMMANDS = ("login", "select", "fetch_flags", "fetch_bodies", "store", "delete", "expunge",
            "append", "logout")
_FLAGS = re.compile(rb"\* FLAGS \(([^)]*)\)")
_FETCHED_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_UIDS = re.compile(rb"UID (\d+)")


@dataclass
class Stress:
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cycles: int = 0
    failures: list[str] = field(default_factory=list)
    unannounced: int = 0  # keywords fetched before any * FLAGS named them
    server_cpu: float = 0.0  # CPU seconds of the server's processes during the run


async def _timed(stress: Stress, name: str, work: asyncio.Future[object] | object) -> object:
    t0 = time.perf_counter()
    result = await work  # type: ignore[misc]
    stress.times[name].append(time.perf_counter() - t0)
    return result


def _announced(data: bytes, known: set[bytes]) -> None:
    for m in _FLAGS.finditer(data):
        known.update(m.group(1).split())


def _check_fetch(data: bytes, known: set[bytes], stress: Stress) -> None:
    _announced(data, known)
    for m in _FETCHED_FLAGS.finditer(data):
        for flag in m.group(1).split():
            if not flag.startswith(b"\\") and flag not in known:
                stress.unannounced += 1
                known.add(flag)  # counted once per session


async def _cycle(handle: ServerHandle, k: int, rng: random.Random, body: bytes,
                 stress: Stress) -> None:
    account = handle.accounts[0]
    client = await handle.connect()
    try:
        await _timed(stress, "login", client.login(account.address, account.password))
        reply = await _timed(stress, "select", client.command(b"SELECT INBOX", keep=True))
        known: set[bytes] = set()
        _announced(reply.data, known)  # type: ignore[attr-defined]
        reply = await _timed(stress, "fetch_flags",
                             client.command(b"UID FETCH 1:* (FLAGS)", keep=True))
        data: bytes = reply.data  # type: ignore[attr-defined]
        _check_fetch(data, known, stress)
        uids = [int(u) for u in _UIDS.findall(data)]
        if len(uids) < 4:
            uids = []
        some = rng.sample(uids, 3) if uids else []
        if some:
            wanted = b",".join(b"%d" % u for u in some)
            reply = await _timed(stress, "fetch_bodies", client.command(
                b"UID FETCH " + wanted + b" (FLAGS BODY.PEEK[])", keep=True))
            _check_fetch(reply.data, known, stress)  # type: ignore[attr-defined]
            reply = await _timed(stress, "store", client.command(
                b"UID STORE " + wanted + b" +FLAGS (\\Seen $Label%d)" % (k % 5 + 1),
                keep=True))
            _check_fetch(reply.data, known, stress)  # type: ignore[attr-defined]
            await _timed(stress, "delete", client.command(
                b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % rng.choice(uids)))
            await _timed(stress, "expunge", client.command(b"EXPUNGE"))
        await _timed(stress, "append", client.append("INBOX", body, flags=""))
        await _timed(stress, "logout", client.command(b"LOGOUT", check=False))
        stress.cycles += 1
    except (ImapError, OSError) as exc:
        stress.failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        await client.close()


async def run(handle: ServerHandle, args: argparse.Namespace, corpus: Corpus) -> Stress:
    stress = Stress()
    body = corpus.append_message(size=4096)
    deadline = time.perf_counter() + args.seconds

    async def one(k: int) -> None:
        rng = random.Random(args.seed * 1000 + k)
        while time.perf_counter() < deadline:
            await _cycle(handle, k, rng, body, stress)

    cpu = ClientCPU()
    before = _cpu_seconds(handle.pids())
    await asyncio.gather(*(one(k) for k in range(args.clients)))
    stress.server_cpu = _cpu_seconds(handle.pids()) - before
    log(f"  {handle.name}: {stress.cycles} cycles in {args.seconds:.0f} s, "
        f"{len(stress.failures)} failures, {stress.unannounced} keywords not announced "
        f"({cpu})")
    for failure in stress.failures[:3]:
        log(f"    e.g. {failure}")
    return stress


def _cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds of these processes so far, with those of their
    children that ended (Dovecot's imap process of each connection, reaped by its
    master): utime, stime, cutime, cstime of /proc/PID/stat."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # proc(5) fields 14-17 (from field 3)
    return total / os.sysconf("SC_CLK_TCK")


def _ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def table(runs: dict[str, tuple[ServerHandle, Stress]], seconds: float) -> list[str]:
    names = list(runs)
    lines = ["| command | " + " | ".join(f"{runs[n][0].name} p50 / p99 ms" for n in names)
             + (" | ratio p50 (Dovecot / mssante) |" if len(names) == 2 else " |"),
             "|---|" + "---:|" * len(names) + ("---:|" if len(names) == 2 else "")]
    for command in COMMANDS:
        cells = []
        for n in names:
            values = runs[n][1].times.get(command, [])
            cells.append(f"{_ms(values, 0.5):.1f} / {_ms(values, 0.99):.1f}")
        ratio = ""
        if len(names) == 2:
            mss = statistics.median(runs["mssante"][1].times.get(command, [0.0]) or [0.0])
            dov = statistics.median(runs["dovecot"][1].times.get(command, [0.0]) or [0.0])
            ratio = f" {dov / mss:.2f} |" if mss else " – |"
        lines.append(f"| {command} | " + " | ".join(cells) + " |" + ratio)
    cells = [f"{runs[n][1].cycles / seconds:.1f}" for n in names]
    ratio = ""
    if len(names) == 2 and runs["dovecot"][1].cycles:
        ratio = f" {runs['mssante'][1].cycles / runs['dovecot'][1].cycles:.2f} |"
    lines.append("| **cycles/s** | " + " | ".join(cells) + " |" + ratio)
    cells = [f"{1000 * runs[n][1].server_cpu / max(runs[n][1].cycles, 1):.0f}" for n in names]
    lines.append("| server CPU per cycle (ms) | " + " | ".join(cells) + " |"
                 + (" |" if len(names) == 2 else ""))
    cells = [str(runs[n][1].unannounced) for n in names]
    lines.append("| keywords not announced | " + " | ".join(cells) + " |"
                 + (" |" if len(names) == 2 else ""))
    return lines


async def amain(args: argparse.Namespace) -> int:
    corpus = Corpus(seed=args.seed, clients=0, client_messages=0)
    order = ["mssante", "dovecot"] if args.only == "both" else [args.only]
    runs: dict[str, tuple[ServerHandle, Stress]] = {}
    with tempfile.TemporaryDirectory(prefix="imap-stress-") as tmp:
        for which in order:
            tmpdir = Path(tmp) / which
            tmpdir.mkdir()
            if which == "dovecot":
                handle = await start_dovecot(tmpdir, args.messages, corpus, tls="implicit",
                                             max_connections=args.clients * 4 + 100)
            else:
                handle = await start_mssante(
                    tmpdir, args.messages, corpus, tls="implicit",
                    postgres=args.postgres_url if args.store == "postgres" else None,
                    processes=args.processes, audit=args.audit == "on",
                    profile=Path(args.profile) if args.profile else None)
            try:
                runs[which] = (handle, await run(handle, args, corpus))
            finally:
                await handle.stop()
    print()
    print(machine(sqlite=args.store == "sqlite"))
    print(f"{args.clients} clients on one INBOX of {args.messages} messages, "
          f"{args.seconds:.0f} s each; mssante store: {args.store}, "
          f"{args.processes} process(es), audit trail {args.audit}")
    print()
    print("\n".join(table(runs, args.seconds)))
    for handle, _ in runs.values():
        if handle.note:
            print(f"\n{handle.note}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--messages", type=int, default=500, help="the INBOX at the start")
    parser.add_argument("--only", choices=["mssante", "dovecot", "both"], default="both")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1/test")
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)),
                        help="mssante's IMAP server processes (default: one per core)")
    parser.add_argument("--audit", choices=["on", "off"], default="on",
                        help="mssante's audit trail (every login and body read recorded "
                             "before it is served)")
    parser.add_argument("--profile", help="write a pyinstrument report of mssante's server "
                                           "here (with --processes 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.profile and args.processes != 1:
        parser.error("--profile profiles one server process: use --processes 1")
    raise_fd_limit(args.clients * 4 + 1024)
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(amain(args)))
    sys.exit(uvloop.run(amain(args)))


if __name__ == "__main__":
    main()
