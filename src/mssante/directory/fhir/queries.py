"""SQL of the FHIR API on the tables of ``directory.schema``: reads, searches, the
identifier resolution of conditional patches. SQLAlchemy Core, SQLite and PostgreSQL.

Invariants:

- Liste rouge: every telecom fetched and every mailbox predicate carries
  ``NOT liste_rouge``; a hidden mailbox is never rendered and never matches.
- Which mailboxes a resource shows: PER and CAB of the professional (Practitioner),
  those of them at the role's organisation (PractitionerRole), ORG and APP of the
  organisation (Organization). Mailbox predicates use the same rules.
- Paging is by key, never by OFFSET: a search is ordered by the integer primary key
  of its table (``dir_practitioners``, ``dir_organisations``, ``dir_roles``); a page
  holds the first ``count`` matches after the cursor (the last key of the previous
  page), and one more tells whether a next page exists. A deep page costs what the
  first does, and following the ``next`` links visits every match once, even while
  the directory changes (a row added behind the cursor is simply not seen).
- Strings (FHIR R4 search.html#string): the value is normalised with ``text.joined``
  (lower case, no accents, words separated by one space) and compared with the
  ``*_norm`` columns, which hold the same form. Starts-with is a range
  ``norm >= v AND norm < v || U+FFFF`` on a byte-ordered indexed column; ``:exact``
  is ``norm = v`` (indexed) and the stored value equal to the value as written (FHIR:
  exact is case- and accent-sensitive); ``:contains`` is a substring test
  (``Contains``) and scans. An Organization's ``name`` is its raison sociale
  (``name_norm``) or its enseigne (``trade_norm``). Mailbox addresses are stored in
  lower case: the value is lower-cased (accents stripped) and compared with the
  address the same three ways; ``:contains`` goes through the trigram table (SQLite)
  or index (PostgreSQL) when the database has it, see ``_address``.
- ``total`` is exact up to ``TOTAL_LIMIT`` matches and omitted beyond (Bundle.total
  is optional, FHIR R4 bundle.html), so that counting never reads more than
  ``TOTAL_LIMIT + 1`` matches; a search that only ``mailbox-mss-type`` restricts is
  counted only when its first page is not full (``search``).
- Criteria on another table (mailboxes; for a PractitionerRole, the professional
  or the organisation) are resolved first into the keys they select when those
  are few, so that the search itself filters on a list of keys (``_in``).
- No N+1: the page's rows, then the telecoms of the whole page in one query, then
  one query per included type.
- PostgreSQL plans each statement with its values (the directory's engine sets
  ``plan_cache_mode``, ``store._postgres_plans``) on statistics taken by each import;
  SQLite, which has no statistics, walks a dense search in key order (``search``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    FromClause,
    Integer,
    Select,
    and_,
    any_,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from mssante.directory import schema
from mssante.directory.fhir.outcome import bad_request
from mssante.directory.fhir.params import (
    ORGANIZATION,
    PRACTITIONER,
    PRACTITIONER_ROLE,
    Criterion,
    ReferenceCriterion,
    Search,
    StringCriterion,
    Token,
    TokenCriterion,
)
from mssante.directory.fhir.resources import (
    MAILBOX_TYPE_SYSTEMS,
    OrganisationView,
    PractitionerView,
    RoleView,
    View,
)
from mssante.directory.model import (
    ADELI_SYSTEM,
    FINESS_SYSTEM,
    ID_NAT_PS_SYSTEM,
    ID_NAT_ST_SYSTEM,
    ORGANISATION_TYPES,
    PRACTITIONER_TYPES,
    RPPS_SYSTEM,
    SIRET_SYSTEM,
    Mailbox,
    Organisation,
    Practitioner,
)
from mssante.directory.text import joined, normalise
from mssante.domain.mailboxes import MailboxType

TOTAL_LIMIT = 1000
DENSE_LIMIT = 10000  # mailboxes a dense criterion may read whole (_mailbox_criterion)
DENSE_LIMIT_PG = 2000  # the same on PostgreSQL (its probes are cheaper)
TRIGRAM_DENSE = 5000  # the same through SQLite's trigram table (_trigram_address)
_AFTER = "\uffff"  # after every character of a *_norm column ([a-z0-9 ])

P = schema.practitioners
O = schema.organisations  # noqa: E741 - the organisations table, as P and R
R = schema.roles
M = schema.mailboxes
T = schema.mailbox_trigrams
OT = schema.organisation_trigrams
_R = R.alias("holder_roles")
_TRIGRAM_TABLES: WeakKeyDictionary[Engine, bool] = WeakKeyDictionary()
_TRIGRAM = 3  # the shortest substring a trigram table is asked for (see _address)
_PLAIN = re.compile(r"[^%_]+")  # no wildcard of LIKE

_P_COLUMNS = tuple(P.c[f.name] for f in fields(Practitioner))
_O_COLUMNS = tuple(O.c[f.name] for f in fields(Organisation))
_M_COLUMNS = (M.c.practitioner_id, M.c.organisation_id, M.c.address, M.c.mailbox_type,
              M.c.pp_national_id, M.c.structure_id, M.c.service, M.c.description,
              M.c.responsible, M.c.digitization, M.c.publisher)
_PERSONAL = tuple(t.value for t in sorted(PRACTITIONER_TYPES))
_STRUCTURAL = tuple(t.value for t in sorted(ORGANISATION_TYPES))
_VISIBLE = not_(M.c.liste_rouge)
_ROLE_JOIN = R.join(P, P.c.id == R.c.practitioner_id).join(O, O.c.id == R.c.organisation_id)


class Contains(FunctionElement[bool]):
    """``Contains(column, value)``: ``value`` occurs in ``column``, as a plain
    substring. SQLite: ``instr(column, value) > 0`` (no pattern to escape, faster than
    ``LIKE``); PostgreSQL: ``column LIKE '%value%'`` with ``%``, ``_`` and ``\\``
    escaped, whose selectivity the planner can estimate (it cannot for a function)."""

    type = Boolean()
    inherit_cache = True

    def __init__(self, column: Any, value: str) -> None:
        escaped = re.sub(r"([\\%_])", r"\\\1", value)
        super().__init__(column, literal(value), literal(f"%{escaped}%"))


@compiles(Contains)
def _instr(element: Contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, value, _ = element.clauses.clauses
    return f"instr({compiler.process(column, **kw)}, {compiler.process(value, **kw)}) > 0"


@compiles(Contains, "postgresql")
def _like(element: Contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, pattern = element.clauses.clauses
    return (f"{compiler.process(column, **kw)} LIKE {compiler.process(pattern, **kw)} "
            "ESCAPE '\\'")


def _contains(column: Any, value: str) -> ColumnElement[bool]:
    return Contains(column, value)


@dataclass(frozen=True, slots=True)
class SearchResult:
    matches: list[View]
    included: list[View]
    total: int | None  # None: more than TOTAL_LIMIT matches, or not counted
    next_cursor: int | None  # the cursor of the next page, None on the last page


async def begin_read(conn: AsyncConnection) -> None:
    """Prepare a connection for the FHIR queries of one request: nothing to do today.
    The directory's engine sets what its connections need when it opens them
    (``store.open_directory``: PostgreSQL plans every statement with its values,
    SQLite reads with a larger page cache)."""


async def _has_trigrams(conn: AsyncConnection) -> bool:
    """True on SQLite when the database has its trigram tables (known once per engine:
    only ``open_directory`` creates them)."""
    if conn.dialect.name != "sqlite":
        return False
    engine = conn.sync_engine
    found = _TRIGRAM_TABLES.get(engine)
    if found is None:
        names = [T.name, OT.name]
        found = len((await conn.execute(
            text("SELECT name FROM sqlite_master WHERE name IN (:a, :b)"),
            dict(zip("ab", names, strict=True)))).all()) == len(names)
        _TRIGRAM_TABLES[engine] = found
    return found


# Reads ------------------------------------------------------------------------------

async def read(conn: AsyncConnection, resource: str, fhir_id: str) -> View | None:
    """The resource ``resource/fhir_id``, or None."""
    if resource == PRACTITIONER:
        found_p = await _practitioners(conn, P.c.id_nat_ps == fhir_id)
        return found_p[0][1] if found_p else None
    if resource == ORGANIZATION:
        found_o = await _organisations(conn, O.c.id_nat_st == fhir_id)
        return found_o[0][1] if found_o else None
    ps, separator, st = fhir_id.partition("-")
    if not separator:
        return None
    found_r = await _roles(conn, and_(P.c.id_nat_ps == ps, O.c.id_nat_st == st))
    return found_r[0][1] if found_r else None


async def resolve(conn: AsyncConnection, resource: str,
                  criterion: TokenCriterion) -> list[str]:
    """The ids of the Practitioners or Organizations whose identifier matches
    (at most two: enough to tell one from several)."""
    if resource == PRACTITIONER:
        statement = select(P.c.id_nat_ps).where(_identifier(resource, criterion)).limit(2)
    else:
        statement = select(O.c.id_nat_st).where(_identifier(resource, criterion)).limit(2)
    return [str(value) for value in (await conn.execute(statement)).scalars()]


# Search -----------------------------------------------------------------------------

async def search(conn: AsyncConnection, query: Search) -> SearchResult:
    """One page of ``query``, with its total and the cursor of the next page.

    A search with a *countable* criterion (any but ``mailbox-mss-type``), or with
    ``_count=0``, first reads up to ``TOTAL_LIMIT + 1`` matching keys in no
    particular order, which lets the database take its cheapest path (an index, or
    one scan for ``:contains``). When there are at most ``TOTAL_LIMIT``, they are all
    the matches: the total is their number and the page is cut from them, sorted.
    Beyond, the total is omitted and the page is read on its own (``key > cursor
    ORDER BY key LIMIT count + 1``); the matches are then dense enough for a walk in
    key order to fill a page soon.

    A search with no countable criterion (only ``mailbox-mss-type``, or none) reads
    the page only: in key order it stops as soon as the page is full, where
    counting would probe every row of the table. Its total is known when the first
    page is not full.
    """
    key, source = _source(query.resource)
    built = [await _criterion(conn, query.resource, c) for c in query.criteria]
    conditions = [condition for condition, _ in built]
    matching = select(key).select_from(source).where(*conditions)
    total: int | None = None
    page: list[int] | None = None
    dense = False
    if query.count == 0 or any(countable for _, countable in built):
        found = [int(k) for k in (await conn.execute(
            matching.limit(TOTAL_LIMIT + 1))).scalars()]
        dense = len(found) > TOTAL_LIMIT
        if not dense:
            total = len(found)
            page = [k for k in sorted(found) if query.cursor is None or k > query.cursor]
            page = page[:query.count + 1] if query.count else []
    if page is None and query.count == 0:
        page = []
    if page is None:
        if dense and conditions and conn.dialect.name == "sqlite":
            # SQLite has no statistics to tell a range of 2,000 rows from one of
            # 200,000, and sorts the whole range; the matches being dense, walking
            # the table in key order fills the page sooner. A function around the
            # condition keeps it off the indexes.
            matching = select(key).select_from(source).where(
                func.coalesce(and_(*conditions), false()))
        after = matching if query.cursor is None else matching.where(key > query.cursor)
        page = [int(k) for k in (await conn.execute(
            after.order_by(key).limit(query.count + 1))).scalars()]
    more = len(page) > query.count
    keys = page[:query.count]
    if total is None and query.cursor is None and not more and query.count:
        total = len(keys)
    views = await _load(conn, query.resource, keys)
    included = await _included(conn, views, query.includes)
    return SearchResult(views, included, total, keys[-1] if more else None)


def _source(resource: str) -> tuple[Any, FromClause]:
    """The key a search orders by, and the table it selects from (a PractitionerRole
    search reads ``dir_roles`` only: criteria on the professional or the
    organisation are ``IN`` subqueries on their tables)."""
    if resource == PRACTITIONER:
        return P.c.id, P
    if resource == ORGANIZATION:
        return O.c.id, O
    return R.c.id, R


async def _load(conn: AsyncConnection, resource: str, keys: list[int]) -> list[View]:
    if not keys:
        return []
    found: dict[int, View] = {}
    if resource == PRACTITIONER:
        found.update(await _practitioners(conn, P.c.id.in_(keys)))
    elif resource == ORGANIZATION:
        found.update(await _organisations(conn, O.c.id.in_(keys)))
    else:
        found.update(await _roles(conn, R.c.id.in_(keys)))
    return [found[k] for k in keys if k in found]


async def _included(conn: AsyncConnection, views: Sequence[View],
                    includes: frozenset[str]) -> list[View]:
    """FHIR R4 search.html#include: the Practitioners and Organizations the page's
    PractitionerRoles refer to, each once."""
    roles = [view for view in views if isinstance(view, RoleView)]
    included: list[View] = []
    if roles and "practitioner" in includes:
        ids = sorted({role.practitioner.id_nat_ps for role in roles})
        included += [view for _, view in await _practitioners(conn, P.c.id_nat_ps.in_(ids))]
    if roles and "organization" in includes:
        ids = sorted({role.organisation_id for role in roles})
        included += [view for _, view in await _organisations(conn, O.c.id_nat_st.in_(ids))]
    return included


# Loading resources with their telecoms ----------------------------------------------

async def _practitioners(conn: AsyncConnection, where: ColumnElement[bool]
                         ) -> list[tuple[int, PractitionerView]]:
    rows = (await conn.execute(select(P.c.id, *_P_COLUMNS).where(where).order_by(P.c.id))).all()
    boxes = await _mailboxes(conn, M.c.practitioner_id.in_([r[0] for r in rows]), _PERSONAL)
    return [(int(r[0]), PractitionerView(Practitioner(*r[1:]), tuple(
        mailbox for _, mailbox in boxes.get(int(r[0]), ())))) for r in rows]


async def _organisations(conn: AsyncConnection, where: ColumnElement[bool]
                         ) -> list[tuple[int, OrganisationView]]:
    rows = (await conn.execute(select(O.c.id, *_O_COLUMNS).where(where).order_by(O.c.id))).all()
    boxes = await _mailboxes(conn, M.c.organisation_id.in_([r[0] for r in rows]),
                             _STRUCTURAL, by_organisation=True)
    return [(int(r[0]), OrganisationView(Organisation(*r[1:]), tuple(
        mailbox for _, mailbox in boxes.get(int(r[0]), ())))) for r in rows]


async def _roles(conn: AsyncConnection, where: ColumnElement[bool]
                 ) -> list[tuple[int, RoleView]]:
    rows = (await conn.execute(
        select(R.c.id, R.c.organisation_id, O.c.id_nat_st, O.c.legal_name, P.c.id, *_P_COLUMNS)
        .select_from(_ROLE_JOIN).where(where).order_by(R.c.id))).all()
    boxes = await _mailboxes(conn, M.c.practitioner_id.in_(sorted({r[4] for r in rows})),
                             _PERSONAL)
    views: list[tuple[int, RoleView]] = []
    for r in rows:
        at_organisation = tuple(mailbox for organisation_id, mailbox
                                in boxes.get(int(r[4]), ()) if organisation_id == r[1])
        views.append((int(r[0]), RoleView(Practitioner(*r[5:]), str(r[2]), str(r[3]),
                                          at_organisation)))
    return views


async def _mailboxes(conn: AsyncConnection, holders: ColumnElement[bool],
                     types: tuple[str, ...], *, by_organisation: bool = False
                     ) -> dict[int, list[tuple[int | None, Mailbox]]]:
    """The visible mailboxes of ``types`` of a page's holders, in one query, grouped by
    holder (practitioner id, or organisation id when ``by_organisation``); each comes
    with its organisation id."""
    rows = await conn.execute(select(*_M_COLUMNS).where(
        holders, M.c.mailbox_type.in_(types), _VISIBLE).order_by(M.c.address))
    grouped: dict[int, list[tuple[int | None, Mailbox]]] = defaultdict(list)
    for (practitioner_id, organisation_id, address, mailbox_type, pp, st, service,
         description, responsible, digitization, publisher) in rows:
        holder = organisation_id if by_organisation else practitioner_id
        grouped[int(holder)].append((organisation_id, Mailbox(
            address=address, type=MailboxType(mailbox_type), practitioner=pp,
            organisation=st, service=service, description=description,
            responsible=responsible, liste_rouge=False, digitization=bool(digitization),
            publisher=publisher)))
    return grouped


# Criteria -----------------------------------------------------------------------------
#
# Each criterion gives its SQL condition and whether it is *countable*: whether its
# matches can be read without probing every row of the table (see ``search``).
#
# A criterion on another table (the mailboxes; for a PractitionerRole, the
# professional or the organisation) is first resolved on its own, into the keys it
# selects, when they are at most ``TOTAL_LIMIT``: the search then filters on a list
# of keys, which no planner can misjudge. (With the subquery left in place,
# PostgreSQL, misjudging how many rows a pattern selects, would walk the searched
# table in key order probing the subquery for every row.) More keys than that stay
# a subquery: the matches are then dense, and a walk in key order finds them soon
# (for the mailboxes, ``_mailbox_criterion`` chooses how the walk tests a key).

Built = tuple[ColumnElement[bool], bool]


async def _criterion(conn: AsyncConnection, resource: str, criterion: Criterion) -> Built:
    name = criterion.name
    if isinstance(criterion, StringCriterion):
        if name == "mailbox-mss":
            addresses = [await _address(conn, value, criterion.modifier)
                         for value in criterion.values]
            return await _mailbox_criterion(conn, resource, addresses)
        if ((resource, name, criterion.modifier) == (ORGANIZATION, "name", "contains")
                and await _has_trigrams(conn)):
            found = [await _trigram_names(conn, value) for value in criterion.values]
            return or_(*(c for c, _ in found)), all(listed for _, listed in found)
        condition = or_(*(_string(resource, name, value, criterion.modifier)
                          for value in criterion.values))
        return await _on_role(conn, resource, name, condition)
    if isinstance(criterion, ReferenceCriterion):
        column = P.c.id_nat_ps if name == "practitioner" else O.c.id_nat_st
        return await _on_role(conn, resource, name, column.in_(criterion.ids))
    if name == "_id":
        return _ids(resource, criterion.values), True
    if name == "identifier":
        return _identifier(resource, criterion), True
    if name == "mailbox-mss-type":
        return _mailbox_type_condition(resource, criterion.values), False
    raise AssertionError(f"no SQL for {resource} {name}")  # params and queries disagree


async def _in(conn: AsyncConnection, column: Any, subquery: Select[Any]) -> Built:
    """``column IN (subquery)``, with the subquery's values listed when they are at
    most ``TOTAL_LIMIT`` (then True: the criterion is countable)."""
    found = [value for value in (await conn.execute(
        subquery.limit(TOTAL_LIMIT + 1))).scalars() if value is not None]
    if len(found) > TOTAL_LIMIT:
        return column.in_(subquery), False
    return column.in_(sorted(set(found))), True


async def _on_role(conn: AsyncConnection, resource: str, name: str,
                   condition: ColumnElement[bool]) -> Built:
    """A condition on the professional or the organisation, as one on a role."""
    if resource != PRACTITIONER_ROLE:
        return condition, True
    if name == "practitioner":
        return await _in(conn, R.c.practitioner_id, select(P.c.id).where(condition))
    return await _in(conn, R.c.organisation_id, select(O.c.id).where(condition))


_STRING_COLUMNS: dict[tuple[str, str], tuple[tuple[Any, Any], ...]] = {
    # (resource, parameter) -> ((normalised column, stored column), ...) any of which
    (PRACTITIONER, "family"): ((P.c.family_norm, P.c.family_name),),
    (PRACTITIONER, "given"): ((P.c.given_norm, P.c.given_name),),
    (PRACTITIONER, "name"): ((P.c.family_norm, P.c.family_name),
                             (P.c.given_norm, P.c.given_name)),
    (ORGANIZATION, "name"): ((O.c.name_norm, O.c.legal_name),
                             (O.c.trade_norm, O.c.trade_name)),
}


def _string(resource: str, name: str, value: str, modifier: str) -> ColumnElement[bool]:
    if name == "address-postalcode":
        return _plain(O.c.postal_code, value.strip(), modifier)
    words = joined(value)
    if not words:
        raise bad_request(f"{name}={value!r}: the value has no letter or digit to search for")
    if name == "address-city":
        exact = or_(O.c.routing_line == value, O.c.routing_line == O.c.postal_code + " " + value)
        return _normalised(O.c.city_norm, words, modifier, exact)
    return or_(*(_normalised(norm, words, modifier, stored == value)
                 for norm, stored in _STRING_COLUMNS[resource, name]))


async def _trigram_names(conn: AsyncConnection, value: str) -> Built:
    """SQLite, ``Organization?name:contains``: the organisations whose raison sociale or
    enseigne contains the value, found through their trigram table (as the addresses,
    ``_trigram_address``) and listed when they are at most ``TOTAL_LIMIT``
    (countable). More: the scan, kept off the indexes, which the search's walk in key
    order stops early (not countable: there are too many to count). A value of fewer
    than three characters: the scan, countable as any other string criterion."""
    scan = _string(ORGANIZATION, "name", value, "contains")
    words = joined(value)
    if len(words) < _TRIGRAM or not _PLAIN.fullmatch(words):
        return scan, True
    found = [int(key) for key in (await conn.execute(
        select(O.c.id).select_from(OT.join(O, O.c.id == OT.c.rowid))
        .where(OT.c.names.like(f"%{words}%"), scan).limit(TOTAL_LIMIT + 1))).scalars()]
    if len(found) > TOTAL_LIMIT:
        return func.coalesce(scan, false()), False
    return O.c.id.in_(sorted(found)), True


def _normalised(norm: Any, words: str, modifier: str,
                exact: ColumnElement[bool]) -> ColumnElement[bool]:
    if modifier == "exact":
        return and_(norm == words, exact)
    if modifier == "contains":
        return _contains(norm, words)
    return and_(norm >= words, norm < words + _AFTER)


def _plain(column: Any, value: str, modifier: str) -> ColumnElement[bool]:
    """A column compared as stored (postal codes, addresses)."""
    if modifier == "exact":
        return column == value  # type: ignore[no-any-return]
    if modifier == "contains":
        return _contains(column, value)
    return and_(column >= value, column < value + _AFTER)


# How many addresses a condition selects, and what finds them (``_Addresses.kind``):
_LISTED = "listed"  # at most TOTAL_LIMIT, listed
_RANGE = "range"  # an index range (starts-with, exact)
_INDEXED = "indexed"  # more than TOTAL_LIMIT, found by an index (PostgreSQL's trigrams)
_FEW = "few"  # more than TOTAL_LIMIT, about TRIGRAM_DENSE at most, found by an index
_SCANNED = "scanned"  # more than TOTAL_LIMIT, found by a scan only


@dataclass(frozen=True, slots=True)
class _Addresses:
    """A condition on mailbox addresses and its kind (see above)."""

    condition: ColumnElement[bool]
    kind: str


async def _address(conn: AsyncConnection, value: str, modifier: str) -> _Addresses:
    """The condition on a mailbox's address. Starts-with and exact: an index range
    (``_mailbox_criterion`` lists what it selects). Contains: the matching addresses
    listed when they are at most ``TOTAL_LIMIT``, else the condition itself."""
    address = normalise(value).strip()
    if not address:
        raise bad_request("mailbox-mss needs an address or a part of one")
    if modifier == "" and conn.dialect.name == "postgresql":
        # The same index range, but estimated as a prefix from the column's statistics:
        # PostgreSQL estimates a range ending at U+FFFF at one row on a column of
        # distinct values, and plans the join with the holders on that.
        escaped = re.sub(r"([\\%_])", r"\\\1", address)
        return _Addresses(M.c.address.like(f"{escaped}%", escape="\\"), _RANGE)
    if modifier != "contains":
        return _Addresses(_plain(M.c.address, address, modifier), _RANGE)
    run = max(re.split("[%_]", address), key=len)
    if len(run) >= _TRIGRAM and await _has_trigrams(conn):
        return await _trigram_address(conn, address, run)
    # A substring test reads every address (PostgreSQL: unless the trigram index
    # answers the LIKE): alone, through the address index (no join a planner could
    # turn into a walk of the table), then by the addresses.
    contains = _contains(M.c.address, address)
    found = [str(value) for value in (await conn.execute(
        select(M.c.address).where(contains).limit(TOTAL_LIMIT + 1))).scalars()]
    if len(found) <= TOTAL_LIMIT:
        return _Addresses(M.c.address.in_(sorted(found)), _LISTED)
    return _Addresses(contains, _INDEXED if conn.dialect.name == "postgresql" else _SCANNED)


async def _trigram_address(conn: AsyncConnection, address: str, run: str) -> _Addresses:
    """SQLite: the addresses containing ``address``, through the trigram table.

    The table is asked for ``LIKE '%run%'``, ``run`` being the longest part of
    ``address`` without ``%`` or ``_`` (FTS5 uses its index for a LIKE without ESCAPE
    only, and treats those two as wildcards); the candidates are then tested with
    ``Contains``: the answers are exactly those of the scan. ``run`` has at least
    three characters: SQLite 3.40's FTS5 crashes the process on a trigram LIKE of
    fewer combined with another condition (test_short_contains_patterns_do_not_crash).

    Beyond ``TOTAL_LIMIT`` matches, the table still selects them when they are at
    most about ``TRIGRAM_DENSE`` (estimated from how far in the ids, which the table
    gives in order, the first ones were found); more are better found by a scan,
    which a search walking its table in key order stops early.
    """
    pattern = f"%{run}%"
    contains = _contains(M.c.address, address)
    found = (await conn.execute(
        select(M.c.id, M.c.address).select_from(T.join(M, M.c.id == T.c.rowid))
        .where(T.c.address.like(pattern), contains).limit(TOTAL_LIMIT + 1))).all()
    if len(found) <= TOTAL_LIMIT:
        return _Addresses(M.c.address.in_(sorted(str(a) for _, a in found)), _LISTED)
    highest = int((await conn.execute(select(func.max(M.c.id)))).scalar_one())
    if len(found) * highest > TRIGRAM_DENSE * max(int(i) for i, _ in found):
        return _Addresses(contains, _SCANNED)
    candidates = select(T.c.rowid).where(T.c.address.like(pattern))
    return _Addresses(and_(M.c.id.in_(candidates), contains), _FEW)


def _holder(resource: str) -> tuple[tuple[str, ...], ColumnElement[bool]]:
    """The mailbox types a resource shows, and the correlation of a mailbox with it."""
    if resource == PRACTITIONER:
        return _PERSONAL, M.c.practitioner_id == P.c.id
    if resource == ORGANIZATION:
        return _STRUCTURAL, M.c.organisation_id == O.c.id
    return _PERSONAL, and_(M.c.practitioner_id == R.c.practitioner_id,
                           M.c.organisation_id == R.c.organisation_id)


def _holders(resource: str, address: ColumnElement[bool]) -> tuple[Any, Select[Any]]:
    """The key of the searched table, and the subquery of the keys of the resources
    holding a visible mailbox whose address matches."""
    types = _holder(resource)[0]
    visible = (M.c.mailbox_type.in_(types), _VISIBLE, address)
    if resource == PRACTITIONER:
        return P.c.id, select(M.c.practitioner_id).where(*visible)
    if resource == ORGANIZATION:
        return O.c.id, select(M.c.organisation_id).where(*visible)
    # The role of each mailbox, looked up row by row (a mailbox has one at most): as a
    # join, PostgreSQL cannot estimate how many pairs match and hashes the whole roles
    # table where a few index probes suffice.
    role = select(_R.c.id).where(_R.c.practitioner_id == M.c.practitioner_id,
                                 _R.c.organisation_id == M.c.organisation_id)
    return R.c.id, select(role.scalar_subquery()).where(*visible)


async def _mailbox_criterion(conn: AsyncConnection, resource: str,
                             addresses: Sequence[_Addresses]) -> Built:
    """``mailbox-mss``: the resources holding a visible mailbox whose address matches
    any of ``addresses``.

    Their keys are listed when they are at most ``TOTAL_LIMIT`` (countable). Beyond,
    the matches are dense and the search walks its table in key order (``search``).
    When the matching mailboxes are at most ``DENSE_LIMIT`` (``DENSE_LIMIT_PG``) and an
    index finds them, their holders are read whole once, and the walk tests each key
    against them; when they are more, or only a scan tells them, the walk asks a
    correlated test of each key and stops once the page is full (the denser the
    matches, the sooner). The plan is chosen here on counts: neither planner can tell
    how the matching mailboxes spread over the holders.
    """
    address = or_(*(a.condition for a in addresses))
    kinds = {a.kind for a in addresses}
    key, holders = _holders(resource, address)
    if kinds <= {_LISTED, _RANGE}:
        built = await _in(conn, key, holders)
        if built[1]:
            return built
    postgres = conn.dialect.name == "postgresql"
    if _SCANNED not in kinds and (kinds <= {_LISTED, _FEW} or await _few(
            conn, address, DENSE_LIMIT_PG if postgres else DENSE_LIMIT)):
        if postgres:
            # Read whole once (an InitPlan, as an array), then probed by key.
            listed = holders.subquery()
            keys = cast(select(func.array_agg(listed.c[0])).scalar_subquery(), ARRAY(Integer))
            return key == any_(keys), False
        return key.in_(holders), False
    return _mailbox_walk(resource, address), False


async def _few(conn: AsyncConnection, address: ColumnElement[bool], limit: int) -> bool:
    """True when at most ``limit`` mailboxes match ``address``."""
    matching = select(literal(1)).select_from(M).where(address).limit(limit + 1)
    return int((await conn.execute(
        select(func.count()).select_from(matching.subquery()))).scalar_one()) <= limit


def _mailbox_walk(resource: str, address: ColumnElement[bool]) -> ColumnElement[bool]:
    """A resource holds a visible mailbox whose address matches, as a correlated
    scalar subquery: neither engine turns it into a join, so a walk of the searched
    table in key order asks it row by row and stops with the page. The address
    condition is kept off the indexes (a function around it): the probe goes by the
    holder's index, where an address range would be read whole at each probe."""
    types, correlation = _holder(resource)
    found = (select(true()).where(correlation, M.c.mailbox_type.in_(types), _VISIBLE,
                                  func.coalesce(address, false())).limit(1).scalar_subquery())
    return func.coalesce(found, false())


