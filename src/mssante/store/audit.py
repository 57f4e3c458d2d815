"""The audit trail in the operator's database: entries appended in the transaction of
the action they record, then sealed into a Merkle tree with signed checkpoints.

- ``append(conn, events)``: in the caller's transaction, so that an action and its
  entry commit together or not at all. An entry has no place in the tree yet.
  ``AdminEntry``: how a repository (store.py, logins.py) writes the entry of an
  administrative change in its transaction, the actor and source being the ones the
  command or page set (``audit.events.ACTOR``, ``acting``).
- ``seal``: the sequencer. One transaction takes the entries without a place (oldest
  first), gives each the next ``seq`` and its leaf hash (RFC 9162 §2.1.1 over
  ``audit.events.canonical``), grows the compact range kept with the last checkpoint
  and stores a new checkpoint signed by the operator's key (audit/checkpoint.py).
  Several processes may seal: on PostgreSQL a transaction-level advisory lock makes
  them take turns; SQLite's write lock already does.
- ``verify``: reads every entry in order and every checkpoint, and names the first
  thing that does not hold: a missing place, an entry whose fields no longer give its
  leaf, a checkpoint whose root the leaves do not give, a signature that fails.
  Changing an entry's fields is caught at that entry; rewriting its leaf as well is
  caught by the first checkpoint after it, which names the range between checkpoints.
- ``purge``: entries older than the retention are exported (JSON lines, with their
  leaf) before their fields are emptied; they keep their place and leaf, so the tree
  and every checkpoint still verify. The purge is itself an entry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from mssante.audit.checkpoint import Checkpoint, CheckpointError, Signer, Verifier
from mssante.audit.events import PURGE, AuditEvent, canonical
from mssante.audit.merkle import CompactRange, leaf_hash
from mssante.store.schema import audit_checkpoints, audit_entries

SEAL_BATCH = 20_000  # entries given a place per checkpoint at most
_ADVISORY_KEY = 0x6D7373616E7465  # "mssante": one sequencer at a time on PostgreSQL
_READ_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int | None
    at: float
    event: AuditEvent
    leaf: bytes | None
    purged: bool

    def as_json(self) -> dict[str, Any]:
        e = self.event
        return {"seq": self.seq, "time": self.at, "action": e.action, "actor": e.actor,
                "mailbox": e.mailbox, "message_id": e.message_id, "source": e.source,
                "detail": e.detail, "purged": self.purged}


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    entries: int  # entries with a place, checked
    checkpoints: int
    pending: int  # entries written and not yet sealed
    problem: str = ""  # the first thing that does not hold


class AdminEntry(Protocol):
    """Writes the entry ``admin.<what>`` in the caller's transaction ``conn`` (nothing
    when the trail is off): ``mailbox`` the one concerned, ``detail`` what changed,
    never a secret."""

    async def __call__(self, conn: AsyncConnection, what: str, *, mailbox: str = "",
                       detail: str = "") -> None: ...


def _row(event: AuditEvent, at: float) -> dict[str, Any]:
    return {"at": at, "action": event.action, "actor": event.actor, "mailbox": event.mailbox,
            "message_id": event.message_id, "source": event.source, "detail": event.detail}


async def append(conn: AsyncConnection, events: Sequence[AuditEvent], *, now: float) -> None:
    if events:
        await conn.execute(insert(audit_entries), [_row(e, now) for e in events])


_INSERT_ENTRIES = insert(audit_entries)


def append_in(conn: Connection, events: Sequence[AuditEvent], *, now: float) -> None:
    """``append`` in a synchronous connection (a grouped write, store/transactions.py)."""
    if events:
        conn.execute(_INSERT_ENTRIES, [_row(e, now) for e in events])


async def append_at(conn: AsyncConnection, events: Sequence[tuple[AuditEvent, float]]) -> None:
    """Entries each with its own time."""
    if events:
        await conn.execute(insert(audit_entries), [_row(e, at) for e, at in events])


def _event(row: Any) -> AuditEvent:
    return AuditEvent(row.action, row.actor, row.mailbox, row.message_id, row.source,
                      row.detail)


def _frontier(text_value: str) -> list[bytes]:
    return [base64.b64decode(h) for h in text_value.split()]


async def _last_checkpoint(conn: AsyncConnection) -> tuple[int, list[bytes]]:
    row = (await conn.execute(select(audit_checkpoints.c.size, audit_checkpoints.c.frontier)
                              .order_by(audit_checkpoints.c.size.desc()).limit(1))).first()
    return (0, []) if row is None else (int(row.size), _frontier(row.frontier))


async def seal(conn: AsyncConnection, signer: Signer, origin: str, *, now: float,
               postgresql: bool, batch: int = SEAL_BATCH) -> str | None:
    """Give the waiting entries their place and sign a checkpoint, in the caller's write
    transaction; the signed checkpoint, or None when nothing waited."""
    if postgresql:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
    rows = (await conn.execute(select(audit_entries).where(audit_entries.c.seq.is_(None))
                               .order_by(audit_entries.c.id).limit(batch))).all()
    if not rows:
        return None
    size, hashes = await _last_checkpoint(conn)
    tree = CompactRange(size, hashes)
    updates = []
    for row in rows:
        leaf = leaf_hash(canonical(tree.size, row.at, _event(row)))
        updates.append({"p_id": row.id, "p_seq": tree.size, "p_leaf": leaf})
        tree.append(leaf)
    await conn.execute(update(audit_entries).where(audit_entries.c.id == bindparam("p_id"))
                       .values(seq=bindparam("p_seq"), leaf=bindparam("p_leaf")), updates)
    note = signer.sign(Checkpoint(origin, tree.size, tree.root()))
    await conn.execute(insert(audit_checkpoints).values(
        size=tree.size, root=tree.root(), note=note, at=now,
        frontier=" ".join(base64.b64encode(h).decode() for h in tree.hashes)))
    return note


async def _sequenced(conn: AsyncConnection, *, up_to: int | None = None
                     ) -> AsyncIterator[Any]:
    last = -1
    while True:
        query = (select(audit_entries).where(audit_entries.c.seq > last)
                 .order_by(audit_entries.c.seq).limit(_READ_CHUNK))
        if up_to is not None:
            query = query.where(audit_entries.c.seq < up_to)
        rows = (await conn.execute(query)).all()
        if not rows:
            return
        for row in rows:
            yield row
        last = int(rows[-1].seq)


async def verify(conn: AsyncConnection, verifier: Verifier, origin: str) -> Verdict:
    checkpoints = (await conn.execute(select(audit_checkpoints)
                                      .order_by(audit_checkpoints.c.size))).all()
    pending = int((await conn.execute(select(func.count()).select_from(audit_entries)
                                      .where(audit_entries.c.seq.is_(None)))).scalar_one())
    tree = CompactRange()
    at_checkpoint = 0
    since = 0  # the first place after the last checkpoint that held

    def checked(problem: str = "") -> Verdict:
        return Verdict(not problem, tree.size, at_checkpoint, pending, problem)

    def check_checkpoint(row: Any) -> str:
        try:
            opened = verifier.open(row.note)
        except CheckpointError as exc:
            return f"checkpoint {row.size}: {exc}"
        if (opened.origin, opened.size, opened.root) != (origin, int(row.size), row.root):
            return (f"checkpoint {row.size}: the signed note does not say what the row "
                    "says (origin, size or root)")
        if tree.root() != opened.root:
            return (f"entries {since} to {int(row.size) - 1}: the log no longer gives the "
                    f"root signed at checkpoint {row.size} (an entry and its leaf were "
                    "rewritten, or an entry was removed)")
        return ""

    async for row in _sequenced(conn):
        seq = int(row.seq)
        if seq != tree.size:
            return checked(f"entry {tree.size} is missing (the next is {seq})")
        if row.leaf is None or len(row.leaf) != 32:
            return checked(f"entry {seq} has no leaf hash")
        if not row.purged and leaf_hash(canonical(seq, row.at, _event(row))) != row.leaf:
            return checked(f"entry {seq} ({row.action} at {row.at}) was altered: its fields "
                           "no longer give its leaf hash")
        tree.append(bytes(row.leaf))
        while at_checkpoint < len(checkpoints) and int(
                checkpoints[at_checkpoint].size) == tree.size:
            problem = check_checkpoint(checkpoints[at_checkpoint])
            if problem:
                return checked(problem)
            at_checkpoint += 1
            since = tree.size
    if at_checkpoint < len(checkpoints):
        row = checkpoints[at_checkpoint]
        return checked(f"checkpoint {row.size} names entries the log does not have (it "
                       f"holds {tree.size}): entries were removed")
    if checkpoints and tree.size > int(checkpoints[-1].size):
        return checked(f"entries {int(checkpoints[-1].size)} to {tree.size - 1} have a "
                       "place but no checkpoint signs them")
    return checked()


async def leaves(conn: AsyncConnection, size: int) -> list[bytes]:
    """The first ``size`` leaf hashes, for proofs."""
    return [bytes(r.leaf) async for r in _sequenced(conn, up_to=size)]


async def checkpoint_at(conn: AsyncConnection, size: int | None = None) -> tuple[int, str] | None:
    """The checkpoint of ``size`` leaves (None: the latest) and its signed note."""
    query = select(audit_checkpoints.c.size, audit_checkpoints.c.note)
    query = (query.where(audit_checkpoints.c.size == size) if size is not None
             else query.order_by(audit_checkpoints.c.size.desc()).limit(1))
    row = (await conn.execute(query)).first()
    return None if row is None else (int(row.size), row.note)


async def entries(conn: AsyncConnection, *, mailbox: str | None = None,
                  since: float | None = None, limit: int = 1000) -> list[Entry]:
    query = select(audit_entries)
    if mailbox is not None:
        query = query.where(audit_entries.c.mailbox == mailbox.lower())
    if since is not None:
        query = query.where(audit_entries.c.at >= since)
    rows = (await conn.execute(query.order_by(audit_entries.c.at, audit_entries.c.id)
                               .limit(limit))).all()
    return [Entry(None if r.seq is None else int(r.seq), float(r.at), _event(r),
                  None if r.leaf is None else bytes(r.leaf), bool(r.purged)) for r in rows]


async def purge(conn: AsyncConnection, *, before: float, export_dir: Path, now: float,
                actor: str) -> tuple[int, Path | None]:
    """Export then empty the sealed entries older than ``before``; the purge is recorded
    as an entry. Returns how many and the export file."""
    rows = (await conn.execute(
        select(audit_entries).where(audit_entries.c.at < before,
                                    audit_entries.c.seq.is_not(None),
                                    audit_entries.c.purged.is_(False))
        .order_by(audit_entries.c.seq))).all()
    if not rows:
        return 0, None
    export_dir.mkdir(parents=True, exist_ok=True)
    first, last = int(rows[0].seq), int(rows[-1].seq)
    path = export_dir / f"audit-{first:012d}-{last:012d}.jsonl"
    digest = hashlib.sha256()
    with open(path, "wb") as out:  # written and on disk before anything is emptied
        for r in rows:
            line = json.dumps({**Entry(int(r.seq), float(r.at), _event(r), None, False)
                               .as_json(), "leaf": bytes(r.leaf).hex()},
                              ensure_ascii=False, sort_keys=True).encode() + b"\n"
            digest.update(line)
            out.write(line)
        out.flush()
        os.fsync(out.fileno())
    ids = [r.id for r in rows]
    for start in range(0, len(ids), 500):
        await conn.execute(update(audit_entries).where(audit_entries.c.id.in_(
            ids[start:start + 500])).values(actor="", mailbox="", message_id="", source="",
                                           detail="", purged=True))
    await append(conn, [AuditEvent(PURGE, actor, detail=(
        f"{len(rows)} entries ({first} to {last}) older than {before:.0f} exported to "
        f"{path.name} sha256={digest.hexdigest()}"))], now=now)
    return len(rows), path
