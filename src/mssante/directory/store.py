"""The directory's storage: the referential, the mailboxes, their publication, the feed
of the people search.

The tables are those of ``schema`` (version 2): professionals and organisations (the
referential), practice roles, and one row per mailbox keeping the 31 values of its
extract row. MSSanté reference, "National directory".

Invariants:

- A mailbox's address (lower case) is its key; its address and type never change
  through a publication. Its ``id`` is allocated as ``max(id) + 1`` under the write
  lock (the column has no sequence); so are the ids of the referential and of the
  roles (an import needs them before writing), and on PostgreSQL their serial
  sequences are then moved past them, for any other writer.
- A mailbox on the liste rouge is stored and counted, and ``get``/``get_mailbox``
  return it, but it is never in ``export_rows``, ``search_documents`` or ``hits``,
  and the change feed gives no text for it.
- ``publisher`` is ``""`` for an imported mailbox, the operator certificate's DN for
  a published one.
- Every writing transaction holds the write lock from its first statement:
  ``BEGIN IMMEDIATE`` on SQLite, a transaction-level advisory lock on PostgreSQL.
  Readers never wait for writers (WAL, MVCC).
- Derived columns, written with the row: ``search_text`` (``search_text``),
  ``family_key`` (``text.spaced`` words of the family name), the referential's
  ``*_norm`` (``text.joined``), ``row_hash`` (``row_hash``), ``updated_at``.

Import (``import_extract``): the national extract becomes the content of the
*imported* mailboxes, in one transaction (readers see the old content or the new
one, never a mix):

- a row whose address is not stored is created; a stored imported mailbox whose 31
  values differ is updated (``row_hash``, a digest of the values, tells without
  reading them back); the same values leave it unchanged;
- a row whose address is held by a *published* mailbox overwrites it and the mailbox
  becomes imported: the national file is authoritative, so the operator's metadata
  (description, responsible, publisher) goes back to the defaults of an imported
  row; it counts as changed. The liste rouge is the exception: an import never lifts
  it (the extract cannot say a mailbox is hidden, it only leaves it out, and an
  older file must not expose a mailbox its operator hid since);
- imported mailboxes absent from the file are removed; published mailboxes absent
  from the file are kept (an operator published them since the extract was made);
  with ``max_removed``, an import that would remove a larger share of the imported
  mailboxes is refused (a truncated file), and the addresses of ``keep`` (the
  caller's rejected lines) are never removed;
- the referential is upserted from the rows: a professional per non-empty
  ``Identification nationale PP``, an organisation per non-empty ``Identification
  Structure`` (when rows disagree on their values the last row wins), a practice role
  per PER or CAB row naming both, and every mailbox is linked to them. Professionals,
  organisations and roles left without a mailbox are kept: they are the referential;
- a duplicate address in the rows raises ValueError and changes nothing;
- the epoch of ``dir_state`` is bumped (the search index is rebuilt) and the change
  rows of earlier epochs are dropped but the last one (the sequence never goes back).

The import keeps in memory, per stored mailbox, its address, id, digest and
publisher, per professional and organisation its key, id and a hash of its values,
and per role a packed pair of ids (a few hundred bytes per row of the file). Writes
go by batches, each written while the next is read: ``executemany`` on SQLite,
``COPY`` on PostgreSQL (updates through a temporary table). The secondary indexes of
a table empty at the start (the non-unique ones on PostgreSQL, its trigram indexes
among them) are dropped and built at the end (one sort instead of random
insertions), inside the transaction. On SQLite the trigram tables are written with
the rows they follow; on PostgreSQL the tables are analysed at the end, in the
transaction. Measured on 2 shared cores with ``generate_rows(540000)``, reading the
file included (a third of it): 38 s on SQLite and 37 s on PostgreSQL for a first
import (30 to 46 s before the trigram tables and indexes: the dropped indexes and the
writes overlapping the reading pay for them), 20 s for the same file again.

Publication (``patch_telecom``): an operator inserts, replaces or deletes the
mailboxes (``telecom``) of a Practitioner (idNatPs) or an Organization (idNatSt), all
or nothing:

- the resource must exist (NotFound); every address's domain must be one of the
  operator's (PolicyViolation naming the address); the type must be one the resource
  holds: PER/CAB a professional, ORG/APP an organisation (Conflict);
- insert of an address held by another resource: Conflict; of an address already on
  this resource: a replace (a retried request is harmless);
- replace: the address must be on this resource, and neither address nor type may
  change (Conflict);
- delete: an absent address is a no-op; an address of another resource is a Conflict;
- the row's 31 values come from the professional (PP columns; structure columns from the
  mailbox's ``organisation`` when given, which must be a place where the referential
  says the professional practises (else Conflict: a publication creates no practice
  role); without one, the mailbox's current structure when it has one, else the
  professional's only practice role if they have exactly one, else empty) or from the
  organisation (structure columns, PP columns empty); service, Dématérialisation, liste
  rouge, description and responsible from the mailbox; ``publisher`` is the operator's
  DN. A value the extract cannot hold (``|`` or a line end) is a Conflict;
- the values are copied when the mailbox is written: a later change of the
  professional or organisation (an import, ``add_practitioner``) shows in a published
  mailbox's row at its next publication (an imported row carries its own values).

Change feed: ``state()`` is ``(epoch, last change seq)``. A consumer builds its index
from ``search_documents()`` after reading ``state()``, then polls: a new epoch means
rebuild; otherwise ``changes_since(seq)`` gives each mailbox touched since, with its
current texts (None when it is gone or on the liste rouge). Applying a change twice
is harmless (the texts are the current ones).

Streams (``export_rows``, ``search_documents``) read one statement through a
server-side cursor by chunks: one snapshot, never the whole table in memory. On a
``:memory:`` SQLite database (a single connection) do not call the store while
iterating.

Schema: no Alembic. ``open_directory`` creates the tables (and the indexes added to
``schema`` since the database was created, dropping those they replace, and
``dir_organisations.trade_norm``, filled, on a database made before it) and records
``SCHEMA_VERSION`` in ``directory_schema_version``, in one transaction under ``BEGIN
IMMEDIATE`` (SQLite) or an advisory lock (PostgreSQL). It also creates, when the
database allows, what substring searches use (``schema``): SQLite's FTS5 trigram
tables, filled from the rows, kept in step by every write of the store
(``_SqliteBulk``, ``_Patch``, ``add_organisation``); PostgreSQL's ``pg_trgm``
extension (in a savepoint: a server without it, or a role not allowed to create it,
leaves the substring searches to scan) and its GIN indexes. A version 1 database
(the flat ``directory_entries`` table) is refused with StoreError: delete it and
import the extract again. A newer version is refused too.

Connections (``open_directory``): SQLite's get a larger page cache and memory-mapped
reads (``_sqlite_reads``), PostgreSQL's plan every statement with its values
(``_postgres_plans``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext, suppress
from dataclasses import astuple, dataclass, field
from operator import attrgetter
from typing import Any

from sqlalchemy import (
    Index,
    Select,
    Table,
    bindparam,
    delete,
    event,
    func,
    insert,
    inspect,
    not_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mssante.database import (
    BEGIN_OPTION,
    POSTGRESQL,
    converted,
    create_engine,
    database_url,
)
from mssante.directory import schema
from mssante.directory.extract import FIELD_NAMES, ExtractRow, directory_address, format_row
from mssante.directory.model import (
    ORGANISATION_TYPES,
    PRACTITIONER_TYPES,
    Mailbox,
    Organisation,
    Practitioner,
    ResourceKind,
    TelecomDelete,
    TelecomOp,
    TelecomReplace,
)
from mssante.directory.text import spaced, words
from mssante.domain.mailboxes import MailboxType
from mssante.errors import Conflict, NotFound, PolicyViolation, StoreError

SCHEMA_VERSION = 2
_ADVISORY_LOCK = 0x6D7373616E7464  # "mssantd": the directory's schema creation
_WRITE_LOCK = 0x6D7373616E7477  # "mssantw": the directory's writers (PostgreSQL)
_CHUNK = 1000  # rows per fetch of a stream, ids per IN (...)
_WORDS_CACHE_SIZE = 1 << 18  # distinct values whose words are remembered
_SQLITE_IMPORT_CACHE = -131072  # KiB of page cache for an import (then restored)
_IMPORT_SWITCH_INTERVAL = 0.0005  # seconds; see _short_switch_interval
_YIELD_EVERY = 32  # rows read between two turns of the event loop during an import
# SQLite's FTS5 trigram tables: (table, source table, the text of a source row in SQL).
_SQLITE_TRIGRAMS = (
    (schema.mailbox_trigrams, schema.mailboxes, "address"),
    (schema.organisation_trigrams, schema.organisations,
     f"name_norm || '{schema.NAMES_SEPARATOR}' || trade_norm"),
)
_TRIGRAM_TOKENIZER = "trigram"  # FTS5's, SQLite 3.34 and later
_TRIGRAM_EXTENSION = "pg_trgm"
# PostgreSQL: GIN (column gin_trgm_ops) indexes, for substring searches.
_TRIGRAM_INDEXES = (
    ("ix_dir_mailboxes_address_trgm", schema.mailboxes.name, "address"),
    ("ix_dir_practitioners_family_trgm", schema.practitioners.name, "family_norm"),
    ("ix_dir_practitioners_given_trgm", schema.practitioners.name, "given_norm"),
    ("ix_dir_organisations_name_trgm", schema.organisations.name, "name_norm"),
    ("ix_dir_organisations_trade_trgm", schema.organisations.name, "trade_norm"),
)
_SQLITE_READ_CACHE = -65536  # KiB of page cache per connection (see _sqlite_reads)
_SQLITE_MMAP = 1 << 30  # bytes of the database file mapped in memory
_ANALYZED = "dir_practitioners, dir_organisations, dir_roles, dir_mailboxes"

mailboxes = schema.mailboxes
practitioners = schema.practitioners
organisations = schema.organisations
roles = schema.roles
changes = schema.changes
state_table = schema.state

_SERIAL_TABLES = (practitioners, organisations, roles)  # their id is a serial on PostgreSQL
_ROW_COLUMNS = tuple(mailboxes.c[name] for name in FIELD_NAMES)
# The value columns of the referential, in the order of the model's fields.
_PRACTITIONER_COLUMNS = tuple(practitioners.c)[1:13]
_ORGANISATION_COLUMNS = tuple(organisations.c)[1:16]
_MAILBOX_COLUMNS = (mailboxes.c.id, *_ROW_COLUMNS, mailboxes.c.description,
                    mailboxes.c.responsible, mailboxes.c.liste_rouge, mailboxes.c.publisher)
_ROW_VALUES = attrgetter(*FIELD_NAMES)
_TYPE, _ADDRESS, _PP_TYPE, _PP_ID, _PP_NAT, _ST_TYPE, _ST_ID = range(7)
_SERVICE, _FAMILY, _GIVEN, _DIGITIZATION = 7, 9, 10, 17
# search_text: family, given, profession, savoir-faire, L6, postal code, department,
# raison sociale, enseigne, service (then the address's local part).
_SEARCHED = (9, 10, 14, 16, 27, 28, 29, 18, 19, 7)
_PRACTITIONER_FIELDS = (_PP_NAT, _PP_TYPE, _PP_ID, *range(8, 17))  # Practitioner's order
_ORGANISATION_FIELDS = (_ST_ID, _ST_TYPE, *range(18, 31))  # Organisation's order
_PRACTITIONER_VALUES = attrgetter(*(FIELD_NAMES[i] for i in _PRACTITIONER_FIELDS))
_ORGANISATION_VALUES = attrgetter(*(FIELD_NAMES[i] for i in _ORGANISATION_FIELDS))
_EMPTY_PRACTITIONER = ("",) * len(_PRACTITIONER_FIELDS)
_EMPTY_ORGANISATION = ("",) * len(_ORGANISATION_FIELDS)

assert FIELD_NAMES[_DIGITIZATION] == "digitization" and FIELD_NAMES[_SERVICE] == "service"
assert [FIELD_NAMES[i] for i in _SEARCHED[:2]] == ["family_name", "given_name"]
assert [c.name for c in mailboxes.c][:32] == ["id", *FIELD_NAMES]
assert [c.name for c in practitioners.c][1:13] == list(Practitioner.__dataclass_fields__)
assert [c.name for c in organisations.c][1:16] == list(Organisation.__dataclass_fields__)

_ASCII_WORD = re.compile(r"[a-z0-9]+")  # text.words on ASCII input (no accent to strip)


@dataclass(frozen=True)
class ImportReport:
    """What an import changed; ``created + changed + unchanged`` rows were read."""

    created: int
    changed: int
    removed: int
    unchanged: int


def _plain_words(value: str) -> tuple[str, ...]:
    """``text.words``; on ASCII (no accent to strip) a regular expression suffices."""
    if value.isascii():
        return tuple(_ASCII_WORD.findall(value.lower()))
    return tuple(words(value))


_words_cache: dict[str, tuple[str, ...]] = {}


def _words(value: str) -> tuple[str, ...]:
    """``text.words`` of a value that repeats (names, labels, cities), remembered."""
    found = _words_cache.get(value)
    if found is None:
        if len(_words_cache) >= _WORDS_CACHE_SIZE:
            _words_cache.clear()
        found = _words_cache[value] = _plain_words(value)
    return found


def _joined(value: str) -> str:
    """``text.joined``, through the cache."""
    return " ".join(_words(value))


def _search_text(values: Sequence[Any]) -> str:
    found: list[str] = []
    for index in _SEARCHED:
        found += _words(values[index])
    found += _plain_words(values[_ADDRESS].partition("@")[0])
    return spaced(dict.fromkeys(found))


def search_text(row: ExtractRow) -> str:
    """The text the people search indexes for ``row``: the distinct normalised words
    (``text.words``) of the family and given names, profession and savoir-faire
    labels, ``L6LIGNEACHEMINEMENT``, postal code, department, raison sociale,
    enseigne, service and the address's local part, in that order, ``text.spaced``."""
    return _search_text(_ROW_VALUES(row))


