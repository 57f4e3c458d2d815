"""SORT and THREAD (RFC 5256), DISPLAYFROM and DISPLAYTO (RFC 5957), ESORT (RFC 5267
§3) and PARTIAL (RFC 9394): the commands, over the messages a search matched.

Implementation notes:
- The search criteria are SEARCH's (search.py) and are evaluated by the session
  (``Session.matching``), so that SORT and THREAD match exactly what SEARCH does.
- What sorting and threading read of each message is its ``SortKeys``
  (content/sortkeys.py), computed when the message is stored and kept beside it
  (``messages.sort_keys``). A message stored before migration 0008s gets them at the
  first SORT or THREAD that reads it, from the first ``HEAD`` octets of its body,
  ``KEY_BATCH`` messages at a time, written back. Once read, they stay in the
  process's memory (``_KnownKeys``, at most ``MAX_KNOWN`` messages per store): a SORT
  of a folder read before costs no query. The last ``MAX_ANSWERS`` SORT orders and THREAD
  answers are kept too, each under the exact list of messages it ordered, as a
  webmail asks the same SORT or THREAD of an unchanged folder again and again.
- Sorting is stable sorts from the last criterion to the first, on the messages in
  folder order, so equal messages stay in sequence order (RFC 5256 §3: "sorted
  according to the order in which they appear in the mailbox"). REVERSE reverses
  one criterion only.
- ESORT (RFC 5267 §3.2): MIN and MAX are the first and last message in the sort
  order, ALL lists them in that order (a run of consecutive ascending numbers as
  ``n:m``). PARTIAL (RFC 9394 §3) takes a range of the sorted (or, for SEARCH,
  ascending) results, counted from the end when negative; with SAVE, only that range
  is saved (RFC 9394 §3.2). PARTIAL and ALL together are refused (§3).
- CONTEXT=SORT (RFC 5267 §4): with the return option UPDATE the answer is what the
  other options ask, and the session keeps the sorted result up to date
  (contexts.py); CONTEXT is accepted and ignored.
- With MODSEQ among the criteria, SORT's answer carries the highest mod-sequence of
  the messages it reports (RFC 7162 §3.1.5); THREAD's carries none (RFC 7162 does
  not extend it).
"""

from __future__ import annotations

import asyncio
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mssante.content import sortkeys
from mssante.imap import search as searching
from mssante.imap import thread
from mssante.imap.errors import bad
from mssante.imap.tokens import Atom, Token
from mssante.operator.runtime import OperatorRuntime

if TYPE_CHECKING:
    from mssante.imap.contexts import Contexts

HEAD = 64 * 1024  # octets of a body read to compute its sort keys
KEY_BATCH = 100  # messages whose sort keys are computed and stored at once
SORT_CRITERIA = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
                           "DISPLAYFROM", "DISPLAYTO"})  # RFC 5256 §3, RFC 5957 §3
RETURN_OPTIONS = frozenset({"MIN", "MAX", "COUNT", "ALL", "SAVE", "PARTIAL",
                            "UPDATE", "CONTEXT"})  # RFC 5267 §3.1, §4; RFC 9394
# advertised once authenticated (session.py), each complete
CAPABILITIES = ("SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "ESORT",
                "PARTIAL")
MAX_PARTIAL = 2**32 - 1  # RFC 9394 §4: nz-number32
OFF_LOOP = 2000  # messages from which threading runs off the event loop


_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")


class Session(Protocol):
    """What SORT and THREAD need of a session (session.py)."""

    ctx: OperatorRuntime
    saved: list[int]
    contexts: Contexts

    def write(self, data: bytes) -> None: ...

    def keep_updated(self, tag: str, uid_mode: bool, program: searching.SearchProgram,
                     uids: list[int], criteria: list[tuple[str, bool]] | None = None
                     ) -> None: ...

    def ok(self, tag: str, text: str, code: str | None = None) -> None: ...

    async def matching(self, program: searching.SearchProgram, *, uid_mode: bool,
                       every: bool = False
                       ) -> tuple[int, list[tuple[int, int]], dict[int, int] | None]: ...


@dataclass(slots=True)
class Row:
    position: int  # in the folder, from 0
    uid: int
    internaldate: float
    size: int
    keys: sortkeys.SortKeys

    def number(self, uid_mode: bool) -> int:
        return self.uid if uid_mode else self.position + 1


