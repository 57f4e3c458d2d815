"""Submission (RFC 6409): professionals, patients and applications sending mail.

Implementation notes:
- AUTH only over TLS (STARTTLS on 587, implicit on 465): PLAIN (RFC 4616) and
  LOGIN with a person's login and password; EXTERNAL (RFC 4422 App. A) with an
  organisation certificate, for the program behind an APP mailbox. A right password
  of a kind of person the operator's policy disables (domain/logins.py) gets
  ``534 5.7.9`` (RFC 4954 §6: mechanism too weak for this user), saying what to use.
  An application password (auth/apppasswords.py) logs in like a password; the account
  password of a person with a second factor (TOTP), once found right, gets ``535
  5.7.8`` telling them to create one. RFC 4954 §6 gives 535 5.7.8 to "invalid or
  insufficient authentication credentials", which this is: the same mechanism with
  an application password succeeds, so 534 5.7.9 ("mechanism weaker than server
  policy permits") would send clients looking for another mechanism, where 535 makes
  them ask the person for the password again, the one they must now type.
- AUTH XOAUTH2 and OAUTHBEARER (RFC 7628) with a Pro Santé Connect access token
  (auth/psctoken.py), offered only when the operator has a ``[psc]`` issuer
  (server.py excludes them otherwise). A refusal is ``535 5.7.8``, after
  OAUTHBEARER's ``334`` JSON error (RFC 7628 §3.2.2); it counts like a wrong password
  for the connection's budget. The AUTH line may be as long as RFC 4954 §4 allows.
  Once the PSC session the token stood for has ended (auth/pscsessions.py), the next
  MAIL gets ``421 4.7.0`` and the connection closes; so does it once the application
  password the session logged in with is revoked (read at each MAIL).
- MAIL, RCPT and DATA are the three stages of operator/sending.py, the path the web
  takes too: who may send as whom, recipients in the trust space, the patient rules,
  the added From, Date and Message-ID, the Sent copy. The rights are read again at
  MAIL and at DATA, never kept from AUTH: a delegate revoked while connected can no
  longer send on that connection. Its refusals (operator/refusals.py) become the
  replies named in replies.py (``answers_refusals``): the address and the reason.
"""

from __future__ import annotations

import base64
import binascii
import logging

from aiosmtpd.smtp import AuthResult, Session

from mssante.audit.events import LOGIN, LOGIN_FAILED, AuditEvent, actor_of, clip
from mssante.auth import oauthsasl
from mssante.auth.certlogin import CertificateLoginFailed, certificate_login
from mssante.auth.identity import Identity
from mssante.auth.passwordlogin import (
    AppPasswordRequired,
    LoginThrottled,
    PasswordLoginFailed,
    PasswordsDisabled,
    password_login,
)
from mssante.auth.psctoken import ProviderUnavailable, TokenLoginFailed, token_login
from mssante.domain.logins import WayIn
from mssante.operator import sending
from mssante.operator.accept import RcptParams, trace
from mssante.operator.runtime import OperatorRuntime
from mssante.smtp.common import ehlo_keywords, peer_host
from mssante.smtp.protocol import MSSanteSMTP, MSSEnvelope
from mssante.smtp.replies import (
    AUTH_FAILED,
    MESSAGE_ACCEPTED,
    RECIPIENT_OK,
    SENDER_OK,
    answers_refusals,
)

log = logging.getLogger(__name__)

MAX_AUTH_FAILURES = 3  # then the connection is closed (STYLE: every connection defends itself)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        return None