def _family_key(values: Sequence[Any]) -> str:
    return spaced(_words(values[_FAMILY]))


def _row_hash(values: Sequence[Any]) -> str:
    digitization = "\x1fTrue\x1f" if values[_DIGITIZATION] else "\x1fFalse\x1f"
    flat = ("\x1f".join(values[:_DIGITIZATION]) + digitization
            + "\x1f".join(values[_DIGITIZATION + 1:]))
    return hashlib.blake2b(flat.encode(), digest_size=16).hexdigest()


def row_hash(row: ExtractRow) -> str:
    """A digest of the row's 31 values (``ExtractRow.values``, joined by U+001F)."""
    return _row_hash(_ROW_VALUES(row))


def _mailbox_record(values: Sequence[Any], mailbox_id: int, practitioner_id: int | None,
                    organisation_id: int | None, *, description: str = "",
                    responsible: str = "", liste_rouge: bool = False, publisher: str = "",
                    updated_at: float, digest: str | None = None) -> tuple[Any, ...]:
    """A ``dir_mailboxes`` row, its columns in table order."""
    return (mailbox_id, values[_TYPE].value, *values[1:], practitioner_id, organisation_id,
            description, responsible, liste_rouge, publisher, updated_at,
            _search_text(values), _family_key(values),
            digest if digest is not None else _row_hash(values))


def _practitioner_record(practitioner_id: int, values: Sequence[str]) -> tuple[Any, ...]:
    return (practitioner_id, *values, _joined(values[4]), _joined(values[5]))


