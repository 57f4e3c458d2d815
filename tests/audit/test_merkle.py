"""RFC 9162 §2.1 Merkle trees: the root against the recursive definition, every
inclusion and consistency proof of small trees verified, and altered ones refused."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)


def mth(leaves: list[bytes]) -> bytes:
    """§2.1.1 as written: the recursive definition."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


LEAVES = [leaf_hash(f"entry {i}".encode()) for i in range(40)]


def test_known_hashes() -> None:
    assert EMPTY_ROOT.hex() == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852"
                                "b855")
    assert leaf_hash(b"").hex() == ("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a306"
                                    "17afa01d")


@pytest.mark.parametrize("n", range(0, 41))
def test_the_root_is_the_recursive_definitions(n: int) -> None:
    assert root(LEAVES[:n]) == mth(LEAVES[:n])
    rng = CompactRange.of(LEAVES[:n])
    restored = CompactRange(rng.size, rng.hashes)
    restored.append(leaf_hash(b"next"))
    assert restored.root() == mth([*LEAVES[:n], leaf_hash(b"next")])


def test_every_inclusion_proof_of_small_trees() -> None:
    for n in range(1, 20):
        tree_root = root(LEAVES[:n])
        for i in range(n):
            path = inclusion_proof(LEAVES[:n], i)
            assert verify_inclusion(LEAVES[i], i, n, path, tree_root)
            assert not verify_inclusion(leaf_hash(b"forged"), i, n, path, tree_root)
            if path:
                bad = [bytes(32), *path[1:]]
                assert not verify_inclusion(LEAVES[i], i, n, bad, tree_root)
            assert not verify_inclusion(LEAVES[i], n, n, path, tree_root)


def test_every_consistency_proof_of_small_trees() -> None:
    for n in range(1, 20):
        for m in range(1, n + 1):
            proof = consistency_proof(LEAVES[:n], m)
            assert verify_consistency(m, n, root(LEAVES[:m]), root(LEAVES[:n]), proof)
            rewritten = [*LEAVES[:m - 1], leaf_hash(b"rewritten"), *LEAVES[m:n]]
            assert not verify_consistency(m, n, root(rewritten[:m]), root(LEAVES[:n]), proof)
            if proof:
                assert not verify_consistency(m, n, root(LEAVES[:m]), root(LEAVES[:n]),
                                              proof[:-1])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_proofs_of_any_size(n: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    i = data.draw(st.integers(0, n - 1))
    m = data.draw(st.integers(1, n))
    tree_root = root(leaves)
    assert verify_inclusion(leaves[i], i, n, inclusion_proof(leaves, i), tree_root)
    assert verify_consistency(m, n, root(leaves[:m]), tree_root, consistency_proof(leaves, m))
