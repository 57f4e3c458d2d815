"""The line every benchmark prints first: which machine the figures come from."""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
from pathlib import Path


def machine(*, sqlite: bool = False) -> str:
    """CPU model, cores, memory, OS, Python (and SQLite when it matters)."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    line = (f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")
    return f"{line}, SQLite {sqlite3.sqlite_version}" if sqlite else line


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` and all its descendants, those
    still running and those already reaped (their time is in their parent's cutime
    and cstime, proc(5)): what a service cost the machine, whatever else runs on it."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            stats[int(entry.name)] = fields
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        fields = stats.get(current)
        if fields is not None:  # utime, stime, cutime, cstime: fields 14-17 of stat
            total += sum(int(v) for v in fields[11:15])
        todo.extend(parents.get(current, ()))
    return total / ticks