def _organisation_record(organisation_id: int, values: Sequence[str]) -> tuple[Any, ...]:
    # Organisation.city: L6 without its leading postal code.
    city = values[11].strip()
    if values[12] and city.startswith(values[12]):
        city = city[len(values[12]):].strip()
    return (organisation_id, *values, _joined(values[2]), _joined(city), _joined(values[3]))


def _columns(table: Table) -> list[str]:
    return [column.name for column in table.c]


_MAILBOX_ADDRESS = _columns(mailboxes).index("address")  # in a dir_mailboxes record
_NAME_NORM = _columns(organisations).index("name_norm")  # in a dir_organisations record
_TRADE_NORM = _columns(organisations).index("trade_norm")


def _organisation_names(record: Sequence[Any]) -> str:
    """The text of an organisation in its trigram table: both normalised names."""
    return f"{record[_NAME_NORM]}{schema.NAMES_SEPARATOR}{record[_TRADE_NORM]}"


_MAILBOX_TYPES = {mailbox_type.value: mailbox_type for mailbox_type in MailboxType}
_set_field = object.__setattr__


def _extract_row(values: Sequence[Any]) -> ExtractRow:
    """An extract row from its stored values. They were checked when written (an
    ``ExtractRow`` is stored, never loose values), so the checks of its constructor are
    not run again: at national scale they are a third of an export's time."""
    row: ExtractRow = object.__new__(ExtractRow)
    for name, value in zip(FIELD_NAMES, values, strict=True):
        _set_field(row, name, value)
    _set_field(row, "mailbox_type", _MAILBOX_TYPES[values[_TYPE]])
    _set_field(row, "digitization", bool(values[_DIGITIZATION]))
    return row


class _Bulk:
    """Batched writes of whole rows (every column, in table order, the id first)."""

    def __init__(self, conn: AsyncConnection, *, trigrams: bool) -> None:
        self.conn = conn
        self.trigrams = trigrams  # SQLite: the trigram tables exist

    async def insert(self, table: Table, records: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    async def update(self, table: Table, records: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    async def prepare(self, empty: list[Table]) -> None:
        """Called before the first write; ``empty`` are the tables without rows."""

    async def remove(self, mailbox_ids: list[int]) -> None:
        """Delete mailboxes (at most ``_CHUNK``)."""
        await _delete_mailboxes(self.conn, mailbox_ids, trigrams=self.trigrams)

    async def finish(self) -> None:
        """Called once every row is written and removed."""

    async def close(self) -> None:
        """Called last, whatever the outcome: give the connection back as it was."""


class _SqliteBulk(_Bulk):
    """``executemany`` of plain SQL: the rows go to the driver as they are. The
    secondary indexes of an empty table are dropped for the import and built at its end
    (sorting once is much faster than inserting at random places), inside the
    transaction: a failed import leaves them as they were. The addresses of new
    mailboxes and organisations go to the trigram tables with each batch: written in
    SQLite's thread while the next batch is read, they add 2 to 3 s to a first
    national import, where filling the addresses' table alone at the end, in one
    statement, added 12 (measured)."""

    def __init__(self, conn: AsyncConnection, *, trigrams: bool) -> None:
        super().__init__(conn, trigrams=trigrams)
        self.dropped: list[Index] = []
        self.cache_size: Any = None  # the connection's page cache before the import

    async def prepare(self, empty: list[Table]) -> None:
        self.cache_size = (await self.conn.exec_driver_sql("PRAGMA cache_size")).scalar()
        await self.conn.exec_driver_sql(f"PRAGMA cache_size = {_SQLITE_IMPORT_CACHE}")
        self.dropped = [index for table in empty for index in table.indexes]
        for index in self.dropped:
            await self.conn.run_sync(index.drop, checkfirst=True)

    async def finish(self) -> None:
        for index in self.dropped:
            await self.conn.run_sync(index.create)

    async def close(self) -> None:
        if self.cache_size is not None:
            # Best effort: a failure here must not hide the import's own error.
            with suppress(SQLAlchemyError):
                await self.conn.exec_driver_sql(f"PRAGMA cache_size = {int(self.cache_size)}")

    async def insert(self, table: Table, records: list[tuple[Any, ...]]) -> None:
        if records:
            names = _columns(table)
            await self.conn.exec_driver_sql(
                f"INSERT INTO {table.name} ({', '.join(names)}) "
                f"VALUES ({', '.join('?' * len(names))})", records)
            await self._trigrams(table, records)

    async def update(self, table: Table, records: list[tuple[Any, ...]]) -> None:
        if records:
            names = _columns(table)
            assignments = ", ".join(f"{name} = ?" for name in names[1:])
            await self.conn.exec_driver_sql(
                f"UPDATE {table.name} SET {assignments} WHERE {names[0]} = ?",
                [(*record[1:], record[0]) for record in records])
            # An updated mailbox keeps its address; an organisation may change names.
            if table is organisations and self.trigrams:
                await self.conn.exec_driver_sql(
                    f"DELETE FROM {schema.organisation_trigrams.name} WHERE rowid = ?",
                    [(record[0],) for record in records])
                await self._trigrams(table, records)

    async def _trigrams(self, table: Table, records: list[tuple[Any, ...]]) -> None:
        """The trigram table rows of new ``records`` of ``table``."""
        if not self.trigrams:
            return
        if table is mailboxes:
            await self.conn.exec_driver_sql(
                f"INSERT INTO {schema.mailbox_trigrams.name} (rowid, address) VALUES (?, ?)",
                [(record[0], record[_MAILBOX_ADDRESS]) for record in records])
        elif table is organisations:
            await self.conn.exec_driver_sql(
                f"INSERT INTO {schema.organisation_trigrams.name} (rowid, names) "
                "VALUES (?, ?)", [(record[0], _organisation_names(record))
                                  for record in records])


class _PostgresBulk(_Bulk):
    """``COPY`` through asyncpg on the transaction's connection; updates copy the rows
    into a temporary table, then ``UPDATE ... FROM`` it. The non-unique indexes of an
    empty table (the trigram index among them) are dropped for the import and built at
    its end, as on SQLite. Last, ``ANALYZE``, in the transaction: the statistics
    become visible with the rows they describe (the planner would otherwise plan the
    first searches on a table it believes empty)."""

    def __init__(self, conn: AsyncConnection, *, trigrams: bool) -> None:
        super().__init__(conn, trigrams=trigrams)
        self.updated: set[str] = set()
        self.dropped: list[str] = []  # CREATE INDEX statements, to run at the end

    async def _copy(self, table_name: str, names: list[str],
                    records: list[tuple[Any, ...]]) -> None:
        raw = await self.conn.get_raw_connection()
        driver: Any = raw.driver_connection  # asyncpg.Connection, in the transaction
        with _driver_errors():
            await driver.copy_records_to_table(table_name, records=records, columns=names)

    async def insert(self, table: Table, records: list[tuple[Any, ...]]) -> None:
        if records:
            await self._copy(table.name, _columns(table), records)

    async def update(self, table: Table, records: list[tuple[Any, ...]]) -> None:
        if not records:
            return
        names = _columns(table)
        scratch = f"update_{table.name}"
        if table.name not in self.updated:
            await self.conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {scratch} ON COMMIT DROP AS "
                f"SELECT * FROM {table.name} WITH NO DATA")
            self.updated.add(table.name)
        await self._copy(scratch, names, records)
        assignments = ", ".join(f"{name} = s.{name}" for name in names[1:])
        await self.conn.exec_driver_sql(
            f"UPDATE {table.name} AS t SET {assignments} FROM {scratch} AS s "
            f"WHERE t.{names[0]} = s.{names[0]}")
        await self.conn.exec_driver_sql(f"TRUNCATE {scratch}")

    async def prepare(self, empty: list[Table]) -> None:
        if not empty:
            return
        found = await self.conn.execute(text(
            "SELECT c.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
            "JOIN pg_class c ON c.oid = x.indexrelid "
            "WHERE NOT x.indisunique AND x.indrelid IN "
            "(SELECT to_regclass(name) FROM unnest(CAST(:tables AS text[])) AS name)"),
            {"tables": [table.name for table in empty]})
        for name, definition in found.all():
            await self.conn.exec_driver_sql(f'DROP INDEX "{name}"')
            self.dropped.append(definition)

    async def finish(self) -> None:
        for table in _SERIAL_TABLES:
            await _sync_sequence(self.conn, table)
        for definition in self.dropped:
            await self.conn.exec_driver_sql(definition)
        await self.conn.exec_driver_sql(f"ANALYZE {_ANALYZED}")


@contextmanager
def _driver_errors() -> Iterator[None]:
    """asyncpg's own errors (raw COPY) as the store's."""
    import asyncpg  # type: ignore[import-untyped]  # the driver of this engine

    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise Conflict(f"the import conflicts with stored data: {exc}") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"database error: {exc}") from exc