@dataclass(frozen=True, slots=True)
class Returns:
    """RETURN options (RFC 4731 §3.1, RFC 5267 §3.1, RFC 9394 §3)."""

    options: frozenset[str]
    partial: tuple[int, int] | None = None  # (first, last) as sent, negative from the end


# --- parsing ---------------------------------------------------------------------------


def _atom(token: Token, what: str) -> str:
    if not isinstance(token, Atom):
        raise bad(f"expected {what}")
    return token.upper


def _partial_range(token: Token) -> tuple[int, int]:
    """``1:100`` or ``-1:-100`` (RFC 9394 §4 partial-range)."""
    text = _atom(token, "a PARTIAL range")
    first, sep, last = text.partition(":")
    try:
        a, b = int(first), int(last)
    except ValueError:
        raise bad("PARTIAL takes a range such as 1:100 or -1:-100") from None
    if not sep or a == 0 or b == 0 or (a < 0) != (b < 0) or max(abs(a), abs(b)) > MAX_PARTIAL \
            or not (first.lstrip("-").isdigit() and last.lstrip("-").isdigit()):
        raise bad("PARTIAL takes a range such as 1:100 or -1:-100")
    return a, b


def parse_returns(tokens: list[Token]) -> tuple[Returns | None, list[Token]]:
    """``RETURN (...)`` at the start of ``tokens``, and the tokens after it."""
    if not tokens or not isinstance(tokens[0], Atom) or tokens[0].upper != "RETURN":
        return None, tokens
    if len(tokens) < 2 or not isinstance(tokens[1], list):
        raise bad("RETURN needs a parenthesised list")
    names: set[str] = set()
    partial: tuple[int, int] | None = None
    options = tokens[1]
    i = 0
    while i < len(options):
        name = _atom(options[i], "a RETURN option")
        if name not in RETURN_OPTIONS:
            raise bad(f"unknown RETURN option {name[:40]}")
        if name == "PARTIAL":
            if i + 1 >= len(options):
                raise bad("PARTIAL needs a range")
            partial = _partial_range(options[i + 1])
            i += 1
        names.add(name)
        i += 1
    if partial is not None and "ALL" in names:
        raise bad("PARTIAL and ALL cannot be asked together")  # RFC 9394 §3
    names.discard("CONTEXT")  # RFC 5267 §4.2: a hint, ignored
    return Returns(frozenset(names or {"ALL"}), partial), tokens[2:]


def _updating(returns: Returns | None) -> frozenset[str] | None:
    return None if returns is None else returns.options


def asks_partial(args: list[Token]) -> bool:
    """Whether a SEARCH asks for a PARTIAL result (answered here, not by search.py)."""
    return (len(args) >= 2 and isinstance(args[0], Atom) and args[0].upper == "RETURN"
            and isinstance(args[1], list)
            and any(isinstance(t, Atom) and t.upper == "PARTIAL" for t in args[1]))


def parse_criteria(token: Token) -> list[tuple[str, bool]]:
    """``(REVERSE DATE SUBJECT)``: (criterion, reversed) in order (RFC 5256 §3)."""
    if not isinstance(token, list) or not token:
        raise bad("SORT needs a parenthesised list of sort criteria")
    criteria: list[tuple[str, bool]] = []
    reverse = False
    for item in token:
        name = _atom(item, "a sort criterion")
        if name == "REVERSE" and not reverse:
            reverse = True
            continue
        if name not in SORT_CRITERIA:
            raise bad(f"unknown sort criterion {name[:40]}")
        criteria.append((name, reverse))
        reverse = False
    if reverse:
        raise bad("REVERSE must precede a sort criterion")
    return criteria


def _is_all(keys: list[Token]) -> bool:
    """The search criteria are ``ALL`` alone (what webmails sort): every message, no
    evaluation needed."""
    return len(keys) == 1 and isinstance(keys[0], Atom) and keys[0].upper == "ALL"


def _program(charset: Token, keys: list[Token]) -> searching.SearchProgram:
    if isinstance(charset, list):
        raise bad("expected a charset")
    if not keys:
        raise bad("a search criterion is needed")
    return searching.parse_search([Atom("CHARSET"), charset, *keys])


# --- sorting ---------------------------------------------------------------------------


