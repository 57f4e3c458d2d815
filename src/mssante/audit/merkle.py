"""Merkle tree hashing, inclusion and consistency proofs: RFC 9162 §2.1.

- ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``;
  the hash of an empty tree is ``SHA-256()``; a tree of ``n > 1`` leaves is split at
  ``k``, the largest power of two smaller than ``n`` (§2.1.1).
- ``CompactRange``: the roots of the perfect subtrees covering the first ``n`` leaves
  (at most log2(n) hashes), enough to append a leaf and to compute the root in
  O(log n): what the sequencer keeps between checkpoints.
- Proofs and their verification follow §2.1.3 (inclusion) and §2.1.4 (consistency);
  the verifiers are §2.1.3.2 and §2.1.4.2 step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaf hashes ``leaves`` (§2.1.1), without recursion."""
    if not leaves:
        return EMPTY_ROOT
    return CompactRange.of(leaves).root()


class CompactRange:
    """The perfect subtrees' roots covering leaves [0, size), largest first."""

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"a compact range of {size} leaves has {bin(size).count('1')} "
                             f"hashes, not {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)

    @classmethod
    def of(cls, leaves: Sequence[bytes]) -> CompactRange:
        made = cls()
        for leaf in leaves:
            made.append(leaf)
        return made

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash: merge equal-sized subtrees, as binary addition carries."""
        node = leaf
        size = self.size
        while size & 1:
            node = node_hash(self.hashes.pop(), node)
            size >>= 1
        self.hashes.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        node = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            node = node_hash(left, node)
        return node


def _subtree(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    return root(leaves[start:end])


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) for leaf ``index`` of the tree of ``leaves`` (§2.1.3.1)."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)} leaves")
    path: list[bytes] = []
    start, end = 0, len(leaves)
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(_subtree(leaves, start + k, end))
            end = start + k
        else:
            path.append(_subtree(leaves, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) between the first ``old_size`` leaves and all (§2.1.4.1)."""
    n = len(leaves)
    if not 0 < old_size <= n:
        raise ValueError(f"no consistency proof from {old_size} to {n} leaves")
    return _subproof(leaves, 0, n, old_size, True)


def _subproof(leaves: Sequence[bytes], start: int, end: int, m: int, whole: bool
              ) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [_subtree(leaves, start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves, start, start + k, m, whole),
                _subtree(leaves, start + k, end)]
    return [*_subproof(leaves, start + k, end, m - k, False),
            _subtree(leaves, start, start + k)]


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes],
                     root_hash: bytes) -> bool:
    """§2.1.3.2."""
    if index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """§2.1.4.2."""
    if old_size > new_size or old_size == 0:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root starts the path
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
