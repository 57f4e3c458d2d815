"""Password hashing (argon2id, RFC 9106) for people's logins."""

from __future__ import annotations

import asyncio
import functools
import secrets

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


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against when the login is unknown, made once."""
    return hash_password(secrets.token_urlsafe(16))


def generate_password(length: int = 20) -> str:
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))
