"""The folder cache shared by the sessions of a process (imap/cache.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mssante.domain.mailboxes import MailboxType, PersonKind, Rules
from mssante.imap.cache import FolderCache, apply
from mssante.store import Store, open_store
from mssante.store.models import Folder, FolderChanges

ADDRESS = "alice.martin@ch-xyz.mssante.fr"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path / 'operator.sqlite3'}")
    await store.create_person("dr", PersonKind.HEALTH, "Dr Alice Martin")
    await store.create_mailbox(ADDRESS, MailboxType.PER, rules=Rules(), owner="dr")
    yield store
    await store.close()


def _message(n: int) -> tuple[bytes, str, float]:
    return (b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n), "", time.time())


async def test_sessions_share_one_snapshot_and_leave_no_follower(store: Store) -> None:
    inbox = await store.folders.get(ADDRESS, "INBOX")
    assert inbox is not None
    await store.folders.bulk_append(ADDRESS, "INBOX", [_message(n) for n in range(3)])
    cache = FolderCache(store.folders, poll=False)
    woken: list[str] = []
    first = await cache.open(inbox.id, lambda: woken.append("a"))
    second = await cache.open(inbox.id, lambda: woken.append("b"))
    assert first is second and first is not None and first.uids == [1, 2, 3]

    await store.folders.store_flags(inbox.id, [2], "+", ["\\Seen"])
    assert sorted(woken) == ["a", "b"]
    found = await cache.delta(first)
    assert found is not None
    new, delta = found
    assert new.flags[1] == "\\Seen" and delta.changed == [(2, "\\Seen", new.modseqs[1])]
    assert await cache.current(inbox.id) is new  # one refresh for every follower

    for follower in list(cache._entries[inbox.id].followers):
        cache.close(inbox.id, follower)
    assert cache._entries[inbox.id].followers == set()
    await cache.stop()


def test_apply_removes_expunged_and_appends_new_messages() -> None:
    folder = Folder(1, ADDRESS, "INBOX", None, 7, 4, 5, True)
    from mssante.imap.cache import Snapshot

    old = Snapshot(folder, [1, 2, 3], ["", "\\Seen", ""], [2, 3, 4])
    later = Folder(1, ADDRESS, "INBOX", None, 7, 6, 8, True)
    new, delta = apply(old, FolderChanges(later, [(3, "\\Flagged", 8), (4, "", 6),
                                                  (5, "", 7)], [2, 9]))
    assert new.uids == [1, 3, 4, 5] and new.flags == ["", "\\Flagged", "", ""]
    assert delta.expunged == [2]  # 9 was never seen by this snapshot
    assert [uid for uid, _, _ in delta.changed] == [3, 4, 5]
    assert old.uids == [1, 2, 3]  # snapshots are never changed in place


async def test_sqlite_changes_of_another_process_are_polled(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite has no notification channel: a change written by another process (here a
    second store on the same file, with its own hub) reaches followers by polling."""
    monkeypatch.setattr("mssante.imap.cache.POLL_INTERVAL", 0.05)
    other = await open_store(f"sqlite:///{tmp_path / 'operator.sqlite3'}")
    try:
        inbox = await store.folders.get(ADDRESS, "INBOX")
        assert inbox is not None
        cache = FolderCache(store.folders, poll=True)
        cache.start()
        woken = asyncio.Event()
        snapshot = await cache.open(inbox.id, woken.set)
        assert snapshot is not None and snapshot.uids == []
        await other.folders.bulk_append(ADDRESS, "INBOX", [_message(1)])
        await asyncio.wait_for(woken.wait(), 10)
        current = await cache.current(inbox.id)
        assert current is not None and current.uids == [1]
        await cache.stop()
    finally:
        await other.close()
