"""The directory at run time: the store, the people-search index, the published extract.

The trust space serves it (``trustspace.app``); ``mssante directory search`` uses it
once.

Invariants:

- The search index lives in this process's memory and follows the store: before a
  search, the store's ``state()`` (epoch, last change) is read (one indexed query).
  A new epoch (an import) rebuilds the index; new changes (publications) are applied
  to it one by one. Several trust-space processes sharing one PostgreSQL therefore
  all follow the same content.
- A rebuild runs beside the current index: searches keep using the old one until the
  new one is complete, then it is swapped in. Only the first build is awaited.
- Whatever the index says, the answers are read back from the store (``hits``), which
  drops mailboxes removed since and those on the liste rouge: a stale index can miss
  a new mailbox for one request, it can never reveal a hidden or removed one.
- The published extract is a file written again when the store's state differs from
  the one it was written at, at most once per ``extract_interval`` (60 s: about 12 s
  of work at national scale); a request that finds it stale waits for the rewrite,
  and concurrent requests share it. Each version is a new file named by its digest
  (never rewritten in place, the three newest kept), so that a download reads one
  version from start to end; the ETag is the digest of the content.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mssante.directory.extract import COLUMNS, SEPARATOR, ExtractRow, format_row
from mssante.directory.index import SearchIndex
from mssante.directory.store import DirectoryStore
from mssante.directory.text import normalise
from mssante.files import fsync_dir, private_dir

log = logging.getLogger(__name__)

EXTRACT_STEM = "Extraction_Correspondance_MSSante"
EXTRACT_NAME = f"{EXTRACT_STEM}.txt"
EXTRACT_INTERVAL = 60.0  # seconds: the published extract is at most this much behind
_KEEP_VERSIONS = 3
AUTOCOMPLETE_MAX = 50
STATE_CHECK_INTERVAL = 0.5  # seconds between two reads of the store's state
# Pending changes past which the index is rebuilt beside the current one (rather than
# compacted in place, which would pause the event loop for about a second).
REBUILD_AFTER_CHANGES = 4096
_WRITE_BATCH = 5000


@dataclass(frozen=True)
class Suggestion:
    """One answer of the autocomplete: a mailbox and who or what it belongs to."""

    address: str
    type: str
    name: str  # civility, given name and family name, as the directory writes them
    civility: str
    given_name: str
    family_name: str
    profession: str
    specialty: str
    organisation: str
    service: str
    city: str
    department: str
    score: float

    def as_json(self) -> dict[str, object]:
        return {"address": self.address, "type": self.type, "name": self.name,
                "civility": self.civility, "given_name": self.given_name,
                "family_name": self.family_name,
                "profession": self.profession, "specialty": self.specialty,
                "organisation": self.organisation, "service": self.service,
                "city": self.city, "department": self.department,
                "score": round(self.score, 3)}


def _suggestion(row: ExtractRow, score: float) -> Suggestion:
    name = " ".join(part for part in (row.civility, row.given_name, row.family_name) if part)
    return Suggestion(
        address=row.address, type=row.mailbox_type.value, name=name, civility=row.civility,
        given_name=row.given_name, family_name=row.family_name,
        profession=row.profession_label, specialty=row.skill_label,
        organisation=row.legal_name or row.trade_name, service=row.service,
        city=row.routing_line, department=row.department, score=score)


class DirectoryService:
    """Open with ``await DirectoryService.open(store, extract_dir)``; close the store
    yourself."""

    def __init__(self, store: DirectoryStore, extract_dir: Path, *,
                 extract_interval: float = EXTRACT_INTERVAL) -> None:
        self.store = store
        self.extract_dir = extract_dir
        self._index = SearchIndex()
        self._index.compact_at = 1 << 62
        self._epoch = -1
        self._seq = 0
        self._checked_at = 0.0
        self._rebuild: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self._extract_lock = asyncio.Lock()
        self._extract: tuple[Path, str] | None = None
        self._extract_state: tuple[int, int] | None = None
        self._extract_written = 0.0
        self.extract_interval = extract_interval

    # -- people search --------------------------------------------------------------

    async def autocomplete(self, text: str, limit: int = 10) -> list[Suggestion]:
        """The mailboxes matching ``text`` best first (``SearchIndex.search`` semantics);
        a ``text`` with an ``@`` is the beginning of an address (``address_prefix``)."""
        limit = max(0, min(limit, AUTOCOMPLETE_MAX))
        if limit == 0:
            return []
        if "@" in text:
            return await self.address_prefix(text, limit)
        await self.sync()
        # A few more than asked: some may have left since the index saw them.
        found = self._index.search(text, limit + 5)
        if not found:
            return []
        rows = dict(await self.store.hits([doc_id for doc_id, _ in found]))
        out: list[Suggestion] = []
        for doc_id, score in found:
            row = rows.get(doc_id)
            if row is None:
                continue
            out.append(_suggestion(row, score))
            if len(out) == limit:
                break
        return out

    async def address_prefix(self, text: str, limit: int = 10) -> list[Suggestion]:
        """The mailboxes whose address starts with ``text`` (accents and case folded,
        spaces and control characters dropped), by address, from the store's address
        index: a mail client's recipient field typed up to and past the ``@``, which
        the word index cannot answer (it holds an address's local part, not its
        domain). Score 1 for all."""
        prefix = "".join(c for c in normalise(text) if c.isprintable() and not c.isspace())
        limit = max(0, min(limit, AUTOCOMPLETE_MAX))
        if not prefix or limit == 0:
            return []
        return [_suggestion(row, 1.0) for _, row in await self.store.address_hits(prefix, limit)]

    async def sync(self) -> None:
        """Bring the index up to the store's state (see the module docstring)."""
        now = time.monotonic()
        if self._ready.is_set() and now - self._checked_at < STATE_CHECK_INTERVAL:
            return
        async with self._sync_lock:
            if self._ready.is_set() and time.monotonic() - self._checked_at < STATE_CHECK_INTERVAL:
                return
            epoch, seq = await self.store.state()
            self._checked_at = time.monotonic()
            if epoch != self._epoch:
                self._start_rebuild(epoch)
            elif seq > self._seq:
                await self._apply_changes()
                if self._index.pending > REBUILD_AFTER_CHANGES:
                    self._start_rebuild(epoch)
        if not self._ready.is_set():
            await self._ready.wait()

    def _start_rebuild(self, epoch: int) -> None:
        if self._rebuild is None or self._rebuild.done():
            self._rebuild = asyncio.create_task(self._build(epoch), name="directory-index")

    async def _build(self, epoch: int) -> None:
        started = time.monotonic()
        try:
            _, seq = await self.store.state()
            documents = [doc async for doc in self.store.search_documents()]
            index = await asyncio.to_thread(SearchIndex.build, documents)
            index.compact_at = 1 << 62  # never in place: see REBUILD_AFTER_CHANGES
            del documents
            async with self._sync_lock:
                self._index, self._epoch, self._seq = index, epoch, seq
                await self._apply_changes()  # those made while it was built
        except Exception:
            # The epoch is not recorded: the next search tries again.
            log.exception("the directory's search index could not be built")
            return
        finally:
            self._ready.set()  # the first searches answer (possibly nothing), never hang
        log.info("directory search index: %d mailboxes in %.1f s", len(index),
                 time.monotonic() - started)

    async def _apply_changes(self) -> None:
        """Apply the store's changes after ``_seq``, in order (hold ``_sync_lock``)."""
        for seq, doc_id, search_text, family_key in await self.store.changes_since(self._seq):
            if seq <= self._seq:
                continue
            if search_text is None or family_key is None:
                self._index.remove(doc_id)
            else:
                self._index.upsert(doc_id, search_text, family_key)
            self._seq = max(self._seq, seq)

    def invalidate(self) -> None:
        """Read the store's state at the next search (a change was just made here)."""
        self._checked_at = 0.0

    @property
    def index_size(self) -> int:
        return len(self._index)

    async def close(self) -> None:
        if self._rebuild is not None:
            self._rebuild.cancel()
            await asyncio.gather(self._rebuild, return_exceptions=True)

    # -- the published extract -------------------------------------------------------

    async def current_extract(self) -> tuple[Path, str]:
        """The file of the current public extract, and its ETag (the SHA-256 of its
        content, so that changes to hidden mailboxes alone do not show)."""
        async with self._extract_lock:
            state = await self.store.state()
            now = time.monotonic()
            current = self._extract
            stale = current is None or not current[0].exists() or (
                state != self._extract_state
                and now - self._extract_written >= self.extract_interval)
            if stale:
                self._extract = await self._write_extract()
                self._extract_state, self._extract_written = state, now
            assert self._extract is not None
            return self._extract

    async def _write_extract(self) -> tuple[Path, str]:
        """Stream the public rows to a new temporary file; keep it under a name holding
        its digest unless the content did not change. Files are never rewritten in
        place: a download in progress keeps reading the version it started with."""
        private_dir(self.extract_dir)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{EXTRACT_NAME}.", suffix=".partial",
                                        dir=self.extract_dir)
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        count = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                def write(lines: list[str]) -> None:
                    data = "".join(lines).encode("utf-8")
                    digest.update(data)
                    fh.write(data)

                batch = [SEPARATOR.join(COLUMNS) + "\n"]
                async for row in self.store.export_rows():
                    batch.append(format_row(row) + "\n")
                    if len(batch) == _WRITE_BATCH:
                        await asyncio.to_thread(write, batch)
                        count += len(batch)
                        batch = []
                write(batch)
                count += len(batch) - 1  # the header
                fh.flush()
                await asyncio.to_thread(os.fsync, fh.fileno())
            tag = digest.hexdigest()
            path = self.extract_dir / f"{EXTRACT_STEM}.{tag[:16]}.txt"
            if path.exists():
                tmp.unlink()
            else:
                tmp.replace(path)
                fsync_dir(self.extract_dir)
                log.info("published the directory extract: %d mailboxes", count)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._prune(keep=path)
        return path, f'"{tag}"'

    def _prune(self, keep: Path) -> None:
        """Remove the older versions but the newest few (a download may still read one)."""
        versions = sorted(self.extract_dir.glob(f"{EXTRACT_STEM}.*.txt"),
                          key=lambda p: p.stat().st_mtime, reverse=True)
        for old in [p for p in versions if p != keep][_KEEP_VERSIONS - 1:]:
            old.unlink(missing_ok=True)
