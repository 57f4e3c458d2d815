"""The directory's storage: the national extract's rows, and the search for people.

One table ``directory_entries`` holds a row per mailbox (the 31 values of the
extract, keyed by the lower-cased address), plus what the search needs:

- ``search_text``: the words of the searchable values (family and given names,
  profession and savoir-faire labels, ``L6LIGNEACHEMINEMENT``, postal code,
  department, raison sociale, enseigne, service, the address's local part),
  normalised by ``normalise`` (Unicode NFKD, combining marks stripped, lower case,
  split on anything not a letter or digit), joined by single spaces, with a space
  before the first word and after the last, so that ``LIKE '% word%'`` is a word
  prefix match;
- ``family_key``: the family name's words, normalised and spaced the same way;
- ``row_hash``: a digest of the 31 values, to tell a changed row from an unchanged
  one on import without reading the rows back.

Schema: no Alembic (the package data cannot carry migrations yet). ``open_directory``
creates the tables with ``metadata.create_all`` and records ``SCHEMA_VERSION`` in
``directory_schema_version``; a database holding a newer version is refused with
StoreError. A future change of the schema bumps the version and adds its step to
``_migrate``. The creation runs in one transaction, under ``BEGIN IMMEDIATE`` on
SQLite and an advisory lock on PostgreSQL, so that processes opening one database
together create it once.

Engines and indexes:

- SQLite: an FTS5 table ``directory_search`` with the ``trigram`` tokenizer
  (SQLite 3.34+) over ``search_text``, whose rowid is the entry's id; it accelerates
  the ``LIKE`` patterns below. With an older SQLite the same patterns run on
  ``directory_entries`` without an index (correct, slower).
- PostgreSQL: a GIN ``pg_trgm`` index on ``search_text`` (``CREATE EXTENSION IF NOT
  EXISTS pg_trgm``). If the extension cannot be created (no privilege, not
  installed) the table has no such index and the ``LIKE`` patterns scan it: the
  answers are the same, only slower.

Search semantics (``DirectoryStore.search``): the query is normalised like the
index and split into words; characters other than letters and digits only
separate words, so SQL or FTS syntax (``%``, ``_``, quotes, ``*``, ``-``, ``AND``,
``NEAR``) is never interpreted: ``AND`` is the word ``and``. Every word must match
the start of a word of ``search_text``; a word of 5 letters or more may also miss
one letter (``cardilogie`` finds ``cardiologie``, ``upont`` finds ``dupont``),
written as the ``LIKE`` patterns ``'% ' || word[:i] || '_' || word[i:] || '%'``.
A query without any word returns nothing.

Ranking, best first (``SearchHit.score`` carries the first two keys):

1. the number of query words that start a word of the family name (exactly, not
   with a missing letter);
2. then the number of query words equal to a whole word of the family name (an
   exact family-name match above a prefix match);
3. then the shorter ``search_text`` (fewer other words: a more specific entry);
4. then the address, so that the order is stable.

``score = family_prefix_words + family_exact_words / (query_words + 1)``: sorting
on it is sorting on keys 1 then 2.

Import (``DirectoryStore.import_extract``): one transaction for the whole file, so
that readers see the old content or the new one, never a mix; rows are written by
batches (executemany), and the addresses absent from the new rows are removed once
every row was read. The import holds the stored addresses with their ids and hashes
in memory (about 100 bytes a row).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mssante.directory.extract import FIELD_NAMES, ExtractRow
from mssante.errors import StoreError
from mssante.store.engine import (
    BEGIN_OPTION,
    POSTGRESQL,
    SQLITE,
    converted,
    create_engine,
    database_url,
)

SCHEMA_VERSION = 1
FUZZY_MIN_LENGTH = 5  # a word this long may miss one letter
MAX_LIMIT = 1000
_SQLITE_TRIGRAM = (3, 34, 0)  # the FTS5 trigram tokenizer appeared in SQLite 3.34
_ADVISORY_LOCK = 0x6D7373616E7464  # "mssantd": the directory's schema creation
_DELETE_CHUNK = 1000
_WORD = re.compile(r"[a-z0-9]+")

metadata = MetaData()

schema_version = Table(
    "directory_schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

entries = Table(
    "directory_entries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    *(Column(name, Boolean if name == "digitization" else Text, nullable=False,
             unique=name == "address") for name in FIELD_NAMES),
    Column("search_text", Text, nullable=False),
    Column("family_key", Text, nullable=False),
    Column("row_hash", String(32), nullable=False),
)

# The SQLite FTS5 table, as far as queries need it (created by raw DDL, not by
# ``metadata``, which create_all would turn into a plain table).
_FTS = Table("directory_search", MetaData(), Column("rowid", Integer),
             Column("search_text", Text))

_ROW_COLUMNS = tuple(entries.c[name] for name in FIELD_NAMES)


@dataclass(frozen=True)
class ImportReport:
    """What an import changed; ``created + changed + unchanged`` rows were read."""

    created: int
    changed: int
    removed: int
    unchanged: int


@dataclass(frozen=True)
class SearchHit:
    row: ExtractRow
    score: float  # see the module docstring, "Ranking"


def normalise(value: str) -> str:
    """Lower case, accents stripped (NFKD, combining marks dropped)."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def words(value: str) -> list[str]:
    """The normalised words of ``value``: runs of ASCII letters and digits."""
    return _WORD.findall(normalise(value))


