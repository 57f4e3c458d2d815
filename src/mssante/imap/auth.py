"""Who is logging in: a person by login and password, a professional by the
certificate of their card (persons CA), a program by its organisation certificate.

- LOGIN and AUTHENTICATE PLAIN (RFC 4616) check the person's password
  (auth/passwordlogin.py: argon2, remembered five minutes, throttled per client address),
  then the operator's password policy (domain/logins.py): a right password of a kind
  of person it disables gets ``NO [AUTHENTICATIONFAILED]`` saying what to use instead.
  An application password (auth/apppasswords.py) is accepted too; the account password
  of a person with a second factor (TOTP) is not, once found right:
  ``NO [AUTHENTICATIONFAILED]`` telling them to create an application password (RFC
  5530: the credentials, not the mechanism, are what is refused).
- AUTHENTICATE EXTERNAL (RFC 4422 Appendix A) takes the TLS client certificate
  (auth/certlogin.py: a card holder, or a program bound to an APP mailbox). An
  authorisation identity, if given, must name the same identity.
- AUTHENTICATE XOAUTH2 and OAUTHBEARER (RFC 7628) take a Pro Santé Connect access
  token (auth/psctoken.py); the login given must be the person the token names.
  Offered only when the operator has a ``[psc]`` issuer.
"""

from __future__ import annotations

from mssante.auth import certlogin, passwordlogin, psctoken
from mssante.auth.certlogin import CertificateLoginFailed
from mssante.auth.identity import Identity
from mssante.auth.passwordlogin import LoginThrottled, PasswordLoginFailed
from mssante.auth.psctoken import ProviderUnavailable, TokenLoginFailed
from mssante.domain.logins import WayIn
from mssante.operator.runtime import OperatorRuntime


class AuthFailed(Exception):
    """The credentials were refused; the message is safe to show the client."""

    code = "AUTHENTICATIONFAILED"  # RFC 5530 response code


class Throttled(AuthFailed):
    """Too many failed logins for the login or from the client's address (throttle.py):
    not checked."""

    code = "UNAVAILABLE"  # RFC 5530: temporary, try again later


async def password_login(ctx: OperatorRuntime, login: str, password: str,
                         address: str) -> Identity:
    """The person whose login and password these are, for a client at ``address``
    (auth/passwordlogin.py)."""
    try:
        return await passwordlogin.password_login(
            ctx.store, ctx.logins, login, password, address, ctx.passwords,
            way=WayIn.MAIL_CLIENT, second_factors=ctx.second_factors)
    except LoginThrottled as exc:
        raise Throttled(str(exc)) from exc
    except PasswordLoginFailed as exc:
        raise AuthFailed(str(exc)) from exc


async def certificate_login(ctx: OperatorRuntime, der: bytes | None,
                            authzid: str = "") -> Identity:
    """The holder of the client certificate (auth/certlogin.py)."""
    try:
        return await certlogin.certificate_login(ctx.trust.checker, ctx.store, der, authzid)
    except CertificateLoginFailed as exc:
        raise AuthFailed(str(exc)) from exc


class Unavailable(AuthFailed):
    """The identity provider could not be reached: nothing was decided."""

    code = "UNAVAILABLE"  # RFC 5530


async def token_login(ctx: OperatorRuntime, token: str, login: str) -> Identity:
    """The person a Pro Santé Connect access token names (auth/psctoken.py)."""
    if ctx.tokens is None:
        raise AuthFailed("Pro Santé Connect tokens are not accepted here")
    try:
        return await psctoken.token_login(ctx.tokens, ctx.store, token, login)
    except ProviderUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    except TokenLoginFailed as exc:
        raise AuthFailed(str(exc)) from exc
