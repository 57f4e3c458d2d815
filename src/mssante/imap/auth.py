"""Who is logging in: a person by login and password, a professional by the
certificate of their card (persons CA), a program by its organisation certificate.

- LOGIN and AUTHENTICATE PLAIN (RFC 4616) check the person's argon2 password; an
  unknown login costs the same work, so timing does not tell who exists. A success
  is remembered for five minutes (``VerifiedLogins``): clients reconnect often.
- AUTHENTICATE EXTERNAL (RFC 4422 Appendix A) takes the TLS client certificate
  (certlogin.py: a card holder, or a program bound to an APP mailbox). An
  authorisation identity, if given, must name the same identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from mssante.certlogin import CertificateLoginFailed, certificate_holder
from mssante.passwords import VerifiedLogins, dummy_hash
from mssante.smtp.context import OperatorContext
from mssante.throttle import minutes


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated login: a person (``login``) or a program (``app``: the APP
    mailbox its certificate is bound to)."""

    login: str
    app: str | None = None  # the APP mailbox address, for a program

    @property
    def is_program(self) -> bool:
        return self.app is not None


class AuthFailed(Exception):
    """The credentials were refused; the message is safe to show the client."""

    code = "AUTHENTICATIONFAILED"  # RFC 5530 response code


class Throttled(AuthFailed):
    """Too many failed logins from the client's address (throttle.py): not checked."""

    code = "UNAVAILABLE"  # RFC 5530: temporary, try again later


_VERIFIED = VerifiedLogins()  # per process: clients reconnect often (passwords.py)


async def password_login(ctx: OperatorContext, login: str, password: str,
                         address: str) -> Identity:
    """The person whose login and password these are, for a client at ``address``."""
    wait = ctx.logins.wait(address)
    if wait:
        raise Throttled(f"Too many failed logins from {address}; try again in {minutes(wait)}")
    attempt = ctx.logins.failed(address)  # taken back below if the password is right
    person = await ctx.store.get_person(login)
    stored = person.password_hash if person is not None else None
    ok = await _VERIFIED.verify(stored or dummy_hash(), password) and stored is not None
    if not ok or person is None:
        raise AuthFailed("Authentication failed")
    ctx.logins.forgive(address, attempt)
    return Identity(person.login)


async def certificate_login(ctx: OperatorContext, der: bytes | None,
                            authzid: str = "") -> Identity:
    try:
        holder = await certificate_holder(ctx, der)
    except CertificateLoginFailed as exc:
        raise AuthFailed(str(exc)) from exc
    if holder.person is not None:
        identity = Identity(holder.person.login)
    else:
        identity = Identity(holder.subject_dn, app=holder.app)
    if authzid and authzid not in (identity.login, identity.app):
        raise AuthFailed("The authorisation identity is not the certificate's")
    return identity
