"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): searches the server keeps up to date.

A SEARCH, UID SEARCH, SORT or UID SORT with the return option UPDATE leaves a context
under its tag; whenever the set of messages it would return changes (a message
arrives, is expunged, or its flags change, by this session or any other), the session
tells the client with ``* ESEARCH (TAG "t") [UID] ADDTO (...)`` / ``REMOVEFROM (...)``
until CANCELUPDATE, or until the mailbox is no longer selected.

Implementation notes:
- A context keeps its program with its sequence sets (and ``$``) resolved to UIDs when
  the command ran, so that ``SEARCH RETURN (UPDATE) 1:5`` keeps naming the messages
  that were 1 to 5 then; for SORT its criteria; and its result, as UIDs in the
  requested order (mailbox order for SEARCH).
- Contexts are brought up to date where the session announces changes
  (``Session._announce``: with every command of the selected state, and during IDLE),
  never while expunges are held back (RFC 9051 §7.5.1), so that the numbers they carry
  are those the client knows. Only the messages that are new, or whose flags or MODSEQ
  moved, since the last update are evaluated again: nothing else of a message can
  change (a stored message is never modified), and an expunged one leaves every result.
- REMOVEFROM is sent before the EXPUNGE or VANISHED responses of the same
  announcement, numbered as the client knew the mailbox (RFC 5267 §4.3.4); ADDTO after
  EXISTS, numbered as the mailbox is now (§4.3.3).
- SEARCH contexts use context position 0 (§4.3.3 and §4.3.4 allow it for SEARCH), the
  set in mailbox order. SORT contexts give positions: removals first, from the first
  position up, each position as the list is after the removals before it; then
  additions, each at its place in the new sorted list. Sorting is stable and a
  message's sort keys never change (sorting.py), so the messages that stay keep their
  order and these two steps turn the client's list into the new one.
- UPDATE does not interact with the other return options (§4.3, §4.4): MIN, MAX,
  COUNT, ALL, SAVE and PARTIAL answer the command as they would without it, and the
  updates cover every matching message. ``RETURN (UPDATE)`` alone asks for no result
  data: the answer is the bare ``* ESEARCH (TAG "t")``. CONTEXT is a hint (§4.2), accepted
  and ignored.
