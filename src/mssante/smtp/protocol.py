"""The SMTP protocol machine: aiosmtpd's, extended for MSSanté.

Implementation notes:
- MAIL and RCPT are re-implemented here so that DSN parameters (RFC 3461) reach the
  handler as written (aiosmtpd upper-cases and refuses unknown parameters).
- PIPELINING (RFC 2920): aiosmtpd reads commands one line at a time from a
  buffered stream, so pipelined commands are answered in order; we advertise it.
- Replies raised as ``SMTPReply`` anywhere below a command are caught once here
  and pushed as they are; any other exception becomes ``451 4.3.0`` and is logged.
- TLS: after STARTTLS or on an implicit-TLS listener, the peer certificate (DER)
  is read from the TLS object of the transport.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, syntax

from mssante.smtp.params import MailParams, RcptParams, parse_mail_params, parse_rcpt_params
from mssante.smtp.replies import (
    BAD_ADDRESS_SYNTAX,
    MESSAGE_TOO_BIG,
    TEMPORARY_FAILURE,
    Reply,
    SMTPReply,
)

log = logging.getLogger(__name__)

# aiosmtpd logs every command line at INFO on "mail.log"; keep it for debugging only.
logging.getLogger("mail.log").setLevel(logging.ERROR)


class MSSEnvelope(Envelope):
    """aiosmtpd's envelope plus what DSN and the policy need."""

    def __init__(self) -> None:
        super().__init__()
        self.params = MailParams()
        self.rcpt_params: list[RcptParams] = []
        self.null_sender = False


class MSSanteSMTP(SMTP):
    """One SMTP connection."""

    def __init__(self, handler: Any, *, implicit_tls: bool = False, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.implicit_tls = implicit_tls
        self.auth_failures = 0

    # Methods, not properties: aiosmtpd's constructor walks every attribute with
    # inspect.getmembers() before the session and envelope exist.
    def mss_envelope(self) -> MSSEnvelope:
        assert isinstance(self.envelope, MSSEnvelope)
        return self.envelope

    def extended(self) -> bool:
        return self.session is not None and self.session.extended_smtp

    def _create_envelope(self) -> MSSEnvelope:
        return MSSEnvelope()

    def ssl_object(self) -> ssl.SSLObject | None:
        if self.transport is None:
            return None
        obj = self.transport.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject | ssl.SSLSocket) else None  # type: ignore[return-value]

    def peer_certificate(self) -> bytes | None:
        """The client's certificate (DER), or None without TLS or certificate."""
        obj = self.ssl_object()
        if obj is None:
            return None
        return obj.getpeercert(binary_form=True)

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, SMTPReply):
            return str(error.reply)
        log.exception("%r unexpected error", self.session.peer if self.session else None)
        return str(TEMPORARY_FAILURE)

    async def _push_reply(self, reply: Reply | str) -> None:
        await self.push(str(reply))

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("MAIL"):
            return
        envelope = self.mss_envelope()
        syntaxerr = "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]"
        rest = self._strip_command_keyword("FROM:", arg) if arg else None
        if rest is None:
            await self.push(syntaxerr)
            return
        if envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        null_sender = rest.startswith("<>")
        if null_sender:  # RFC 5321 §4.5.5: bounces and DSNs use the null reverse-path
            address: str | None = ""
            params_text: str | None = rest[2:]
        else:
            address, params_text = self._getaddr(rest)
        if address is None or (not address and not null_sender) or params_text is None:
            await self._push_reply(BAD_ADDRESS_SYNTAX)
            return
        if params_text.strip() and not self.extended():
            await self.push(syntaxerr)
            return
        try:
            params = parse_mail_params(params_text)
        except SMTPReply as exc:
            await self._push_reply(exc.reply)
            return
        if params.smtputf8 and not self.enable_SMTPUTF8:
            await self.push("501 5.5.4 SMTPUTF8 disabled")
            return
        if params.size is not None and self.data_size_limit and params.size > self.data_size_limit:
            # RFC 1870 §6
            await self._push_reply(MESSAGE_TOO_BIG.with_text(
                f"Message size exceeds the limit of {self.data_size_limit} bytes"))
            return
        envelope.params = params
        envelope.null_sender = null_sender
        envelope.smtp_utf8 = params.smtputf8
        status = await self._call_handler_hook("MAIL", address, params_text.split())
        if status is None or str(status).startswith("250"):
            envelope.mail_from = address if address else "<>"
            envelope.mail_options.extend(params_text.split())
        await self.push(str(status) if status else "250 2.1.0 Sender OK")

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("RCPT"):
            return
        envelope = self.mss_envelope()
        if envelope.mail_from is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        syntaxerr = "501 5.5.4 Syntax: RCPT TO:<address> [parameters]"
        rest = self._strip_command_keyword("TO:", arg) if arg else None
        if rest is None:
            await self.push(syntaxerr)
            return
        address, params_text = self._getaddr(rest)
        if not address or params_text is None:
            await self._push_reply(BAD_ADDRESS_SYNTAX)
            return
        if params_text.strip() and not self.extended():
            await self.push(syntaxerr)
            return
        try:
            params = parse_rcpt_params(params_text)
        except SMTPReply as exc:
            await self._push_reply(exc.reply)
            return
        status = await self._call_handler_hook("RCPT", address, params)
        if status is None or str(status).startswith("250"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_params.append(params)
        await self.push(str(status) if status else "250 2.1.5 Recipient OK")