def _key(name: str) -> Callable[[Row], Any]:
    keys: dict[str, Callable[[Row], Any]] = {
        "ARRIVAL": lambda r: r.internaldate,
        "CC": lambda r: r.keys.cc,
        "DATE": lambda r: r.internaldate if r.keys.sent is None else r.keys.sent,
        "FROM": lambda r: r.keys.from_,
        "SIZE": lambda r: r.size,
        "SUBJECT": lambda r: r.keys.subject,
        "TO": lambda r: r.keys.to,
        "DISPLAYFROM": lambda r: r.keys.display_from,
        "DISPLAYTO": lambda r: r.keys.display_to,
    }
    return keys[name]


def sort_rows(rows: Sequence[Row], criteria: Sequence[tuple[str, bool]]) -> list[Row]:
    """The rows (given in folder order) in the order the criteria ask, equal rows in
    folder order."""
    ordered = list(rows)  # in folder order
    for name, reverse in reversed(criteria):
        ordered.sort(key=_key(name), reverse=reverse)
    return ordered


def partial(results: Sequence[int], bounds: tuple[int, int]) -> list[int]:
    """The results in a PARTIAL range (RFC 9394 §3): 1-based, negative from the end."""
    low, high = sorted(bounds, key=abs)
    if low > 0:
        return list(results[low - 1:high])
    count = len(results)
    start, end = max(count + high, 0), max(count + low + 1, 0)  # -1 is the last
    return list(results[start:end])


def sequence(numbers: Sequence[int]) -> str:
    """Numbers in their order as a sequence set, ascending runs as ``n:m``."""
    out: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(out)


def esearch(tag: str, uid_mode: bool, results: Sequence[int], returns: Returns,
            modseq: int | None = None) -> bytes:
    """``* ESEARCH (TAG "a") UID MIN 4 MAX 2 COUNT 3 ALL 4,1:2`` (RFC 4731 §3.1,
    RFC 5267 §3.2, RFC 9394 §3.1); nothing when SAVE is all it asks."""
    options = returns.options
    if not options - {"SAVE"}:
        return b""
    escaped = tag.replace("\\", "\\\\").replace('"', '\\"')
    parts = [f'* ESEARCH (TAG "{escaped}")']
    if uid_mode:
        parts.append("UID")
    if results and "MIN" in options:
        parts.append(f"MIN {results[0]}")
    if results and "MAX" in options:
        parts.append(f"MAX {results[-1]}")
    if "COUNT" in options:
        parts.append(f"COUNT {len(results)}")
    if results and "ALL" in options:
        parts.append(f"ALL {sequence(results)}")
    if returns.partial is not None:
        first, last = returns.partial
        page = partial(results, returns.partial)
        parts.append(f"PARTIAL ({first}:{last} {sequence(page) if page else 'NIL'})")
    if results and modseq is not None:
        parts.append(f"MODSEQ {modseq}")  # RFC 7162 §3.1.5
    return " ".join(parts).encode() + b"\r\n"


def saved(uids: list[int], returns: Returns) -> list[int]:
    """The UIDs SAVE keeps as ``$`` (RFC 5182 §2.1, RFC 9394 §3.2), ascending."""
    options = returns.options
    if returns.partial is not None:
        uids = partial(uids, returns.partial)
    elif uids and not options & {"ALL", "COUNT"} and options & {"MIN", "MAX"}:
        uids = ([uids[0]] if "MIN" in options else []) + (
            [uids[-1]] if "MAX" in options else [])
    return sorted(set(uids))


# --- reading the messages ----------------------------------------------------------------


class _KnownKeys:
    """INTERNALDATE, size and sort keys per folder and UID of one store, shared by the
    process's sessions. They never change: a message is never modified, a UID never reused in a
    folder (RFC 9051 §2.3.1.1) and a folder id never reused (store/schema.py), so an
    entry is never stale; an expunged message's entry is merely unused. At most
    ``MAX_KNOWN`` messages are kept, the folders sorted least recently forgotten first."""

    def __init__(self) -> None:
        self._folders: OrderedDict[int, dict[int, tuple[float, int, sortkeys.SortKeys]]] = \
            OrderedDict()
        self._count = 0

    def folder(self, folder_id: int) -> dict[int, tuple[float, int, sortkeys.SortKeys]]:
        found = self._folders.get(folder_id)
        if found is None:
            found = self._folders[folder_id] = {}
        self._folders.move_to_end(folder_id)
        return found

    def added(self, count: int) -> None:
        self._count += count
        while self._count > MAX_KNOWN and len(self._folders) > 1:
            _, dropped = self._folders.popitem(last=False)
            self._count -= len(dropped)


