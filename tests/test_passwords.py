"""Remembered logins: cheap again for the same password, never for a wrong or changed one."""

from __future__ import annotations

from mssante.passwords import VerifiedLogins, hash_password


async def test_a_success_is_remembered_a_failure_or_a_new_password_is_not() -> None:
    logins = VerifiedLogins()
    stored = hash_password("first secret")
    assert not await logins.verify(stored, "wrong")
    assert not await logins.verify(stored, "wrong")  # a failure is never remembered
    assert await logins.verify(stored, "first secret")
    assert len(logins._seen) == 1
    assert await logins.verify(stored, "first secret")  # from memory
    changed = hash_password("second secret")  # the password was changed
    assert not await logins.verify(changed, "first secret")
    assert await logins.verify(changed, "second secret")
    assert len(logins._seen) == 2


async def test_entries_expire() -> None:
    logins = VerifiedLogins(ttl=0.0)
    stored = hash_password("secret")
    assert await logins.verify(stored, "secret")
    [expires] = logins._seen.values()
    assert await logins.verify(stored, "secret")  # verified again by argon2: new entry
    [again] = logins._seen.values()
    assert again > expires
