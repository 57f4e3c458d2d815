"""Login benchmark: IMAP and submission logins per second, with a password and with a
Pro Santé Connect access token (SASL XOAUTH2 and OAUTHBEARER), in the same run, with
Dovecot's password logins beside them.

    python -m bench.logins [--clients 20] [--logins 2000] [--cold 100] [--alone 200]
                           [--peer dovecot|none] [--skip submission]

A fresh local environment is prepared (``mssante up``'s, its PSC tokens living an hour
so that one lasts the run), ``--cold`` accounts are added to ch-xyz.mssante.fr, each with
its own argon2id hash (as ``mssante`` makes them), then the trust space and the operator
run as separate processes (``mssante trust serve``, ``mssante operator serve``), as in
production. Dr Dupont gets his access token by the real authorization code flow.

Each login is a new connection: TCP connect, implicit TLS (a full handshake: no session
resumption, as offlineimap and mbsync do), the greeting, the login, LOGOUT (IMAP) or
QUIT (submission), close. ``--clients`` connections run at once until the mode's logins
are done. Measured per mode: logins/s over the wall-clock time, the latency of the whole
login (p50, p90, p99), the latency of the authentication command alone on the
already-TLS connection (from sending AUTHENTICATE/AUTH to its reply: under load, then
with ``--alone`` logins one at a time on the idle server), and the server's CPU time
per login (from /proc: the operator process, or every process of the Dovecot instance
with the children it has reaped).

Modes, for the operator's IMAP (implicit TLS):

- ``PLAIN, cold``: ``AUTHENTICATE PLAIN`` with SASL-IR, each of the ``--cold``
  accounts once: every login pays one argon2id verification (t=3, 64 MiB, p=1);
- ``PLAIN, cached``: the same accounts again, ``--logins`` times: the operator
  remembers a verified password for five minutes per process (``VerifiedLogins``,
  auth/passwords.py), so no argon2;
- ``XOAUTH2`` and ``OAUTHBEARER``: Dupont's token, ``--logins`` times: the RS256
  signature and the claims checked each time (the provider's keys are held after the
  first), the idNatPs looked up in the store; nothing about a token is cached;

and the same for submission (implicit TLS, EHLO, AUTH with an initial response, QUIT)
but the cold one.

The peer: Debian's Dovecot 2.3 (bench/peers/dovecot.py) with the operator's own
certificate and key, the same accounts, ``AUTHENTICATE PLAIN`` with SASL-IR, three
instances one after the other: the same argon2id hashes (``{ARGON2ID}`` in its
passwd-file, verified by libsodium) with its auth cache off (its default); the same
with ``auth_cache_size = 10M`` and ``auth_cache_verify_password_with_worker = yes``
(Dovecot's cache keeps the passdb's answer, the hash, and verifies every password
against it again: the setting moves that work to auth-worker processes, for several
cores); and the passwords in clear (``{PLAIN}``), which costs what the operator's
cached login costs: no hash. Dovecot verifies no PSC token here (its ``oauth2`` passdb
needs an introspection endpoint or a key dictionary set up): its token logins are not
measured.

Output: the machine, then one table. Ratio column: an operator's token row divided by
its password row (PLAIN cached) on the same protocol; a Dovecot row set against the
operator's row of the same kind of work (``cold``: an argon2id verification per login;
``cached``: none), as mssante ÷ Dovecot.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import resource
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine
from bench.relay import Processes, free_port_base, percentile, wait_port

HOSPITAL = "ch-xyz.mssante.fr"
DUPONT = "dupont@ch-xyz.mssante.fr"
DUPONT_ID = "810102727017"
TICKS = os.sysconf("SC_CLK_TCK")


# -- the clients --------------------------------------------------------------------------

class LoginFailed(RuntimeError):
    pass


@dataclass
class Timing:
    total: float  # connect → closed
    auth: float  # authentication command → its reply


async def _open(host: str, port: int, context: ssl.SSLContext
                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, ssl=context, server_hostname="localhost",
                                         ssl_handshake_timeout=60)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()


async def _until(reader: asyncio.StreamReader, tag: bytes) -> bytes:
    """Read IMAP lines until the tagged one; a continuation request is a failure (the
    OAUTHBEARER error)."""
    while True:
        line = await reader.readline()
        if not line:
            raise LoginFailed("connection closed")
        if line.startswith(tag + b" "):
            return line
        if line.startswith(b"+"):
            raise LoginFailed(f"continuation: {line!r}")


async def imap_login(host: str, port: int, context: ssl.SSLContext, command: bytes) -> Timing:
    """One IMAP login: ``command`` is ``AUTHENTICATE <mech> <base64>`` (SASL-IR)."""
    t0 = time.perf_counter()
    reader, writer = await _open(host, port, context)
    try:
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            raise LoginFailed(f"greeting: {greeting!r}")
        t1 = time.perf_counter()
        writer.write(b"a " + command + b"\r\n")
        reply = await _until(reader, b"a")
        t2 = time.perf_counter()
        if not reply.startswith(b"a OK"):
            raise LoginFailed(reply.decode(errors="replace").strip())
        writer.write(b"b LOGOUT\r\n")
        await _until(reader, b"b")
    finally:
        await _close(writer)
    return Timing(time.perf_counter() - t0, t2 - t1)


async def _smtp_reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if len(line) < 4:
            raise LoginFailed(f"reply: {line!r}")
        if line[3:4] != b"-":
            return line


async def smtp_login(host: str, port: int, context: ssl.SSLContext, command: bytes) -> Timing:
    """One submission login: ``command`` is ``AUTH <mech> <base64>``."""
    t0 = time.perf_counter()
    reader, writer = await _open(host, port, context)
    try:
        if not (await _smtp_reply(reader)).startswith(b"220"):
            raise LoginFailed("greeting")
        writer.write(b"EHLO bench.invalid\r\n")
        if not (await _smtp_reply(reader)).startswith(b"250"):
            raise LoginFailed("EHLO")
        t1 = time.perf_counter()
        writer.write(command + b"\r\n")
        reply = await _smtp_reply(reader)
        t2 = time.perf_counter()
        if not reply.startswith(b"235"):
            raise LoginFailed(reply.decode(errors="replace").strip())
        writer.write(b"QUIT\r\n")
        await _smtp_reply(reader)
    finally:
        await _close(writer)
    return Timing(time.perf_counter() - t0, t2 - t1)


def b64(raw: str) -> bytes:
    return base64.b64encode(raw.encode())


def plain(login: str, password: str) -> bytes:
    return b"PLAIN " + b64(f"\0{login}\0{password}")


def xoauth2(login: str, token: str) -> bytes:
    return b"XOAUTH2 " + b64(f"user={login}\x01auth=Bearer {token}\x01\x01")


def oauthbearer(login: str, token: str, port: int) -> bytes:
    return b"OAUTHBEARER " + b64(f"n,a={login},\x01host=localhost\x01port={port}\x01"
                                 f"auth=Bearer {token}\x01\x01")


# -- a mode: many logins from concurrent clients -------------------------------------------

def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of ``pids``, with the children each has reaped (cutime, cstime)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])
    return total / TICKS


@dataclass
class Row:
    server: str
    protocol: str
    mechanism: str
    cache: str
    logins: int = 0
    seconds: float = 0.0
    totals: list[float] = field(default_factory=list)
    auths: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    compare: str = ""  # a peer's row: the cache state of the operator's row it is set against
    alone: list[float] = field(default_factory=list)  # auth times, one client at a time

    @property
    def rate(self) -> float:
        return self.logins / self.seconds if self.seconds else 0.0


async def measure(row: Row, commands: list[bytes], clients: int,
                  login: Callable[[bytes], Awaitable[Timing]],
                  server_pids: Callable[[], list[int]], alone: int = 0) -> Row:
    """``clients`` at once over ``commands``; then, with ``alone``, that many logins one
    at a time, for the latency of the authentication step on an idle server."""
    queue = list(reversed(commands))

    async def client() -> None:
        while queue:
            timing = await login(queue.pop())
            row.totals.append(timing.total)
            row.auths.append(timing.auth)

    cpu0, usage0 = cpu_seconds(server_pids()), resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(min(clients, len(commands)))))
    row.seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    row.server_cpu = cpu_seconds(server_pids()) - cpu0
    row.client_cpu = (usage.ru_utime + usage.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    row.logins = len(row.totals)
    for command in commands[:alone]:
        row.alone.append((await login(command)).auth)
    print(f"  {row.server} {row.protocol} {row.mechanism} {row.cache}: "
          f"{row.rate:,.0f} logins/s", file=sys.stderr, flush=True)
    return row


# -- set-up ----------------------------------------------------------------------------------

def _hash(password: str) -> str:
    from mssante.auth.passwords import hash_password

    return hash_password(password)


async def add_accounts(database_url: str, count: int) -> dict[str, tuple[str, str]]:
    """``count`` professionals with a password each: login → (password, argon2id hash)."""
    from mssante.domain.mailboxes import PersonKind
    from mssante.store import open_store

    passwords = {f"bench{n:04d}@{HOSPITAL}": uuid.uuid4().hex for n in range(count)}
    with ProcessPoolExecutor() as pool:
        hashes = list(pool.map(_hash, passwords.values(), chunksize=8))
    store = await open_store(database_url)
    try:
        for login, hashed in zip(passwords, hashes, strict=True):
            await store.create_person(login, PersonKind.HEALTH, f"Bench {login[5:9]}",
                                      password_hash=hashed, rpps=str(uuid.uuid4().int)[:11])
    finally:
        await store.close()
    return {login: (password, hashed)
            for (login, password), hashed in zip(passwords.items(), hashes, strict=True)}


async def psc_token(description: dict[str, object], ca_file: Path) -> str:
    from mssante.pki.tls import client_context
    from mssante.psc.flow import token_flow

    operators = description["operators"]
    assert isinstance(operators, list)
    client = next(o for o in operators if o["domain"] == HOSPITAL)["psc_client"]
    psc = description["psc"]
    assert isinstance(psc, dict)
    async with httpx.AsyncClient(verify=client_context(ca_file), timeout=30.0) as http:
        tokens = await token_flow(http, str(psc["issuer"]), client_id=client["client_id"],
                                  client_secret=client["client_secret"],
                                  redirect_uri=client["redirect_uri"], id_nat_ps=DUPONT_ID)
    return str(tokens["access_token"])


# -- the two servers --------------------------------------------------------------------------

def run_mssante(args: argparse.Namespace, workdir: Path
                ) -> tuple[list[Row], dict[str, tuple[str, str]], tuple[Path, Path, Path]]:
    from mssante.config import load_operator_config
    from mssante.environment.local import LocalEnvironment
    from mssante.pki.tls import client_context

    data_dir = workdir / "mssante"
    env = LocalEnvironment(data_dir, free_port_base(), psc_token_lifetime=3600.0)
    asyncio.run(env.prepare())
    d = env.description
    op = next(o for o in d["operators"] if o["domain"] == HOSPITAL)
    config = load_operator_config(Path(op["config"]))
    accounts = asyncio.run(add_accounts(config.database_url, args.cold))
    ca_file = Path(d["ca_file"])
    context = client_context(ca_file)
    procs = Processes(None)
    rows: list[Row] = []
    try:
        procs.start("trust", ["trust", "serve", "--config", str(data_dir / "trust.toml")],
                    data_dir / "trust.log")
        wait_port(env.base_port)
        procs.start("operator", ["operator", "serve", "--config", op["config"]],
                    data_dir / "operator.log")
        for port in ("imaps", "submissions"):
            wait_port(op[port]["port"])
        operator_pid = procs.procs[-1][1].pid

        def pids() -> list[int]:
            from bench.peers.dovecot import descendants

            return descendants(operator_pid)

        token = asyncio.run(psc_token(d, ca_file))
        imaps, subs = op["imaps"], op["submissions"]

        async def imap(command: bytes) -> Timing:
            return await imap_login(imaps["host"], imaps["port"], context,
                                    b"AUTHENTICATE " + command)

        async def smtp(command: bytes) -> Timing:
            return await smtp_login(subs["host"], subs["port"], context, b"AUTH " + command)

        cold = [plain(login, password) for login, (password, _) in accounts.items()]
        cached = [cold[n % len(cold)] for n in range(args.logins)]

        async def imap_modes() -> None:
            await imap(xoauth2(DUPONT, token))  # the operator fetches the provider's keys
            rows.append(await measure(Row("mssante", "IMAP", "PLAIN", "cold"), cold,
                                      args.clients, imap, pids))
            rows.append(await measure(Row("mssante", "IMAP", "PLAIN", "cached"), cached,
                                      args.clients, imap, pids, args.alone))
            rows.append(await measure(Row("mssante", "IMAP", "XOAUTH2", "–"),
                                      [xoauth2(DUPONT, token)] * args.logins,
                                      args.clients, imap, pids, args.alone))
            rows.append(await measure(Row("mssante", "IMAP", "OAUTHBEARER", "–"),
                                      [oauthbearer(DUPONT, token, imaps["port"])] * args.logins,
                                      args.clients, imap, pids, args.alone))

        async def submission_modes() -> None:
            rows.append(await measure(Row("mssante", "submission", "PLAIN", "cached"), cached,
                                      args.clients, smtp, pids, args.alone))
            rows.append(await measure(Row("mssante", "submission", "XOAUTH2", "–"),
                                      [xoauth2(DUPONT, token)] * args.logins,
                                      args.clients, smtp, pids, args.alone))
            rows.append(await measure(Row("mssante", "submission", "OAUTHBEARER", "–"),
                                      [oauthbearer(DUPONT, token, subs["port"])] * args.logins,
                                      args.clients, smtp, pids, args.alone))

        uvloop.run(imap_modes())
        if "submission" not in args.skip:
            uvloop.run(submission_modes())
    finally:
        procs.stop()
    return rows, accounts, (config.tls.cert_file, config.tls.key_file, ca_file)


def run_dovecot(args: argparse.Namespace, workdir: Path, accounts: dict[str, tuple[str, str]],
                tls: tuple[Path, Path, Path]) -> list[Row]:
    """Three instances, one after the other: the accounts' argon2id hashes with the auth
    cache off (Dovecot's default), the same with the cache on and the hashes verified by
    auth-worker processes (its setting for strong hashes on several cores), and the
    passwords in clear (``{PLAIN}``: no hash at all, what a cached login costs)."""
    from bench.peers.dovecot import Dovecot, ensure_dovecot_installed
    from bench.peers.system import free_ports
    from mssante.pki.tls import client_context

    version = ensure_dovecot_installed()
    name = f"Dovecot {version}"
    cert, key, ca_file = tls
    context = client_context(ca_file)
    cold = [plain(login, password) for login, (password, _) in accounts.items()]
    cached = [cold[n % len(cold)] for n in range(args.logins)]
    hashes = {login: hashed for login, (_, hashed) in accounts.items()}
    clear = {login: password for login, (password, _) in accounts.items()}
    instances = [
        ("argon2id, cache off", "cold", "ARGON2ID", hashes, {"auth_cache_size": "0"}, cold),
        ("argon2id, cache on, auth-workers", "cold", "ARGON2ID", hashes,
         {"auth_cache_size": "10M", "auth_cache_verify_password_with_worker": "yes"}, cold),
        ("{PLAIN}, no hash", "cached", "PLAIN", clear, {}, cached)]
    rows = []
    for label, compare, scheme, users, settings, commands in instances:
        port, tls_port = free_ports(2)
        server = Dovecot(workdir / f"dovecot-{len(rows)}", port=port, tls_port=tls_port,
                         tls_cert=cert, tls_key=key, password_scheme=scheme, users=users,
                         settings=settings)
        server.start()
        try:
            async def imap(command: bytes, port: int = tls_port) -> Timing:
                return await imap_login("127.0.0.1", port, context, b"AUTHENTICATE " + command)

            async def mode(label: str = label, compare: str = compare,
                           commands: list[bytes] = commands, server: Dovecot = server,
                           alone: int = args.alone if scheme == "PLAIN" else 0) -> Row:
                if label.startswith("argon2id, cache on"):
                    for command in cold:  # fills the auth cache
                        await imap(command)
                row = Row(name, "IMAP", "PLAIN", label, compare=compare)
                return await measure(row, commands, args.clients, imap, server.processes,
                                     alone)

            rows.append(uvloop.run(mode()))
            problems = server.log_problems()
            if problems:
                print("Dovecot log: " + "\n  ".join(problems[:10]), file=sys.stderr)
        finally:
            server.stop()
    return rows


# -- output ----------------------------------------------------------------------------------

def table(rows: list[Row]) -> Iterable[str]:
    yield ("| server | protocol | mechanism | password cache | logins | logins/s | "
           "p50 ms | p90 ms | p99 ms | auth p50 ms | auth p99 ms | auth alone p50 ms | "
           "server CPU ms/login | ratio |")
    yield "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    ours = {(r.protocol, r.mechanism, r.cache): r for r in rows if r.server == "mssante"}
    for r in rows:
        ratio = ""
        if r.server != "mssante":
            mine = ours.get((r.protocol, r.mechanism, r.compare))
            if mine is not None:
                ratio = f"mssante {r.compare} ÷ this {mine.rate / r.rate:.2f}"
        elif r.mechanism != "PLAIN":
            password = ours.get((r.protocol, "PLAIN", "cached"))
            if password is not None:
                ratio = f"÷ PLAIN cached {r.rate / password.rate:.2f}"

        def ms(values: list[float], q: float) -> str:
            return f"{percentile(values, q) * 1000:.1f}"

        yield (f"| {r.server} | {r.protocol} | {r.mechanism} | {r.cache} | {r.logins:,} | "
               f"{r.rate:,.0f} | {ms(r.totals, 0.5)} | {ms(r.totals, 0.9)} | "
               f"{ms(r.totals, 0.99)} | {ms(r.auths, 0.5)} | {ms(r.auths, 0.99)} | "
               f"{ms(r.alone, 0.5) if r.alone else '–'} | "
               f"{r.server_cpu / max(1, r.logins) * 1000:.1f} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent connections")
    parser.add_argument("--logins", type=int, default=2000, help="logins per cached mode")
    parser.add_argument("--cold", type=int, default=100,
                        help="accounts, each logged in once with a cold cache")
    parser.add_argument("--alone", type=int, default=200,
                        help="logins one at a time after each cached mode")
    parser.add_argument("--peer", choices=("dovecot", "none"), default="dovecot")
    parser.add_argument("--skip", default="", help="'submission' to leave it out")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"workload: {args.clients} concurrent clients, each login a new connection with "
          f"implicit TLS; {args.cold} cold password logins, {args.logins} per other mode")
    with tempfile.TemporaryDirectory(prefix="bench-logins-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # Dovecot's processes reach their directories below
        rows, accounts, tls = run_mssante(args, workdir)
        if args.peer == "dovecot":
            rows += run_dovecot(args, workdir, accounts, tls)
    usage = sum(r.client_cpu for r in rows) / max(1, sum(r.seconds for r in rows))
    for line in table(rows):
        print(line)
    print(f"client CPU: {usage:.2f} cores on average over the measures")


if __name__ == "__main__":
    main()
