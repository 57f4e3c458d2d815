"""Password hashing (argon2id, RFC 9106) for people's logins."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import argon2
import argon2.low_level
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# RFC 9106 §4 second recommended option, lighter on memory for many logins a second.
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1)
# The test suite's (tests/conftest.py sets TEST_COST_VARIABLE): argon2id at its least
# cost, about a millisecond instead of a tenth of a second, for the thousands of
# passwords the suite hashes and checks. Never for real passwords: a stolen hash of this
# cost is cheap to attack. Verification reads the parameters from each hash, so hashes of
# either cost verify under both.
_TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
TEST_COST_VARIABLE = "MSSANTE_INSECURE_TEST_PASSWORD_HASHES"


def insecure_test_hashes() -> bool:
    """Whether TEST_COST_VARIABLE asks for the test suite's cost."""
    return os.environ.get(TEST_COST_VARIABLE) == "1"


def _hasher() -> PasswordHasher:
    """The production parameters, unless TEST_COST_VARIABLE is set to 1 (read at each
    call, so that processes the tests start inherit it, and a test can unset it)."""
    return _TEST_HASHER if insecure_test_hashes() else _HASHER


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def hash_password_salted(password: str, salt: bytes) -> str:
    """``hash_password`` with a salt of the caller's (auth/apppasswords.py shares one
    among a person's application passwords); the same encoded form."""
    hasher = _hasher()
    return argon2.low_level.hash_secret(
        password.encode(), salt, time_cost=hasher.time_cost,
        memory_cost=hasher.memory_cost, parallelism=hasher.parallelism,
        hash_len=hasher.hash_len, type=hasher.type).decode("ascii")


def salt_of(password_hash: str) -> bytes | None:
    """The salt of a hash made with the current parameters (None: another algorithm or
    other parameters, or not a hash)."""
    try:
        found = argon2.extract_parameters(password_hash)
        encoded = password_hash.split("$")[4]
        salt = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (InvalidHashError, IndexError, ValueError):
        return None
    hasher = _hasher()
    current = (hasher.time_cost, hasher.memory_cost, hasher.parallelism,
               hasher.hash_len, hasher.type)
    if (found.time_cost, found.memory_cost, found.parallelism, found.hash_len,
            found.type) != current or found.version != argon2.low_level.ARGON2_VERSION:
        return None
    return salt


def rehash(password: str, like: str) -> str | None:
    """``password`` hashed with the salt and parameters of ``like`` (None when ``like``
    is not a hash of the current parameters): equal to ``like`` if and only if the
    password is the one ``like`` was made from."""
    salt = salt_of(like)
    return None if salt is None else hash_password_salted(password, salt)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password_async(password_hash: str, password: str) -> bool:
    """Verify off the event loop: argon2 is deliberately slow."""
    return await asyncio.to_thread(verify_password, password_hash, password)


class VerifiedLogins:
    """Successful verifications remembered for ``ttl`` seconds, so that a mail client
    that reconnects every minute (or ten thousand IDLE connections of one user) does
    not pay argon2 each time; the same idea as Dovecot's auth cache.

    What is kept is an HMAC, under a key that lives only in this process's memory, of
    the stored hash and the password: never the password. A new password gives a new
    stored hash, so the old entry no longer matches; failures are never remembered.
    """

    def __init__(self, ttl: float = 300.0, size: int = 100_000, *,
                 check: Callable[[str, str], Awaitable[bool]] = verify_password_async
                 ) -> None:
        self._check = check  # the argon2 verification, off the event loop
        self._key = secrets.token_bytes(32)
        self._ttl = ttl
        self._size = size
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    async def verify(self, password_hash: str, password: str) -> bool:
        if self.remembered(password_hash, password):
            return True
        if not await self._check(password_hash, password):
            return False
        self.remember(password_hash, password)
        return True

    def _digest(self, password_hash: str, password: str) -> bytes:
        return hmac.new(self._key, password_hash.encode() + b"\x00" + password.encode(),
                        hashlib.sha256).digest()

    def remembered(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` was found to match ``password_hash`` within ``ttl``.
        Only the pair is remembered: whether the hash still opens anything (a password
        changed, an application password revoked) is the caller's to read afresh."""
        expires = self._seen.get(self._digest(password_hash, password))
        return expires is not None and expires > time.monotonic()

    def remember(self, password_hash: str, password: str) -> None:
        """Remember that ``password`` matches ``password_hash`` (checked by the caller)."""
        digest = self._digest(password_hash, password)
        self._seen[digest] = time.monotonic() + self._ttl
        self._seen.move_to_end(digest)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against when the login is unknown, made once."""
    return hash_password(secrets.token_urlsafe(16))


def generate_password(length: int = 20) -> str:
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))
