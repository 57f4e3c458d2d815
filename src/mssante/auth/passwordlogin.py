"""Who a login and password log in as, for IMAP and SMTP submission alike.

- The person's argon2 hash is checked; an unknown login costs the same work, so
  timing does not tell who exists.
- A success is remembered for five minutes per process (``VerifiedLogins``, as
  Dovecot's auth cache does): clients reconnect often.
- The operator's password policy (domain/logins.py) is asked once the password is
  found right: a kind of person it disables gets ``PasswordsDisabled``, which says
  what to use instead, and the attempt is not counted as a guess.
- Failed logins are counted per login and per client address (``FailedLogins``,
  throttle.py): past a limit the login, or the address, waits, and its passwords
  are not checked at all. An attempt counts from before its check and a right
  password takes it back, so connections trying at the same moment get no more
  guesses than the limit.
"""

from __future__ import annotations

from typing import Protocol

from mssante.auth.identity import Identity
from mssante.auth.passwords import VerifiedLogins, dummy_hash
from mssante.auth.throttle import FailedLogins
from mssante.domain import logins
from mssante.domain.logins import PasswordPolicy
from mssante.store.models import Person

_VERIFIED = VerifiedLogins()  # per process (passwords.py)


class PasswordLoginFailed(Exception):
    """Wrong login or password; the message is safe to show the client."""


class LoginThrottled(PasswordLoginFailed):
    """Too many failed logins for the login or from the client's address: nothing
    was checked."""


class PasswordsDisabled(PasswordLoginFailed):
    """The password was right, but the operator disables passwords for this kind of
    person (domain/logins.py); the message says what to use instead."""


class People(Protocol):
    """Where persons are found (the operator's store)."""

    async def get_person(self, login: str) -> Person | None: ...


async def password_login(people: People, throttle: FailedLogins, login: str, password: str,
                         address: str, policy: PasswordPolicy) -> Identity:
    """The person whose login and password these are, for a client at ``address``."""
    refusal = throttle.refusal(login, address)
    if refusal is not None:
        raise LoginThrottled(refusal)
    attempt = throttle.failed(login, address)  # taken back below if the password is right
    person = await people.get_person(login)
    stored = person.password_hash if person is not None else None
    ok = await _VERIFIED.verify(stored or dummy_hash(), password) and stored is not None
    if not ok or person is None:
        raise PasswordLoginFailed("Authentication failed")
    throttle.forgive(login, address, attempt)
    try:
        policy.check(person.kind)
    except logins.PasswordsDisabled as exc:
        raise PasswordsDisabled(str(exc)) from exc
    return Identity(person.login, person.kind.value)