def _mailbox_type_condition(resource: str, tokens: Sequence[Token]) -> ColumnElement[bool]:
    types, correlation = _holder(resource)
    wanted = sorted({t.code for t in tokens
                     if (t.system is None or t.system in MAILBOX_TYPE_SYSTEMS)
                     and t.code in types})
    if not wanted:
        return false()
    return exists().where(correlation, M.c.mailbox_type.in_(wanted), _VISIBLE)


def _ids(resource: str, tokens: Sequence[Token]) -> ColumnElement[bool]:
    ids = [t.code for t in tokens if t.system is None]
    if resource == PRACTITIONER:
        return P.c.id_nat_ps.in_(ids)
    if resource == ORGANIZATION:
        return O.c.id_nat_st.in_(ids)
    pairs = [fhir_id.partition("-") for fhir_id in ids]
    return or_(false(), *(and_(
        R.c.practitioner_id.in_(select(P.c.id).where(P.c.id_nat_ps == ps)),
        R.c.organisation_id.in_(select(O.c.id).where(O.c.id_nat_st == st)))
        for ps, separator, st in pairs if separator))


def _identifier(resource: str, criterion: TokenCriterion) -> ColumnElement[bool]:
    match = _practitioner_identifier if resource == PRACTITIONER else _organisation_identifier
    return or_(false(), *(match(token) for token in criterion.values))


def _practitioner_identifier(token: Token) -> ColumnElement[bool]:
    code = token.code
    if token.system is None:
        return or_(P.c.id_nat_ps == code, P.c.pp_id == code)
    if token.system == ID_NAT_PS_SYSTEM:
        return P.c.id_nat_ps == code
    if token.system == RPPS_SYSTEM:
        return and_(P.c.pp_id == code, P.c.id_type == "8")
    if token.system == ADELI_SYSTEM:
        return and_(P.c.pp_id == code, P.c.id_type == "0")
    return false()  # |code (no system) or another system: none of ours


def _organisation_identifier(token: Token) -> ColumnElement[bool]:
    code = token.code
    finess = and_(O.c.id_nat_st == "1" + code, O.c.id_type == "1")
    siret = and_(O.c.id_nat_st == "3" + code, O.c.id_type == "3")
    if token.system is None:
        return or_(O.c.id_nat_st == code, finess, siret)
    if token.system == ID_NAT_ST_SYSTEM:
        return O.c.id_nat_st == code
    if token.system == FINESS_SYSTEM:
        return finess
    if token.system == SIRET_SYSTEM:
        return siret
    return false()