@dataclass
class _Batch:
    """The writes of a batch of rows, keyed by idNatPs, idNatSt (the last values win)."""

    new_practitioners: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    new_organisations: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    changed_practitioners: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    changed_organisations: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    new_roles: list[tuple[int, int, int]] = field(default_factory=list)
    new_mailboxes: list[tuple[Any, ...]] = field(default_factory=list)
    changed_mailboxes: list[tuple[Any, ...]] = field(default_factory=list)

    async def write(self, bulk: _Bulk) -> None:
        """The referential first: the mailboxes and roles refer to it."""
        await bulk.insert(practitioners, list(self.new_practitioners.values()))
        await bulk.insert(organisations, list(self.new_organisations.values()))
        await bulk.update(practitioners, list(self.changed_practitioners.values()))
        await bulk.update(organisations, list(self.changed_organisations.values()))
        await bulk.insert(roles, self.new_roles)
        await bulk.insert(mailboxes, self.new_mailboxes)
        await bulk.update(mailboxes, self.changed_mailboxes)


class _Import:
    """One import: what is stored (read first), then the rows, batch by batch."""

    def __init__(self, conn: AsyncConnection, bulk: _Bulk, now: float) -> None:
        self.conn = conn
        self.bulk = bulk
        self.now = now
        # address -> (id, row_hash, publisher) of the stored mailboxes
        self.stored: dict[str, tuple[int, str, str, bool]] = {}
        self.seen: set[str] = set()
        # key -> (id, hash of the values) of the referential, stored or written here
        self.practitioners: dict[str, tuple[int, int]] = {}
        self.organisations: dict[str, tuple[int, int]] = {}
        self.roles: set[int] = set()  # practitioner_id << 32 | organisation_id
        self.next_mailbox = self.next_practitioner = self.next_organisation = 1
        self.next_role = 1
        self.created = self.changed = self.unchanged = 0
        self.batch = _Batch()

    def take(self) -> _Batch:
        """The writes of the rows added since the last call."""
        batch, self.batch = self.batch, _Batch()
        return batch

    async def load(self) -> None:
        conn = self.conn
        stored = await conn.execute(select(mailboxes.c.address, mailboxes.c.id,
                                           mailboxes.c.row_hash, mailboxes.c.publisher,
                                           mailboxes.c.liste_rouge))
        self.stored = {address: (mailbox_id, digest, publisher, bool(hidden))
                       for address, mailbox_id, digest, publisher, hidden in stored}
        found = await conn.execute(select(practitioners.c.id, *_PRACTITIONER_COLUMNS))
        self.practitioners = {values[1]: (values[0], hash(tuple(values[1:])))
                              for values in found}
        found = await conn.execute(select(organisations.c.id, *_ORGANISATION_COLUMNS))
        self.organisations = {values[1]: (values[0], hash(tuple(values[1:])))
                              for values in found}
        pairs = await conn.execute(select(roles.c.practitioner_id, roles.c.organisation_id))
        self.roles = {p << 32 | o for p, o in pairs}
        self.next_mailbox = await _next_id(conn, mailboxes)
        self.next_practitioner = await _next_id(conn, practitioners)
        self.next_organisation = await _next_id(conn, organisations)
        self.next_role = await _next_id(conn, roles)
        empty = [table for table, content in ((mailboxes, self.stored),
                                              (practitioners, self.practitioners),
                                              (organisations, self.organisations),
                                              (roles, self.roles)) if not content]
        await self.bulk.prepare(empty)

    def _practitioner(self, row: ExtractRow) -> int:
        values: tuple[str, ...] = _PRACTITIONER_VALUES(row)
        digest = hash(values)
        key = values[0]
        known = self.practitioners.get(key)
        if known is None:
            practitioner_id = self.next_practitioner
            self.next_practitioner += 1
            self.batch.new_practitioners[key] = _practitioner_record(practitioner_id, values)
        else:
            practitioner_id = known[0]
            if known[1] == digest:
                return practitioner_id
            record = _practitioner_record(practitioner_id, values)
            if key in self.batch.new_practitioners:
                self.batch.new_practitioners[key] = record
            else:
                self.batch.changed_practitioners[key] = record
        self.practitioners[key] = (practitioner_id, digest)
        return practitioner_id

    def _organisation(self, row: ExtractRow) -> int:
        values: tuple[str, ...] = _ORGANISATION_VALUES(row)
        digest = hash(values)
        key = values[0]
        known = self.organisations.get(key)
        if known is None:
            organisation_id = self.next_organisation
            self.next_organisation += 1
            self.batch.new_organisations[key] = _organisation_record(organisation_id, values)
        else:
            organisation_id = known[0]
            if known[1] == digest:
                return organisation_id
            record = _organisation_record(organisation_id, values)
            if key in self.batch.new_organisations:
                self.batch.new_organisations[key] = record
            else:
                self.batch.changed_organisations[key] = record
        self.organisations[key] = (organisation_id, digest)
        return organisation_id

    def add(self, row: ExtractRow) -> None:
        address = row.address
        if address in self.seen:
            raise ValueError(f"duplicate address in the rows: {address}")
        self.seen.add(address)
        practitioner_id = self._practitioner(row) if row.pp_national_id else None
        organisation_id = self._organisation(row) if row.structure_id else None
        if (practitioner_id is not None and organisation_id is not None
                and row.mailbox_type in PRACTITIONER_TYPES):
            pair = practitioner_id << 32 | organisation_id
            if pair not in self.roles:
                self.roles.add(pair)
                self.batch.new_roles.append((self.next_role, practitioner_id, organisation_id))
                self.next_role += 1
        values = _ROW_VALUES(row)
        digest = _row_hash(values)
        before = self.stored.get(address)
        if before is None:
            self.batch.new_mailboxes.append(_mailbox_record(
                values, self.next_mailbox, practitioner_id, organisation_id,
                updated_at=self.now, digest=digest))
            self.next_mailbox += 1
            self.created += 1
        elif before[1] == digest and not before[2]:
            self.unchanged += 1
        else:
            # The liste rouge is the operator's choice, which the extract cannot carry
            # (it never lists hidden mailboxes): an import never lifts it.
            self.batch.changed_mailboxes.append(_mailbox_record(
                values, before[0], practitioner_id, organisation_id, liste_rouge=before[3],
                updated_at=self.now, digest=digest))
            self.changed += 1

    async def finish(self, *, max_removed: float | None = None,
                     keep: Collection[str] = ()) -> ImportReport:
        """Remove the imported mailboxes the rows did not name (but those of ``keep``);
        bump the epoch. More removals than ``max_removed`` (a share of the imported
        mailboxes) raise Conflict: the caller's transaction is then rolled back."""
        conn = self.conn
        imported = [(address, mailbox_id) for address, (mailbox_id, _, publisher, _)
                    in self.stored.items() if not publisher]
        removed = [mailbox_id for address, mailbox_id in imported
                   if address not in self.seen and address not in keep]
        if max_removed is not None and len(removed) > max_removed * len(imported):
            raise Conflict(f"the file would remove {len(removed)} of the {len(imported)} "
                           f"imported mailboxes, more than {max_removed:.0%}: nothing "
                           "imported (a truncated file?)")
        for start in range(0, len(removed), _CHUNK):
            await self.bulk.remove(removed[start:start + _CHUNK])
        await self.bulk.finish()
        epoch = await _epoch(conn) + 1
        await conn.execute(update(state_table).where(state_table.c.id == 1)
                           .values(epoch=epoch))
        last = (await conn.execute(select(func.max(changes.c.seq)))).scalar()
        if last is not None:
            await conn.execute(delete(changes).where(changes.c.seq < last))
        return ImportReport(self.created, self.changed, len(removed), self.unchanged)


