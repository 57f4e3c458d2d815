"""Claiming leased rows so that a stop never strands them.

The queue worker and the directory publisher lease rows (``claimed_until``) and give
their claims back when they stop. A stop cancels the task that is claiming; the
claiming transaction may still commit after the cancellation reached the task (the
COMMIT runs in the database driver's thread, or on the server), and rows claimed but
not remembered would then wait for the end of their lease: 15 minutes for the queue.

A process that dies without stopping gives nothing back: the queue's leases name their
holder, and the holder's heartbeat tells the others when it died (below).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from mssante.store.models import LeaseHolder

log = logging.getLogger(__name__)


class Leased(Protocol):
    @property
    def id(self) -> int: ...


L = TypeVar("L", bound=Leased)


T = TypeVar("T")


async def unstoppable(work: asyncio.Future[T]) -> T:
    """Await ``work`` to its end even when cancelled, then re-raise the cancellation:
    what must not stop half-way (a claim, the outcomes of a delivery)."""
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        while not work.done():  # a second cancellation must not cut this wait short
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({work})
        raise


async def claim(claiming: Coroutine[Any, Any, list[L]], claimed: set[int]) -> list[L]:
    """Run ``claiming`` to its end even when cancelled, and add the ids of what it
    claimed to ``claimed`` (which the caller gives back when it stops)."""
    task = asyncio.ensure_future(claiming)

    def remember(done: asyncio.Future[list[L]]) -> None:
        if not done.cancelled() and done.exception() is None:
            claimed.update(row.id for row in done.result())

    task.add_done_callback(remember)
    return await unstoppable(task)


# ---------------------------------------------------------------- lease holders
#
# A lease names its holder (``queue.claimed_by``), a process that writes its heartbeat
# every HEARTBEAT_SECONDS (``lease_holders``). A holder is dead when its heartbeat is
# older than STALE_AFTER, or at once when it ran on this machine and its process is
# gone; its leases then go back to the queue without waiting for their end. This holds
# on both engines: several workers of one operator claim from one SQLite file too
# (environment/workers.py), and a worker started again after a crash finds its
# predecessor's pid gone and takes its leases back at once.

HEARTBEAT_SECONDS = 5.0
STALE_AFTER = 30.0  # six heartbeats missed


class HolderStore(Protocol):
    async def lease_heartbeat(self, holder: LeaseHolder) -> None: ...
    async def lease_holders(self) -> list[LeaseHolder]: ...
    async def release_holders(self, holder_ids: Sequence[str]) -> int: ...
    async def release_orphan_leases(self) -> int: ...


def new_holder(now: float) -> LeaseHolder:
    """This process, as a holder of leases: host, pid and a random part (a pid is
    reused)."""
    host, pid = socket.gethostname(), os.getpid()
    return LeaseHolder(id=f"{host}/{pid}/{secrets.token_hex(6)}", host=host, pid=pid,
                       started_at=now, heartbeat_at=now)


def is_dead(holder: LeaseHolder, *, now: float) -> bool:
    if holder.heartbeat_at < now - STALE_AFTER:
        return True
    return holder.host == socket.gethostname() and not _running(holder.pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


async def reclaim_dead(store: HolderStore, *, now: float, me: str | None = None) -> int:
    """Give back the leases of the holders known dead; returns how many went back."""
    dead = [h.id for h in await store.lease_holders() if h.id != me and is_dead(h, now=now)]
    return await store.release_holders(dead)


class Heartbeat:
    """This process's heartbeat, and the reclaim of dead holders' leases on each beat.

    ``start`` registers the holder and reclaims at once the leases of dead holders and
    those no holder holds; ``on_reclaimed`` is called when leases went back. ``stop``
    forgets the holder, once its claims are given back.
    """

    def __init__(self, store: HolderStore, *, on_reclaimed: Callable[[], None]) -> None:
        self.store = store
        self.holder = new_holder(time.time())
        self.on_reclaimed = on_reclaimed
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        await self.store.lease_heartbeat(self.holder)
        released = await reclaim_dead(self.store, now=time.time(), me=self.holder.id)
        released += await self.store.release_orphan_leases()
        if released:
            log.info("%d queue leases of a stopped process taken back", released)
        self._task = asyncio.get_running_loop().create_task(self._run())
        return released

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.store.release_holders([self.holder.id])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                now = time.time()
                self.holder = dataclasses.replace(self.holder, heartbeat_at=now)
                await self.store.lease_heartbeat(self.holder)
                if await reclaim_dead(self.store, now=now, me=self.holder.id):
                    self.on_reclaimed()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: beat again next time
                log.exception("queue lease heartbeat failed")
