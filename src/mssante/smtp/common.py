"""Behaviour both SMTP handlers share: EHLO keywords, the peer's address.

The checks they share with every way in (recipients, headers) are in
operator/accept.py."""

from __future__ import annotations

from aiosmtpd.smtp import Session


def ehlo_keywords(responses: list[str], *, advertise_auth: bool) -> list[str]:
    """Add PIPELINING (RFC 2920), DSN (RFC 3461), ENHANCEDSTATUSCODES (RFC 2034)."""
    head, tail = responses[:-1], responses[-1]
    if not advertise_auth:
        head = [r for r in head if not r.startswith("250-AUTH")]
    return [*head, "250-PIPELINING", "250-DSN", "250-ENHANCEDSTATUSCODES", tail]


def peer_host(session: Session) -> str | None:
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None
