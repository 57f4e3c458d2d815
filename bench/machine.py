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
