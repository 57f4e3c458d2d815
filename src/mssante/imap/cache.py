"""The folders that sessions of this process have selected, shared between them.

A snapshot is the list of a folder's messages (UIDs, flags, MODSEQs, in UID
order) as of one HIGHESTMODSEQ. Sessions hold a reference to a snapshot and
never change it: ten thousand sessions on one folder hold one copy.

Implementation notes:
- A change of the folder (``ChangeHub``) marks the entry stale; the next session
  that asks refreshes it with one ``FolderStore.changes`` query, however many
  sessions follow the folder, and keeps the delta from the previous snapshot so
  that every session one step behind advances without a query of its own. A
  session further behind asks the store for its own delta.
- A folder found deleted stays marked gone, so that every session following it
  hears it (not only the first to ask), and is never refreshed again.
- Refreshes of one folder are serialised by a lock, so that a burst of
  notifications costs one query per change, not one per session.
- On SQLite, other processes do not notify: every ``POLL_INTERVAL`` seconds the
  cache compares each followed folder's HIGHESTMODSEQ with the database and
  wakes its sessions when it moved.
- ``\\Recent`` claims (RFC 3501 §2.3.2) of one folder go through its entry one at a
  time: the process remembers up to which UID everything is claimed, so that the
  sessions a delivery wakes do not each write to the store to learn it.
- An entry lives while a session follows it, and a little longer (``KEEP``
  entries without followers are kept, least recently used out), so that a
  client that selects, unselects and selects again loads nothing.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from mssante.store.folders import FolderStore
from mssante.store.models import Folder, FolderChanges

log = logging.getLogger(__name__)

POLL_INTERVAL = 5.0  # seconds; SQLite only (PostgreSQL notifies)
KEEP = 32  # snapshots kept without followers


@dataclass(frozen=True, slots=True)
class Snapshot:
    folder: Folder  # uidnext and highestmodseq as of this snapshot
    uids: list[int]
    flags: list[str]
    modseqs: list[int]

    def position(self, uid: int) -> int | None:
        """0-based index of ``uid`` (its sequence number minus one), None if absent."""
        i = bisect.bisect_left(self.uids, uid)
        return i if i < len(self.uids) and self.uids[i] == uid else None


@dataclass(frozen=True, slots=True)
class Delta:
    """From one snapshot to the next: UIDs expunged, and messages changed or added
    (UID, flags, MODSEQ; added ones have UIDs above every old one)."""

    before: int  # HIGHESTMODSEQ of the older snapshot
    expunged: list[int]
    changed: list[tuple[int, str, int]]


def apply(old: Snapshot, changes: FolderChanges) -> tuple[Snapshot, Delta]:
    """The snapshot after ``changes``, and the delta (only what concerns ``old``)."""
    gone = {uid for uid in changes.expunged if old.position(uid) is not None}
    uids, flags, modseqs = old.uids, old.flags, old.modseqs
    if gone:
        keep = [i for i, uid in enumerate(uids) if uid not in gone]
        uids = [uids[i] for i in keep]
        flags = [flags[i] for i in keep]
        modseqs = [modseqs[i] for i in keep]
    else:
        uids, flags, modseqs = list(uids), list(flags), list(modseqs)
    changed: list[tuple[int, str, int]] = []
    last = uids[-1] if uids else 0
    for uid, new_flags, modseq in changes.changed:
        if uid in gone:
            continue
        if uid > last:
            uids.append(uid)
            flags.append(new_flags)
            modseqs.append(modseq)
            last = uid
            changed.append((uid, new_flags, modseq))
            continue
        i = bisect.bisect_left(uids, uid)
        if i < len(uids) and uids[i] == uid:
            flags[i] = new_flags
            modseqs[i] = modseq
            changed.append((uid, new_flags, modseq))
        # else: added then expunged, or a UID older than the snapshot's last one that
        # it never had (cannot happen: UIDs are taken in commit order)
    snapshot = Snapshot(changes.folder, uids, flags, modseqs)
    return snapshot, Delta(old.folder.highestmodseq, sorted(gone), changed)


@dataclass
class _Entry:
    snapshot: Snapshot
    delta: Delta | None = None  # from ``previous`` to ``snapshot``
    previous: Snapshot | None = None
    stale: bool = False
    gone: bool = False  # the folder was deleted: every session must hear it
    followers: set[Callable[[], None]] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    unsubscribe: Callable[[], None] | None = None
    claimed: int = 0  # every UID below it is claimed \Recent (by a session of any process)
    claiming: asyncio.Lock = field(default_factory=asyncio.Lock)


class FolderCache:
    """Snapshots by folder id, refreshed on notification."""

    def __init__(self, folders: FolderStore, *, poll: bool) -> None:
        self._folders = folders
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._poller: asyncio.Task[None] | None = None
        self._poll = poll

    def start(self) -> None:
        if self._poll and self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll_loop())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        for entry in self._entries.values():
            if entry.unsubscribe is not None:
                entry.unsubscribe()
        self._entries.clear()

    async def open(self, folder_id: int, follower: Callable[[], None]) -> Snapshot | None:
        """The current snapshot of a folder, following it from now on (``follower`` is
        called when it changes); None if the folder is gone."""
        entry = self._entries.get(folder_id)
        if entry is None:
            state = await self._folders.state(folder_id)
            if state is None:
                return None
            entry = self._entries.get(folder_id)  # another session may have loaded it
            if entry is None:
                entry = _Entry(Snapshot(state.folder, state.uids, state.flags, state.modseqs))
                entry.unsubscribe = self._folders.hub.subscribe(
                    folder_id, lambda: self._changed(folder_id))
                self._entries[folder_id] = entry
        self._entries.move_to_end(folder_id)
        entry.followers.add(follower)
        snapshot = await self.current(folder_id)
        if snapshot is None:
            entry.followers.discard(follower)
        return snapshot

    def close(self, folder_id: int, follower: Callable[[], None]) -> None:
        entry = self._entries.get(folder_id)
        if entry is None:
            return
        entry.followers.discard(follower)
        idle = [fid for fid, e in self._entries.items() if not e.followers]
        for fid in idle[:max(0, len(idle) - KEEP)]:
            dropped = self._entries.pop(fid)
            if dropped.unsubscribe is not None:
                dropped.unsubscribe()

    async def current(self, folder_id: int) -> Snapshot | None:
        """The up-to-date snapshot (refreshed if a change was notified)."""
        entry = self._entries.get(folder_id)
        if entry is None or entry.gone:
            return None
        # a refresh in progress (locked) cleared ``stale`` before its query: wait for
        # it, or this session would take the snapshot the refresh is replacing
        if entry.stale or entry.lock.locked():
            async with entry.lock:
                if entry.stale:
                    entry.stale = False
                    try:
                        changes = await self._folders.changes(
                            folder_id, entry.snapshot.folder.highestmodseq)
                    except BaseException:
                        entry.stale = True
                        raise
                    if changes is None:
                        entry.gone = True
                        for follower in list(entry.followers):
                            follower()
                        return None
                    if changes.folder.highestmodseq != entry.snapshot.folder.highestmodseq:
                        entry.previous = entry.snapshot
                        entry.snapshot, entry.delta = apply(entry.snapshot, changes)
        return None if entry.gone else entry.snapshot

    async def delta(self, old: Snapshot) -> tuple[Snapshot, Delta] | None:
        """The current snapshot of ``old``'s folder and what changed since ``old``;
        None if the folder is gone."""
        folder_id = old.folder.id
        current = await self.current(folder_id)
        if current is None:
            return None
        if current is old:
            return current, Delta(old.folder.highestmodseq, [], [])
        entry = self._entries[folder_id]
        if entry.delta is not None and entry.previous is old and current is entry.snapshot:
            return current, entry.delta
        changes = await self._folders.changes(folder_id, old.folder.highestmodseq)
        if changes is None:
            return None
        # the delta is from ``old`` to ``mine``: the session takes ``mine`` (its own copy
        # only when this session was more than one step behind)
        return apply(old, changes)

    def claimed(self, folder_id: int, known: int) -> int:
        """The first UID of a folder that may not be claimed \\Recent yet, as far as this
        process knows (``known``: the marker a snapshot read)."""
        entry = self._entries.get(folder_id)
        return max(known, entry.claimed if entry is not None else 0)

    async def claim_recent(self, folder_id: int, known: int, upto: int) -> int:
        """Claim \\Recent the UIDs of a folder below ``upto`` (``FolderStore.claim_recent``)
        for one session; returns the first UID it got (``upto`` or more: none). A
        delivery wakes every session that follows the folder: the first claims in
        the store, the others of this process wait for it, then know that nothing is
        left, so a delivery costs one write per process, not one per session."""
        entry = self._entries.get(folder_id)
        if entry is None:
            return await self._folders.claim_recent(folder_id, upto)
        if max(known, entry.claimed) >= upto:
            return upto
        async with entry.claiming:
            if entry.claimed >= upto:
                return upto
            first = await self._folders.claim_recent(folder_id, upto)
            entry.claimed = max(entry.claimed, first, upto)
            return first

    def _changed(self, folder_id: int) -> None:
        entry = self._entries.get(folder_id)
        if entry is None:
            return
        entry.stale = True
        for follower in list(entry.followers):
            follower()

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            for folder_id, entry in list(self._entries.items()):
                if not entry.followers or entry.stale:
                    continue
                try:
                    folder = await self._folders.by_id(folder_id)
                except Exception as exc:  # a database hiccup: try again next round
                    log.warning("cannot poll folder %d: %s", folder_id, exc)
                    continue
                if folder is None or folder.highestmodseq != \
                        entry.snapshot.folder.highestmodseq:
                    self._changed(folder_id)
