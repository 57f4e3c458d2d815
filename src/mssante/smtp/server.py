"""Listening sockets of an operator: the MTA, submission (587) and submissions (465)."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from mssante.auth import oauthsasl
from mssante.config import Listener, OperatorConfig
from mssante.errors import ConfigError
from mssante.operator.runtime import OperatorRuntime
from mssante.pki.tls import server_context
from mssante.smtp.inbound import InboundHandler
from mssante.smtp.protocol import MSSanteSMTP
from mssante.smtp.submission import SubmissionHandler

SESSION_TIMEOUT = 300.0  # RFC 5321 §4.5.3.2.7: server timeout of 5 minutes
# The greeting is "220 <host name> ESMTP" (RFC 5321 §4.3.1, §4.2): aiosmtpd's default
# names the library and its version, which tells an attacker what to try.
BANNER = "ESMTP"


@dataclass
class Listeners:
    servers: list[asyncio.Server]
    ports: dict[str, int]  # "smtp" | "submission" | "submissions" -> bound port

    def close(self) -> None:
        for server in self.servers:
            server.close()

    async def wait_closed(self) -> None:
        for server in self.servers:
            await server.wait_closed()


async def start_listeners(ctx: OperatorRuntime, config: OperatorConfig, *,
                          reuse_port: bool = False) -> Listeners:
    """Listen on the SMTP ports (``reuse_port``: shared with the operator's other
    workers, environment/workers.py)."""
    loop = asyncio.get_running_loop()
    tls = config.tls
    # "optional": the handshake succeeds without a certificate so that the refusal is a
    # readable SMTP reply; a certificate that is presented must still chain to the root.
    tls_ctx = server_context(tls.cert_file, tls.key_file, tls.ca_file, client_cert="optional")
    size = config.operator.max_message_size
    hostname = config.operator.hostname
    inbound = InboundHandler(ctx)
    submission = SubmissionHandler(ctx)

    def mta() -> MSSanteSMTP:
        return MSSanteSMTP(inbound, hostname=hostname, ident=BANNER, tls_context=tls_ctx,
                           require_starttls=True, data_size_limit=size, enable_SMTPUTF8=True,
                           timeout=SESSION_TIMEOUT, delivery_ids=True,
                           auth_exclude_mechanism=["PLAIN", "LOGIN", *oauthsasl.MECHANISMS],
                           loop=loop)

    # XOAUTH2 and OAUTHBEARER only when Pro Santé Connect tokens are checked
    no_tokens = [] if ctx.tokens is not None else list(oauthsasl.MECHANISMS)

    def submit_starttls() -> MSSanteSMTP:
        return MSSanteSMTP(submission, hostname=hostname, ident=BANNER, tls_context=tls_ctx,
                           require_starttls=True, auth_required=True, auth_require_tls=True,
                           data_size_limit=size, enable_SMTPUTF8=True, timeout=SESSION_TIMEOUT,
                           auth_exclude_mechanism=no_tokens, long_auth=True, loop=loop)

    def submit_implicit() -> MSSanteSMTP:
        with warnings.catch_warnings():
            # aiosmtpd warns about AUTH without STARTTLS; here TLS is implicit (RFC 8314 §3.3).
            warnings.simplefilter("ignore")
            return MSSanteSMTP(submission, implicit_tls=True, hostname=hostname, ident=BANNER,
                               auth_required=True, auth_require_tls=False, data_size_limit=size,
                               enable_SMTPUTF8=True, timeout=SESSION_TIMEOUT,
                               auth_exclude_mechanism=no_tokens, long_auth=True, loop=loop)

    servers: list[asyncio.Server] = []
    ports: dict[str, int] = {}
    plan: list[tuple[str, Listener, Callable[[], MSSanteSMTP], bool]] = [
        ("smtp", config.smtp, mta, False),
        ("submission", config.submission, submit_starttls, False),
        ("submissions", config.submissions, submit_implicit, True),
    ]
    try:
        for name, listener, factory, implicit in plan:
            if not listener.port:
                continue
            try:
                server = await loop.create_server(factory, listener.host, listener.port,
                                                  ssl=tls_ctx if implicit else None,
                                                  reuse_address=True,
                                                  reuse_port=reuse_port or None)
            except OSError as exc:
                raise ConfigError(f"{name}.port: cannot listen on {listener.host}:"
                                  f"{listener.port}: {exc.strerror or exc}") from None
            servers.append(server)
            ports[name] = server.sockets[0].getsockname()[1]
    except BaseException:
        for server in servers:
            server.close()
        raise
    return Listeners(servers, ports)
