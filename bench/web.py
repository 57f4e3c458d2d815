"""Webmail benchmark: the message list and opening a message in a 10,000-message folder,
one session at a time (p50, p99), then pages per second for 50 concurrent sessions.

    python -m bench.web [--messages 10000] [--repeat 500] [--sessions 50] [--seconds 30]
                        [--engines sqlite,postgresql] [--peer roundcube|none]
                        [--php-workers N] [--roundcube-cache] [--profile DIR]

For each store engine: a fresh local environment (``mssante up``'s; on PostgreSQL the
operator ch-xyz.mssante.fr gets a database ``mssante_bench_web_<pid>`` created for the run and
dropped after, on the server of ``MSSANTE_BENCH_POSTGRES``); Dr Dupont's INBOX filled with
``--messages`` messages with ``store.folders.bulk_append`` (the deterministic corpus of
bench/imap.py: French clinical subjects, RFC 2047, 60 % plain text, 40 % with a PDF or a
ZIP, 15 % unread; the last one an HTML message with a plain-text alternative and a PDF);
then the trust space and the operator as separate processes (``mssante trust serve``,
``mssante operator serve``), as in production. The webmail is the operator's HTTPS
listener (uvicorn, implicit TLS).

The client is httpx (HTTP/1.1, one keep-alive TLS connection per session) in this
process, logged in as a browser does: the login form, its hidden ``jeton`` and cookie,
``POST /connexion`` with the password, then the ``__Host-mssante`` session cookie.

Measured, one session, one request at a time, ``--repeat`` times each after a warm-up:

- the message list, first page (``GET /courrier/{address}/dossiers/{id}``) and a deep
  page (``?page=`` the middle one);
- opening a message (``GET .../messages/{uid}``): a plain-text one and the HTML one with
  its attachment (the page lists the attachment; it is not downloaded);
- the stylesheet (``/static/app.css``), as the floor: TLS, HTTP and the middleware with
  no application code.

"Server time" here is the round trip seen by the client on the already-open
connection: from the request being sent to the last byte of the response read (httpx's
own work of a few tenths of a millisecond included). The application sends no
Server-Timing header and none was added for this. The server's CPU per page (from
/proc, the operator process) is printed beside each measure: the operator also runs
SMTP and IMAP listeners, idle here.

Then ``--sessions`` sessions log in (the same person, each its own session and
connection) and each loops for ``--seconds``: half of its requests open a message (a
UID drawn at random, so it is marked ``\\Seen``: a write), a quarter the first page of
the list, a quarter a page drawn at random. Printed: pages/s over all sessions, p50 and
p99 of the round trips, server and client CPU. The client runs on the same two cores.

The peer, in the same run after mssante (``--peer roundcube``, the default): Debian's
Roundcube 1.6 on Debian's Dovecot 2.3 (bench/peers/roundcube.py, bench/peers/dovecot.py),
both with their own configuration in the run's temporary directory. Dovecot's INBOX
holds the same ``--messages`` messages under the same UIDs (Maildir, written before
Dovecot starts); Roundcube runs under PHP's built-in web server with ``--php-workers``
processes (default: the machine's cores), OPcache on, its sessions in SQLite, no
plugins, 50 messages a page, no cache of its own unless ``--roundcube-cache``. The
same client logs in as a browser does (the login form's ``_token`` and the
``roundcube_sessid`` cookie, ``POST /?_task=login``, then the mail page for the
request token that Roundcube's scripts send as ``X-Roundcube-Request``) and measures
the same things: the list (the AJAX request ``?_task=mail&_action=list&_mbox=INBOX&
_page=N&_remote=1`` that fills Roundcube's list, a JSON answer), opening a message
(``?_task=mail&_action=show&_uid=N&_mbox=INBOX``, a whole page; it marks the message
``\\Seen`` too), the skin's stylesheet as the floor, and the same mix with
``--sessions`` sessions, each its own login. The server CPU is PHP's and Dovecot's
(every process of both). PHP's built-in server speaks plain HTTP and closes the
connection after each response: each Roundcube request opens a TCP connection on
loopback (about 0.1 ms), and pays no TLS, where mssante's are HTTPS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import os
import random
import re
import resource
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.imap import Corpus
from bench.logins import cpu_seconds
from bench.machine import machine
from bench.relay import Processes, free_port_base, percentile, reset_postgres, wait_port

HOSPITAL = "ch-xyz.mssante.fr"
DUPONT = "dupont@ch-xyz.mssante.fr"
# One database per run: two runs at once on a shared server must not drop each other's.
DATABASE = f"mssante_bench_web_{os.getpid()}"
GOAL_MS = 50.0
HTML_SUBJECT = "Compte rendu opératoire (HTML) avec pièce jointe"


def html_message(index: int) -> bytes:
    """An HTML message with a plain-text alternative and a PDF, as a hospital's DPI sends."""
    rng = random.Random(f"mssante-web-bench:{index}")
    rows = "".join(f"<tr><td>{name}</td><td>{rng.uniform(0.5, 9.5):.2f}</td><td>mmol/L</td></tr>"
                   for name in ("Sodium", "Potassium", "Créatinine", "Glucose", "Urée") * 8)
    page = ("<html><head><style>td{padding:2px}</style></head><body>"
            "<p>Cher confrère,</p><p>Veuillez trouver ci-joint le <b>compte rendu "
            "opératoire</b> de votre patient.</p>"
            f"<table border=\"1\"><tr><th>Examen</th><th>Valeur</th><th>Unité</th></tr>{rows}"
            "</table><p>Bien confraternellement,<br>Dr Martin</p>"
            "<img src=\"https://tracker.example/p.gif\"></body></html>")
    text = "Cher confrère,\r\n\r\nVeuillez trouver ci-joint le compte rendu opératoire.\r\n"
    pdf = b"%PDF-1.4\n" + rng.randbytes(30000) + b"\n%%EOF\n"
    import base64
    from email.header import Header
    encoded = base64.encodebytes(pdf).replace(b"\n", b"\r\n")
    subject = Header(HTML_SUBJECT, "utf-8").encode(linesep="\r\n")
    return (
        "Date: Mon, 07 Dec 2026 10:00:00 +0100\r\n"
        "From: Dr Claire Martin <claire.martin@chu-lyon.mssante.fr>\r\n"
        f"To: <{DUPONT}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <html-{index}@chu-lyon.mssante.fr>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n"
        "--m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n"
        "--a\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + text.encode() + (
        b"\r\n--a\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n") + page.encode() + (
        b"\r\n--a--\r\n--m\r\nContent-Type: application/pdf; name=\"CRO.pdf\"\r\n"
        b"Content-Disposition: attachment; filename=\"CRO.pdf\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n") + encoded + b"\r\n--m--\r\n"


