"""Latency of FHIR searches on a national-size directory (a measurement, not a test).

    python bench/directory_fhir.py sqlite:////tmp/directory540k.sqlite3
    python bench/directory_fhir.py postgresql://postgres@127.0.0.1/test \\
        --schema fhirbench

An empty directory is filled first with ``--rows`` generated rows (540,000 by default:
the national extract's size) through ``DirectoryStore.import_extract``. Each kind of
search then runs ``--samples`` times with values drawn from the directory (names,
cities, postal codes, identifiers, addresses of random rows), through the whole FHIR
path (FastAPI router, SQL, rendering, JSON) over ``httpx.ASGITransport``, one request
at a time; the table gives p50, p99 and the maximum in milliseconds, and the mean
number of entries.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from sqlalchemy import func, select

from mssante.directory import schema
from mssante.directory.fhir import Publisher, create_fhir_router
from mssante.directory.generate import generate_rows
from mssante.directory.store import DirectoryStore, open_directory

Sample = dict[str, Any]


async def _nobody(request: Request) -> Publisher:
    raise AssertionError("no publication in this measurement")


async def samples(store: DirectoryStore, count: int, seed: int) -> list[Sample]:
    """Values of ``count`` random mailboxes with their professional and organisation."""
    m, p, o = schema.mailboxes, schema.practitioners, schema.organisations
    rng = random.Random(seed)
    async with store.engine.connect() as conn:
        highest = int((await conn.execute(select(func.max(m.c.id)))).scalar_one())
        ids = rng.sample(range(1, highest + 1), min(count * 3, highest))
        rows = (await conn.execute(
            select(m.c.address, m.c.mailbox_type, p.c.id_nat_ps, p.c.pp_id, p.c.family_name,
                   p.c.given_name, o.c.id_nat_st, o.c.legal_name, o.c.city_norm,
                   o.c.postal_code)
            .select_from(m.outerjoin(p, p.c.id == m.c.practitioner_id)
                         .outerjoin(o, o.c.id == m.c.organisation_id))
            .where(m.c.id.in_(ids)))).mappings().all()
    return [dict(row) for row in rows]


def kinds(people: list[Sample], places: list[Sample]) -> dict[str, Callable[[Sample], str]]:
    """Search kind -> the URL of one search for a sample (people: PER/CAB rows,
    places: rows with an organisation)."""
    def q(value: str) -> str:
        return quote(value, safe="")

    return {
        "Practitioner family prefix (3)":
            lambda s: f"Practitioner?family={q(s['family_name'][:3])}",
        "Practitioner family": lambda s: f"Practitioner?family={q(s['family_name'])}",
        "Practitioner family:exact": lambda s: f"Practitioner?family:exact={q(s['family_name'])}",
        "Practitioner family:contains (3)":
            lambda s: f"Practitioner?family:contains={q(s['family_name'][1:5])}",
        "Practitioner given prefix (2)": lambda s: f"Practitioner?given={q(s['given_name'][:2])}",
        "Practitioner name": lambda s: f"Practitioner?name={q(s['family_name'][:4])}",
        "Practitioner family+given":
            lambda s: f"Practitioner?family={q(s['family_name'])}&given={q(s['given_name'])}",
        "Practitioner identifier system|value":
            lambda s: f"Practitioner?identifier=urn:oid:1.2.250.1.71.4.2.1|{s['id_nat_ps']}",
        "Practitioner identifier value": lambda s: f"Practitioner?identifier={s['pp_id']}",
        "Practitioner _id": lambda s: f"Practitioner?_id={s['id_nat_ps']}",
        "Practitioner read": lambda s: f"Practitioner/{s['id_nat_ps']}",
        "Practitioner mailbox-mss prefix (6)":
            lambda s: f"Practitioner?mailbox-mss={q(s['address'][:6])}",
        "Practitioner mailbox-mss:exact":
            lambda s: f"Practitioner?mailbox-mss:exact={q(s['address'])}",
        "Practitioner mailbox-mss:contains (8)":
            lambda s: f"Practitioner?mailbox-mss:contains={q(s['address'][2:10])}",
        "Practitioner mailbox-mss-type=CAB": lambda s: "Practitioner?mailbox-mss-type=CAB",
        "Practitioner family + mailbox-mss-type":
            lambda s: f"Practitioner?family={q(s['family_name'])}&mailbox-mss-type=CAB",
        "Practitioner page 6 (cursor)": lambda s: f"Practitioner?family={q(s['family_name'][:1])}"
                                                  "&__page=6",
        "Organization name prefix": lambda s: f"Organization?name={q(s['legal_name'][:10])}",
        "Organization name:contains":
            lambda s: f"Organization?name:contains={q(s['legal_name'][-6:])}",
        "Organization address-city": lambda s: f"Organization?address-city={q(s['city_norm'])}",
        "Organization address-postalcode":
            lambda s: f"Organization?address-postalcode={s['postal_code']}",
        "Organization identifier": lambda s: f"Organization?identifier={s['id_nat_st']}",
        "Organization mailbox-mss prefix":
            lambda s: f"Organization?mailbox-mss={q(s['address'][:8])}",
        "Organization mailbox-mss-type=APP": lambda s: "Organization?mailbox-mss-type=APP",
        "PractitionerRole address-city":
            lambda s: f"PractitionerRole?address-city={q(s['city_norm'])}",
        "PractitionerRole address-postalcode":
            lambda s: f"PractitionerRole?address-postalcode={s['postal_code']}",
        "PractitionerRole practitioner + _include":
            lambda s: f"PractitionerRole?practitioner={s['id_nat_ps']}"
                      "&_include=PractitionerRole:organization",
        "PractitionerRole organization + _include":
            lambda s: f"PractitionerRole?organization={s['id_nat_st']}"
                      "&_include=PractitionerRole:practitioner",
        "PractitionerRole mailbox-mss prefix":
            lambda s: f"PractitionerRole?mailbox-mss={q(s['address'][:6])}",
    }


async def timed(client: httpx.AsyncClient, url: str) -> tuple[float, int]:
    """One search (``__page=n``: follow ``next`` n-1 times, time the last page)."""
    url, _, page = url.partition("&__page=")
    for _ in range(int(page or 1) - 1):
        bundle = (await client.get(f"/fhir/{url}")).json()
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        if "next" not in links:
            break
        url = links["next"].partition("/fhir/")[2]
    start = time.perf_counter()
    response = await client.get(f"/fhir/{url}")
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, (url, response.text)
    data = response.json()
    return elapsed, len(data.get("entry", [])) if data["resourceType"] == "Bundle" else 1


async def measure(url: str, schema_name: str | None, rows: int, count: int, seed: int,
                  only: str, slowest: int) -> None:
    store = await open_directory(url, schema=schema_name)
    try:
        if await store.count() == 0:
            started = time.perf_counter()
            await store.import_extract(generate_rows(rows, seed=seed))
            print(f"imported {rows} rows in {time.perf_counter() - started:.0f} s")
        print(f"{await store.count()} mailboxes on {store.engine.dialect.name}")
        drawn = await samples(store, count * 2, seed)
        people = [s for s in drawn if s["id_nat_ps"]]
        places = [s for s in drawn if s["id_nat_st"]]
        app = FastAPI()
        app.include_router(create_fhir_router(store, _nobody, base_url="http://bench/fhir"),
                           prefix="/fhir")
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            print(f"{'search':45} {'p50':>7} {'p99':>7} {'max':>7} {'entries':>8}")
            for name, make in kinds(people, places).items():
                if only and only.lower() not in name.lower():
                    continue
                pool = people if name.startswith("Practitioner") else places
                urls = [make(pool[i % len(pool)]) for i in range(count)]
                for warm in urls[:5]:
                    await timed(client, warm)
                times: list[float] = []
                entries = 0
                slow: list[tuple[float, str]] = []
                for one in urls:
                    elapsed, found = await timed(client, one)
                    times.append(elapsed * 1000)
                    slow.append((elapsed * 1000, one))
                    entries += found
                times.sort()
                p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
                print(f"{name:45} {statistics.median(times):7.1f} {p99:7.1f} "
                      f"{times[-1]:7.1f} {entries / len(urls):8.1f}", flush=True)
                for elapsed, one in sorted(slow, reverse=True)[:slowest]:
                    print(f"    {elapsed:7.1f} ms  {one}")
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("--schema", default=None, help="PostgreSQL schema")
    parser.add_argument("--rows", type=int, default=540_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--only", default="", help="kinds whose name contains this")
    parser.add_argument("--slowest", type=int, default=0, help="print the N slowest URLs")
    args = parser.parse_args()
    asyncio.run(measure(args.url, args.schema, args.rows, args.samples, args.seed,
                        args.only, args.slowest))


if __name__ == "__main__":
    main()
