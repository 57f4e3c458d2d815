"""Retention of the outbound queue: finished entries are purged on a schedule.

A delivered or failed queue entry keeps its message body (health data) for the
operator's `queue list` and for DSNs. After ``queue.retention`` seconds it goes, and
so does its body unless a mailbox still holds it (``Store.purge_queue``). Queued
entries are never purged: they leave the queue by delivery, failure or deletion.
The XMSS-DELIVERY identifiers received from other operators go after
``queue.delivery_ids_kept`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from mssante.config import QueueSettings
from mssante.store import Store

log = logging.getLogger(__name__)


class QueueRetention:
    """Purge finished entries every ``purge_interval`` seconds, the first time at once."""

    def __init__(self, store: Store, settings: QueueSettings) -> None:
        self.store = store
        self.retention = settings.retention
        self.interval = settings.purge_interval
        self.delivery_ids_kept = settings.delivery_ids_kept
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def purge_once(self) -> int:
        """Purge what finished more than ``retention`` seconds ago; returns how many."""
        now = time.time()
        forgotten = await self.store.purge_delivery_ids(before=now - self.delivery_ids_kept)
        if forgotten:
            log.info("queue retention: forgot %d XMSS-DELIVERY identifiers older than %g days",
                     forgotten, self.delivery_ids_kept / 86400)
        purged = await self.store.purge_queue(finished_before=now - self.retention)
        if purged:
            log.info("queue retention: purged %d finished entries older than %g days",
                     purged, self.retention / 86400)
        return purged

    async def _run(self) -> None:
        while True:
            try:
                await self.purge_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: try again at the next interval
                log.exception("queue retention: purge failed")
            await asyncio.sleep(self.interval)
