"""Who is logging in: a person by login and password, a professional by the
certificate of their card (persons CA), a program by its organisation certificate.

- LOGIN and AUTHENTICATE PLAIN (RFC 4616) check the person's password
  (passwordlogin.py: argon2, remembered five minutes, throttled per client address).
- AUTHENTICATE EXTERNAL (RFC 4422 Appendix A) takes the TLS client certificate
  (certlogin.py: a card holder, or a program bound to an APP mailbox). An
  authorisation identity, if given, must name the same identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from mssante.auth.certlogin import CertificateLoginFailed, certificate_holder
from mssante.auth.passwordlogin import LoginThrottled, PasswordLoginFailed, password_holder
from mssante.operator.runtime import OperatorRuntime


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
    """Too many failed logins for the login or from the client's address
    (throttle.py): not checked."""

    code = "UNAVAILABLE"  # RFC 5530: temporary, try again later


async def password_login(ctx: OperatorRuntime, login: str, password: str,
                         address: str) -> Identity:
    """The person whose login and password these are, for a client at ``address``
    (passwordlogin.py)."""
    try:
        person = await password_holder(ctx, login, password, address)
    except LoginThrottled as exc:
        raise Throttled(str(exc)) from exc
    except PasswordLoginFailed as exc:
        raise AuthFailed(str(exc)) from exc
    return Identity(person.login)


async def certificate_login(ctx: OperatorRuntime, der: bytes | None,
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
