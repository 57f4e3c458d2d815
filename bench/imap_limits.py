"""IMAP resource bounds: the server's memory under clients that FETCH and do not read,
and how long other clients wait while one SEARCHes hostile MIME (issue 9 §2.5, §2.6).

    python bench/imap_limits.py [--messages 10] [--size-mb 20] [--clients 6]
                                [--hostile-parts 60000] [--copies 19]
                                [--store sqlite|postgres] [--postgres-url URL]

mssante's IMAP server runs alone in a process of its own (bench/imap_server.py, uvloop,
implicit TLS, a SQLite or PostgreSQL store), so that its memory is read from /proc alone.

a. Memory: ``--messages`` distinct messages of ``--size-mb`` MB in an INBOX; ``--clients``
   connections log in, SELECT INBOX, send ``FETCH 1:* BODY[]`` and then read nothing
   (their receive buffers set small). The server's RSS is sampled every 0.1 s: before,
   its peak while the clients hang there (``--hold`` seconds), and after they have left.
   Before issue 9 the server loaded 200 bodies and built the whole answer per
   connection (4 GB for 6 × 10 × 20 MB); now each connection holds at most
   ``MAX_BUFFERED`` octets of answers (session.py).
b. Event loop: one message of ``--hostile-parts`` base64 parts (5.6 MB for 60,000),
   copied ``--copies`` times (each copy a distinct body: one header differs) into
   another mailbox; one client runs ``SEARCH TEXT zzz``, then ``FETCH 1:* (BODYSTRUCTURE)``,
   while a second client sends NOOPs one after the other. The table gives each
   command's time and the longest NOOP round trip during it: how long any other client
   of the process had to wait (the goal: about 50 ms, whatever the command).

Dovecot is not run: its limits (``mail_max_parts``-like MIME limits, one process per
connection) are not what is compared here; bench/imap.py compares throughput.

Implementation notes:
- The messages are built by ``large_message`` and ``hostile_message``, which the
  regression tests (tests/imap/test_resource_bounds.py) use too, with smaller sizes.
- RSS is /proc/<pid>/status VmRSS of the server process; the peak is the highest sample.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import os
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine

DOMAIN = "bench.mssante.fr"
OWNER = f"memoire@{DOMAIN}"
PASSWORD = "bench-imap-limits"


def large_message(size: int, n: int = 0) -> bytes:
    """A plain message of about ``size`` octets (base64 of pseudo-random octets, so that
    nothing compresses it), distinct for each ``n``."""
    seed = hashlib.sha256(b"%d" % n).digest()
    chunk = base64.encodebytes(hashlib.shake_256(seed).digest(57 * 1024)).replace(b"\n",
                                                                                  b"\r\n")
    head = (f"From: Dr Bruno Petit <bruno.petit@{DOMAIN}>\r\nTo: <{OWNER}>\r\n"
            f"Subject: Imagerie {n}\r\nMessage-ID: <large-{n}@{DOMAIN}>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: application/dicom\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    need = max(0, size - len(head))
    return head + (chunk * (need // len(chunk) + 1))[:need]


def hostile_message(parts: int, n: int = 0, *, needle: bytes | None = None) -> bytes:
    """A multipart/mixed message of ``parts`` small base64 text parts (60,000 make 5.6 MB:
    the issue's message), distinct for each ``n``; ``needle`` written in the clear in
    the first part's text, for a search to find."""
    payload = base64.b64encode(hashlib.sha256(b"%d" % n).digest()[:18])  # 24 octets
    head = (f"From: <bruno.petit@{DOMAIN}>\r\nTo: <{OWNER}>\r\nSubject: Parts {n}\r\n"
            f"Message-ID: <hostile-{n}@{DOMAIN}>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n').encode()
    part = (b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + payload + b"\r\n")
    first = part
    if needle is not None:
        first = b"--b\r\nContent-Type: text/plain\r\n\r\n" + needle + b"\r\n"
    return head + first + part * (parts - 1) + b"--b--\r\n"


# -- the run --------------------------------------------------------------------------------


def rss(pid: int) -> int:
    """Resident set size of a process, in octets."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Raw:
    """A bare IMAP client on asyncio streams: a command, its lines up to the tagged one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, context: ssl.SSLContext, *,
                      receive_buffer: int | None = None) -> Raw:
        sock = socket.socket()
        if receive_buffer is not None:  # before connect: the window stays small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=context, server_hostname="127.0.0.1", limit=1 << 24)
        client = cls(reader, writer)
        await reader.readline()  # greeting
        return client

    async def command(self, tag: bytes, text: bytes) -> list[bytes]:
        self.writer.write(tag + b" " + text + b"\r\n")
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise RuntimeError(f"the server closed the connection during {text!r}")
            lines.append(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text!r}: {line!r}")
                return lines
            if line.rstrip().endswith(b"}"):  # a literal: read it whole
                size = int(line.rstrip()[line.rstrip().rindex(b"{") + 1:-1])
                await self.reader.readexactly(size)

    async def login(self, mailbox: str = "INBOX") -> None:
        await self.command(b"L", f'LOGIN "{OWNER}" "{PASSWORD}"'.encode())
        await self.command(b"S", b"SELECT " + mailbox.encode())

    def close(self) -> None:
        self.writer.transport.abort()


async def prepare(url: str, schema: str | None, args: argparse.Namespace) -> None:
    from mssante.auth.passwords import hash_password
    from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
    from mssante.store import open_store

    store = await open_store(url, schema=schema)
    try:
        await store.create_person(OWNER, PersonKind.HEALTH, "Dr Mémoire",
                                  password_hash=hash_password(PASSWORD))
        await store.create_mailbox(OWNER, MailboxType.PER, rules=Rules(), owner=OWNER)
        inbox = await store.folders.get(OWNER, "INBOX")
        assert inbox is not None
        for n in range(args.messages):
            await store.folders.append(inbox.id, large_message(args.size_mb << 20, n))
        await store.folders.create(OWNER, "Parts")
        parts = await store.folders.get(OWNER, "Parts")
        assert parts is not None
        for n in range(args.copies):
            await store.folders.append(parts.id, hostile_message(args.hostile_parts, n))
    finally:
        await store.close()


async def memory(pid: int, port: int, context: ssl.SSLContext,
                 args: argparse.Namespace) -> dict[str, float]:
    before = rss(pid)
    clients = []
    for _ in range(args.clients):
        client = await Raw.connect(port, context, receive_buffer=64 * 1024)
        await client.login()
        client.writer.write(b"F FETCH 1:* BODY[]\r\n")  # and never read the answer
        clients.append(client)
    peak = before
    deadline = time.monotonic() + args.hold
    while time.monotonic() < deadline:
        peak = max(peak, rss(pid))
        await asyncio.sleep(0.1)
    for client in clients:
        client.close()
    await asyncio.sleep(2.0)
    return {"before": before / 2**20, "peak": peak / 2**20, "after": rss(pid) / 2**20}


async def lag(port: int, context: ssl.SSLContext, command: bytes) -> tuple[float, float]:
    """(seconds the command took, longest NOOP round trip of another client meanwhile)."""
    worker = await Raw.connect(port, context)
    await worker.login("Parts")
    probe = await Raw.connect(port, context)
    await probe.login("Parts")
    longest = 0.0
    done = asyncio.Event()

    async def noops() -> None:
        nonlocal longest
        while not done.is_set():
            start = time.perf_counter()
            await probe.command(b"N", b"NOOP")
            longest = max(longest, time.perf_counter() - start)

    task = asyncio.create_task(noops())
    start = time.perf_counter()
    await worker.command(b"W", command)
    took = time.perf_counter() - start
    done.set()
    await task
    worker.close()
    probe.close()
    return took, longest


async def amain(args: argparse.Namespace) -> None:
    from bench.imap import bench_certificate, client_context

    with tempfile.TemporaryDirectory(prefix="imap-limits-") as tmp:
        tmpdir = Path(tmp)
        schema = None
        if args.store == "postgres":
            from bench.imap import _postgres_schema

            url, schema = args.postgres_url, f"bench_limits_{os.getpid()}"
            await _postgres_schema(url, f'CREATE SCHEMA "{schema}"')
        else:
            url = f"sqlite:///{tmpdir / 'operator.sqlite3'}"
        process = None
        try:
            t0 = time.perf_counter()
            await prepare(url, schema, args)
            print(f"loaded in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            cert, key, ca = bench_certificate(tmpdir, "limits")
            from bench.peers.system import free_ports

            [port] = free_ports(1)
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.imap_server", "--database", url,
                "--cert", str(cert), "--key", str(key), "--ca", str(ca), "--port", str(port),
                *(["--schema", schema] if schema else []), stdout=asyncio.subprocess.PIPE,
                cwd=Path(__file__).resolve().parent.parent)
            assert process.stdout is not None
            if (await asyncio.wait_for(process.stdout.readline(), 60)).strip() != b"ready":
                raise RuntimeError("mssante's IMAP server did not start")
            context = client_context(ca)
            mem = await memory(process.pid, port, context, args)
            search = await lag(port, context, b"SEARCH TEXT zzz")
            structure = await lag(port, context, b"FETCH 1:* (BODYSTRUCTURE)")
        finally:
            if process is not None and process.returncode is None:
                process.terminate()
                await process.wait()
            if schema:
                await _postgres_schema(url, f'DROP SCHEMA "{schema}" CASCADE')
    hostile = len(hostile_message(args.hostile_parts))
    print(f"machine: {machine(sqlite=args.store == 'sqlite')}")
    print(f"store: {args.store}; server: mssante IMAP alone, uvloop, implicit TLS "
          "(bench/imap_server.py); Dovecot not run")
    print(f"a. {args.clients} clients × FETCH 1:* BODY[] of {args.messages} × "
          f"{args.size_mb} MB, never read ({args.hold:.0f} s)")
    print("| server RSS before | peak | after the clients left |")
    print("|---:|---:|---:|")
    print(f"| {mem['before']:.0f} MiB | {mem['peak']:.0f} MiB | {mem['after']:.0f} MiB |")
    print(f"b. {args.copies} messages of {args.hostile_parts} base64 parts "
          f"({hostile / 1e6:.1f} MB each); another client's NOOPs meanwhile")
    print("| command | time | longest NOOP round trip |")
    print("|---|---:|---:|")
    for name, (took, longest) in (("SEARCH TEXT zzz", search),
                                  ("FETCH 1:* (BODYSTRUCTURE)", structure)):
        print(f"| {name} | {took:.2f} s | {longest * 1000:.0f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--hold", type=float, default=10.0,
                        help="seconds the non-reading clients stay connected")
    parser.add_argument("--hostile-parts", type=int, default=60_000)
    parser.add_argument("--copies", type=int, default=19)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://127.0.0.1:5432/test")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
