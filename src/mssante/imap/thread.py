"""THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES over the sort keys of the
messages a search matched, and the ``* THREAD`` answer.

Implementation notes:
- Pure: ``thread(algorithm, items)`` takes one ``Item`` per matching message (the
  number to answer with, its sort keys, its INTERNALDATE, its position in the folder)
  and returns the threads as ``Node`` trees; ``render`` writes them.
- The sent date is the Date field, else the INTERNALDATE (RFC 5256 §3 ORDEREDSUBJECT,
  "sent date"); equal dates are ordered by position in the folder (§3: "ties ... the
  message sequence number").
- No recursion: trees are walked with explicit stacks, so that a reply chain of ten
  thousand messages neither exhausts Python's stack nor takes more than linear time
  to render. Linking a parent refuses a loop by walking up from it (§3 step 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mssante.content.sortkeys import SortKeys

ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


class Item:
    """One message to thread: the number the answer writes (sequence number or UID),
    its sort keys, and its date for ordering (the sent date, else INTERNALDATE, then
    the position in the folder for ties)."""

    __slots__ = ("keys", "number", "order")

    def __init__(self, number: int, keys: SortKeys, internaldate: float,
                 position: int) -> None:
        self.number = number
        self.keys = keys
        self.order = (internaldate if keys.sent is None else keys.sent, position)


@dataclass(eq=False, slots=True)
class Node:
    item: Item | None  # None: a dummy (a message referred to but not there)
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None

    def order(self) -> tuple[float, int]:
        """The node's date: its message's, else (a dummy) its first child's."""
        if self.item is not None:
            return self.item.order
        node: Node = self
        while node.item is None:
            if not node.children:
                return (0.0, 0)
            node = node.children[0]
        return node.item.order


def thread(algorithm: str, items: Iterable[Item]) -> list[Node]:
    if algorithm == "ORDEREDSUBJECT":
        return ordered_subject(items)
    if algorithm == "REFERENCES":
        return references(items)
    raise ValueError(f"unknown threading algorithm {algorithm}")


def ordered_subject(items: Iterable[Item]) -> list[Node]:
    """RFC 5256 §3 ORDEREDSUBJECT: by base subject, then sent date; each group's first
    message is the parent of the others, which are siblings; threads by the sent date
    of their first message."""
    groups: dict[str, list[Item]] = {}
    for item in sorted(items, key=lambda i: (i.keys.subject, i.order)):
        groups.setdefault(item.keys.subject, []).append(item)
    roots = []
    for members in groups.values():
        root = Node(members[0])
        root.children = [Node(item, parent=root) for item in members[1:]]
        roots.append(root)
    roots.sort(key=Node.order)
    return roots