def plain_uid(corpus: Corpus, messages: int) -> int:
    """The UID of the plain-text message opened by the measures: the first one from the
    middle of the folder on (UID k is the corpus's message k - 1 on both sides)."""
    for index in range(max(0, messages // 2 - 1), messages - 1):
        if b"multipart" not in corpus.message(index):
            return index + 1
    raise RuntimeError("no plain-text message in the second half of the folder")


def folder_items(corpus: Corpus, messages: int, start: int = 0,
                 stop: int | None = None) -> Iterable[tuple[bytes, str, float]]:
    """The folder's messages ``start``..``stop`` - 1 as ``(body, flags, internaldate)``:
    the corpus, then the HTML message last."""
    for index in range(start, messages if stop is None else min(stop, messages)):
        if index < messages - 1:
            yield corpus.item(index)
        else:
            yield html_message(messages), "", corpus.internaldate(index)


async def fill(database_url: str, messages: int) -> tuple[int, int, float]:
    """Dupont's INBOX: ``messages - 1`` corpus messages, then the HTML one; returns the
    UID of a plain-text message near the middle, the HTML one's and the seconds taken."""
    from mssante.store import open_store

    corpus = Corpus(seed=0)
    t0 = time.perf_counter()
    store = await open_store(database_url)
    try:
        for start in range(0, messages, 5000):
            uids = await store.folders.bulk_append(
                DUPONT, "INBOX", list(folder_items(corpus, messages, start, start + 5000)))
            if uids != list(range(start + 1, start + 1 + len(uids))):
                raise RuntimeError("the INBOX's UIDs are not 1..N: not the same as Dovecot's")
    finally:
        await store.close()
    return plain_uid(corpus, messages), messages, time.perf_counter() - t0


# -- the client ------------------------------------------------------------------------------

def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    if found is None:
        raise RuntimeError(f"no {name} in the page")
    return html.unescape(found.group(1))


async def session(base: str, verify: object, password: str) -> httpx.AsyncClient:
    """A logged-in client: its cookies and one keep-alive connection."""
    client = httpx.AsyncClient(base_url=base, verify=verify, timeout=60,  # type: ignore[arg-type]
                               headers={"Origin": base},
                               limits=httpx.Limits(max_connections=1))
    form = await client.get("/connexion")
    answer = await client.post("/connexion", data={
        "identifiant": DUPONT, "mot_de_passe": password, "jeton": hidden(form.text, "jeton")})
    if answer.status_code != 303:
        raise RuntimeError(f"login refused: {answer.status_code}")
    return client


async def get(client: httpx.AsyncClient, path: str, expect: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    response = await client.get(path)
    elapsed = time.perf_counter() - t0
    if response.status_code != 200 or expect not in response.text:
        raise RuntimeError(f"GET {path}: {response.status_code}, {expect!r} not in the page")
    return elapsed, len(response.content)


@dataclass
class Measure:
    engine: str
    what: str
    times: list[float] = field(default_factory=list)
    octets: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.times) / self.seconds if self.seconds else 0.0


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def sequential(engine: str, what: str, client: httpx.AsyncClient, path: str,
                     expect: str, repeat: int, cpu: Callable[[], float]) -> Measure:
    """``repeat`` requests of ``path`` one after the other; ``cpu``: the server's CPU
    seconds so far."""
    for _ in range(max(10, repeat // 20)):  # warm-up
        await get(client, path, expect)
    measure = Measure(engine, what)
    cpu0, own0, t0 = cpu(), own_cpu(), time.perf_counter()
    for _ in range(repeat):
        elapsed, size = await get(client, path, expect)
        measure.times.append(elapsed)
        measure.octets = size
    measure.seconds = time.perf_counter() - t0
    measure.server_cpu, measure.client_cpu = cpu() - cpu0, own_cpu() - own0
    print(f"  {engine} {what}: p50 {percentile(measure.times, 0.5) * 1000:.1f} ms, "
          f"p99 {percentile(measure.times, 0.99) * 1000:.1f} ms", file=sys.stderr, flush=True)
    return measure


# A request of the mix: (path, text the answer must hold), drawn with the session's rng.
Pick = Callable[[random.Random], tuple[str, str]]


def mssante_pick(folder: str, pages: int, last_uid: int) -> Pick:
    """Half the requests open a message at random, a quarter the first page of the
    list, a quarter a page at random."""
    def pick(rng: random.Random) -> tuple[str, str]:
        r = rng.random()
        if r < 0.5:
            return f"{folder}/messages/{rng.randint(1, last_uid)}", '<article class="message">'
        if r < 0.75:
            return folder, "Page 1 sur"
        page = rng.randint(1, pages)
        return f"{folder}?page={page}", f"Page {page} sur"
    return pick


async def concurrent(engine: str, clients: list[httpx.AsyncClient], pick: Pick,
                     seconds: float, cpu: Callable[[], float]) -> Measure:
    measure = Measure(engine, f"{len(clients)} sessions, mixed pages")
    deadline = time.perf_counter() + seconds

    async def loop(k: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(k)
        while time.perf_counter() < deadline:
            path, expect = pick(rng)
            elapsed, _ = await get(client, path, expect)
            measure.times.append(elapsed)

    cpu0, own0, t0 = cpu(), own_cpu(), time.perf_counter()
    await asyncio.gather(*(loop(k, c) for k, c in enumerate(clients)))
    measure.seconds = time.perf_counter() - t0
    measure.server_cpu, measure.client_cpu = cpu() - cpu0, own_cpu() - own0
    print(f"  {engine} concurrent: {measure.rate:.0f} pages/s", file=sys.stderr, flush=True)
    return measure


# -- the sides under test --------------------------------------------------------------------

# A single-session measure: (what, path, text the answer must hold).
Request = tuple[str, str, str]


@dataclass
class Side:
    """A webmail started and filled: how a session logs in, what it requests (from a
    logged-in client: the single-session measures and the mix), its server's CPU."""

    name: str
    login: Callable[[], Awaitable[httpx.AsyncClient]]
    plan: Callable[[httpx.AsyncClient], Awaitable[tuple[list[Request], Pick]]]
    cpu: Callable[[], float]
    log_tail: Callable[[], str]


def port_base(span: int = 40) -> int:
    """A free range of ``span`` ports from a random start: other runs on this shared
    machine pick theirs from 42000 on, and one could take a port between the choice and
    the start of the server."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000, 100)  # below the ephemeral ports
        free = True
        for port in range(base, base + span):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return base
    return free_port_base(span)


def start_mssante(engine: str, args: argparse.Namespace, workdir: Path,
                  stack: contextlib.ExitStack) -> Side:
    """mssante on ``engine``: the environment, the INBOX, the trust space and the
    operator started (``stack`` stops them, and drops the PostgreSQL database)."""
    from mssante.config import load_operator_config
    from mssante.environment.local import LocalEnvironment
    from mssante.pki.tls import client_context

    data_dir = workdir / f"mssante-{engine}"
    urls = {}
    if engine == "postgresql":
        urls = {HOSPITAL: asyncio.run(reset_postgres([DATABASE]))[DATABASE]}
        stack.callback(lambda: asyncio.run(drop_postgres(DATABASE)))
    env = LocalEnvironment(data_dir, port_base(), database_urls=urls)
    asyncio.run(env.prepare())
    d = env.description
    op = next(o for o in d["operators"] if o["domain"] == HOSPITAL)
    password = next(a for a in d["accounts"] if a["login"] == DUPONT)["password"]
    config = load_operator_config(Path(op["config"]))
    plain, rich, took = asyncio.run(fill(config.database_url, args.messages))
    print(f"  {engine}: {args.messages} messages loaded in {took:.1f} s", file=sys.stderr)
    procs = Processes(Path(args.profile) / engine if args.profile else None)
    stack.callback(procs.stop)
    procs.start("trust", ["trust", "serve", "--config", str(data_dir / "trust.toml")],
                data_dir / "trust.log")
    wait_port(env.base_port)
    procs.start("operator", ["operator", "serve", "--config", op["config"]],
                data_dir / "operator.log")
    wait_port(op["web"]["port"])
    for name, proc in procs.procs:
        if proc.poll() is not None:
            raise RuntimeError(f"mssante {name} exited with {proc.returncode}")
    pid = procs.procs[-1][1].pid
    base, verify = str(op["web"]["url"]), client_context(Path(d["ca_file"]))

    async def plan(client: httpx.AsyncClient) -> tuple[list[Request], Pick]:
        landed = await client.get("/courrier", follow_redirects=True)
        folder = landed.url.path  # /courrier/{address}/dossiers/{id} of the INBOX
        pages = -(-args.messages // 50)
        deep = pages // 2
        return [
            ("static file (floor)", "/static/app.css", "{"),
            ("message list, first page", folder, "Page 1 sur"),
            (f"message list, page {deep} of {pages}", f"{folder}?page={deep}",
             f"Page {deep} sur"),
            ("message, plain text", f"{folder}/messages/{plain}", "Cher confr"),
            ("message, HTML + PDF attachment", f"{folder}/messages/{rich}", "CRO.pdf"),
        ], mssante_pick(folder, pages, rich)

    def log_tail() -> str:
        lines = (data_dir / "operator.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-40:])

    return Side(engine, lambda: session(base, verify, password), plan,
                lambda: cpu_seconds([pid]), log_tail)


async def measure_sides(sides: list[Side], args: argparse.Namespace) -> list[Measure]:
    """Each single-session measure on every side in turn (the load of this shared
    machine changes in minutes: side by side, each measure meets about the same), then
    the concurrent sessions of each side, one side after the other."""
    found: list[list[Measure]] = [[] for _ in sides]
    clients = [await side.login() for side in sides]
    try:
        plans = [await side.plan(client) for side, client in zip(sides, clients, strict=True)]
        for k in range(len(plans[0][0])):
            for i, side in enumerate(sides):
                what, path, expect = plans[i][0][k]
                found[i].append(await sequential(side.name, what, clients[i], path, expect,
                                                 args.repeat, side.cpu))
    finally:
        for client in clients:
            await client.aclose()
    for i, side in enumerate(sides):
        sessions = [await side.login() for _ in range(args.sessions)]
        try:
            found[i].append(await concurrent(side.name, sessions, plans[i][1], args.seconds,
                                             side.cpu))
        finally:
            for client in sessions:
                await client.aclose()
    return [m for measures in found for m in measures]


async def drop_postgres(name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    from bench.relay import PG_ADMIN_URL

    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# -- the peer: Roundcube on Dovecot -------------------------------------------------------------

ROUNDCUBE_CSS = "/skins/elastic/styles/styles.min.css"
ROUNDCUBE_LIST = "/?_task=mail&_action=list&_mbox=INBOX&_page={page}&_remote=1"
ROUNDCUBE_SHOW = "/?_task=mail&_action=show&_uid={uid}&_mbox=INBOX"


async def roundcube_session(base: str, password: str) -> httpx.AsyncClient:
    """A client logged in to Roundcube as a browser is: the login form's ``_token`` and
    session cookie, the login, then the mail page, whose request token Roundcube's
    scripts send with each AJAX request as ``X-Roundcube-Request``."""
    client = httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=1))
    form = await client.get("/")
    answer = await client.post("/?_task=login", data={
        "_token": hidden(form.text, "_token"), "_task": "login", "_action": "login",
        "_timezone": "Europe/Paris", "_url": "", "_user": DUPONT, "_pass": password})
    if answer.status_code != 302 or "_task=mail" not in answer.headers.get("location", ""):
        raise RuntimeError(f"Roundcube login refused: {answer.status_code}")
    page = await client.get("/?_task=mail&_mbox=INBOX")
    token = re.search(r'"request_token":"([^"]+)"', page.text)
    if token is None:
        raise RuntimeError("no request token in Roundcube's mail page")
    client.headers["X-Roundcube-Request"] = token.group(1)
    return client


def roundcube_row(messages: int, page: int) -> str:
    """What the list of ``page`` must hold: its first row (newest first, 50 a page)."""
    return f"this.add_message_row({messages - (page - 1) * 50},"


def roundcube_pick(pages: int, messages: int) -> Pick:
    """The mix of ``mssante_pick`` in Roundcube's requests."""
    def pick(rng: random.Random) -> tuple[str, str]:
        r = rng.random()
        if r < 0.5:
            return ROUNDCUBE_SHOW.format(uid=rng.randint(1, messages)), 'id="messagebody"'
        if r < 0.75:
            return ROUNDCUBE_LIST.format(page=1), roundcube_row(messages, 1)
        page = rng.randint(1, pages)
        return ROUNDCUBE_LIST.format(page=page), roundcube_row(messages, page)
    return pick


def start_roundcube(args: argparse.Namespace, workdir: Path,
                    stack: contextlib.ExitStack) -> tuple[str, Side]:
    """Roundcube on Dovecot holding the same INBOX, started (``stack`` stops them);
    returns how they are set up, and the side."""
    from bench.peers.dovecot import Dovecot, descendants, ensure_dovecot_installed
    from bench.peers.roundcube import Roundcube, ensure_roundcube_installed, php_version
    from bench.peers.system import free_ports

    dovecot_version = ensure_dovecot_installed()
    version = ensure_roundcube_installed()
    cache = ("imap_cache and messages_cache in its database" if args.roundcube_cache
             else "no cache of its own")
    describe = (f"Roundcube {version} (PHP {php_version()} built-in server, "
                f"{args.php_workers} workers, OPcache, sessions in SQLite, {cache}) "
                f"on Dovecot {dovecot_version} (Maildir, plain IMAP on loopback)")
    password = secrets.token_urlsafe(16)
    imap_port, web_port = free_ports(2)
    dovecot = Dovecot(workdir / "dovecot", port=imap_port, users={DUPONT: password})
    corpus = Corpus(seed=0)
    t0 = time.perf_counter()
    dovecot.write_messages(DUPONT, folder_items(corpus, args.messages), uidvalidity=1)
    os.sync()  # no writeback of the folder during the measures
    print(f"  Roundcube: {args.messages} messages written to Dovecot's Maildir in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    roundcube = Roundcube(workdir / "roundcube", port=web_port, imap_port=imap_port,
                          workers=args.php_workers, cache=args.roundcube_cache)

    def stop() -> None:
        for line in roundcube.errors()[:10]:
            print(f"  Roundcube's error log: {line}", file=sys.stderr)
        for line in dovecot.log_problems()[:10]:
            print(f"  Dovecot's log: {line}", file=sys.stderr)
        roundcube.stop()
        dovecot.stop()

    stack.callback(stop)
    dovecot.start()
    roundcube.start()
    plain, rich = plain_uid(corpus, args.messages), args.messages
    pages = -(-args.messages // 50)
    deep = pages // 2

    async def plan(client: httpx.AsyncClient) -> tuple[list[Request], Pick]:
        return [
            ("static file (floor)", ROUNDCUBE_CSS, "{"),
            ("message list, first page", ROUNDCUBE_LIST.format(page=1),
             roundcube_row(args.messages, 1)),
            (f"message list, page {deep} of {pages}", ROUNDCUBE_LIST.format(page=deep),
             roundcube_row(args.messages, deep)),
            ("message, plain text", ROUNDCUBE_SHOW.format(uid=plain), "Cher confr"),
            ("message, HTML + PDF attachment", ROUNDCUBE_SHOW.format(uid=rich), "CRO.pdf"),
        ], roundcube_pick(pages, args.messages)

    def cpu() -> float:
        master = dovecot.master_pid()
        return cpu_seconds(roundcube.pids() + (descendants(master) if master else []))

    return describe, Side("Roundcube", lambda: roundcube_session(roundcube.url, password),
                          plan, cpu, roundcube.log_tail)


# -- output ------------------------------------------------------------------------------------

def table(measures: list[Measure]) -> Iterable[str]:
    yield ("| stack / store | measure | requests | pages/s | p50 ms | p99 ms | max ms | page KiB | "
           "server CPU ms/page | client CPU ms/page | p99 < 50 ms |")
    yield "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for m in measures:
        p99 = percentile(m.times, 0.99) * 1000
        single = not m.what.startswith("static") and "sessions" not in m.what
        goal = ("met" if p99 < GOAL_MS else "**not met**") if single else ""
        n = max(1, len(m.times))
        yield (f"| {m.engine} | {m.what} | {len(m.times):,} | {m.rate:,.0f} | "
               f"{percentile(m.times, 0.5) * 1000:.1f} | {p99:.1f} | "
               f"{max(m.times) * 1000:.1f} | "
               f"{m.octets / 1024:.0f} | {m.server_cpu / n * 1000:.2f} | "
               f"{m.client_cpu / n * 1000:.2f} | {goal} |".replace("| 0 |", "| – |", 1))


def comparison(measures: list[Measure], peer: str) -> Iterable[str]:
    """mssante beside the peer, measure by measure, with the ratio mssante/peer as a
    speed ratio (above 1: mssante faster): the peer's time over mssante's, mssante's
    pages/s over the peer's."""
    theirs = {m.what: m for m in measures if m.engine == peer}
    yield (f"| measure | mssante store | mssante p50 / p99 | {peer} p50 / p99 | "
           f"mssante/{peer} p50 / p99 | server CPU ms/page mssante / {peer} |")
    yield "|---|---|---:|---:|---:|---:|"
    for m in measures:
        other = theirs.get(m.what)
        if m.engine == peer or other is None:
            continue
        cpu = (f"{m.server_cpu / max(1, len(m.times)) * 1000:.1f} / "
               f"{other.server_cpu / max(1, len(other.times)) * 1000:.1f}")
        if "sessions" in m.what:
            yield (f"| {m.what} | {m.engine} | {m.rate:,.0f} pages/s | "
                   f"{other.rate:,.0f} pages/s | {m.rate / other.rate:.2f} | {cpu} |")
            continue
        mine = [percentile(m.times, q) * 1000 for q in (0.5, 0.99)]
        peers = [percentile(other.times, q) * 1000 for q in (0.5, 0.99)]
        yield (f"| {m.what} | {m.engine} | {mine[0]:.1f} / {mine[1]:.1f} ms | "
               f"{peers[0]:.1f} / {peers[1]:.1f} ms | "
               f"{peers[0] / mine[0]:.2f} / {peers[1] / mine[1]:.2f} | {cpu} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=10000, help="messages in the folder")
    parser.add_argument("--repeat", type=int, default=500, help="requests per single measure")
    parser.add_argument("--sessions", type=int, default=50, help="concurrent sessions")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of the concurrent run")
    parser.add_argument("--engines", default="sqlite,postgresql",
                        help="mssante's store engines, comma-separated ('none': the peer only)")
    parser.add_argument("--peer", choices=["roundcube", "none"], default="roundcube")
    parser.add_argument("--php-workers", type=int, default=os.cpu_count() or 1,
                        help="PHP_CLI_SERVER_WORKERS of Roundcube's web server "
                             "(default: the cores)")
    parser.add_argument("--roundcube-cache", action="store_true",
                        help="Roundcube's imap_cache and messages_cache in its database")
    parser.add_argument("--profile", help="directory for pyinstrument profiles of the operator")
    args = parser.parse_args()
    if args.messages < 2:
        parser.error("--messages: at least 2")
    print(f"machine: {machine(sqlite=True)}")
    print(f"workload: {args.messages} messages in one INBOX, {args.repeat} requests per "
          f"single-session measure, {args.sessions} sessions for {args.seconds:.0f} s")
    load = os.getloadavg()
    peer = ""
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp, \
            contextlib.ExitStack() as stack:
        sides = []
        for engine in [e for e in args.engines.split(",") if e and e != "none"]:
            print(f"starting mssante on {engine}…", file=sys.stderr)
            sides.append(start_mssante(engine, args, Path(tmp), stack))
        if args.peer == "roundcube":
            print("starting Roundcube on Dovecot…", file=sys.stderr)
            peer, side = start_roundcube(args, Path(tmp), stack)
            sides.append(side)
        if not sides:
            parser.error("nothing to run: no engine and no peer")
        try:
            measures = uvloop.run(measure_sides(sides, args))
        except Exception:
            for side in sides:
                print(f"  {side.name}'s log, last lines:\n    "
                      + side.log_tail().replace("\n", "\n    "), file=sys.stderr)
            raise
    if peer:
        print(f"peer: {peer}")
    for line in table(measures):
        print(line)
    if peer and any(m.engine != "Roundcube" for m in measures):
        print()
        for line in comparison(measures, "Roundcube"):
            print(line)
    print("load average (1 min) at start and end: "
          f"{load[0]:.1f}, {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
