"""Group commit: requests arriving while a transaction runs share the next one.

Each commit costs the same whether it carries one message or fifty (round trips,
BEGIN/COMMIT, and on SQLite the fsync of ``synchronous=FULL``), so concurrent
deliveries are committed together. There is no waiting for company: a request
that finds the committer idle starts a batch of one at once.

A batch either succeeds for every request it still holds or fails as a whole;
the function running it reports per-request refusals itself. When it fails as
a whole and held several requests, each is run again alone, so that one bad
request cannot fail the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

RunBatch = Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]]


class GroupCommit(Generic[T, R]):
    """Run ``submit``-ted items in batches through ``run``, one batch at a time."""

    def __init__(self, run: RunBatch[T, R], *, max_items: int = 64,
                 max_weight: int = 16 * 1024 * 1024,
                 weight: Callable[[T], int] = lambda _item: 1) -> None:
        self._run = run
        self._max_items = max_items
        self._max_weight = max_weight
        self._weight = weight
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Run ``item`` in the next batch and return its result (or raise its error).

        Cancelling the caller does not cancel the batch: the item may still be
        committed, as with any transaction cancelled while committing.
        """
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def wait_idle(self) -> None:
        """Wait until every submitted item has been run."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def _next_batch(self) -> list[tuple[T, asyncio.Future[R]]]:
        taken, weight = 0, 0
        for item, _ in self._pending:
            weight += self._weight(item)
            if taken and (taken >= self._max_items or weight > self._max_weight):
                break
            taken += 1
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        return batch

    async def _drain(self) -> None:
        while self._pending:
            batch = self._next_batch()
            try:
                await self._run_batch(batch)
            except BaseException as exc:  # cancelled or worse: nobody is left waiting
                for _, future in batch + self._pending:
                    if future.done():
                        continue
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
                self._pending = []
                raise

    async def _run_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                settle(batch[0][1], exc)
                return
            for one in batch:  # isolate the request that broke the batch
                await self._run_batch([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            settle(future, result)


def settle(future: asyncio.Future[R], result: R | Exception) -> None:
    """Give ``future`` its result or exception, unless its caller was cancelled."""
    if future.done():  # the caller was cancelled
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)
