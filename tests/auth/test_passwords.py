"""Remembered logins: cheap again for the same password, never for a wrong or changed one;
and the argon2id parameters production hashes with."""

from __future__ import annotations

import argon2
import pytest

from mssante.auth.passwords import (
    TEST_COST_VARIABLE,
    VerifiedLogins,
    hash_password,
    hash_password_salted,
    rehash,
    salt_of,
    verify_password,
    verify_password_async,
)


class CountedArgon2:
    """The real argon2 verification, counting how often it runs."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, password_hash: str, password: str) -> bool:
        self.calls += 1
        return await verify_password_async(password_hash, password)


async def test_a_success_is_remembered_a_failure_or_a_new_password_is_not() -> None:
    argon2 = CountedArgon2()
    logins = VerifiedLogins(check=argon2)
    stored = hash_password("first secret")
    assert not await logins.verify(stored, "wrong")
    assert not await logins.verify(stored, "wrong")  # a failure is never remembered
    assert argon2.calls == 2
    assert await logins.verify(stored, "first secret")
    assert argon2.calls == 3
    assert await logins.verify(stored, "first secret")  # from memory: argon2 does not run
    assert argon2.calls == 3
    assert not await logins.verify(stored, "First secret")  # another password is checked
    assert argon2.calls == 4
    changed = hash_password("second secret")  # the password was changed
    assert not await logins.verify(changed, "first secret")
    assert await logins.verify(changed, "second secret")
    assert argon2.calls == 6


async def test_entries_expire() -> None:
    argon2 = CountedArgon2()
    logins = VerifiedLogins(ttl=0.0, check=argon2)
    stored = hash_password("secret")
    assert await logins.verify(stored, "secret")
    assert await logins.verify(stored, "secret")  # expired at once: verified by argon2 again
    assert argon2.calls == 2


async def test_memory_is_bounded() -> None:
    argon2 = CountedArgon2()
    logins = VerifiedLogins(size=2, check=argon2)
    hashes = [hash_password(f"secret {n}") for n in range(3)]
    for n, stored in enumerate(hashes):
        assert await logins.verify(stored, f"secret {n}")
    assert await logins.verify(hashes[2], "secret 2")  # the newest is remembered
    assert argon2.calls == 3
    assert await logins.verify(hashes[0], "secret 0")  # the oldest was let go
    assert argon2.calls == 4


def test_production_hashes_with_rfc_9106s_second_recommended_parameters(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the suite's cheap setting (tests/conftest.py): argon2id, 3 passes over
    64 MiB, one lane, 32-octet tag, 16-octet salt (RFC 9106 §4, second option). A hash
    of the suite's cost verifies here too, but is not one of the current parameters."""
    cheap = hash_password("secret")
    monkeypatch.delenv(TEST_COST_VARIABLE, raising=False)
    stored = hash_password("secret")
    found = argon2.extract_parameters(stored)
    assert found == argon2.Parameters(type=argon2.Type.ID, version=19, salt_len=16,
                                      hash_len=32, time_cost=3, memory_cost=64 * 1024,
                                      parallelism=1)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=1$")
    assert verify_password(stored, "secret") and not verify_password(stored, "secreT")
    salt = salt_of(stored)
    assert salt is not None and hash_password_salted("secret", salt) == stored
    assert rehash("secret", stored) == stored
    assert verify_password(cheap, "secret") and salt_of(cheap) is None
