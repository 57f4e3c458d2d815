"""Whitelist benchmark: parsing the trust space's list and checking peers against it.

    python -m bench.whitelist [--entries 6500] [--repeat 5]

Builds a list of ``--entries`` entries (two per domain, 390 operator certificates:
the shape of the real ANS list), serialises it in the ANS XML format, then times
``from_xml`` (what every operator does at each refresh) and ``Whitelist.allows``
(what every incoming mutual-TLS connection and every delivery does), best and
median of ``--repeat`` runs. There is no peer: other MTAs have no such list.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench.machine import machine
from mssante.whitelist.model import Whitelist, WhitelistEntry
from mssante.whitelist.xmlformat import from_xml, to_xml

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def build(count: int) -> Whitelist:
    entries = tuple(
        WhitelistEntry(f"domaine-{i // 2}.mssante.fr", f"ÉTABLISSEMENT {i}",
                       f"CN=mta{i % 390}.operateur.example,O=Operateur {i % 390},C=FR",
                       updated_at=WHEN)
        for i in range(count))
    return Whitelist(generated_at=WHEN, entries=entries)


def timings(run: Callable[[], object], repeat: int) -> list[float]:
    result = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        result.append(time.perf_counter() - started)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=6500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    data = to_xml(build(args.entries))
    parsed = from_xml(data)
    checks = [(f"DOMAINE-{i // 2}.mssante.fr",
               f"CN=mta{i % 390}.operateur.example,O=Operateur {i % 390},C=FR")
              for i in range(args.entries)]

    def check_all() -> None:
        for domain, dn in checks:
            if not parsed.allows(domain, dn):
                raise AssertionError(f"{domain} {dn} refused")

    parse = timings(lambda: from_xml(data), args.repeat)
    allows = timings(check_all, args.repeat)
    print(f"machine: {machine()}")
    print(f"list: {args.entries:,} entries, {len(parsed.domains):,} domains, "
          f"{len(data) / 1024:,.0f} KiB of XML; {args.repeat} runs")
    print()
    print("| operation | best | median |")
    print("|---|---:|---:|")
    print(f"| from_xml (whole list) | {min(parse) * 1000:.0f} ms "
          f"| {statistics.median(parse) * 1000:.0f} ms |")
    per_check = [t / len(checks) * 1e6 for t in allows]
    print(f"| allows (one domain + DN) | {min(per_check):.2f} µs "
          f"| {statistics.median(per_check):.2f} µs |")


if __name__ == "__main__":
    main()