def _spaced(items: Iterable[str]) -> str:
    return " " + " ".join(items) + " "


def search_text(row: ExtractRow) -> str:
    """The indexed text of a row (see the module docstring)."""
    local_part = row.address.partition("@")[0]
    values = (row.family_name, row.given_name, row.profession_label, row.skill_label,
              row.routing_line, row.postal_code, row.department, row.legal_name,
              row.trade_name, row.service, local_part)
    seen: dict[str, None] = {}
    for value in values:
        for word in words(value):
            seen.setdefault(word)
    return _spaced(seen)


def row_hash(row: ExtractRow) -> str:
    return hashlib.blake2b("\x1f".join(row.values()).encode(), digest_size=16).hexdigest()


def _record(row: ExtractRow, entry_id: int) -> dict[str, Any]:
    record: dict[str, Any] = {name: getattr(row, name) for name in FIELD_NAMES}
    record["mailbox_type"] = row.mailbox_type.value
    record["id"] = entry_id
    record["search_text"] = search_text(row)
    record["family_key"] = _spaced(words(row.family_name))
    record["row_hash"] = row_hash(row)
    return record


def _row(values: Sequence[Any]) -> ExtractRow:
    return ExtractRow(*values)


def _escape_like(word: str) -> str:
    # Words are [a-z0-9]+ only; nothing to escape. Kept explicit for the reader.
    assert _WORD.fullmatch(word), word
    return word


def _word_patterns(word: str) -> tuple[str, list[str]]:
    """The prefix pattern of a query word and its one-missing-letter patterns."""
    word = _escape_like(word)
    fuzzy: list[str] = []
    if len(word) >= FUZZY_MIN_LENGTH:
        fuzzy = [f"% {word[:i]}_{word[i:]}%" for i in range(len(word))]
    return f"% {word}%", fuzzy


