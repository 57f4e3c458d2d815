"""Memory of SMTP DATA: parallel large submissions, measured in the operator's process.

    python bench/smtp_memory.py [--messages 8] [--size 20000000] [--remote]

A fresh local environment runs in this process (as ``mssante up`` does); a child
process submits ``--messages`` messages of ``--size`` bytes at once, one smtplib
connection each (STARTTLS, AUTH PLAIN as Dr Dupont), to Dr Dupont's own mailbox, or
with ``--remote`` to Dr Jean Martin at the other operator (submission, queue, then
the MTA of medecin.mssante.fr, all in this process). The clients run in another
process so that their own copies are not counted.

Printed: the Python heap's peak above its level before sending (tracemalloc, which
sees every bytes object but not SQLite's own buffers), and the growth of the
process's peak resident size (VmHWM, reset before sending), each also per message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine
from mssante.environment.local import LocalEnvironment

SENDER = "dupont@ch-xyz.mssante.fr"
LOCAL = SENDER
REMOTE = "jean.martin@medecin.mssante.fr"



def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


async def run(messages: int, size: int, remote: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="mssante-bench-") as tmp:
        env = LocalEnvironment(Path(tmp), 31000)
        await env.prepare()
        await env.start()
        try:
            op = next(o for o in env.description["operators"]
                      if o["domain"] == "ch-xyz.mssante.fr")
            password = next(a["password"] for a in env.description["accounts"]
                            if a["login"] == SENDER)
            to = REMOTE if remote else LOCAL
            spec = Path(tmp) / "senders.json"  # the clients: bench/large_senders.py
            spec.write_text(json.dumps({
                "host": op["submission"]["host"], "port": op["submission"]["port"],
                "ca_file": env.description["ca_file"], "login": SENDER, "password": password,
                "sender": SENDER, "to": to, "size": size,
                "subjects": [f"big {n}" for n in range(messages)]}))
            args = [sys.executable, "-m", "bench.large_senders", str(spec)]
            tracemalloc.start()
            base_heap = tracemalloc.get_traced_memory()[0]
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM back to VmRSS
            base_rss = _status("VmRSS")
            started = time.perf_counter()
            child = await asyncio.create_subprocess_exec(
                *args, stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent)
            out, _ = await child.communicate()
            if remote:
                await _wait_relayed(env, messages)
            elapsed = time.perf_counter() - started
            peak_heap = tracemalloc.get_traced_memory()[1] - base_heap
            tracemalloc.stop()
            peak_rss = _status("VmHWM") - base_rss
        finally:
            await env.stop()
    if child.returncode:
        raise SystemExit(f"submission failed: {out.decode()}")
    total = messages * size
    print(machine())
    print(f"workload: {messages} parallel submissions of {size} bytes to "
          f"{'another operator' if remote else 'a local mailbox'}")
    print("| measure | MB | per message (× size) |")
    print("|---|---:|---:|")
    print(f"| Python heap peak (tracemalloc) | {peak_heap / 1e6:.0f} | "
          f"{peak_heap / total:.2f} |")
    print(f"| peak RSS growth (VmHWM) | {peak_rss / 1e6:.0f} | {peak_rss / total:.2f} |")
    print(f"elapsed: {elapsed:.1f} s")


async def _wait_relayed(env: LocalEnvironment, count: int) -> None:
    service = next(s for s in env.operators if REMOTE.endswith(s.config.operator.domains[0]))
    store = service.store
    assert store is not None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if len(await store.list_messages(REMOTE)) >= count:
            return
        await asyncio.sleep(0.5)
    raise SystemExit("the messages were not relayed in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=8)
    parser.add_argument("--size", type=int, default=20_000_000)
    parser.add_argument("--remote", action="store_true")
    ns = parser.parse_args()
    uvloop.run(run(ns.messages, ns.size, ns.remote))


if __name__ == "__main__":
    main()