_switch_users = 0  # imports running in this process under _short_switch_interval
_switch_saved = 0.0


@contextmanager
def _short_switch_interval() -> Iterator[None]:
    """Lower the interpreter's thread switch interval while a SQLite import runs.

    The driver's thread (aiosqlite) takes the GIL back after each row's step to bind
    the next row; while the event loop's thread parses the next batch, each of those
    requests waits for the switch interval (5 ms by default): measured on 540,000 rows
    on 2 cores, 46 s against 30 s with 0.5 ms. The previous value is restored when the
    last import of the process ends.
    """
    global _switch_users, _switch_saved
    if _switch_users == 0:
        _switch_saved = sys.getswitchinterval()
        sys.setswitchinterval(min(_switch_saved, _IMPORT_SWITCH_INTERVAL))
    _switch_users += 1
    try:
        yield
    finally:
        _switch_users -= 1
        if _switch_users == 0:
            sys.setswitchinterval(_switch_saved)


async def _settle(task: asyncio.Future[None]) -> None:
    """Wait for ``task`` to end (before the transaction does), its outcome consumed."""
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()


async def _delete_mailboxes(conn: AsyncConnection, mailbox_ids: list[int], *,
                            trigrams: bool) -> None:
    """Delete mailboxes by id, and their rows of the trigram table."""
    await conn.execute(delete(mailboxes).where(mailboxes.c.id.in_(mailbox_ids)))
    if trigrams:
        trigram_rowid = schema.mailbox_trigrams.c.rowid
        await conn.execute(delete(schema.mailbox_trigrams).where(
            trigram_rowid.in_(mailbox_ids)))


async def _next_id(conn: AsyncConnection, table: Table) -> int:
    found = (await conn.execute(select(func.max(table.c.id)))).scalar()
    return 1 if found is None else int(found) + 1


async def _epoch(conn: AsyncConnection) -> int:
    return int((await conn.execute(
        select(state_table.c.epoch).where(state_table.c.id == 1))).scalar_one())


def _practitioner_of(values: Sequence[Any]) -> Practitioner:
    return Practitioner(*values)


def _organisation_of(values: Sequence[Any]) -> Organisation:
    return Organisation(*values)


def _mailbox_of(found: Sequence[Any]) -> Mailbox:
    """A mailbox from the ``_MAILBOX_COLUMNS`` of its row."""
    values = found[1:32]
    description, responsible, liste_rouge, publisher = found[32:36]
    return Mailbox(address=values[_ADDRESS], type=MailboxType(values[_TYPE]),
                   practitioner=values[_PP_NAT], organisation=values[_ST_ID],
                   service=values[_SERVICE], description=description,
                   responsible=responsible, liste_rouge=bool(liste_rouge),
                   digitization=bool(values[_DIGITIZATION]), publisher=publisher)


