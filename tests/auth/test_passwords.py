"""Remembered logins: cheap again for the same password, never for a wrong or changed one."""

from __future__ import annotations

from mssante.auth.passwords import VerifiedLogins, hash_password, verify_password_async


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
