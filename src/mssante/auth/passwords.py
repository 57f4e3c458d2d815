"""Password hashing (argon2id, RFC 9106) for people's logins."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# RFC 9106 §4 second recommended option, lighter on memory for many logins a second.
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
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
        digest = hmac.new(self._key, password_hash.encode() + b"\x00" + password.encode(),
                          hashlib.sha256).digest()
        now = time.monotonic()
        expires = self._seen.get(digest)
        if expires is not None and expires > now:
            return True
        if not await self._check(password_hash, password):
            return False
        self._seen[digest] = now + self._ttl
        self._seen.move_to_end(digest)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against when the login is unknown, made once."""
    return hash_password(secrets.token_urlsafe(16))


def generate_password(length: int = 20) -> str:
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))