class DirectoryStore:
    """The directory's rows on one database; open it with ``open_directory``."""

    def __init__(self, engine: AsyncEngine, *, fts: bool) -> None:
        self._engine = engine
        self._fts = fts  # SQLite: the directory_search FTS5 table exists
        self.dialect: str = engine.dialect.name

    async def close(self) -> None:
        await self._engine.dispose()

    async def count(self) -> int:
        with converted():
            async with self._engine.connect() as conn:
                return int((await conn.execute(
                    select(func.count()).select_from(entries))).scalar_one())

    async def get(self, address: str) -> ExtractRow | None:
        with converted():
            async with self._engine.connect() as conn:
                found = (await conn.execute(select(*_ROW_COLUMNS).where(
                    entries.c.address == address.lower()))).first()
        return None if found is None else _row(found)

    async def import_extract(self, rows: Iterable[ExtractRow], *,
                             progress: Callable[[int], None] | None = None,
                             batch: int = 5000) -> ImportReport:
        """Make ``rows`` the complete content; see the module docstring, "Import".

        A duplicate address in ``rows`` raises ValueError and changes nothing.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        with converted():
            async with self._engine.connect() as conn:
                conn = await conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                async with conn.begin():
                    return await self._import(conn, rows, progress, batch)

    async def _import(self, conn: AsyncConnection, rows: Iterable[ExtractRow],
                      progress: Callable[[int], None] | None, batch: int) -> ImportReport:
        stored: dict[str, tuple[int, str]] = {
            address: (entry_id, digest) for address, entry_id, digest in
            await conn.execute(select(entries.c.address, entries.c.id, entries.c.row_hash))}
        next_id = int((await conn.execute(
            select(func.coalesce(func.max(entries.c.id), 0)))).scalar_one()) + 1
        seen: set[str] = set()
        created: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        n_created = n_changed = n_unchanged = processed = 0
        for row in rows:
            if row.address in seen:
                raise ValueError(f"duplicate address in the rows: {row.address}")
            seen.add(row.address)
            processed += 1
            before = stored.get(row.address)
            if before is None:
                created.append(_record(row, next_id))
                next_id += 1
            else:
                record = _record(row, before[0])
                if record["row_hash"] == before[1]:
                    n_unchanged += 1
                else:
                    changed.append(record)
            if processed % batch == 0:
                n_created += await self._write(conn, created, changed)
                n_changed += len(changed)
                created, changed = [], []
                if progress is not None:
                    progress(processed)
        n_created += await self._write(conn, created, changed)
        n_changed += len(changed)
        removed = [entry_id for address, (entry_id, _) in stored.items()
                   if address not in seen]
        for start in range(0, len(removed), _DELETE_CHUNK):
            await self._remove(conn, removed[start:start + _DELETE_CHUNK])
        if progress is not None and processed % batch:
            progress(processed)
        return ImportReport(n_created, n_changed, len(removed), n_unchanged)

    async def _write(self, conn: AsyncConnection, created: list[dict[str, Any]],
                     changed: list[dict[str, Any]]) -> int:
        if created:
            await conn.execute(insert(entries), created)
        if changed:
            await conn.execute(
                update(entries).where(entries.c.id == bindparam("entry_id")),
                [{**{k: v for k, v in record.items() if k != "id"},
                  "entry_id": record["id"]} for record in changed])
        if self._fts and (created or changed):
            if changed:
                await conn.execute(text("DELETE FROM directory_search WHERE rowid = :id"),
                                   [{"id": record["id"]} for record in changed])
            await conn.execute(
                text("INSERT INTO directory_search (rowid, search_text) VALUES (:id, :text)"),
                [{"id": record["id"], "text": record["search_text"]}
                 for record in (*created, *changed)])
        return len(created)

    async def _remove(self, conn: AsyncConnection, ids: list[int]) -> None:
        await conn.execute(delete(entries).where(entries.c.id.in_(ids)))
        if self._fts:
            await conn.execute(text("DELETE FROM directory_search WHERE rowid = :id"),
                               [{"id": entry_id} for entry_id in ids])

    async def search(self, text: str, *, limit: int = 20) -> list[SearchHit]:
        """The entries matching every word of ``text``, best first (module docstring).

        Two steps: entries where every word matches as a prefix come first; only when
        they are fewer than ``limit`` are the entries allowing one missing letter
        added after them. The first step uses the index alone; the second is the
        costly one (its patterns scan), and a query that finds enough exact answers
        never pays for it.
        """
        query_words = list(dict.fromkeys(words(text)))
        if not query_words or limit < 1:
            return []
        limit = min(limit, MAX_LIMIT)
        exact = await self._search(query_words, limit, fuzzy=False)
        if len(exact) >= limit or not any(_word_patterns(w)[1] for w in query_words):
            return exact
        seen = {hit.row.address for hit in exact}
        more = await self._search(query_words, limit + len(exact), fuzzy=True)
        return exact + [hit for hit in more if hit.row.address not in seen][:limit - len(exact)]

    async def _search(self, query_words: list[str], limit: int, *,
                      fuzzy: bool) -> list[SearchHit]:
        """One query. The SQLite FTS5 trigram table is given only prefix patterns of two
        letters or more: SQLite 3.40 crashes on a trigram LIKE of fewer than three
        characters combined with another (test_search_short_words_do_not_crash); every
        other condition is evaluated on the entries table itself."""
        use_fts = self._fts and not fuzzy
        matched = entries.join(_FTS, _FTS.c.rowid == entries.c.id) if use_fts else entries
        conditions: list[ColumnElement[bool]] = []
        family_prefix: list[ColumnElement[int]] = []
        family_exact: list[ColumnElement[int]] = []
        for word in query_words:
            prefix, approximate = _word_patterns(word)
            if fuzzy:
                conditions.append(or_(*(entries.c.search_text.like(p)
                                        for p in (prefix, *approximate))))
            elif use_fts and len(word) >= 2:
                conditions.append(_FTS.c.search_text.like(prefix))
            else:
                conditions.append(entries.c.search_text.like(prefix))
            family_prefix.append(case((entries.c.family_key.like(prefix), 1), else_=0))
            family_exact.append(case((entries.c.family_key.like(f"% {word} %"), 1), else_=0))
        score = (sum(family_prefix[1:], family_prefix[0])
                 + sum(family_exact[1:], family_exact[0])
                 / literal(float(len(query_words) + 1))).label("score")
        statement = (select(*_ROW_COLUMNS, score).select_from(matched)
                     .where(and_(*conditions))
                     .order_by(score.desc(), func.length(entries.c.search_text),
                               entries.c.address)
                     .limit(limit))
        with converted():
            async with self._engine.connect() as conn:
                found = (await conn.execute(statement)).all()
        return [SearchHit(_row(values[:-1]), float(values[-1])) for values in found]


async def open_directory(url: str, *, schema: str | None = None) -> DirectoryStore:
    """Open the directory at ``url`` (sqlite or postgresql), creating its schema.

    For PostgreSQL, ``schema`` becomes the search_path (the tables go there).
    """
    engine = create_engine(database_url(url), schema=schema)
    try:
        with converted():
            async with engine.connect() as conn:
                conn = await conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                async with conn.begin():
                    fts = await _create_schema(conn)
    except BaseException:
        await engine.dispose()
        raise
    return DirectoryStore(engine, fts=fts)


async def _create_schema(conn: AsyncConnection) -> bool:
    """Create or check the schema; True when the SQLite FTS5 table is in use."""
    dialect = conn.dialect.name
    if dialect == POSTGRESQL:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    await conn.run_sync(metadata.create_all)
    version = (await conn.execute(select(func.max(schema_version.c.version)))).scalar()
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(f"the directory's schema is version {version}, newer than this "
                         f"release's {SCHEMA_VERSION}: upgrade mssante")
    fts = False
    if dialect == SQLITE:
        fts = await _sqlite_search_index(conn, created=version is None)
    elif version is None:
        await _postgresql_search_index(conn)
    if version is None:
        await conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))
    return fts


async def _sqlite_search_index(conn: AsyncConnection, *, created: bool) -> bool:
    exists = (await conn.execute(text(
        "SELECT 1 FROM sqlite_master WHERE name = 'directory_search'"))).first() is not None
    if exists:
        return True
    sqlite_version = (await conn.execute(text("SELECT sqlite_version()"))).scalar_one()
    if tuple(int(part) for part in str(sqlite_version).split(".")[:3]) < _SQLITE_TRIGRAM:
        return False
    if not created:  # a database created without FTS5 keeps its plain scan
        return False
    await conn.execute(text("CREATE VIRTUAL TABLE directory_search "
                            "USING fts5(search_text, tokenize = 'trigram')"))
    return True


async def _postgresql_search_index(conn: AsyncConnection) -> None:
    nested = await conn.begin_nested()
    try:
        await conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except SQLAlchemyError:  # no privilege or not installed: LIKE without an index
        await nested.rollback()
        return
    await nested.commit()
    extension_schema = (await conn.execute(text(
        "SELECT extnamespace::regnamespace::text FROM pg_extension "
        "WHERE extname = 'pg_trgm'"))).scalar_one()
    await conn.execute(text(
        "CREATE INDEX directory_entries_search_trgm ON directory_entries "
        f"USING gin (search_text {extension_schema}.gin_trgm_ops)"))
