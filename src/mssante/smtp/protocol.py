"""The SMTP protocol machine: aiosmtpd's, extended for MSSanté.

Implementation notes:
- MAIL and RCPT are re-implemented here so that DSN parameters (RFC 3461) reach the
  handler as written (aiosmtpd upper-cases and refuses unknown parameters).
- PIPELINING (RFC 2920): aiosmtpd reads commands one line at a time from a
  buffered stream, so pipelined commands are answered in order; we advertise it.
- STARTTLS uses the event loop's own TLS (``loop.start_tls``; native in uvloop)
  instead of aiosmtpd's hand-wired asyncio SSL protocol, which cost about a sixth
  of the CPU of a relayed message. Per RFC 3207 §4.2 the session starts afresh
  and octets pipelined after the command are discarded.
- DATA is read in chunks of 64 KB, each searched for the terminating CRLF.CRLF
  (RFC 5321 §4.1.1.4, the only terminator: a bare LF never ends the data, which
  closes the "SMTP smuggling" hole); dot-stuffing is undone (§4.5.2) and line
  endings made CRLF chunk by chunk, into one buffer handed over without a copy.
  aiosmtpd's line-by-line loop cost most of the CPU of a 50 KB message; reading
  the whole data before undoing the stuffing cost three times its size in memory.
  Lines over 1000 octets (§4.5.3.1.6) and data over the SIZE limit are refused
  after the terminator, as §4.2.5 implies, without keeping the rest of the data;
  the transaction is always reset.
- A handler may give a trace header (``handle_TRACE``) before the data is read: it
  heads the buffer, so that the message is never copied to put it on top.
- Replies raised as ``SMTPReply`` anywhere below a command are caught once here
  and pushed as they are; a store out of space (``StorageFull``) becomes ``452 4.3.1``
  (RFC 3463 §3.4), any other exception ``451 4.3.0``, and both are logged. Neither
  leaves anything stored: the client keeps the message and tries again.
- TLS: after STARTTLS or on an implicit-TLS listener, the peer certificate (DER)
  is read from the TLS object of the transport.
- The idle timer is never started again once the connection is lost: aiosmtpd's
  ``connection_lost`` cancels it, and a command ending afterwards (DATA cut by the
  peer) would start a timer whose callback finds no transport.
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import re
import ssl
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, Envelope, syntax

from mssante.content.ascii import to_ascii
from mssante.content.headers import crlf_line_endings
from mssante.errors import StorageFull
from mssante.operator import maillog
from mssante.operator.accept import RcptParams, Trace
from mssante.pki.verify import PeerCertificate
from mssante.smtp.params import MailParams, parse_mail_params, parse_rcpt_params
from mssante.smtp.refusallog import peer_client
from mssante.smtp.replies import (
    BAD_ADDRESS_SYNTAX,
    LINE_TOO_LONG,
    MESSAGE_TOO_BIG,
    OK,
    RECIPIENT_OK,
    SENDER_OK,
    STORAGE_FULL,
    TEMPORARY_FAILURE,
    Reply,
    SMTPReply,
)

log = logging.getLogger(__name__)

def _line_length(data: bytes, carried: int) -> int:
    """Octets of the unfinished last line of ``data``, which began ``carried`` octets
    earlier; -1 once a line is longer than MAX_LINE, CRLF included (RFC 5321
    §4.5.3.1.6). The lines are measured by ``bytes.split``, in C: a loop over them in
    Python cost a millisecond for a message of 50 KB."""
    if carried < 0:
        return -1
    lines = data.split(b"\n")
    last = len(lines[-1])
    if len(lines) == 1:
        return -1 if carried + last >= MAX_LINE else carried + last
    # a finished line of MAX_LINE octets or fewer, its LF included: at most
    # MAX_LINE - 1 before the LF; the unfinished last one must still be able to end
    if carried + len(lines[0]) >= MAX_LINE or max(map(len, lines)) >= MAX_LINE:
        return -1
    return last


# RFC 5321 §4.1.2 Mailbox inside a Path; quoted local parts allowed, checked further by
# domain.addresses where it matters.
# No control character, quoted or not (RFC 5321 §4.1.2 qtextSMTP, atext): a NUL went on
# to the handler.
_MAILBOX = re.compile(r'^(?:"[^"\x00-\x1f\x7f]*"|[^\s<>@"\x00-\x1f\x7f]+)@[^\s<>@"\x00-\x1f\x7f]+$')

# RFC 5321 §4.1.1.1 / §4.1.3: EHLO takes a domain or an address literal; anything
# else (a CR inside, spaces) is refused, since the name is copied into Received.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HELO_NAME = re.compile(
    rf"^(?:{_LABEL}(?:\.{_LABEL})*\.?|\[(?:IPv6:[0-9A-Fa-f:.]+|[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}})\])$")

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # not in RFC 5321 §4.2 textstring

TERMINATOR = b"\r\n.\r\n"
# Every connection defends itself (like Postfix's smtpd_hard_error_limit): after this
# many error replies without a message accepted in between, the server hangs up.
HARD_ERROR_LIMIT = 20
# RFC 5321 §4.5.3.2.5: the whole DATA block may take longer than a command; 10 minutes
# lets a 25 MB message through at about 42 KB/s.
DATA_TIMEOUT = 600.0
MAX_LINE = 1000  # RFC 5321 §4.5.3.1.6, CRLF included
MAX_REPLY_LINE = 512  # RFC 5321 §4.5.3.1.5, CRLF included
MAX_AUTH_LINE = 12288  # RFC 4954 §4: an AUTH command or response line, for bearer tokens
DATA_CHUNK = 1 << 16  # octets read at a time during DATA

# aiosmtpd logs every command line at INFO on "mail.log"; keep it for debugging only.
logging.getLogger("mail.log").setLevel(logging.ERROR)


_TLS_ACTIVE: Any = object()


class MSSEnvelope(Envelope):
    """aiosmtpd's envelope plus what DSN and the policy need."""

    def __init__(self) -> None:
        super().__init__()
        self.params = MailParams()
        self.rcpt_params: list[RcptParams] = []
        self.null_sender = False
        self.trace: Trace | None = None  # the Received header the data is read under


