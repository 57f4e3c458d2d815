"""The mail log's refusal lines for SMTP commands (the lines: operator/maillog.py)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

from mssante.operator.maillog import dn_of, refused
from mssante.smtp.replies import SMTPReply

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class _Server(Protocol):
    """What the refusal log reads of an SMTP connection (smtp.protocol.MSSanteSMTP)."""

    session: Any

    def peer_certificate(self) -> bytes | None: ...


def peer_client(server: _Server) -> str | None:
    peer = server.session.peer if server.session is not None else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def logs_refusals(stage: str) -> Callable[[F], F]:
    """Log each ``SMTPReply`` a handler hook raises (a refusal), then let it go on.

    For the MTA's MAIL, RCPT and DATA hooks, called as ``hook(handler, server,
    session, envelope, [address, …])``: the address the command named and the peer
    certificate's DN go in the line.
    """
    def decorate(hook: F) -> F:
        @functools.wraps(hook)
        async def wrapper(handler: object, server: _Server, *args: Any) -> Any:
            try:
                return await hook(handler, server, *args)
            except SMTPReply as exc:
                envelope = args[1] if len(args) > 1 else None
                sender = getattr(envelope, "mail_from", None)
                address = args[2] if len(args) > 2 and isinstance(args[2], str) else None
                recipient = address if stage == "RCPT" else None
                if stage == "MAIL":
                    sender = address
                elif stage == "DATA":
                    recipient = ">,<".join(getattr(envelope, "rcpt_tos", []))
                refused(stage, client=peer_client(server), reason=str(exc.reply),
                        dn=dn_of(server.peer_certificate()), sender=sender,
                        recipient=recipient)
                raise
        return cast(F, wrapper)
    return decorate
