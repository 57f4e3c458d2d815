"""Telling open IMAP sessions that a folder changed, in this process and in others.

A notification carries only folder ids: a session that hears of its folder asks
the store what changed since the MODSEQ it knows (``FolderStore.changes``), so a
lost, doubled or late notification costs a query, never a wrong view.

Implementation notes:
- In one process, ``publish`` calls the subscribers of each folder after the
  commit, in the event loop (subscribers only set a flag or an event).
- Across processes sharing PostgreSQL, every transaction that changes a folder
  also runs ``pg_notify('mssante_folders', '<process token>:<ids>')``; PostgreSQL
  delivers it at commit, in commit order. Each process keeps one connection that
  LISTENs and republishes what other processes sent (its own token is skipped:
  those subscribers were called already). If that connection drops, it is opened
  again and every subscriber is called once, since notifications may have been
  missed meanwhile.
- SQLite has no such channel: the processes sharing a database file tell each
  other over Unix datagram sockets (localbus.py), after the commit. ``publish``
  sends there too once ``open_bus`` ran; the receivers keep their periodic check,
  since a datagram can be missed.
- Other kinds of news ride on the same connection, each on its own channel
  (``follow``): the PSC sessions ended (store/sessions.py). Their receivers get the
  payload, or None each time the connection starts listening (what was sent before
  may have been missed: read it again).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mssante.store.localbus import LocalBus

log = logging.getLogger(__name__)

CHANNEL = "mssante_folders"
RECONNECT_DELAY = 1.0  # seconds before listening again after a lost connection

Subscriber = Callable[[], None]
Receiver = Callable[[str | None], None]  # a payload; None: some may have been missed


class ChangeHub:
    """Subscribers by folder id; ``publish`` wakes them."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)  # this process's notifications carry it
        self._subscribers: dict[int, set[Subscriber]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._channels: dict[str, Receiver] = {}  # other channels followed
        self._connection: object | None = None  # asyncpg's, while listening
        self._adding: set[asyncio.Task[None]] = set()
        self._bus: LocalBus | None = None  # SQLite: the other processes' sockets

    def subscribe(self, folder_id: int, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` whenever ``folder_id`` changes; returns the unsubscribe."""
        self._subscribers.setdefault(folder_id, set()).add(subscriber)

        def unsubscribe() -> None:
            subscribers = self._subscribers.get(folder_id)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._subscribers[folder_id]
        return unsubscribe

    def publish(self, folder_ids: Iterable[int]) -> None:
        """After a commit that changed these folders: wake this process's subscribers
        and, on SQLite, tell the other processes (on PostgreSQL the transaction itself
        notified them)."""
        ids = set(folder_ids)
        self._publish_local(ids)
        if self._bus is not None and ids:
            self._bus.send(CHANNEL, self.payload(ids))

    def send(self, channel: str, payload: str) -> None:
        """After a commit: pass ``payload`` to the other processes following ``channel``
        over the SQLite bus (nothing without one: PostgreSQL's transactions notify)."""
        if self._bus is not None:
            self._bus.send(channel, payload)

    @property
    def listening(self) -> bool:
        """Whether news from other processes reaches this one now."""
        return self._bus is not None or self._connection is not None

    def open_bus(self, directory: Path) -> None:
        """Share news with the other processes of a SQLite database (localbus.py)."""
        if self._bus is None:
            bus = LocalBus(directory, self.token, self._bus_received)
            bus.start()
            self._bus = bus

    def _bus_received(self, channel: str, payload: str) -> None:
        if channel == CHANNEL:
            self._received(payload)
            return
        receiver = self._channels.get(channel)
        if receiver is not None:
            receiver(payload)

    def _publish_local(self, folder_ids: Iterable[int]) -> None:
        for folder_id in set(folder_ids):
            for subscriber in list(self._subscribers.get(folder_id, ())):
                subscriber()

    def _publish_all(self) -> None:
        for subscribers in list(self._subscribers.values()):
            for subscriber in list(subscribers):
                subscriber()

    def payload(self, folder_ids: Iterable[int]) -> str:
        return f"{self.token}:{','.join(str(i) for i in sorted(set(folder_ids)))}"

    def _received(self, payload: str) -> None:
        token, _, ids = payload.partition(":")
        if token == self.token:
            return
        try:
            folder_ids = [int(i) for i in ids.split(",") if i]
        except ValueError:
            log.warning("ignored a malformed folder notification %r", payload)
            return
        self._publish_local(folder_ids)

    # ---------------------------------------------------------------- PostgreSQL

    def follow(self, channel: str, receiver: Receiver) -> None:
        """Also pass the payloads other processes send on ``channel`` to ``receiver``
        (from the event loop), once ``listen`` runs (PostgreSQL) or the bus is open
        (SQLite)."""
        self._channels[channel] = receiver
        connection = self._connection
        if connection is not None:  # listening already: add it to the connection
            task = asyncio.get_running_loop().create_task(
                self._add_now(connection, channel, receiver))
            self._adding.add(task)  # held until done (the loop keeps weak references)
            task.add_done_callback(self._adding.discard)

    async def _add_now(self, connection: Any, channel: str, receiver: Receiver) -> None:
        await self._add(connection, channel, receiver)
        receiver(None)  # what was sent before it listened

    @staticmethod
    async def _add(connection: Any, channel: str, receiver: Receiver) -> None:
        try:
            await connection.add_listener(
                channel, lambda _conn, _pid, _channel, payload: receiver(payload))
        except Exception as exc:  # the connection went: the next one listens
            log.warning("cannot listen on %s: %s", channel, exc)

    def listen(self, dsn: str) -> None:
        """Start following the other processes' notifications (PostgreSQL ``dsn``,
        in asyncpg's form: ``postgresql://user@host:port/db``)."""
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen(dsn))

    async def stop(self) -> None:
        if self._bus is not None:
            self._bus.stop()
            self._bus = None
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None

    async def _listen(self, dsn: str) -> None:
        import asyncpg  # type: ignore[import-untyped]  # PostgreSQL's driver, loaded there only

        first = True
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(dsn)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await connection.add_listener(
                    CHANNEL, lambda _conn, _pid, _channel, payload: self._received(payload))
                self._connection = connection
                for channel, receiver in list(self._channels.items()):
                    await self._add(connection, channel, receiver)
                    receiver(None)  # what was sent before this connection listened
                if not first:
                    self._publish_all()  # notifications may have gone by meanwhile
                first = False
                await lost.wait()
                log.warning("lost the folder notification connection; listening again")
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("cannot listen for folder notifications: %s", exc)
            finally:
                self._connection = None
                if connection is not None and not connection.is_closed():
                    await connection.close()
            await asyncio.sleep(RECONNECT_DELAY)