MAX_KNOWN = 500_000  # messages whose sort data a store's memory keeps (~300 octets each)
MAX_ANSWERS = 16  # SORT orders and THREAD answers kept


class _Memory:
    """What SORT and THREAD remember of one store (an operator's; a process may serve
    several, as the local environment does, whose folder ids overlap): the sort data
    per folder and UID, and the last SORT orders and THREAD answers, each under its
    folder, criteria or algorithm (THREAD: and the kind of numbers) and the exact
    (position, UID) list it ordered, since the same messages always sort and thread
    the same way."""

    __slots__ = ("known", "sorted", "threads")

    def __init__(self) -> None:
        self.known = _KnownKeys()
        self.sorted: OrderedDict[tuple[int, str, bytes], bytes] = OrderedDict()
        self.threads: OrderedDict[tuple[int, str, bool, bytes], str] = OrderedDict()


_memories: weakref.WeakKeyDictionary[object, _Memory] = weakref.WeakKeyDictionary()


def _memory(session: Session) -> _Memory:
    folders = session.ctx.store.folders
    found = _memories.get(folders)
    if found is None:
        found = _memories[folders] = _Memory()
    return found


def _remember(answers: OrderedDict[_K, _V], key: _K, value: _V) -> None:
    answers[key] = value
    if len(answers) > MAX_ANSWERS:
        answers.popitem(last=False)


async def rows_of(session: Session, folder_id: int, matched: Sequence[tuple[int, int]]
                  ) -> list[Row]:
    """The matched messages with their sort keys, computing and storing missing ones."""
    memory = _memory(session).known
    known = memory.folder(folder_id)
    wanted = [uid for _, uid in matched if uid not in known]
    if wanted:
        before = len(known)
        await _load(session, folder_id, wanted, known)
        memory.added(len(known) - before)
    rows = []
    for position, uid in matched:
        found = known.get(uid)
        if found is not None:  # else expunged meanwhile
            rows.append(Row(position, uid, found[0], found[1], found[2]))
    return rows


async def _load(session: Session, folder_id: int, uids: list[int],
                known: dict[int, tuple[float, int, sortkeys.SortKeys]]) -> None:
    store = session.ctx.store.folders
    data = await store.sort_data(folder_id, uids)
    missing: list[tuple[int, str]] = []
    for uid, (internaldate, size, stored, sha) in data.items():
        keys = sortkeys.decode(stored)
        if keys is None:
            missing.append((uid, sha))
        else:
            known[uid] = (internaldate, size, keys)
    for start in range(0, len(missing), KEY_BATCH):
        batch = missing[start:start + KEY_BATCH]
        heads = await store.body_heads((sha for _, sha in batch), HEAD)
        computed = await asyncio.get_running_loop().run_in_executor(None, lambda: {
            uid: sortkeys.keys_of(heads.get(sha, b"")) for uid, sha in batch})  # noqa: B023
        for uid, keys in computed.items():
            known[uid] = (data[uid][0], data[uid][1], keys)
        await store.set_sort_keys(folder_id, {uid: sortkeys.encode(keys)
                                              for uid, keys in computed.items()})


# --- commands ----------------------------------------------------------------------------


async def sort_command(session: Session, tag: str, args: list[Token], *,
                       uid_mode: bool) -> None:
    """SORT [RETURN (...)] (criteria) charset search-keys (RFC 5256 §4, RFC 5267 §3)."""
    returns, rest = parse_returns(args)
    if len(rest) < 3:
        raise bad("SORT takes sort criteria, a charset and search criteria")
    criteria = parse_criteria(rest[0])
    program = _program(rest[1], rest[2:])
    session.contexts.check(tag, _updating(returns))
    folder_id, matched, modseqs = await session.matching(program, uid_mode=uid_mode,
                                                         every=_is_all(rest[2:]))
    answers = _memory(session).sorted
    key = (folder_id, repr(criteria), _flat(matched))
    found = answers.get(key)
    if found is None:
        rows = sort_rows(await rows_of(session, folder_id, matched), criteria)
        found = _flat((r.position, r.uid) for r in rows)
        _remember(answers, key, found)
    answers.move_to_end(key)
    pairs = iter(array("q", found))
    ordered = list(zip(pairs, pairs, strict=True))
    _answer(session, tag, ordered, returns, uid_mode, modseqs, verb="SORT")
    if session.contexts.wanted(_updating(returns)):
        session.keep_updated(tag, uid_mode, program, [uid for _, uid in ordered], criteria)


