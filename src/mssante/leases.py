"""Claiming leased rows so that a stop never strands them.

The queue worker and the directory publisher lease rows (``claimed_until``) and give
their claims back when they stop. A stop cancels the task that is claiming; the
claiming transaction may still commit after the cancellation reached the task (the
COMMIT runs in the database driver's thread, or on the server), and rows claimed but
not remembered would then wait for the end of their lease: 15 minutes for the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar


class Leased(Protocol):
    @property
    def id(self) -> int: ...


L = TypeVar("L", bound=Leased)


async def claim(claiming: Coroutine[Any, Any, list[L]], claimed: set[int]) -> list[L]:
    """Run ``claiming`` to its end even when cancelled, and add the ids of what it
    claimed to ``claimed`` (which the caller gives back when it stops)."""
    task = asyncio.ensure_future(claiming)
    try:
        rows = await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():  # a second cancellation must not cut this wait short
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task})
        if not task.cancelled() and task.exception() is None:
            claimed.update(row.id for row in task.result())
        raise
    claimed.update(row.id for row in rows)
    return rows
