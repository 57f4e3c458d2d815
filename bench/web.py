"""Webmail benchmark: the message list and opening a message in a 10,000-message folder,
one session at a time (p50, p99), then pages per second for 50 concurrent sessions.

    python -m bench.web [--messages 10000] [--repeat 500] [--sessions 50] [--seconds 30]
                        [--engines sqlite,postgresql] [--profile DIR]

For each store engine: a fresh local environment (``mssante up``'s; on PostgreSQL the
operator ch-xyz.mssante.fr gets a database ``mssante_bench_web`` created for the run and
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

No peer runs: see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import random
import re
import resource
import sys
import tempfile
import time
from collections.abc import Iterable
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
DATABASE = "mssante_bench_web"
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


async def fill(database_url: str, messages: int) -> tuple[int, int, float]:
    """Dupont's INBOX: ``messages - 1`` corpus messages, then the HTML one; returns the
    UID of a plain-text message near the middle, the HTML one's and the seconds taken."""
    from mssante.store import open_store

    corpus = Corpus(seed=0)
    t0 = time.perf_counter()
    store = await open_store(database_url)
    plain = 0
    try:
        uid = 0
        for start in range(0, messages - 1, 5000):
            batch = [corpus.item(i) for i in range(start, min(start + 5000, messages - 1))]
            uids = await store.folders.bulk_append(DUPONT, "INBOX", batch)
            for (body, _, _), uid in zip(batch, uids, strict=True):
                if not plain and uid >= messages // 2 and b"multipart" not in body:
                    plain = uid
        [uid] = await store.folders.bulk_append(
            DUPONT, "INBOX", [(html_message(messages), "", time.time())])
    finally:
        await store.close()
    return plain, uid, time.perf_counter() - t0


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
                     expect: str, repeat: int, pid: int) -> Measure:
    for _ in range(max(10, repeat // 20)):  # warm-up
        await get(client, path, expect)
    measure = Measure(engine, what)
    cpu0, own0, t0 = cpu_seconds([pid]), own_cpu(), time.perf_counter()
    for _ in range(repeat):
        elapsed, size = await get(client, path, expect)
        measure.times.append(elapsed)
        measure.octets = size
    measure.seconds = time.perf_counter() - t0
    measure.server_cpu, measure.client_cpu = cpu_seconds([pid]) - cpu0, own_cpu() - own0
    print(f"  {engine} {what}: p50 {percentile(measure.times, 0.5) * 1000:.1f} ms, "
          f"p99 {percentile(measure.times, 0.99) * 1000:.1f} ms", file=sys.stderr, flush=True)
    return measure


async def concurrent(engine: str, clients: list[httpx.AsyncClient], folder: str, pages: int,
                     last_uid: int, seconds: float, pid: int) -> Measure:
    measure = Measure(engine, f"{len(clients)} sessions, mixed pages")
    deadline = time.perf_counter() + seconds

    async def loop(k: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(k)
        while time.perf_counter() < deadline:
            r = rng.random()
            if r < 0.5:
                uid = rng.randint(1, last_uid)
                path, expect = f"{folder}/messages/{uid}", '<article class="message">'
            elif r < 0.75:
                path, expect = folder, "Page 1 sur"
            else:
                page = rng.randint(1, pages)
                path, expect = f"{folder}?page={page}", f"Page {page} sur"
            elapsed, _ = await get(client, path, expect)
            measure.times.append(elapsed)

    cpu0, own0, t0 = cpu_seconds([pid]), own_cpu(), time.perf_counter()
    await asyncio.gather(*(loop(k, c) for k, c in enumerate(clients)))
    measure.seconds = time.perf_counter() - t0
    measure.server_cpu, measure.client_cpu = cpu_seconds([pid]) - cpu0, own_cpu() - own0
    print(f"  {engine} concurrent: {measure.rate:.0f} pages/s", file=sys.stderr, flush=True)
    return measure


# -- one engine --------------------------------------------------------------------------------

def run_engine(engine: str, args: argparse.Namespace, workdir: Path) -> list[Measure]:
    from mssante.config import load_operator_config
    from mssante.environment.local import LocalEnvironment
    from mssante.pki.tls import client_context

    data_dir = workdir / f"mssante-{engine}"
    urls = {}
    if engine == "postgresql":
        urls = {HOSPITAL: asyncio.run(reset_postgres([DATABASE]))[DATABASE]}
    env = LocalEnvironment(data_dir, free_port_base(), database_urls=urls)
    asyncio.run(env.prepare())
    d = env.description
    op = next(o for o in d["operators"] if o["domain"] == HOSPITAL)
    password = next(a for a in d["accounts"] if a["login"] == DUPONT)["password"]
    config = load_operator_config(Path(op["config"]))
    plain, rich, took = asyncio.run(fill(config.database_url, args.messages))
    print(f"  {engine}: {args.messages} messages loaded in {took:.1f} s", file=sys.stderr)
    procs = Processes(Path(args.profile) / engine if args.profile else None)
    try:
        procs.start("trust", ["trust", "serve", "--config", str(data_dir / "trust.toml")],
                    data_dir / "trust.log")
        wait_port(env.base_port)
        procs.start("operator", ["operator", "serve", "--config", op["config"]],
                    data_dir / "operator.log")
        wait_port(op["web"]["port"])
        pid = procs.procs[-1][1].pid
        base, verify = str(op["web"]["url"]), client_context(Path(d["ca_file"]))

        async def measures() -> list[Measure]:
            client = await session(base, verify, password)
            try:
                landed = await client.get("/courrier", follow_redirects=True)
                folder = landed.url.path  # /courrier/{address}/dossiers/{id} of the INBOX
                pages = -(-args.messages // 50)
                deep = pages // 2
                found = [
                    await sequential(engine, "static file (floor)", client, "/static/app.css",
                                     "{", args.repeat, pid),
                    await sequential(engine, "message list, first page", client, folder,
                                     "Page 1 sur", args.repeat, pid),
                    await sequential(engine, f"message list, page {deep} of {pages}", client,
                                     f"{folder}?page={deep}", f"Page {deep} sur",
                                     args.repeat, pid),
                    await sequential(engine, "message, plain text", client,
                                     f"{folder}/messages/{plain}", "Cher confr", args.repeat,
                                     pid),
                    await sequential(engine, "message, HTML + PDF attachment", client,
                                     f"{folder}/messages/{rich}", "CRO.pdf", args.repeat, pid),
                ]
            finally:
                await client.aclose()
            clients = [await session(base, verify, password) for _ in range(args.sessions)]
            try:
                found.append(await concurrent(engine, clients, folder, pages, rich,
                                              args.seconds, pid))
            finally:
                for c in clients:
                    await c.aclose()
            return found

        return uvloop.run(measures())
    finally:
        procs.stop()
        if engine == "postgresql":
            asyncio.run(drop_postgres(DATABASE))


async def drop_postgres(name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    from bench.relay import PG_ADMIN_URL

    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# -- output ------------------------------------------------------------------------------------

def table(measures: list[Measure]) -> Iterable[str]:
    yield ("| store | measure | requests | pages/s | p50 ms | p99 ms | max ms | page KiB | "
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=10000, help="messages in the folder")
    parser.add_argument("--repeat", type=int, default=500, help="requests per single measure")
    parser.add_argument("--sessions", type=int, default=50, help="concurrent sessions")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of the concurrent run")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--profile", help="directory for pyinstrument profiles of the operator")
    args = parser.parse_args()
    print(f"machine: {machine(sqlite=True)}")
    print(f"workload: {args.messages} messages in one INBOX, {args.repeat} requests per "
          f"single-session measure, {args.sessions} sessions for {args.seconds:.0f} s")
    load = os.getloadavg()
    measures: list[Measure] = []
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        for engine in [e for e in args.engines.split(",") if e]:
            print(f"running {engine}…", file=sys.stderr)
            measures += run_engine(engine, args, Path(tmp))
    for line in table(measures):
        print(line)
    print("load average (1 min) at start and end: "
          f"{load[0]:.1f}, {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
