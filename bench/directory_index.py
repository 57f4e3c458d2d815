"""Directory search index benchmark: build, memory and autocomplete latency.

    python bench/directory_index.py [--documents 540000] [--queries 1000] [--seed 0]
                                    [--changes 2000] [--profile FILE.html]

Generates ``--documents`` realistic extract rows (``generate_rows``), turns them into
index documents as the directory store does (``search_text``: the words of the family
and given names, profession and savoir-faire labels, routing line, postal code,
department, raison sociale, enseigne, service and the address's local part,
deduplicated in order and spaced; ``family_key``: the family name's words), builds a
``SearchIndex`` and reports the build time, ``memory_bytes`` and the growth of the
process's resident set (VmRSS before and after the build, and its peak VmHWM).

Then it times ``search(query, limit=10)`` (the whole call) over a fixed set of
``--queries`` queries drawn from the rows with ``--seed``: family-name prefixes of 2
to 6 letters, whole family names, family + given name (whole or being typed), family
+ city, profession or specialty + city, organisation words, department numbers;
about 15 % of the queries have one letter deleted from a word of 5 letters or more.
The same queries run again after ``--changes`` upserts (half replacing documents,
half new ones) and ``--changes // 4`` removals, which sit in the overlay, and the
table ends with the time of the compaction that folds them into the base.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable

from mssante.directory.extract import ExtractRow
from mssante.directory.generate import generate_rows
from mssante.directory.index import SearchIndex
from mssante.directory.store import search_text
from mssante.directory.text import spaced, words


def document(doc_id: int, row: ExtractRow) -> tuple[int, str, str]:
    """The index document of a row: the store's own search text (``store.search_text``)."""
    return doc_id, search_text(row), spaced(words(row.family_name))


def _city(row: ExtractRow) -> str:
    city = [w for w in words(row.routing_line) if not w.isdigit()]
    return " ".join(city[:2])


def _drop_letter(rng: random.Random, query: str) -> str:
    """The query with one letter deleted from one of its words of 5 letters or more
    (the query unchanged when it has none)."""
    parts = query.split()
    long = [i for i, w in enumerate(parts) if len(w) >= 6]
    if not long:
        return query
    i = rng.choice(long)
    at = rng.randrange(len(parts[i]))
    parts[i] = parts[i][:at] + parts[i][at + 1:]
    return " ".join(parts)


