"""What every target promises whatever the input: bounded time and memory.

The fuzzer bounds each input with libFuzzer's ``-timeout`` and ``-rss_limit_mb``; the
replay of the corpus (tests/fuzz) measures each input with ``bounded``: wall time and
the peak of Python allocations (tracemalloc), both allowed a constant plus a multiple
of the input's size. A parser that is quadratic, or that builds a structure hundreds of
times larger than its input, fails there even on a small input.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

BASE_SECONDS = 1.0  # generous: the replay runs on a shared, loaded machine
SECONDS_PER_MB = 20.0
BASE_MEMORY = 8 * 1024 * 1024
MEMORY_PER_OCTET = 64
TRACED_SLOWDOWN = 8


class OracleFailure(AssertionError):
    """An input broke a promise of the parser (not an exception of the parser itself)."""


@dataclass(frozen=True, slots=True)
class Cost:
    seconds: float
    peak: int  # octets allocated at the peak, tracemalloc's count


def time_limit(size: int) -> float:
    return BASE_SECONDS + SECONDS_PER_MB * size / 1_000_000


def memory_limit(size: int) -> int:
    return BASE_MEMORY + MEMORY_PER_OCTET * size


def bounded(check: Callable[[bytes], None], data: bytes) -> Cost:
    """Run ``check(data)``; OracleFailure when it took too long or too much memory."""
    started = tracemalloc.is_tracing()
    if not started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    begin = time.perf_counter()
    try:
        check(data)
    finally:
        seconds = time.perf_counter() - begin
        peak = tracemalloc.get_traced_memory()[1] - before
        if not started:
            tracemalloc.stop()
    # tracemalloc slows allocations down several times: so is the time allowed
    if seconds > TRACED_SLOWDOWN * time_limit(len(data)):
        raise OracleFailure(f"{seconds:.2f} s for {len(data)} octets")
    if peak > memory_limit(len(data)):
        raise OracleFailure(f"{peak} octets allocated for {len(data)} octets of input")
    return Cost(seconds, peak)


def expect(condition: bool, message: str | Callable[[], str]) -> None:
    """An oracle: ``condition`` must hold (kept under ``python -O``, unlike assert).
    ``message`` may be a function, called only on failure, where it costs to build."""
    if not condition:
        raise OracleFailure(message if isinstance(message, str) else message())