def _is_ancestor(candidate: Node, node: Node | None) -> bool:
    if not candidate.children:  # a leaf is nobody's ancestor but its own
        return candidate is node
    while node is not None:
        if node is candidate:
            return True
        node = node.parent
    return False


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def _unlink(child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
        child.parent = None


def references(items: Iterable[Item]) -> list[Node]:
    """RFC 5256 §3 REFERENCES, steps 1 to 6."""
    table: dict[str, Node] = {}
    unique = 0
    for item in items:  # (1) link by Message-ID and references
        message_id = item.keys.message_id
        node = table.get(message_id) if message_id is not None else None
        if node is not None and node.item is None:
            node.item = item
        else:  # no Message-ID, or a duplicate: a unique one
            node = Node(item)
            key = message_id if message_id is not None and message_id not in table \
                else f"\x00{unique}"
            unique += 1
            table[key] = node
        previous: Node | None = None
        for reference in item.keys.references:  # (1A)
            ref = table.get(reference)
            if ref is None:
                ref = table[reference] = Node(None)
            if (previous is not None and ref.parent is None and ref is not previous
                    and not _is_ancestor(ref, previous)):
                _link(previous, ref)
            previous = ref
        # (1B) the last reference is the parent; no loop
        if previous is not None and previous is not node and not _is_ancestor(node, previous):
            _link(previous, node)
        elif previous is None:
            _unlink(node)
    root = Node(None)  # (2) the root set (each node is in the table once)
    for node in table.values():
        if node.parent is None:
            root.children.append(node)
            node.parent = root
    _prune(root)  # (3)
    for child in root.children:  # (4) sort the root set by date
        if child.item is None:
            child.children.sort(key=Node.order)
    root.children.sort(key=Node.order)
    _gather_subjects(root)  # (5)
    _sort_all(root)  # (6)
    for child in root.children:
        child.parent = None
    return root.children


def _prune(root: Node) -> None:
    """(3) Dummies: without children deleted; with children replaced by them, except
    at the root level where more than one child would be promoted."""
    stack = [root]
    while stack:
        node = stack.pop()
        changed = True
        while changed:
            changed = False
            kept: list[Node] = []
            for child in node.children:
                if child.item is None and not child.children:
                    changed = True
                    continue
                if child.item is None and (node is not root or len(child.children) == 1):
                    for grandchild in child.children:
                        grandchild.parent = node
                        kept.append(grandchild)
                    changed = True
                    continue
                kept.append(child)
            node.children = kept
        stack.extend(node.children)


def _subject_of(node: Node) -> Item | None:
    if node.item is not None:
        return node.item
    return node.children[0].item if node.children else None


def _gather_subjects(root: Node) -> None:
    """(5) Threads of the same base subject brought together. The root level is
    rebuilt once at the end: a thread leaving it costs no search in the list."""
    tops = root.children
    subjects: dict[str, Node] = {}
    for node in tops:  # (5B) the table
        item = _subject_of(node)
        if item is None or not item.keys.subject:
            continue
        old = subjects.get(item.keys.subject)
        if old is None or (old.item is not None and node.item is None) or (
                old.item is not None and node.item is not None and old.item.keys.reply
                and not node.item.keys.reply):
            subjects[item.keys.subject] = node
    gone: set[int] = set()  # ids of the nodes that left the root level
    replaced: dict[int, Node] = {}  # a root-level node's place taken by a new dummy

    def adopt(parent: Node, child: Node) -> None:
        child.parent = parent
        parent.children.append(child)
        gone.add(id(child))

    for node in tops:  # (5C) merge
        item = _subject_of(node)
        if item is None or not item.keys.subject:
            continue
        old = subjects[item.keys.subject]
        if old is node:
            continue
        if old.item is None and node.item is None:
            for child in node.children:
                child.parent = old
                old.children.append(child)
            node.children = []
            gone.add(id(node))
        elif old.item is None:
            adopt(old, node)
        elif node.item is None:
            adopt(node, old)
            subjects[item.keys.subject] = node
        elif not old.item.keys.reply and node.item.keys.reply:
            adopt(old, node)
        else:
            dummy = Node(None, parent=root)
            replaced[id(old)] = dummy
            adopt(dummy, old)
            adopt(dummy, node)
            subjects[item.keys.subject] = dummy
    root.children = [replaced.get(id(node), node) for node in tops
                     if id(node) not in gone or id(node) in replaced]


def _sort_all(root: Node) -> None:
    """(6) Every set of siblings by date, a dummy dated by its first child: children
    are sorted before their parent's siblings (post-order)."""
    order: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):
        node.children.sort(key=Node.order)


def render(threads: Sequence[Node]) -> str:
    """The thread list of ``* THREAD`` (RFC 5256 §4): a chain of single children is
    written flat, ``(1 2 3)``; several children each in parentheses, ``(1 (2)(3))``."""
    out: list[str] = []
    # a stack of what to write: a node to open, or a literal text
    for top in threads:
        stack: list[Node | str] = [")", top]
        out.append("(")
        while stack:
            entry = stack.pop()
            if isinstance(entry, str):
                out.append(entry)
                continue
            node = entry
            if node.item is not None:
                if out[-1] not in ("(", " "):
                    out.append(" ")
                out.append(str(node.item.number))
            if len(node.children) == 1:
                stack.append(node.children[0])
            elif node.children:
                if node.item is not None:
                    out.append(" ")
                for child in reversed(node.children):
                    stack.append(")")
                    stack.append(child)
                    stack.append("(")
    return "".join(out)