def make_queries(rows: list[ExtractRow], count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` queries ``(kind, text)`` drawn from ``rows`` with ``seed``."""
    rng = random.Random(seed)
    people = [r for r in rows if r.family_name]
    organisations = [r for r in rows if r.legal_name]

    def family_prefix() -> str:
        family = " ".join(words(rng.choice(people).family_name))
        return family[:rng.randint(2, 6)].strip()

    def family() -> str:
        return " ".join(words(rng.choice(people).family_name))

    def family_given() -> str:
        row = rng.choice(people)
        given = " ".join(words(row.given_name))
        if rng.random() < 0.5:
            given = given[:rng.randint(1, max(1, len(given) - 1))]
        return f"{' '.join(words(row.family_name))} {given}"

    def family_city() -> str:
        row = rng.choice(people)
        return f"{' '.join(words(row.family_name))} {_city(row)}"

    def profession_city() -> str:
        row = rng.choice(people)
        label = row.skill_label if row.skill_label and rng.random() < 0.6 \
            else row.profession_label
        chosen = words(label)[:2]
        return f"{' '.join(chosen)} {_city(row)}"

    def organisation() -> str:
        row = rng.choice(organisations)
        chosen = [w for w in words(row.legal_name) if len(w) > 2]
        start = rng.randrange(len(chosen))
        return " ".join(chosen[start:start + rng.randint(1, 3)])

    def department() -> str:
        row = rng.choice(rows)
        return row.department

    kinds: list[tuple[str, Callable[[], str], float]] = [
        ("family prefix", family_prefix, 0.25), ("family", family, 0.15),
        ("family given", family_given, 0.15), ("family city", family_city, 0.12),
        ("profession city", profession_city, 0.13), ("organisation", organisation, 0.12),
        ("department", department, 0.08)]
    weights = [w for _, _, w in kinds]
    queries: list[tuple[str, str]] = []
    while len(queries) < count:
        kind, make, _ = rng.choices(kinds, weights)[0]
        text = make()
        if not text.strip():
            continue
        if rng.random() < 0.15:
            dropped = _drop_letter(rng, text)
            if dropped != text:
                kind, text = kind + " (missing letter)", dropped
        queries.append((kind, text))
    return queries


def _status(field: str) -> int:
    """A /proc/self/status value in bytes (0 when unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> None:
    """Reset VmHWM to the current resident set (Linux; nothing elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


Timing = tuple[str, float, float, int]  # kind, wall ms, CPU ms, hits


def _time(index: SearchIndex, queries: Iterable[tuple[str, str]]) -> list[Timing]:
    """Each query once, in order: the wall time of the whole ``search`` call, and the
    CPU time of this thread during it (the difference is time spent preempted)."""
    timings: list[Timing] = []
    for kind, text in queries:
        cpu = time.thread_time()
        start = time.perf_counter()
        hits = index.search(text, limit=10)
        wall = time.perf_counter() - start
        timings.append((kind, wall * 1000, (time.thread_time() - cpu) * 1000, len(hits)))
    return timings


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(label: str, timings: list[Timing]) -> str:
    wall = [t[1] for t in timings]
    cpu = [t[2] for t in timings]
    found = sum(1 for t in timings if t[3]) / len(timings) * 100
    return (f"| {label} | {len(wall)} | {found:.0f} % | {statistics.median(wall):.2f} | "
            f"{_quantile(wall, 0.99):.2f} | {max(wall):.2f} | {statistics.median(cpu):.2f} | "
            f"{_quantile(cpu, 0.99):.2f} | {max(cpu):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=540_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--profile", help="write a pyinstrument HTML profile of the queries")
    args = parser.parse_args()

    start = time.perf_counter()
    rows = list(generate_rows(args.documents, seed=args.seed))
    documents = [document(i + 1, row) for i, row in enumerate(rows)]
    generated = time.perf_counter() - start
    words_count = sum(len(t.split()) for _, t, _ in documents)
    queries = make_queries(rows, args.queries, args.seed)
    rng = random.Random(args.seed + 1)
    changes = [(rng.randrange(1, len(rows) + 1) if i % 2 else len(rows) + 1 + i,
                *rng.choice(documents)[1:]) for i in range(args.changes)]
    removals = [rng.randrange(1, len(rows) + 1) for _ in range(args.changes // 4)]
    del rows

    gc.collect()
    rss_before = _status("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    index = SearchIndex.build(documents)
    built = time.perf_counter() - start
    rss_after, rss_peak = _status("VmRSS"), _status("VmHWM")
    # Only the index stays, as in a server building it from the store: the generated
    # documents would otherwise weigh on every collection of the cyclic GC.
    del documents
    gc.collect()

    load = os.getloadavg()
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001)
        profiler.start()
        timings = _time(index, queries)
        profiler.stop()
        with open(args.profile, "w", encoding="utf-8") as out:
            out.write(profiler.output_html())
    else:
        timings = _time(index, queries)

    start = time.perf_counter()
    for doc_id, text, family in changes:
        index.upsert(doc_id, text, family)
    for doc_id in removals:
        index.remove(doc_id)
    changed = (time.perf_counter() - start) / (len(changes) + len(removals))
    overlay = _time(index, queries)
    start = time.perf_counter()
    index.compact()
    compacted = time.perf_counter() - start
    label = f"{len(changes)} upserts + {len(removals)} removals"

    print(f"machine: {_machine()}")
    print(f"corpus: {args.documents} generated documents ({generated:.1f} s), "
          f"{words_count} words, seed {args.seed}")
    print(f"build: {built:.2f} s; memory_bytes {index.memory_bytes() / 2**20:.0f} MiB; "
          f"RSS {rss_before / 2**20:.0f} → {rss_after / 2**20:.0f} MiB "
          f"(+{(rss_after - rss_before) / 2**20:.0f} MiB), peak during the build "
          f"{rss_peak / 2**20:.0f} MiB")
    print(f"changes: {label}, {changed * 1e6:.0f} µs each; then compaction "
          f"{compacted:.2f} s")
    print(f"load average before the queries: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print()
    print("| queries | count | with hits | p50 ms | p99 ms | max ms | CPU p50 | CPU p99 "
          "| CPU max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(_row("all", timings))
    print(_row(f"all, with {label} pending", overlay))
    by_kind = Counter(kind for kind, _ in queries)
    for kind in sorted(by_kind):
        print(_row(kind, [t for t in timings if t[0] == kind]))
    print()
    slowest = sorted(zip(queries, timings, strict=True), key=lambda x: -x[1][1])[:8]
    print("slowest (wall, CPU):", ", ".join(f"{text!r} {t[1]:.1f}/{t[2]:.1f} ms"
                                            for (_, text), t in slowest))


if __name__ == "__main__":
    main()
