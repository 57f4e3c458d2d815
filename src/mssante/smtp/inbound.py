"""The MTA: mail from other operators of the trust space.

Implementation notes:
- TLS is required before MAIL (aiosmtpd ``require_starttls``); the client must
  present a certificate: the TLS layer checks that it chains to the trust-space
  root, ``TrustView.checker`` that it is not revoked (CRLs refreshed on a timer,
  so a revocation takes effect without a restart).
- The sender's domain must be on the whitelist with a DN equal to the client
  certificate's subject (MSSanté: "accept a sender domain only when that
  certificate's DN is listed for it"). The null sender (DSNs, RFC 5321 §4.5.5)
  is accepted from any listed operator certificate.
- Recipients must be local, existing and active mailboxes: never an open relay
  (RFC 5321 §3.9). A patient mailbox only receives from professionals.
"""

from __future__ import annotations

import logging

from aiosmtpd.smtp import Session

from mssante.domain.addresses import PATIENT_DOMAIN, parse_address
from mssante.domain.ins import validate_ins
from mssante.errors import CertificateRejected, InvalidAddress
from mssante.pki.verify import PeerCertificate
from mssante.smtp.accept import Incoming, accept, trace
from mssante.smtp.common import checked_headers, ehlo_keywords, peer_host, recipient_address
from mssante.smtp.context import OperatorContext
from mssante.smtp.params import RcptParams
from mssante.smtp.protocol import MSSanteSMTP, MSSEnvelope
from mssante.smtp.replies import (
    BAD_ADDRESS_SYNTAX,
    CERT_REJECTED,
    CLIENT_CERT_REQUIRED,
    MAILBOX_DISABLED,
    MESSAGE_ACCEPTED,
    NO_SUCH_USER,
    PATIENT_RULE,
    RECIPIENT_OK,
    RELAY_DENIED,
    SENDER_DOMAIN_NOT_LISTED,
    SENDER_OK,
    SMTPReply,
)

log = logging.getLogger(__name__)


class InboundHandler:
    """aiosmtpd handler of the MTA listener."""

    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx

    async def handle_EHLO(self, server: MSSanteSMTP, session: Session, envelope: MSSEnvelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return ehlo_keywords(responses, advertise_auth=False)

    def _peer(self, server: MSSanteSMTP) -> PeerCertificate:
        """The client certificate, checked once per connection and trust refresh."""
        checker = self.ctx.trust.checker
        cached = server.peer_check
        if cached is not None and cached[0] is checker:
            return cached[1]
        der = server.peer_certificate()
        if der is None:
            raise SMTPReply(CLIENT_CERT_REQUIRED)
        try:
            peer = checker.check(der)
            server.peer_check = (checker, peer)
            return peer
        except CertificateRejected as exc:
            log.warning("MTA client certificate refused: %s", exc)
            raise SMTPReply(CERT_REJECTED.with_text(f"Client certificate refused: {exc}")) from None

    async def handle_MAIL(self, server: MSSanteSMTP, session: Session, envelope: MSSEnvelope,
                          address: str, options: list[str]) -> str:
        peer = self._peer(server)
        whitelist = self.ctx.trust.whitelist
        if not address:
            if not whitelist.domains_for_dn(peer.subject_dn):
                raise SMTPReply(SENDER_DOMAIN_NOT_LISTED.with_text(
                    f"Certificate {peer.subject_dn} is not listed for any MSSanté domain"))
            return str(SENDER_OK)
        try:
            sender = parse_address(address)
        except InvalidAddress as exc:
            raise SMTPReply(BAD_ADDRESS_SYNTAX.with_text(str(exc))) from None
        if not whitelist.is_listed(sender.domain):
            raise SMTPReply(SENDER_DOMAIN_NOT_LISTED.with_text(
                f"Sender domain {sender.domain} is not on the MSSanté whitelist"))
        if not whitelist.allows(sender.domain, peer.subject_dn):
            raise SMTPReply(SENDER_DOMAIN_NOT_LISTED.with_text(
                f"Sender domain {sender.domain} is not served by certificate {peer.subject_dn}"))
        return str(SENDER_OK)

    async def handle_RCPT(self, server: MSSanteSMTP, session: Session, envelope: MSSEnvelope,
                          address: str, params: RcptParams) -> str:
        rcpt = recipient_address(envelope, address)
        if rcpt.domain not in self.ctx.local_domains:
            raise SMTPReply(RELAY_DENIED.with_text(
                f"Relaying denied: {rcpt.domain} is not served here"))
        if rcpt.domain == PATIENT_DOMAIN:
            try:
                validate_ins(rcpt.local)
            except InvalidAddress as exc:
                raise SMTPReply(NO_SUCH_USER.with_text(
                    f"{rcpt} is not a patient address: {exc}")) from None
            if envelope.mail_from and envelope.mail_from.lower().endswith("@" + PATIENT_DOMAIN):
                raise SMTPReply(PATIENT_RULE.with_text("A patient cannot write to another patient"))
        mailbox = await self.ctx.mailbox(rcpt.key)
        if mailbox is None:
            raise SMTPReply(NO_SUCH_USER.with_text(f"No such mailbox: {rcpt}"))
        if not mailbox.active:
            raise SMTPReply(MAILBOX_DISABLED.with_text(f"Mailbox closed: {rcpt}"))
        return str(RECIPIENT_OK)

    async def handle_TRACE(self, server: MSSanteSMTP, session: Session,
                           envelope: MSSEnvelope) -> bytes:
        envelope.trace = trace(self.ctx, helo=session.host_name, peer=peer_host(session),
                               protocol="ESMTPS", recipients=envelope.rcpt_tos)
        return envelope.trace.received

    async def handle_DATA(self, server: MSSanteSMTP, session: Session,
                          envelope: MSSEnvelope) -> str:
        body = envelope.original_content
        assert body is not None and envelope.mail_from is not None
        headers = checked_headers(body)
        assert envelope.trace is not None  # handle_TRACE ran before the data was read
        msg = Incoming(
            envelope_from="" if envelope.null_sender else envelope.mail_from,
            recipients=list(zip(envelope.rcpt_tos, envelope.rcpt_params, strict=True)),
            body=body, headers=headers, envid=envelope.params.envid,
            ret=envelope.params.ret, trace=envelope.trace)
        queue_id = await accept(self.ctx, msg)
        return str(MESSAGE_ACCEPTED.with_text(f"Message accepted as {queue_id}"))
