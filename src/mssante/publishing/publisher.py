"""The directory publisher: drains the store's directory outbox into the trust space.

One asyncio task per operator process. Invariants:
- It sends only what the store hands out as claimable (store/outbox.py): per
  address the earliest pending entry, so an address's changes reach the trust
  space in the order they were made; different addresses go concurrently, up to
  ``batch`` at a time.
- An entry leaves the outbox only when the trust space accepted it. An entry
  refused for good stays, failed, with the reason (the OperationOutcome's
  diagnostics), logged as an error; the address's later entries go on. Anything
  else (trust space away, busy, timing out) is retried with the store's capped
  exponential backoff, for as long as it takes.
- Nothing is lost by stopping or crashing: entries live in the database until
  done. A clean ``stop`` gives back the claims of the sends it interrupted (due
  again at once); after a crash they come back when their lease ends. Either way
  an entry may be sent twice, which is harmless (an add of a present address is
  a replace, a delete of an absent one succeeds).
- It wakes when the store signals a new entry (changes made in this process),
  when the next entry is due, and at least every ``poll_interval`` seconds (for
  changes made by another process, e.g. the CLI).
- A database failure is logged and the round tried again after ``poll_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from mssante import leases
from mssante.errors import StoreError
from mssante.publishing.client import DirectoryClient, Verdict
from mssante.store import Store
from mssante.store.models import DirectoryEntry
from mssante.store.outbox import RETRY_FIRST, RETRY_MAX

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 5.0  # seconds between scans for entries written by other processes
MIN_LEASE = 30.0  # seconds an entry is held by the send in progress


class DirectoryPublisher:
    """``start()`` in a running loop, ``await stop()`` at the end; ``wake()`` when an
    entry was written. Owns the client (closed by ``stop``)."""

    def __init__(self, store: Store, client: DirectoryClient, *,
                 poll_interval: float = DEFAULT_POLL_INTERVAL, timeout: float = 10.0,
                 batch: int = 16, retry_first: float = RETRY_FIRST,
                 retry_max: float = RETRY_MAX,
                 clock: Callable[[], float] = time.time) -> None:
        if poll_interval <= 0 or batch < 1:
            raise ValueError("poll_interval must be positive and batch at least 1")
        self.store = store
        self.client = client
        self.poll_interval = poll_interval
        self.lease = max(MIN_LEASE, 3 * timeout)  # longer than any one send
        self.batch = batch
        self.retry_first = retry_first
        self.retry_max = retry_max
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._claimed: set[int] = set()  # entries whose send is in progress

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is not None:
            return
        self.store.on_directory_entry = self.wake
        self._task = asyncio.get_running_loop().create_task(self.run(),
                                                            name="directory-publisher")

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        """Stop sending, give back interrupted claims and close the client."""
        task, self._task = self._task, None
        if self.store.on_directory_entry == self.wake:
            self.store.on_directory_entry = None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._claimed:
            claimed, self._claimed = sorted(self._claimed), set()
            try:
                await self.store.release_directory_claims(claimed, now=self._clock())
            except StoreError as exc:  # they come back when their lease ends
                log.warning("directory publisher: cannot release claims %s: %s", claimed, exc)
        await self.client.aclose()

    async def run(self) -> None:
        """Publish until cancelled."""
        while True:
            self._wakeup.clear()  # a wake() from now on ends the next wait at once
            try:
                if await self.publish_due():
                    continue
                delay = self.poll_interval
                next_due = await self.store.next_directory_due()
                if next_due is not None:
                    delay = min(delay, max(0.0, next_due - self._clock()))
            except StoreError as exc:
                log.warning("directory publisher: %s; trying again in %.0f s", exc,
                            self.poll_interval)
                delay = self.poll_interval
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), delay)

    async def publish_due(self) -> int:
        """Send the entries due now (one round); returns how many were tried."""
        entries = await leases.claim(self.store.claim_directory_entries(
            now=self._clock(), limit=self.batch, lease=self.lease), self._claimed)
        if not entries:
            return 0
        results = await asyncio.gather(*(self._publish(entry) for entry in entries),
                                       return_exceptions=True)
        for entry, result in zip(entries, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, Exception):  # its claim ends with the lease
                log.warning("directory publisher: %s of %s: %s", entry.operation,
                            entry.address, result)
        return len(entries)

    async def _publish(self, entry: DirectoryEntry) -> None:
        outcome = await self.client.send(entry)
        what = f"{entry.operation} of {entry.address} on {entry.resource}/{entry.identifier}"
        if outcome.verdict is Verdict.DONE:
            await self.store.directory_done(entry.id)
            log.info("directory: published %s", what)
        elif outcome.verdict is Verdict.FAILED:
            await self.store.directory_failed(entry.id, error=outcome.reason,
                                              now=self._clock())
            log.error("directory: the trust space refused the %s: %s", what, outcome.reason)
        else:
            when = await self.store.directory_retry(
                entry.id, error=outcome.reason, now=self._clock(), first=self.retry_first,
                cap=self.retry_max)
            level = logging.WARNING if entry.attempts == 0 else logging.INFO
            log.log(level, "directory: %s not sent (%s); attempt %d, next in %.0f s", what,
                    outcome.reason, entry.attempts + 1,
                    0.0 if when is None else when - self._clock())
        self._claimed.discard(entry.id)
