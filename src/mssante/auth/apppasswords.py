"""Application passwords: what a person's mail clients log in with at IMAP and
submission when their account password needs a second factor (domain/logins.py,
``check_password_way``), as at Fastmail, Google or Proton.

Implementation notes:
- Generated here, never chosen: 16 lowercase letters (26^16, 75.2 bits), shown once
  as four groups of four (``abcd efgh ijkl mnop``); a client may send them with or
  without the spaces (or with hyphens), in either case. A password of another shape is
  never looked up among the application passwords.
- Stored as argon2id hashes (passwords.py's parameters) with the label the person gave
  (the device or program), the creation time, and the time and client address of the
  last session each opened (store/logins.py); at most ``MAX_APP_PASSWORDS`` a person,
  each revoked alone. They open IMAP and submission only: the web's login does not
  look at them (``domain.logins.password_kinds``).
- One argon2 computation per attempt, however many a person has: the application
  passwords of one person share one random salt (their first one's), so the password
  typed is hashed once and compared with each hash. What a salt is for, no table
  computed once for everyone, a per-person salt still gives; against guessing, a random
  75-bit secret protects itself. A wrong guess thus costs the same work whoever the
  login is and however many passwords they have (an unknown login, or one without
  any, costs a dummy hash), and its timing tells nothing of either.
- The verification cache (passwords.VerifiedLogins, five minutes) remembers a
  (hash, password) pair only; the hashes are read from the store at every login, so
  a revoked password opens nothing from the next login on, in every process. A session
  it opened remembers it (``Identity.app_password``) and ends at its next IMAP command
  or MAIL once it is gone (imap/session.py, smtp/submission.py).
- The last use is written at most once a minute per password and address, so that a
  client reconnecting often does not write at each login.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import secrets
import string
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mssante.auth.passwords import (
    VerifiedLogins,
    hash_password,
    hash_password_salted,
    rehash,
    salt_of,
    verify_password,
)
from mssante.errors import MSSanteError
from mssante.store.logins import AppPassword, AppPasswordHash

LETTERS = string.ascii_lowercase
LENGTH = 16  # letters: log2(26) * 16 = 75.2 bits
GROUP = 4  # letters per group as shown
MAX_LABEL = 64  # characters of a label
USE_RECORD_SECONDS = 60.0  # the last use is written again only after this long


class InvalidLabel(MSSanteError, ValueError):
    """A label that is empty, too long or holds control characters (``reason``:
    ``EMPTY``, ``TOO_LONG`` or ``CONTROL``, for a caller that words it otherwise)."""

    EMPTY, TOO_LONG, CONTROL = "empty", "too long", "control"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class AppPasswordStore(Protocol):
    """Where application passwords are kept (the store's ``logins``)."""

    async def app_password_hashes(self, login: str) -> list[AppPasswordHash]: ...

    async def add_app_password(self, login: str, label: str, password_hash: str, *,
                               now: float) -> AppPassword: ...

    async def app_password_used(self, app_password_id: int, *, at: float,
                                address: str) -> None: ...


@dataclass(frozen=True, slots=True)
class NewAppPassword:
    """An application password just created: the entry, and the password to show once."""

    entry: AppPassword
    password: str  # as shown: four groups of four letters

    def __repr__(self) -> str:  # never in a log line or a traceback
        return f"NewAppPassword(entry={self.entry!r}, password=<secret>)"


def generate() -> str:
    return "".join(secrets.choice(LETTERS) for _ in range(LENGTH))


def shown(password: str) -> str:
    """``abcdefghijklmnop`` as ``abcd efgh ijkl mnop``."""
    return " ".join(password[i:i + GROUP] for i in range(0, len(password), GROUP))


def normalized(text: str) -> str | None:
    """The application password ``text`` may be (spaces and hyphens dropped, lower
    case), or None when it has not the shape of one."""
    compact = "".join(c for c in text if c not in " -").lower()
    if len(compact) == LENGTH and compact.isascii() and compact.isalpha():
        return compact
    return None


def check_label(text: str) -> str:
    """The label of a new application password, trimmed; InvalidLabel if empty, longer
    than ``MAX_LABEL`` characters or holding control or format characters."""
    label = " ".join(text.split())
    if not label:
        raise InvalidLabel("give the device or program a name", InvalidLabel.EMPTY)
    if len(label) > MAX_LABEL:
        raise InvalidLabel(f"a name has at most {MAX_LABEL} characters",
                           InvalidLabel.TOO_LONG)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in label):
        raise InvalidLabel("a name cannot hold control characters", InvalidLabel.CONTROL)
    return label


def hash_like(password: str, existing: Sequence[str]) -> str:
    """The hash of a new application password, with the salt of the person's existing
    ones (the first of current parameters), else a new random salt."""
    for other in existing:
        salt = salt_of(other)
        if salt is not None:
            return hash_password_salted(password, salt)
    return hash_password(password)


@functools.cache
def _dummy() -> str:
    """A hash to compute against when the login has no application password."""
    return hash_password(generate())


def _match(entries: Sequence[AppPasswordHash], password: str) -> AppPasswordHash | None:
    """The entry ``password`` is: one argon2 computation per salt among ``entries``
    (normally one), one in any case (against a dummy hash when there is none)."""
    computed: dict[bytes, str] = {}  # the password hashed, per salt
    checked_alone = False
    found = None
    for entry in entries:
        salt = salt_of(entry.password_hash)
        if salt is None:  # other parameters (an older version's): checked on its own
            checked_alone = True
            matches = verify_password(entry.password_hash, password)
        else:
            if salt not in computed:
                computed[salt] = hash_password_salted(password, salt)
            matches = hmac.compare_digest(computed[salt].encode(),
                                          entry.password_hash.encode())
        if matches and found is None:
            found = entry
    if not computed and not checked_alone:
        rehash(password, _dummy())
    return found


async def match(entries: Sequence[AppPasswordHash], password: str,
                cache: VerifiedLogins) -> AppPasswordHash | None:
    """The application password among ``entries`` that ``password`` (normalized) is,
    or None; a match is remembered in ``cache``, off the event loop otherwise."""
    for entry in entries:
        if cache.remembered(entry.password_hash, password):
            return entry
    found = await asyncio.to_thread(_match, entries, password)
    if found is not None:
        cache.remember(found.password_hash, password)
    return found


async def record_use(store: AppPasswordStore, entry: AppPasswordHash, address: str, *,
                     now: float | None = None) -> None:
    """Note that ``entry`` opened a session from ``address`` (at most once a minute)."""
    now = time.time() if now is None else now
    if (entry.last_used_at is not None and entry.last_used_from == address
            and now - entry.last_used_at < USE_RECORD_SECONDS):
        return
    await store.app_password_used(entry.id, at=now, address=address)


async def create(store: AppPasswordStore, login: str, label: str, *,
                 now: float | None = None) -> NewAppPassword:
    """A new application password for ``login``, named ``label``; raises InvalidLabel,
    store.logins.TooManyAppPasswords, NotFound (no such person)."""
    label = check_label(label)
    existing = [e.password_hash for e in await store.app_password_hashes(login)]
    password = generate()
    password_hash = await asyncio.to_thread(hash_like, password, existing)
    entry = await store.add_app_password(login, label, password_hash,
                                         now=time.time() if now is None else now)
    return NewAppPassword(entry, shown(password))
