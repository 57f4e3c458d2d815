from __future__ import annotations

from mssante.operator.runtime import BodyCache


def test_least_recently_used_bodies_leave_first() -> None:
    cache = BodyCache(limit=100)
    cache.put("a", b"x" * 20)
    cache.put("b", b"y" * 20)
    cache.put("c", b"z" * 20)
    assert cache.get("a") == b"x" * 20  # a is now the most recent
    for name in "defg":
        cache.put(name, b"w" * 20)
    assert cache.get("b") is None and cache.get("c") is None  # evicted, oldest first
    assert cache.get("a") == b"x" * 20  # kept: it was used after b and c
    assert cache.get("g") == b"w" * 20


def test_a_body_larger_than_a_quarter_is_not_kept() -> None:
    cache = BodyCache(limit=100)
    cache.put("big", b"x" * 26)
    assert cache.get("big") is None
    cache.put("ok", b"x" * 25)
    assert cache.get("ok") == b"x" * 25