class MSSanteSMTP(SMTP):
    """One SMTP connection."""

    def __init__(self, handler: Any, *, implicit_tls: bool = False, long_auth: bool = False,
                 delivery_ids: bool = False, **kwargs: Any) -> None:
        if long_auth:  # an AUTH line carries a bearer token (XOAUTH2, OAUTHBEARER)
            self.line_length_limit = MAX_AUTH_LINE
        super().__init__(handler, **kwargs)
        # per connection: aiosmtpd's table is shared by every instance of the class
        self.command_size_limits = collections.defaultdict(
            lambda: SMTP.command_size_limit,
            {"AUTH": MAX_AUTH_LINE} if long_auth else {})
        self.implicit_tls = implicit_tls
        self.delivery_ids = delivery_ids  # XMSS-DELIVERY accepted on RCPT (the MTA)
        self.auth_failures = 0
        self.errors = 0  # error replies since the last message accepted
        # (checker, result) of the peer certificate check; reset by STARTTLS
        self.peer_check: tuple[object, PeerCertificate] | None = None
        self.lost = False  # connection_lost ran: no timer any more

    def connection_lost(self, error: Exception | None) -> None:
        self.lost = True
        super().connection_lost(error)

    def _reset_timeout(self, duration: float | None = None) -> None:
        if self.lost:  # a command that ended after the peer left
            return
        super()._reset_timeout(duration)

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

    async def push(self, status: str | bytes) -> None:
        """Replies are US-ASCII (RFC 5321 §4.2): accents of French reasons are dropped
        (content/ascii.py), and control characters a client sent, which aiosmtpd echoes
        in ``500 Error: command "..." not recognized``, become "?" (RFC 5321 §4.2
        textstring: a bare CR in a reply may end the line for the client); a reply line
        longer than 512 octets with its CRLF (RFC 5321 §4.5.3.1.5) is cut."""
        if isinstance(status, bytes):
            await super().push(status)
            return
        line = _CONTROL.sub("?", to_ascii(status))
        if len(line) > MAX_REPLY_LINE - 2:  # a client's long command or parameter, echoed
            line = line[:MAX_REPLY_LINE - 5] + "..."
        await super().push(line)
        if status.startswith("421"):  # RFC 5321 §4.2.3: the channel is closing
            if self.transport is not None:
                self.transport.close()
            return
        if status[:1] in ("4", "5"):
            self.errors += 1
            if self.errors >= HARD_ERROR_LIMIT and self.transport is not None:
                await super().push("421 4.7.0 Too many errors, closing the connection")
                self.transport.close()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """``<mailbox> [params]`` → (mailbox, params); (None, None) when malformed.

        Replaces aiosmtpd's parser (the email package's header parser), which cost
        more than the rest of MAIL and RCPT together.
        """
        text = arg.strip()
        if not text:
            return "", ""
        if text.startswith("<"):
            end = text.find(">")
            if end < 0:
                return None, None
            address, rest = text[1:end], text[end + 1:]
            if address.startswith("@"):  # RFC 5321 §4.1.2: obsolete source route, ignored
                address = address.partition(":")[2]
            if rest and not rest.startswith(" "):
                return None, None
        else:
            address, _, rest = text.partition(" ")
        if not _MAILBOX.match(address):
            return None, None
        return address, rest.strip()

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, SMTPReply):
            return str(error.reply)
        if isinstance(error, StorageFull):
            log.error("%r %s", self.session.peer if self.session else None, error)
            return str(STORAGE_FULL)
        log.exception("%r unexpected error", self.session.peer if self.session else None)
        return str(TEMPORARY_FAILURE)

    async def _push_reply(self, reply: Reply | str) -> None:
        await self.push(str(reply))

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        if hostname and not _HELO_NAME.match(hostname):
            await self.push("501 5.5.4 EHLO needs a domain name or an address literal")
            return
        await super().smtp_EHLO(hostname)

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        if hostname and not _HELO_NAME.match(hostname):
            await self.push("501 5.5.4 HELO needs a domain name or an address literal")
            return
        await super().smtp_HELO(hostname)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str | None) -> None:
        if arg:
            await self.push("501 5.5.4 Syntax: STARTTLS")
            return
        if not self.tls_context or self._tls_protocol is not None:
            await self.push("454 4.7.0 TLS not available")
            return
        await self.push("220 2.0.0 Ready to start TLS")
        reader: asyncio.StreamReader = self._reader
        reader._buffer.clear()  # type: ignore[attr-defined]  # RFC 3207 §4.2
        try:
            await self._writer.start_tls(self.tls_context)
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            maillog.refused("STARTTLS", client=peer_client(self),
                            reason=f"TLS handshake failed: {maillog.reason(exc)}")
            if self.transport is not None:
                self.transport.close()
            return
        transport = self._writer.transport
        self.transport = transport
        reader._transport = transport  # type: ignore[attr-defined]
        self._tls_protocol = _TLS_ACTIVE  # aiosmtpd's marker of "TLS is on"
        self.peer_check = None
        peer = self.session.peer if self.session else None
        self.session = self._create_session()
        self.session.peer = peer
        self.session.ssl = {"ssl_object": transport.get_extra_info("ssl_object")}
        self._set_rset_state()  # type: ignore[no-untyped-call]

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
        if status is MISSING:
            status = str(SENDER_OK)
        if str(status).startswith("250"):
            envelope.mail_from = address if address else "<>"
            envelope.mail_options.extend(params_text.split())
        await self.push(str(status))

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
            params = parse_rcpt_params(params_text, delivery_ids=self.delivery_ids)
        except SMTPReply as exc:
            await self._push_reply(exc.reply)
            return
        status = await self._call_handler_hook("RCPT", address, params)
        if status is MISSING:
            status = str(RECIPIENT_OK)
        if str(status).startswith("250"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_params.append(params)
        await self.push(str(status))

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        envelope = self.mss_envelope()
        if not envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        # The handler's trace header (RFC 5321 §4.4), written first into the buffer the
        # data is read into: putting it on top afterwards would copy the message.
        trace = await self._call_handler_hook("TRACE")
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._reset_timeout(DATA_TIMEOUT)
        try:
            data = await self._read_data(trace if isinstance(trace, bytes) else b"")
            envelope.content = envelope.original_content = data
            status = await self._call_handler_hook("DATA")
            if status is MISSING:
                status = str(OK)
        except SMTPReply as exc:
            status = str(exc.reply)
        finally:
            self._reset_timeout()
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # RFC 5321 §4.1.1.4
        if str(status).startswith("250"):
            self.errors = 0
        await self.push(str(status))

    async def _read_data(self, prefix: bytes = b"") -> bytes:
        """``prefix`` then the message, dot-stuffing undone; raises SMTPReply once the
        terminator is read.

        Read in chunks into one growing buffer (io.BytesIO, whose value is handed over
        without a copy): a message costs about its size once, whatever the number of
        connections sending at the same moment. Over the size limit or past a line too
        long, the rest is only searched for the terminator, not kept.
        """
        reader: asyncio.StreamReader = self._reader
        limit = (self.data_size_limit or 0) or 2**31
        out = io.BytesIO()
        out.write(prefix)
        # The data is read as if preceded by CRLF: the terminator, a dot-stuffed first
        # line and a message of just "." CRLF are then all the same CRLF "." cases.
        window = b"\r\n"
        skip = 2  # ... and that CRLF is not written out
        size = -2  # octets of the data as sent (dot-stuffing included), RFC 1870 §4
        line = 0  # octets of the current line so far; -1 once a line was too long
        refused: Reply | None = None
        after = b""
        while True:
            index = window.find(TERMINATOR)
            final = index >= 0
            if final:
                # keep the CRLF that ends the last line, drop "." CRLF
                part, after = window[:index + 2], window[index + len(TERMINATOR):]
            else:
                # Keep the last octets back: a terminator, a CRLF "." or a CR LF pair
                # may begin there, so no part ends inside one.
                cut = len(window) - (len(TERMINATOR) - 1)
                if window.endswith(b"\r\n", 0, cut):
                    cut -= 2
                elif window.endswith(b"\r", 0, cut):
                    cut -= 1
                part, window = window[:max(cut, 0)], window[max(cut, 0):]
            size += len(part)
            line = _line_length(part, line)
            if refused is None and size > limit:
                refused = MESSAGE_TOO_BIG.with_text(f"Message exceeds the limit of {limit} bytes")
            elif refused is None and line < 0:
                refused = LINE_TOO_LONG
            elif refused is None and part:
                # RFC 5321 §4.5.2: a line beginning with "." lost its first "."
                kept = crlf_line_endings(part.replace(b"\r\n.", b"\r\n"))
                out.write(memoryview(kept)[skip:])
                skip = max(0, skip - len(kept))
            if final:
                break
            chunk = await reader.read(DATA_CHUNK)
            if not chunk:
                raise ConnectionResetError("connection closed during DATA")
            window += chunk
        if after:  # a pipelined command: put it back
            reader._buffer[0:0] = after  # type: ignore[attr-defined]
        if refused is not None:
            raise SMTPReply(refused)
        data = out.getvalue()  # the buffer itself: not copied, as nothing else holds it
        del out
        return data