class DirectoryStore:
    """The directory on one database; open it with ``open_directory``."""

    def __init__(self, engine: AsyncEngine, *, trigrams: bool = False) -> None:
        self._engine = engine
        self.dialect: str = engine.dialect.name
        # SQLite: the trigram tables exist (kept in step by the writes).
        self._trigrams = trigrams

    @property
    def engine(self) -> AsyncEngine:
        """The engine, for read queries on the ``schema`` tables (FHIR searches)."""
        return self._engine

    async def close(self) -> None:
        await self._engine.dispose()

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A transaction holding the write lock from its first statement."""
        with converted():
            async with self._engine.connect() as conn:
                conn = await conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                async with conn.begin():
                    if self.dialect == POSTGRESQL:
                        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                           {"key": _WRITE_LOCK})
                    yield conn

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        with converted():
            async with self._engine.connect() as conn:
                yield conn

    async def _stream(self, statement: Select[Any]) -> AsyncIterator[Sequence[Any]]:
        """The rows of one statement, fetched ``_CHUNK`` at a time (server-side cursor)."""
        with converted():
            async with self._engine.connect() as conn:
                result = await conn.stream(statement.execution_options(yield_per=_CHUNK))
                async for partition in result.partitions():
                    for found in partition:
                        yield found

    # Mailboxes ---------------------------------------------------------------

    async def count(self) -> int:
        """The number of mailboxes, liste rouge included."""
        async with self._reading() as conn:
            return int((await conn.execute(
                select(func.count()).select_from(mailboxes))).scalar_one())

    async def get(self, address: str) -> ExtractRow | None:
        """The stored 31 values of a mailbox, liste rouge or not."""
        async with self._reading() as conn:
            found = (await conn.execute(select(*_ROW_COLUMNS).where(
                mailboxes.c.address == address.lower()))).first()
        return None if found is None else _extract_row(found)

    async def get_mailbox(self, address: str) -> Mailbox | None:
        """A mailbox with its publication metadata, liste rouge or not."""
        async with self._reading() as conn:
            found = (await conn.execute(select(*_MAILBOX_COLUMNS).where(
                mailboxes.c.address == address.lower()))).first()
        return None if found is None else _mailbox_of(found)

    async def import_extract(self, rows: Iterable[ExtractRow], *,
                             progress: Callable[[int], None] | None = None,
                             batch: int = 5000, max_removed: float | None = None,
                             keep: Collection[str] = ()) -> ImportReport:
        """Make ``rows`` the content of the imported mailboxes (module docstring,
        "Import"). ``progress`` gets the number of rows read after each batch.

        ``max_removed``: refuse (Conflict, nothing changed) an import that would remove
        more than this share of the imported mailboxes, the mark of a truncated file.
        ``keep``: addresses never removed by this import (those of rejected lines); it
        is read once every row was read, so it may be filled while they are."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        async with self._writing() as conn:
            bulk: _Bulk = (_PostgresBulk(conn, trigrams=False) if self.dialect == POSTGRESQL
                           else _SqliteBulk(conn, trigrams=self._trigrams))
            try:
                with _short_switch_interval() if isinstance(bulk, _SqliteBulk) else nullcontext():
                    return await self._import(conn, bulk, rows, progress, batch,
                                              max_removed, keep)
            finally:
                await bulk.close()

    async def _import(self, conn: AsyncConnection, bulk: _Bulk, rows: Iterable[ExtractRow],
                      progress: Callable[[int], None] | None, batch: int,
                      max_removed: float | None, keep: Collection[str]) -> ImportReport:
        job = _Import(conn, bulk, time.time())
        await job.load()
        # A batch is written while the next one is read: the database works in
        # its own thread (SQLite) or process (PostgreSQL) meanwhile.
        writing: asyncio.Future[None] | None = None
        try:
            processed = 0
            for row in rows:
                job.add(row)
                processed += 1
                if processed % batch == 0:
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(job.take().write(bulk))
                    if progress is not None:
                        progress(processed)
                elif writing is not None and processed % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # the pending write's next statement
            if writing is not None:
                await writing
            await job.take().write(bulk)
        finally:
            if writing is not None:
                await _settle(writing)
        if progress is not None and processed % batch:
            progress(processed)
        return await job.finish(max_removed=max_removed, keep=keep)

    async def export_rows(self) -> AsyncIterator[ExtractRow]:
        """Every mailbox not on the liste rouge, by address (byte order), streamed."""
        statement = (select(*_ROW_COLUMNS).where(not_(mailboxes.c.liste_rouge))
                     .order_by(mailboxes.c.address))
        async for found in self._stream(statement):
            yield _extract_row(found)

    # The referential ----------------------------------------------------------

    async def add_practitioner(self, practitioner: Practitioner) -> None:
        """Create or update a professional (key: idNatPs)."""
        values: tuple[str, ...] = astuple(practitioner)
        async with self._writing() as conn:
            found = (await conn.execute(select(practitioners.c.id).where(
                practitioners.c.id_nat_ps == practitioner.id_nat_ps))).scalar()
            record = dict(zip(_columns(practitioners), _practitioner_record(
                int(found) if found is not None else await _next_id(conn, practitioners),
                values), strict=True))
            await _upsert(conn, practitioners, record, exists=found is not None)

    async def add_organisation(self, organisation: Organisation) -> None:
        """Create or update an organisation (key: idNatSt)."""
        values: tuple[str, ...] = astuple(organisation)
        async with self._writing() as conn:
            found = (await conn.execute(select(organisations.c.id).where(
                organisations.c.id_nat_st == organisation.id_nat_st))).scalar()
            record = dict(zip(_columns(organisations), _organisation_record(
                int(found) if found is not None else await _next_id(conn, organisations),
                values), strict=True))
            await _upsert(conn, organisations, record, exists=found is not None)
            if self._trigrams:
                names = schema.organisation_trigrams
                await conn.execute(delete(names).where(names.c.rowid == record["id"]))
                await conn.execute(insert(names).values(
                    rowid=record["id"], names=_organisation_names(tuple(record.values()))))

    async def add_role(self, id_nat_ps: str, id_nat_st: str) -> None:
        """Record that the professional practises at the organisation (NotFound if
        either is unknown; nothing happens when the role exists)."""
        async with self._writing() as conn:
            practitioner_id = await _practitioner_id(conn, id_nat_ps)
            organisation_id = await _organisation_id(conn, id_nat_st)
            if practitioner_id is None:
                raise NotFound(f"Practitioner/{id_nat_ps} does not exist")
            if organisation_id is None:
                raise NotFound(f"Organization/{id_nat_st} does not exist")
            await _ensure_role(conn, practitioner_id, organisation_id)

    async def get_practitioner(self, id_nat_ps: str) -> Practitioner | None:
        async with self._reading() as conn:
            found = (await conn.execute(select(*_PRACTITIONER_COLUMNS).where(
                practitioners.c.id_nat_ps == id_nat_ps))).first()
        return None if found is None else _practitioner_of(found)

    async def get_organisation(self, id_nat_st: str) -> Organisation | None:
        async with self._reading() as conn:
            found = (await conn.execute(select(*_ORGANISATION_COLUMNS).where(
                organisations.c.id_nat_st == id_nat_st))).first()
        return None if found is None else _organisation_of(found)

    async def organisations_of(self, id_nat_ps: str) -> list[Organisation]:
        """The organisations where the professional practises (their practice roles),
        by idNatSt."""
        statement = (select(*_ORGANISATION_COLUMNS)
                     .select_from(roles.join(organisations,
                                             roles.c.organisation_id == organisations.c.id)
                                  .join(practitioners,
                                        roles.c.practitioner_id == practitioners.c.id))
                     .where(practitioners.c.id_nat_ps == id_nat_ps)
                     .order_by(organisations.c.id_nat_st))
        async with self._reading() as conn:
            found = (await conn.execute(statement)).all()
        return [_organisation_of(row) for row in found]

    # Publication ----------------------------------------------------------------

    async def patch_telecom(self, kind: ResourceKind, resource_id: str,
                            ops: Sequence[TelecomOp], *, publisher: str,
                            allowed_domains: frozenset[str]) -> None:
        """Apply an operator's changes to the mailboxes of one resource, all or nothing
        (module docstring, "Publication")."""
        domains = frozenset(domain.lower() for domain in allowed_domains)
        async with self._writing() as conn:
            patch = _Patch(conn, kind, resource_id, publisher, domains,
                           trigrams=self._trigrams)
            await patch.load()
            for op in ops:
                await patch.apply(op)

    # The people search's feed -----------------------------------------------------

    async def state(self) -> tuple[int, int]:
        """``(epoch, seq of the last change)``; 0 when there was no change."""
        last = select(func.coalesce(func.max(changes.c.seq), 0)).scalar_subquery()
        async with self._reading() as conn:
            epoch, seq = (await conn.execute(
                select(state_table.c.epoch, last).where(state_table.c.id == 1))).one()
        return int(epoch), int(seq)

    async def search_documents(self) -> AsyncIterator[tuple[int, str, str]]:
        """``(id, search_text, family_key)`` of every mailbox not on the liste rouge,
        by id, streamed."""
        statement = (select(mailboxes.c.id, mailboxes.c.search_text, mailboxes.c.family_key)
                     .where(not_(mailboxes.c.liste_rouge)).order_by(mailboxes.c.id))
        async for mailbox_id, indexed, family in self._stream(statement):
            yield mailbox_id, indexed, family

    async def changes_since(self, seq: int) -> list[tuple[int, int, str | None, str | None]]:
        """``(seq, mailbox id, search_text, family_key)`` of each change after ``seq``,
        in order; the texts are the current ones, None when the mailbox is gone or on
        the liste rouge."""
        statement = (select(changes.c.seq, changes.c.mailbox_id, mailboxes.c.search_text,
                            mailboxes.c.family_key, mailboxes.c.liste_rouge)
                     .select_from(changes.outerjoin(
                         mailboxes, mailboxes.c.id == changes.c.mailbox_id))
                     .where(changes.c.seq > seq).order_by(changes.c.seq))
        async with self._reading() as conn:
            found = (await conn.execute(statement)).all()
        return [(change, mailbox_id, None, None) if indexed is None or hidden
                else (change, mailbox_id, indexed, family)
                for change, mailbox_id, indexed, family, hidden in found]

    async def address_hits(self, prefix: str, limit: int) -> list[tuple[int, ExtractRow]]:
        """The first ``limit`` mailboxes, by address, whose address starts with
        ``prefix`` (lower case), not on the liste rouge: one range of the address index
        (``address >= prefix AND address < prefix || U+FFFF``; byte order on both
        engines, addresses being ASCII)."""
        if not prefix or limit < 1:
            return []
        statement = (select(mailboxes.c.id, *_ROW_COLUMNS)
                     .where(mailboxes.c.address >= prefix,
                            mailboxes.c.address < prefix + "\uffff",
                            not_(mailboxes.c.liste_rouge))
                     .order_by(mailboxes.c.address).limit(limit))
        async with self._reading() as conn:
            found = (await conn.execute(statement)).all()
        return [(values[0], _extract_row(values[1:])) for values in found]

    async def hits(self, ids: Sequence[int]) -> list[tuple[int, ExtractRow]]:
        """The rows of those mailbox ids that exist and are not on the liste rouge."""
        wanted = list(dict.fromkeys(ids))
        out: list[tuple[int, ExtractRow]] = []
        async with self._reading() as conn:
            for start in range(0, len(wanted), _CHUNK):
                found = await conn.execute(
                    select(mailboxes.c.id, *_ROW_COLUMNS)
                    .where(mailboxes.c.id.in_(wanted[start:start + _CHUNK]),
                           not_(mailboxes.c.liste_rouge)))
                out.extend((values[0], _extract_row(values[1:])) for values in found)
        return out


