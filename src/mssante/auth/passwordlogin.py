"""Who a login and password log in as, for IMAP and SMTP submission alike.

- The person's argon2 hash is checked; an unknown login costs the same work, so
  timing does not tell who exists.
- A success is remembered for five minutes per process (``VerifiedLogins``, as
  Dovecot's auth cache does): clients reconnect often.
- The operator's password policy (domain/logins.py) is asked once the password is
  found right: a kind of person it disables gets ``PasswordsDisabled``, which says
  what to use instead, and the attempt is not counted as a guess.
- Which password opens which way in is domain/logins.py's: at IMAP and submission
  (``WayIn.MAIL_CLIENT``) an application password (apppasswords.py) is looked for
  first, when the password has its shape; the account password of a person with a
  second factor gets ``AppPasswordRequired`` there, once found right (the web, which
  asks the second factor, never looks at application passwords).
- Failed logins are counted per login and per client address (``FailedLogins``,
  throttle.py): past a limit the login, or the address, waits, and its passwords
  are not checked at all. An attempt counts from before its check and a right
  password takes it back, so connections trying at the same moment get no more
  guesses than the limit.
- The checks of one login take turns (one lock per login, in this process): twenty
  connections of one program logging in at once are checked one after the other, the
  first right one remembered for the others, instead of all counting as failures
  until their checks end; guesses in parallel are counted one by one all the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from mssante.auth import apppasswords
from mssante.auth.identity import Identity
from mssante.auth.passwords import VerifiedLogins, dummy_hash
from mssante.auth.throttle import FailedLogins
from mssante.domain import logins
from mssante.domain.logins import (
    PasswordKind,
    PasswordPolicy,
    SecondFactorPolicy,
    WayIn,
    check_password_way,
    password_kinds,
)
from mssante.store.logins import Contact
from mssante.store.models import Person

_VERIFIED = VerifiedLogins()  # per process (passwords.py)
_TURNS: dict[str, tuple[asyncio.Lock, int]] = {}  # login -> its lock, users of it


@asynccontextmanager
async def _turn(login: str) -> AsyncIterator[None]:
    """One check at a time for ``login``; the lock goes when nobody holds or waits."""
    key = login.lower()
    lock, users = _TURNS.get(key, (asyncio.Lock(), 0))
    _TURNS[key] = (lock, users + 1)
    try:
        async with lock:
            yield
    finally:
        lock, users = _TURNS[key]
        if users <= 1:
            del _TURNS[key]
        else:
            _TURNS[key] = (lock, users - 1)


class PasswordLoginFailed(Exception):
    """Wrong login or password; the message is safe to show the client."""


class LoginThrottled(PasswordLoginFailed):
    """Too many failed logins for the login or from the client's address: nothing
    was checked."""


class PasswordsDisabled(PasswordLoginFailed):
    """The password was right, but the operator disables passwords for this kind of
    person (domain/logins.py); the message says what to use instead."""


class AppPasswordRequired(PasswordLoginFailed):
    """The account password was right, but this person has a second factor: a mail
    client logs in with an application password (domain/logins.py); the message says
    how to create one."""


class Credentials(apppasswords.AppPasswordStore, Protocol):
    """A person's second factors and application passwords (the store's ``logins``)."""

    async def contact(self, login: str) -> Contact | None: ...


class People(Protocol):
    """Where persons are found (the operator's store)."""

    async def get_person(self, login: str) -> Person | None: ...

    @property
    def logins(self) -> Credentials: ...


async def password_login(people: People, throttle: FailedLogins, login: str, password: str,
                         address: str, policy: PasswordPolicy, *, way: WayIn,
                         second_factors: SecondFactorPolicy | None = None) -> Identity:
    """The person whose login and password these are, for a client at ``address``
    logging in by ``way`` (the web, or a mail client at IMAP and submission)."""
    refusal = throttle.refusal(login, address)
    if refusal is not None:
        raise LoginThrottled(refusal)
    async with _turn(login):
        return await _password_login(people, throttle, login, password, address, policy,
                                     way=way, second_factors=second_factors)


async def _password_login(people: People, throttle: FailedLogins, login: str, password: str,
                          address: str, policy: PasswordPolicy, *, way: WayIn,
                          second_factors: SecondFactorPolicy | None) -> Identity:
    refusal = throttle.refusal(login, address)  # failures counted while this one waited
    if refusal is not None:
        raise LoginThrottled(refusal)
    attempt = throttle.failed(login, address)  # taken back below if the password is right
    person = await people.get_person(login)
    candidate = (apppasswords.normalized(password)
                 if PasswordKind.APPLICATION in password_kinds(way) else None)
    if candidate is not None:
        entries = await people.logins.app_password_hashes(login)  # none: a dummy hash
        entry = await apppasswords.match(entries, candidate, _VERIFIED)
        if entry is not None and person is not None:
            throttle.forgive(login, address, attempt)
            _check_policy(policy, person)
            await apppasswords.record_use(people.logins, entry, address)
            return Identity(person.login, person.kind.value, app_password=entry.id)
    stored = person.password_hash if person is not None else None
    ok = await _VERIFIED.verify(stored or dummy_hash(), password) and stored is not None
    if not ok or person is None:
        await throttle.confirmed(login, address)
        raise PasswordLoginFailed("Authentication failed")
    throttle.forgive(login, address, attempt)
    _check_policy(policy, person)
    if way is WayIn.MAIL_CLIENT:
        contact = await people.logins.contact(person.login)
        if contact is None:  # deleted meanwhile
            raise PasswordLoginFailed("Authentication failed")
        try:
            check_password_way(PasswordKind.ACCOUNT, way, contact.factors,
                               second_factors or SecondFactorPolicy())
        except logins.AppPasswordRequired as exc:
            raise AppPasswordRequired(str(exc)) from exc
    return Identity(person.login, person.kind.value)


def _check_policy(policy: PasswordPolicy, person: Person) -> None:
    """The operator's password policy, for account and application passwords alike."""
    try:
        policy.check(person.kind)
    except logins.PasswordsDisabled as exc:
        raise PasswordsDisabled(str(exc)) from exc