- At most ``MAX_CONTEXTS`` contexts per session (§4.3.1: at least one); beyond, the
  command is answered as asked and ``* NO [NOUPDATE "t"]`` says no updates will come.
  UPDATE under a tag that names a live context is refused with BAD (§4.3); so is
  CANCELUPDATE of a tag that names none. Contexts end at SELECT, EXAMINE, CLOSE and
  UNSELECT, and whenever the mailbox is unselected otherwise (rights revoked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mssante.imap import sorting
from mssante.imap.cache import Snapshot
from mssante.imap.errors import bad
from mssante.imap.search import SearchProgram, compress
from mssante.imap.tokens import String, Token

MAX_CONTEXTS = 10  # live UPDATE contexts per session
CAPABILITIES = ("CONTEXT=SEARCH", "CONTEXT=SORT")  # RFC 5267 §4.1
RETURN_OPTIONS = frozenset({"UPDATE", "CONTEXT"})  # RFC 5267 §4.2, §4.3

Overlay = dict[int, tuple[str, int]]  # the session's own flag changes: uid -> flags, modseq


class Session(sorting.Session, Protocol):
    """What the contexts need of a session (session.py)."""

    async def evaluate(self, program: SearchProgram, positions: list[int]
                       ) -> list[tuple[int, int]]: ...


@dataclass(slots=True)
class Context:
    tag: str
    uid_mode: bool  # numbers are UIDs (UID SEARCH, UID SORT), else sequence numbers
    program: SearchProgram  # sets resolved
    criteria: list[tuple[str, bool]] | None  # SORT's, None for SEARCH
    result: list[int]  # UIDs in the requested order


@dataclass(frozen=True, slots=True)
class _View:
    """The folder as the contexts were last brought up to date with."""

    snapshot: Snapshot
    overlay: Overlay


def _quoted(tag: str) -> str:
    return '"' + tag.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Contexts:
    """The live UPDATE contexts of one session."""

    __slots__ = ("_live", "_view")

    def __init__(self) -> None:
        self._live: dict[str, Context] = {}
        self._view: _View | None = None

    def __len__(self) -> int:
        return len(self._live)

    def tags(self) -> list[str]:
        return list(self._live)

    @staticmethod
    def wanted(options: frozenset[str] | None) -> bool:
        return options is not None and "UPDATE" in options

    def check(self, tag: str, options: frozenset[str] | None) -> None:
        """Before the command runs: UPDATE under a tag a live context has is a BAD
        (RFC 5267 §4.3)."""
        if self.wanted(options) and tag in self._live:
            raise bad("Tag reuse: an UPDATE context already has this tag")

    def open(self, tag: str, uid_mode: bool, program: SearchProgram, uids: Sequence[int],
             criteria: list[tuple[str, bool]] | None, snapshot: Snapshot,
             overlay: Overlay) -> bytes:
        """Keep the search under ``tag``; what to write: nothing, or the NOUPDATE
        refusal when the session has too many (RFC 5267 §4.3.1)."""
        if len(self._live) >= MAX_CONTEXTS:
            return b"* NO [NOUPDATE " + _quoted(tag).encode() + b"] Too many contexts\r\n"
        if not self._live:
            self._view = _View(snapshot, dict(overlay))
        self._live[tag] = Context(tag, uid_mode, program, criteria, list(uids))
        return b""

    def cancel(self, args: list[Token]) -> None:
        """CANCELUPDATE "tag" ... (RFC 5267 §4.3.5): all named or none."""
        if not args:
            raise bad("CANCELUPDATE takes the tags of searches, quoted")
        tags: list[str] = []
        for arg in args:
            if not isinstance(arg, String):
                raise bad("CANCELUPDATE takes the tags of searches, quoted")
            tags.append(arg.text())
        unknown = [t for t in tags if t not in self._live]
        if unknown:
            raise bad(f"No UPDATE context has the tag {_quoted(unknown[0][:40])}")
        for tag in tags:
            del self._live[tag]
        if not self._live:
            self._view = None

    def clear(self) -> None:
        self._live.clear()
        self._view = None

    async def refresh(self, session: Session, folder_id: int, known: Snapshot,
                      now: Snapshot, overlay: Overlay) -> tuple[bytes, bytes]:
        """Bring every context up to date with ``now`` (the session's snapshot, its
        ``overlay`` applied); ``known`` is the snapshot the client knew before this
        announcement. Returns the REMOVEFROM responses (numbered as in ``known``, to go
        before the EXPUNGE responses) and the ADDTO responses (numbered as in ``now``,
        to go after EXISTS)."""
        view = self._view
        if view is None or (view.snapshot is now and view.overlay == overlay):
            return b"", b""
        changed = _changed(view, now, overlay)
        self._view = _View(now, dict(overlay))
        removals: list[bytes] = []
        additions: list[bytes] = []
        for context in list(self._live.values()):
            hits = {uid for _, uid in await session.evaluate(context.program, changed)} \
                if changed else set()
            if context.tag not in self._live:
                continue
            removed, added, result = await _update(session, folder_id, context, now,
                                                   {now.uids[i] for i in changed}, hits)
            context.result = result
            if removed:
                removals.append(_line(context, "REMOVEFROM", removed, known))
            if added:
                additions.append(_line(context, "ADDTO", added, now))
        return b"".join(removals), b"".join(additions)


def _effective(snapshot: Snapshot, overlay: Overlay, i: int) -> tuple[str, int]:
    mine = overlay.get(snapshot.uids[i]) if overlay else None
    return mine if mine is not None else (snapshot.flags[i], snapshot.modseqs[i])


def _changed(view: _View, now: Snapshot, overlay: Overlay) -> list[int]:
    """Positions in ``now`` of the messages that are new since ``view`` or whose flags
    or MODSEQ differ (one walk of both UID lists, both ascending)."""
    before = view.snapshot.uids
    changed: list[int] = []
    i = 0
    for j, uid in enumerate(now.uids):
        while i < len(before) and before[i] < uid:
            i += 1
        if i < len(before) and before[i] == uid:
            if _effective(view.snapshot, view.overlay, i) != _effective(now, overlay, j):
                changed.append(j)
            i += 1
        else:
            changed.append(j)
    return changed


# a run of the list: (context position, UIDs in the requested order)
Run = tuple[int, list[int]]


async def _update(session: Session, folder_id: int, context: Context, now: Snapshot,
                  evaluated: set[int], hits: set[int]
                  ) -> tuple[list[Run], list[Run], list[int]]:
    """The removals, additions and new result of one context."""
    old = context.result
    kept = [uid for uid in old if now.position(uid) is not None
            and (uid not in evaluated or uid in hits)]
    members = set(kept) | hits
    if context.criteria is None:  # SEARCH: mailbox order, position 0
        result = sorted(members)
        removed = [uid for uid in old if uid not in members]
        present = set(old)
        added = [uid for uid in result if uid not in present]
        return ([(0, removed)] if removed else [],
                [(0, added)] if added else [], result)
    if members == set(kept):
        result = kept
    else:
        in_folder = sorted((i, uid) for uid in members
                           if (i := now.position(uid)) is not None)
        rows = await sorting.rows_of(session, folder_id, in_folder)
        result = [row.uid for row in sorting.sort_rows(rows, context.criteria)]
    removals, additions = edits(old, result)
    return removals, additions, result


def edits(old: list[int], new: list[int]) -> tuple[list[Run], list[Run]]:
    """The REMOVEFROM and ADDTO runs that turn the list ``old`` into ``new``, where the
    items of both keep their relative order (RFC 5267 §4.3.2: processed in order)."""
    return _runs(old, set(new), removing=True), _runs(new, set(old))


def _runs(items: list[int], others: set[int], *, removing: bool = False) -> list[Run]:
    """The runs of ``items`` not in ``others``, with their 1-based context position:
    for additions the position in ``items`` (the new list); for removals the position
    once the runs before are removed."""
    runs: list[Run] = []
    gone = 0  # removed before the current run
    run: list[int] = []
    start = 0
    for k, uid in enumerate(items):
        if uid in others:
            if run:
                runs.append((start, run))
                gone += len(run) if removing else 0
                run = []
            continue
        if not run:
            start = k - gone + 1
        run.append(uid)
    if run:
        runs.append((start, run))
    return runs


def _line(context: Context, item: str, runs: list[Run], snapshot: Snapshot) -> bytes:
    """``* ESEARCH (TAG "t") UID ADDTO (0 4:5)`` (RFC 5267 §4.3.3, §4.3.4)."""
    pairs: list[str] = []
    for position, uids in runs:
        if context.uid_mode:
            numbers = uids
        else:
            numbers = [i + 1 for uid in uids if (i := snapshot.position(uid)) is not None]
        if not numbers:
            continue
        text = compress(numbers) if position == 0 else sorting.sequence(numbers)
        pairs.append(f"{position} {text}")
    if not pairs:
        return b""
    uid = " UID" if context.uid_mode else ""
    return f"* ESEARCH (TAG {_quoted(context.tag)}){uid} {item} ({' '.join(pairs)})\r\n" \
        .encode()