async def _upsert(conn: AsyncConnection, table: Table, record: dict[str, Any], *,
                  exists: bool) -> None:
    if exists:
        await conn.execute(update(table).where(table.c.id == record["id"]).values(
            {k: v for k, v in record.items() if k != "id"}))
    else:
        await conn.execute(insert(table).values(record))
        await _sync_sequence(conn, table)


async def _sync_sequence(conn: AsyncConnection, table: Table) -> None:
    """PostgreSQL: ids are chosen here (``max(id) + 1``); move the table's serial
    sequence past them, so that a writer relying on it never collides."""
    if conn.dialect.name == POSTGRESQL and table in _SERIAL_TABLES:
        await conn.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"(SELECT coalesce(max(id), 0) + 1 FROM {table.name}), false)")


async def _practitioner_id(conn: AsyncConnection, id_nat_ps: str) -> int | None:
    found = (await conn.execute(select(practitioners.c.id).where(
        practitioners.c.id_nat_ps == id_nat_ps))).scalar()
    return None if found is None else int(found)


async def _organisation_id(conn: AsyncConnection, id_nat_st: str) -> int | None:
    found = (await conn.execute(select(organisations.c.id).where(
        organisations.c.id_nat_st == id_nat_st))).scalar()
    return None if found is None else int(found)


async def _ensure_role(conn: AsyncConnection, practitioner_id: int,
                       organisation_id: int) -> None:
    exists = (await conn.execute(select(roles.c.id).where(
        roles.c.practitioner_id == practitioner_id,
        roles.c.organisation_id == organisation_id))).first()
    if exists is None:
        await conn.execute(insert(roles).values(
            id=await _next_id(conn, roles), practitioner_id=practitioner_id,
            organisation_id=organisation_id))
        await _sync_sequence(conn, roles)


class _Patch:
    """One ``patch_telecom`` transaction on one resource."""

    def __init__(self, conn: AsyncConnection, kind: ResourceKind, resource_id: str,
                 publisher: str, domains: frozenset[str], *, trigrams: bool) -> None:
        self.conn = conn
        self.trigrams = trigrams
        self.kind = kind
        self.resource_id = resource_id
        self.publisher = publisher
        self.domains = domains
        self.holder_id = 0  # dir_practitioners.id or dir_organisations.id
        self.holder_values: tuple[str, ...] = ()
        self.epoch = 0
        self.now = time.time()

    @property
    def name(self) -> str:
        return f"{self.kind.value}/{self.resource_id}"

    async def load(self) -> None:
        if self.kind is ResourceKind.PRACTITIONER:
            table, key, value_columns = (practitioners, practitioners.c.id_nat_ps,
                                         _PRACTITIONER_COLUMNS)
        else:
            table, key, value_columns = (organisations, organisations.c.id_nat_st,
                                         _ORGANISATION_COLUMNS)
        found = (await self.conn.execute(
            select(table.c.id, *value_columns).where(key == self.resource_id))).first()
        if found is None:
            raise NotFound(f"{self.name} does not exist")
        self.holder_id = int(found[0])
        self.holder_values = tuple(found[1:])
        self.epoch = await _epoch(self.conn)

    def _address(self, address: str) -> str:
        key = directory_address(address)
        if key.rpartition("@")[2] not in self.domains:
            raise PolicyViolation(f"{key}: its domain is not one of this operator's domains")
        return key

    def _ours(self, mailbox_type: str, pp_national_id: str, structure_id: str) -> bool:
        """True when a stored mailbox is held by the patched resource."""
        if self.kind is ResourceKind.PRACTITIONER:
            return mailbox_type in PRACTITIONER_TYPES and pp_national_id == self.resource_id
        return mailbox_type in ORGANISATION_TYPES and structure_id == self.resource_id

    async def _stored(self, address: str) -> Sequence[Any] | None:
        return (await self.conn.execute(
            select(mailboxes.c.id, mailboxes.c.mailbox_type, mailboxes.c.pp_national_id,
                   mailboxes.c.structure_id).where(mailboxes.c.address == address))).first()

    async def apply(self, op: TelecomOp) -> None:
        if isinstance(op, TelecomDelete):
            address = self._address(op.address)
            stored = await self._stored(address)
            if stored is None:
                return
            if not self._ours(stored[1], stored[2], stored[3]):
                raise Conflict(f"{address} is not a mailbox of {self.name}")
            await _delete_mailboxes(self.conn, [int(stored[0])], trigrams=self.trigrams)
            await self._changed(int(stored[0]))
            return
        mailbox = op.mailbox
        if isinstance(op, TelecomReplace):
            address = self._address(op.address)
            if directory_address(mailbox.address) != address:
                raise Conflict(f"{address}: a mailbox's address never changes")
        else:
            address = self._address(mailbox.address)
        if not self.kind.holds(mailbox.type):
            raise Conflict(f"{address}: a {self.kind.value} does not hold "
                           f"{mailbox.type} mailboxes")
        stored = await self._stored(address)
        if stored is not None and not self._ours(stored[1], stored[2], stored[3]):
            raise Conflict(f"{address} is held by another resource than {self.name}")
        if stored is None and isinstance(op, TelecomReplace):
            raise Conflict(f"{address} is not a mailbox of {self.name}")
        if stored is not None and stored[1] != mailbox.type:
            raise Conflict(f"{address}: a mailbox's type never changes "
                           f"({stored[1]}, not {mailbox.type})")
        await self._write(address, mailbox, None if stored is None else int(stored[0]))

    async def _write(self, address: str, mailbox: Mailbox, mailbox_id: int | None) -> None:
        conn = self.conn
        practitioner_id: int | None = None
        organisation_id: int | None = None
        if self.kind is ResourceKind.PRACTITIONER:
            pp_values = self.holder_values
            practitioner_id = self.holder_id
            st_values: tuple[str, ...] = _EMPTY_ORGANISATION
            kept = None if mailbox_id is None else (await conn.execute(
                select(mailboxes.c.organisation_id,
                       *(mailboxes.c[FIELD_NAMES[i]] for i in _ORGANISATION_FIELDS))
                .where(mailboxes.c.id == mailbox_id))).first()
            if mailbox.organisation:
                found = (await conn.execute(
                    select(organisations.c.id, *_ORGANISATION_COLUMNS)
                    .join(roles, roles.c.organisation_id == organisations.c.id)
                    .where(organisations.c.id_nat_st == mailbox.organisation,
                           roles.c.practitioner_id == practitioner_id))).first()
                if found is None:
                    # Only the referential says where a professional practises: a
                    # publication can neither invent a place nor a practice role.
                    raise Conflict(f"{address}: {self.name} has no practice role at the "
                                   f"organisation {mailbox.organisation!r}")
                organisation_id = int(found[0])
                st_values = tuple(found[1:])
            elif kept is not None and (kept[0] is not None or any(kept[1:])):
                # A change that names no organisation keeps the mailbox's own.
                organisation_id = None if kept[0] is None else int(kept[0])
                st_values = tuple(kept[1:])
            else:
                # No structure given: the professional's place of practice when they
                # have exactly one (their only practice role), else none.
                places = (await conn.execute(
                    select(organisations.c.id, *_ORGANISATION_COLUMNS)
                    .join(roles, roles.c.organisation_id == organisations.c.id)
                    .where(roles.c.practitioner_id == practitioner_id).limit(2))).all()
                if len(places) == 1:
                    organisation_id = int(places[0][0])
                    st_values = tuple(places[0][1:])
        else:
            pp_values = _EMPTY_PRACTITIONER
            st_values = self.holder_values
            organisation_id = self.holder_id
        by_field = dict(zip(_PRACTITIONER_FIELDS, pp_values, strict=True))
        by_field.update(zip(_ORGANISATION_FIELDS, st_values, strict=True))
        by_field.update({_TYPE: mailbox.type, _ADDRESS: address, _SERVICE: mailbox.service,
                         _DIGITIZATION: mailbox.digitization})
        row = ExtractRow(*(by_field[i] for i in range(len(FIELD_NAMES))))
        try:
            format_row(row)  # the published extract must be able to hold it
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        new_id = mailbox_id if mailbox_id is not None else await _next_id(conn, mailboxes)
        record = dict(zip(_columns(mailboxes), _mailbox_record(
            _ROW_VALUES(row), new_id, practitioner_id, organisation_id,
            description=mailbox.description, responsible=mailbox.responsible,
            liste_rouge=mailbox.liste_rouge, publisher=self.publisher,
            updated_at=self.now), strict=True))
        await _upsert(conn, mailboxes, record, exists=mailbox_id is not None)
        if mailbox_id is None and self.trigrams:  # an address never changes: new ones only
            await conn.execute(insert(schema.mailbox_trigrams).values(
                rowid=new_id, address=address))
        await self._changed(new_id)

    async def _changed(self, mailbox_id: int) -> None:
        await self.conn.execute(insert(changes).values(mailbox_id=mailbox_id,
                                                       epoch=self.epoch))