class SubmissionHandler:
    """aiosmtpd handler of the submission listeners (587 and 465)."""

    def __init__(self, ctx: OperatorRuntime) -> None:
        self.ctx = ctx

    # -- authentication ---------------------------------------------------------------

    async def _login(self, server: MSSanteSMTP, login: str, password: str) -> AuthResult:
        address = self._address(server)
        try:
            identity = await password_login(self.ctx.store, self.ctx.logins, login, password,
                                            address, self.ctx.passwords,
                                            way=WayIn.MAIL_CLIENT,
                                            second_factors=self.ctx.second_factors)
        except LoginThrottled as exc:  # RFC 4954 §6: 454 4.7.0 temporary failure
            return await self._failed(server, login, f"454 4.7.0 {exc}")
        except PasswordsDisabled as exc:  # RFC 4954 §6: 534 5.7.9 mechanism too weak
            return await self._failed(server, login, f"534 5.7.9 {exc}")
        except AppPasswordRequired as exc:  # RFC 4954 §6: 535 5.7.8 insufficient credentials
            return await self._failed(server, login, f"535 5.7.8 {exc}")
        except PasswordLoginFailed:
            return await self._failed(server, login)
        return await self._succeeded(server, identity, "PASSWORD")

    async def _succeeded(self, server: MSSanteSMTP, identity: Identity,
                         method: str) -> AuthResult:
        """The login, recorded in the audit trail before the client hears of it."""
        await self.ctx.store.audit_record([AuditEvent(
            LOGIN, actor_of(identity.login, identity.psc.subject if identity.psc else None,
                            identity.app_password),
            source=f"submission {self._address(server)}", detail=method)])
        return AuthResult(success=True, auth_data=identity)

    @staticmethod
    def _address(server: MSSanteSMTP) -> str:
        return (peer_host(server.session) if server.session else None) or "unknown"

    async def _failed(self, server: MSSanteSMTP, login: str,
                      reply: str | None = str(AUTH_FAILED)) -> AuthResult:
        """Count a failed attempt, record it in the audit trail and answer it (None:
        answered already); the third one closes the connection."""
        await self.ctx.store.audit_record([AuditEvent(
            LOGIN_FAILED, clip(login), source=f"submission {self._address(server)}",
            detail=clip(reply or "refused"))])
        server.auth_failures += 1
        log.info("authentication failed for %r (%d)", login, server.auth_failures)
        if server.auth_failures >= MAX_AUTH_FAILURES:
            await server.push("421 4.7.0 Too many authentication failures, closing")
            if server.transport is not None:
                server.transport.close()
        elif reply is not None:
            await server.push(reply)
        return AuthResult(success=False, handled=True)

    async def _undecodable(self, server: MSSanteSMTP) -> AuthResult:
        """Malformed credentials count as a failed attempt (RFC 4954 §4: 501)."""
        return await self._failed(server, "?", "501 5.5.2 Cannot decode the credentials")

    async def _initial_response(self, server: MSSanteSMTP,
                                args: list[str]) -> bytes | AuthResult:
        """The client's response: given with AUTH (RFC 4954 §4), or asked for with an
        empty challenge; an AuthResult when there is none to read."""
        if len(args) == 1:
            blob = await server.challenge_auth("")
            return blob if isinstance(blob, bytes) else AuthResult(success=False, handled=True)
        decoded = _b64(args[1])
        return decoded if decoded is not None else await self._undecodable(server)

    async def auth_PLAIN(self, server: MSSanteSMTP, args: list[str]) -> AuthResult:
        blob = await self._initial_response(server, args)
        if isinstance(blob, AuthResult):
            return blob
        parts = blob.split(b"\x00")
        if len(parts) != 3:  # RFC 4616 §2: [authzid] NUL authcid NUL passwd
            return await self._undecodable(server)
        authzid, login, password = (p.decode("utf-8", "replace") for p in parts)
        if authzid and authzid != login:
            return await self._failed(server, login)
        return await self._login(server, login, password)

    async def auth_LOGIN(self, server: MSSanteSMTP, args: list[str]) -> AuthResult:
        login_blob: object
        if len(args) == 1:
            login_blob = await server.challenge_auth("Username:")
        else:
            login_blob = _b64(args[1])
            if login_blob is None:
                return await self._undecodable(server)
        if not isinstance(login_blob, bytes):
            return AuthResult(success=False, handled=True)
        password_blob = await server.challenge_auth("Password:")
        if not isinstance(password_blob, bytes):
            return AuthResult(success=False, handled=True)
        return await self._login(server, login_blob.decode("utf-8", "replace"),
                                 password_blob.decode("utf-8", "replace"))

    async def auth_EXTERNAL(self, server: MSSanteSMTP, args: list[str]) -> AuthResult:
        """RFC 4422 Appendix A: the identity is the TLS client certificate, a
        professional's card or a program's organisation certificate (certlogin.py). An
        authorisation identity, if the client gives one, must name the same identity."""
        authzid = ""
        if len(args) > 1 and args[1] != "=":  # RFC 4954 §4: "=" is an empty response
            decoded = _b64(args[1])
            if decoded is None:
                return await self._undecodable(server)
            authzid = decoded.decode("utf-8", "replace")
        try:
            identity = await certificate_login(self.ctx.trust.checker, self.ctx.store,
                                               server.peer_certificate(), authzid)
        except CertificateLoginFailed as exc:
            await self.ctx.store.audit_record([AuditEvent(
                LOGIN_FAILED, clip(authzid), source=f"submission {self._address(server)}",
                detail=clip(f"EXTERNAL: {exc}"))])
            await server.push(f"535 5.7.8 {exc}")
            return AuthResult(success=False, handled=True)
        return await self._succeeded(server, identity, "EXTERNAL")

    async def auth_XOAUTH2(self, server: MSSanteSMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, oauthsasl.XOAUTH2, args)

    async def auth_OAUTHBEARER(self, server: MSSanteSMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, oauthsasl.OAUTHBEARER, args)

    async def _bearer(self, server: MSSanteSMTP, mechanism: str,
                      args: list[str]) -> AuthResult:
        """A Pro Santé Connect access token (auth/oauthsasl.py, auth/psctoken.py)."""
        tokens = self.ctx.tokens
        if tokens is None:  # server.py does not offer the mechanism then
            await server.push("504 5.5.4 Unrecognized authentication type")
            return AuthResult(success=False, handled=True)
        blob = await self._initial_response(server, args)
        if isinstance(blob, AuthResult):
            return blob
        login = "?"
        try:
            response = oauthsasl.parse(mechanism, blob)
            login = response.login or "?"
            identity = await token_login(tokens, self.ctx.store, response.token,
                                         response.login)
        except (oauthsasl.MalformedMessage, TokenLoginFailed) as exc:
            if mechanism == oauthsasl.OAUTHBEARER:
                # RFC 7628 §3.2.2: the error, then the client's ^A (whatever it sends)
                answer = await server.challenge_auth(
                    oauthsasl.error_challenge(tokens.configuration_url))
                if not isinstance(answer, bytes):  # "*" or not base64: answered already
                    return await self._failed(server, login, None)
            if isinstance(exc, ProviderUnavailable):  # RFC 4954 §6: temporary
                return await self._failed(server, login, f"454 4.7.0 {exc}")
            return await self._failed(server, login)
        return await self._succeeded(server, identity, mechanism)

    # -- transaction --------------------------------------------------------------------

    async def handle_EHLO(self, server: MSSanteSMTP, session: Session, envelope: MSSEnvelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return ehlo_keywords(responses, advertise_auth=True)

    @staticmethod
    def _sender(envelope: MSSEnvelope) -> str:
        assert envelope.mail_from is not None  # aiosmtpd: RCPT and DATA come after MAIL
        return envelope.mail_from

    @staticmethod
    def _identity(session: Session) -> Identity:
        identity = session.auth_data
        assert isinstance(identity, Identity)
        return identity

    @answers_refusals
    async def handle_MAIL(self, server: MSSanteSMTP, session: Session, envelope: MSSEnvelope,
                          address: str, options: list[str]) -> str:
        identity = self._identity(session)
        tokens = self.ctx.tokens
        if identity.psc is not None and tokens is not None and tokens.ended.ended(identity.psc):
            # auth/pscsessions.py: the PSC session the token stood for was ended
            return "421 4.7.0 Your Pro Sante Connect session has ended: authenticate again"
        if (identity.app_password is not None
                and not await self.ctx.store.logins.app_password_live(identity.app_password)):
            # auth/apppasswords.py: the application password it logged in with was revoked
            return "421 4.7.0 Your application password was revoked: authenticate again"
        await sending.check_sender(self.ctx, identity, address)
        return str(SENDER_OK)

    @answers_refusals
    async def handle_RCPT(self, server: MSSanteSMTP, session: Session, envelope: MSSEnvelope,
                          address: str, params: RcptParams) -> str:
        await sending.check_recipient(self.ctx, self._identity(session), self._sender(envelope),
                                      address, accepted=len(envelope.rcpt_tos))
        return str(RECIPIENT_OK)

    @staticmethod
    def _client(session: Session) -> sending.Client:
        return sending.Client(sending.SUBMISSION, peer_host(session), session.host_name)

    async def handle_TRACE(self, server: MSSanteSMTP, session: Session,
                           envelope: MSSEnvelope) -> bytes:
        client = self._client(session)
        envelope.trace = trace(self.ctx, helo=client.helo, peer=client.address,
                               protocol=client.protocol, recipients=envelope.rcpt_tos)
        return envelope.trace.received

    @answers_refusals
    async def handle_DATA(self, server: MSSanteSMTP, session: Session,
                          envelope: MSSEnvelope) -> str:
        body = envelope.original_content
        assert body is not None
        assert envelope.trace is not None  # handle_TRACE ran before the data was read
        message = sending.Submission(
            sender=self._sender(envelope),
            recipients=list(zip(envelope.rcpt_tos, envelope.rcpt_params, strict=True)),
            body=body, envid=envelope.params.envid, ret=envelope.params.ret)
        queue_id = await sending.submit_data(self.ctx, self._identity(session), message,
                                             self._client(session), envelope.trace)
        return str(MESSAGE_ACCEPTED.with_text(f"Message accepted as {queue_id}"))