def _flat(pairs: Iterable[tuple[int, int]]) -> bytes:
    return array("q", chain.from_iterable(pairs)).tobytes()


async def search_partial(session: Session, tag: str, args: list[Token], *,
                         uid_mode: bool) -> None:
    """SEARCH RETURN (PARTIAL ...) (RFC 9394 §3): the results in ascending order."""
    returns, rest = parse_returns(args)
    if not rest:
        raise bad("SEARCH needs at least one search key")
    program = searching.parse_search(rest)
    session.contexts.check(tag, _updating(returns))
    _, matched, modseqs = await session.matching(program, uid_mode=uid_mode)
    _answer(session, tag, matched, returns, uid_mode, modseqs, verb="SEARCH")
    if session.contexts.wanted(_updating(returns)):
        session.keep_updated(tag, uid_mode, program, [uid for _, uid in matched])


async def _off_loop(count: int, work: Callable[[], _T]) -> _T:
    """Threading many messages runs in a thread, so that the event loop serves other
    connections meanwhile (session.py: no command holds it long); sorting ten
    thousand takes a few milliseconds and stays on the loop."""
    if count < OFF_LOOP:
        return work()
    return await asyncio.get_running_loop().run_in_executor(None, work)


def _answer(session: Session, tag: str, ordered: Sequence[tuple[int, int]],
            returns: Returns | None, uid_mode: bool, modseqs: dict[int, int] | None, *,
            verb: str) -> None:
    """The answer to the (position, UID) of the messages in their order."""
    uids = [uid for _, uid in ordered]
    numbers = uids if uid_mode else [position + 1 for position, _ in ordered]
    top = None if modseqs is None else _highest_modseq(uids, returns, modseqs)
    if returns is None:
        line = f"* SORT {' '.join(map(str, numbers))}".rstrip()
        if numbers and top is not None:  # RFC 7162 §3.1.5
            line += f" (MODSEQ {top})"
        session.write(line.encode() + b"\r\n")
    else:
        if "SAVE" in returns.options:
            session.saved = saved(uids, returns)
        session.write(esearch(tag, uid_mode, numbers, returns, top))
    session.ok(tag, f"{verb} completed")


def _highest_modseq(uids: list[int], returns: Returns | None,
                    modseqs: dict[int, int]) -> int | None:
    """The highest mod-sequence of the messages the answer reports (RFC 7162 §3.1.5):
    all of them, or only those of MIN, MAX or a PARTIAL range when nothing else is
    asked (RFC 4731 §3.2, RFC 9394 §3.1)."""
    if returns is not None and not returns.options & {"ALL", "COUNT"}:
        reported: list[int] = []
        if uids and "MIN" in returns.options:
            reported.append(uids[0])
        if uids and "MAX" in returns.options:
            reported.append(uids[-1])
        if returns.partial is not None:
            reported += partial(uids, returns.partial)
        uids = reported
    return max((modseqs.get(uid, 0) for uid in uids), default=None)


async def thread_command(session: Session, tag: str, args: list[Token], *,
                         uid_mode: bool) -> None:
    """THREAD algorithm charset search-keys (RFC 5256 §4)."""
    if len(args) < 3:
        raise bad("THREAD takes an algorithm, a charset and search criteria")
    algorithm = _atom(args[0], "a threading algorithm")
    if algorithm not in thread.ALGORITHMS:
        raise bad(f"unknown threading algorithm {algorithm[:40]}")
    program = _program(args[1], args[2:])
    folder_id, matched, _ = await session.matching(program, uid_mode=uid_mode,
                                                   every=_is_all(args[2:]))
    answers = _memory(session).threads
    key = (folder_id, algorithm, uid_mode, _flat(matched))
    threads = answers.get(key)
    if threads is None:
        rows = await rows_of(session, folder_id, matched)
        items = [thread.Item(r.number(uid_mode), r.keys, r.internaldate, r.position)
                 for r in rows]
        threads = await _off_loop(len(items), lambda: thread.render(
            thread.thread(algorithm, items)))
        _remember(answers, key, threads)
    answers.move_to_end(key)
    session.write(("* THREAD " + threads).rstrip().encode() + b"\r\n")
    session.ok(tag, "THREAD completed")