async def open_directory(url: str, *, schema: str | None = None) -> DirectoryStore:
    """Open the directory at ``url`` (sqlite or postgresql), creating its schema.

    For PostgreSQL, ``schema`` becomes the search_path (the tables go there).
    """
    engine = create_engine(database_url(url), schema=schema)
    postgres = engine.dialect.name == POSTGRESQL
    event.listen(engine.sync_engine, "connect", _postgres_plans if postgres else _sqlite_reads)
    try:
        with converted():
            async with engine.connect() as conn:
                conn = await conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                async with conn.begin():
                    trigrams = await _create_schema(conn)
    except BaseException:
        await engine.dispose()
        raise
    return DirectoryStore(engine, trigrams=trigrams and not postgres)


def _sqlite_reads(dbapi_connection: Any, _record: Any) -> None:
    """SQLite, each connection of a directory's engine: a page cache of
    ``_SQLITE_READ_CACHE`` KiB and memory-mapped reads of up to ``_SQLITE_MMAP`` bytes
    (the default cache, 2 MiB, holds a small part of what a search reads at national
    scale)."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA cache_size = {_SQLITE_READ_CACHE}")
    cursor.execute(f"PRAGMA mmap_size = {_SQLITE_MMAP}")
    cursor.close()


def _postgres_plans(dbapi_connection: Any, _record: Any) -> None:
    """PostgreSQL, each connection of a directory's engine: plan every statement with
    its values (``plan_cache_mode = force_custom_plan``, servers 12 and later). The
    driver prepares statements and the server would switch, after five executions, to
    a generic plan made without the values; but a search's values change its
    selectivity by orders of magnitude (``family=m`` or ``family=martinez``,
    ``:contains`` patterns), and a plan fit for one is a full walk for the other.
    Outside any transaction, so that the setting holds for the session."""
    async def plan_with_values(driver: Any) -> None:  # asyncpg.Connection
        if driver.get_server_version().major >= 12:
            await driver.execute("SET plan_cache_mode = force_custom_plan")

    dbapi_connection.run_async(plan_with_values)


async def _create_schema(conn: AsyncConnection) -> bool:
    """Create or check the tables (module docstring, "Schema"); True when the
    addresses' trigram table (SQLite) or index (PostgreSQL) exists."""
    postgres = conn.dialect.name == POSTGRESQL
    if postgres:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    await conn.run_sync(schema.metadata.create_all)
    await _add_trade_norm(conn)
    # Indexes added to ``schema`` since the database was created (create_all makes
    # those of new tables only), and those they replace.
    for table in schema.metadata.sorted_tables:
        for index in table.indexes:
            await conn.run_sync(index.create, checkfirst=True)
    for name in schema.REPLACED_INDEXES:
        await conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    version = (await conn.execute(select(func.max(schema.schema_version.c.version)))).scalar()
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(f"the directory's schema is version {version}, newer than this "
                         f"release's {SCHEMA_VERSION}: upgrade mssante")
    if version is not None and version < SCHEMA_VERSION:
        raise StoreError(f"the directory's schema is version {version}, from an earlier "
                         f"release (this one uses {SCHEMA_VERSION}) and is not migrated: "
                         "delete the directory database and import the extract again")
    if version is None:
        await conn.execute(insert(schema.schema_version).values(version=SCHEMA_VERSION))
    if (await conn.execute(select(state_table.c.id))).first() is None:
        await conn.execute(insert(state_table).values(id=1, epoch=0))
    if postgres:
        return await _postgres_trigrams(conn)
    return await _sqlite_trigrams(conn)


async def _add_trade_norm(conn: AsyncConnection) -> None:
    """``dir_organisations.trade_norm`` came after the first version 2 databases: add
    it to them, filled from ``trade_name``."""
    def columns(sync: Connection) -> set[str]:
        return {column["name"] for column in inspect(sync).get_columns(organisations.name)}

    if "trade_norm" in await conn.run_sync(columns):
        return
    collation = ' COLLATE "C"' if conn.dialect.name == POSTGRESQL else ""
    await conn.exec_driver_sql(f"ALTER TABLE {organisations.name} ADD COLUMN trade_norm "
                               f"TEXT{collation} NOT NULL DEFAULT ''")
    named = (await conn.execute(select(organisations.c.id, organisations.c.trade_name)
                                .where(organisations.c.trade_name != ""))).all()
    if named:
        await conn.execute(
            update(organisations).where(organisations.c.id == bindparam("key"))
            .values(trade_norm=bindparam("norm")),
            [{"key": key, "norm": _joined(trade_name)} for key, trade_name in named])


async def _sqlite_trigrams(conn: AsyncConnection) -> bool:
    """Create the trigram tables when missing, filled from their source tables. False
    when this SQLite cannot (no FTS5, or older than 3.34: no trigram tokenizer):
    substring searches then scan."""
    for table, source, content in _SQLITE_TRIGRAMS:
        if (await conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = :name"),
                               {"name": table.name})).first() is not None:
            continue
        column = table.c[1].name
        try:
            async with conn.begin_nested():
                await conn.exec_driver_sql(
                    f"CREATE VIRTUAL TABLE {table.name} USING fts5({column}, "
                    f"tokenize = '{_TRIGRAM_TOKENIZER}', detail = 'none')")
        except SQLAlchemyError:
            return False
        await conn.exec_driver_sql(f"INSERT INTO {table.name} (rowid, {column}) "
                                   f"SELECT id, {content} FROM {source.name}")
    return True


async def _postgres_trigrams(conn: AsyncConnection) -> bool:
    """Create the ``pg_trgm`` extension when missing (in ``public``, where other
    schemas find it and which outlives them, else in the directory's schema) and the
    GIN indexes of ``_TRIGRAM_INDEXES``. False when the extension cannot be created
    (not installed on the server, or not allowed): substring searches then scan."""
    where = await _extension_schema(conn)
    for target in (" SCHEMA public", ""):
        if where is not None:
            break
        with suppress(SQLAlchemyError):
            async with conn.begin_nested():
                await conn.exec_driver_sql(
                    f"CREATE EXTENSION IF NOT EXISTS {_TRIGRAM_EXTENSION}{target}")
            where = await _extension_schema(conn)
    if where is None:
        return False
    quoted = conn.dialect.identifier_preparer.quote_identifier(where)
    for name, table, column in _TRIGRAM_INDEXES:
        await conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
                                   f"USING gin ({column} {quoted}.gin_trgm_ops)")
    return True


async def _extension_schema(conn: AsyncConnection) -> str | None:
    found = (await conn.execute(text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = :name"), {"name": _TRIGRAM_EXTENSION})).scalar()
    return None if found is None else str(found)
