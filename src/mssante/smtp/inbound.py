"""The MTA: mail from other operators of the trust space.

Implementation notes:
- TLS is required before MAIL (aiosmtpd ``require_starttls``); the client must
  present a certificate: the TLS layer checks that it chains to the trust-space
  root, ``TrustView.checker`` that it is not revoked (CRLs refreshed on a timer,
  so a revocation takes effect without a restart).
- The sender's domain must be on the whitelist with a DN equal to the client
  certificate's subject (MSSanté: "accept a sender domain only when that
  certificate's DN is listed for it"). The null sender (DSNs, RFC 5321 §4.5.5)
  is accepted from any listed operator certificate. The same holds for the
  message's ``From`` and ``Sender`` (domain.policy.check_vouched_for): an operator
  vouches for its own domains, not for another's.
- ``From`` must be exactly one mailbox (domain.addresses, the parser IMAP shows it
  with), else ``550 5.6.0``.
- Recipients must be local, existing and active mailboxes: never an open relay
  (RFC 5321 §3.9). A patient mailbox only receives from professionals.
- ``XMSS-DELIVERY`` (README "The queue"), offered after STARTTLS: a recipient whose
  (certificate DN, identifier) a committed message was stored for is a retry of the
  sender's (its 250 was lost, or it crashed before recording it); it is answered 250
  and not stored again. The identifiers are recorded in the message's transaction,
  which is also where a retry is found (``Replayed``); they are read beforehand only
  when the acceptance refuses, so that a check failing now (a mailbox closed since)
  does not turn a message stored before into a bounce.
"""

from __future__ import annotations

import logging

from aiosmtpd.smtp import Session

from mssante.domain.addresses import parse_address
from mssante.domain.patient import check_not_patient_to_patient
from mssante.domain.policy import check_served, check_vouched_for
from mssante.errors import CertificateRejected, InvalidAddress, PolicyViolation
from mssante.operator import maillog
from mssante.operator.accept import (
    Incoming,
    RcptParams,
    accept,
    check_local_recipient,
    checked_headers,
    parse_recipient,
    trace,
)
from mssante.operator.refusals import Refused
from mssante.operator.runtime import OperatorRuntime
from mssante.pki.verify import PeerCertificate
from mssante.smtp.common import ehlo_keywords, peer_host
from mssante.smtp.params import XMSS_DELIVERY
from mssante.smtp.protocol import MSSanteSMTP, MSSEnvelope
from mssante.smtp.refusallog import logs_refusals
from mssante.smtp.replies import (
    BAD_ADDRESS_SYNTAX,
    CERT_REJECTED,
    CLIENT_CERT_REQUIRED,
    HEADER_SYNTAX,
    MESSAGE_ACCEPTED,
    PATIENT_RULE,
    RECIPIENT_OK,
    RELAY_DENIED,
    SENDER_DOMAIN_NOT_LISTED,
    SENDER_OK,
    SMTPReply,
    answers_refusals,
)
from mssante.store.models import DeliveryId

log = logging.getLogger(__name__)


class InboundHandler:
    """aiosmtpd handler of the MTA listener."""

    def __init__(self, ctx: OperatorRuntime) -> None:
        self.ctx = ctx

    async def handle_EHLO(self, server: MSSanteSMTP, session: Session, envelope: MSSEnvelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        keywords = ehlo_keywords(responses, advertise_auth=False)
        if server.ssl_object() is not None:  # operators only: after STARTTLS
            keywords.insert(-1, f"250-{XMSS_DELIVERY}")
        return keywords

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

    @logs_refusals("MAIL")
    @answers_refusals
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
        self._check_vouched("Sender", sender.domain, peer)
        return str(SENDER_OK)

    def _check_vouched(self, what: str, domain: str, peer: PeerCertificate) -> None:
        try:
            check_vouched_for(what, domain, peer.subject_dn,
                              self.ctx.trust.whitelist.domains_for_dn(peer.subject_dn))
        except PolicyViolation as exc:
            raise SMTPReply(SENDER_DOMAIN_NOT_LISTED.with_text(str(exc))) from None

    @logs_refusals("RCPT")
    @answers_refusals
    async def handle_RCPT(self, server: MSSanteSMTP, session: Session, envelope: MSSEnvelope,
                          address: str, params: RcptParams) -> str:
        rcpt = parse_recipient(address, accepted=len(envelope.rcpt_tos))
        try:
            check_served(self.ctx.local_domains, rcpt)
        except PolicyViolation as exc:
            raise SMTPReply(RELAY_DENIED.with_text(f"Relaying denied: {exc}")) from None
        sender_is_patient = (not envelope.null_sender and envelope.mail_from is not None
                             and parse_address(envelope.mail_from).is_patient)  # MAIL parsed it
        try:
            check_not_patient_to_patient(sender_is_patient, rcpt.is_patient)
        except PolicyViolation as exc:
            raise SMTPReply(PATIENT_RULE.with_text(str(exc).capitalize())) from None
        await check_local_recipient(self.ctx, rcpt)
        return str(RECIPIENT_OK)

    async def handle_TRACE(self, server: MSSanteSMTP, session: Session,
                           envelope: MSSEnvelope) -> bytes:
        envelope.trace = trace(self.ctx, helo=session.host_name, peer=peer_host(session),
                               protocol="ESMTPS", recipients=envelope.rcpt_tos)
        return envelope.trace.received

    @logs_refusals("DATA")
    @answers_refusals
    async def handle_DATA(self, server: MSSanteSMTP, session: Session,
                          envelope: MSSEnvelope) -> str:
        body = envelope.original_content
        assert body is not None and envelope.mail_from is not None
        assert envelope.trace is not None  # handle_TRACE ran before the data was read
        headers = checked_headers(body, top=len(envelope.trace.received))
        if not headers.has_from:  # RFC 5322 §3.6: the author is required
            raise SMTPReply(HEADER_SYNTAX.with_text("Message headers refused: no From field"))
        peer = self._peer(server)
        for field, mailbox in (("From", headers.from_mailboxes[0]), ("Sender", headers.sender)):
            if mailbox is not None:
                self._check_vouched(f"{field} header", mailbox.domain, peer)
        recipients = list(zip(envelope.rcpt_tos, envelope.rcpt_params, strict=True))
        sender = "" if envelope.null_sender else envelope.mail_from
        received = envelope.trace

        def incoming(recipients: list[tuple[str, RcptParams]]) -> Incoming:
            return Incoming(
                envelope_from=sender, recipients=recipients,
                body=body, headers=headers, envid=envelope.params.envid,
                ret=envelope.params.ret, trace=received, actor=peer.subject_dn,
                source=f"ESMTPS {peer_host(session)}", delivery_peer=peer.subject_dn)

        # A retry of a committed transaction (XMSS-DELIVERY) is told apart only when the
        # acceptance refuses it: the store's transaction finds the identifiers recorded
        # (StoredMeanwhile), or a check refuses what was accepted before (a mailbox
        # closed since). The first attempt of a message, nearly all of them, reads
        # nothing more than its acceptance does.
        try:
            msg = incoming(recipients)
            queue_id = await accept(self.ctx, msg)
        except Refused:
            again = await self._stored_before(peer, recipients)
            if not again:
                raise
            maillog.received_again(envelope.trace.queue_id, sender=sender,
                                   recipients=[r for r, _ in again],
                                   client=peer_host(session), dn=peer.subject_dn)
            recipients = [rp for rp in recipients if rp not in again]
            if not recipients:
                return str(MESSAGE_ACCEPTED.with_text(
                    f"Message already accepted ({XMSS_DELIVERY}), not stored again"))
            msg = incoming(recipients)
            queue_id = await accept(self.ctx, msg)
        maillog.received(queue_id, sender=msg.envelope_from, recipients=[r for r, _ in recipients],
                         size=len(body), client=peer_host(session), dn=peer.subject_dn)
        return str(MESSAGE_ACCEPTED.with_text(f"Message accepted as {queue_id}"))

    async def _stored_before(self, peer: PeerCertificate,
                             recipients: list[tuple[str, RcptParams]]
                             ) -> list[tuple[str, RcptParams]]:
        """The recipients a committed message from ``peer`` was stored for, by the
        XMSS-DELIVERY identifiers they came with."""
        named = {rp[0]: DeliveryId(peer.subject_dn, rp[1].delivery_id, rp[0].lower())
                 for rp in recipients if rp[1].delivery_id}
        if not named:
            return []
        stored = await self.ctx.store.stored_deliveries(list(named.values()))
        return [rp for rp in recipients if rp[0] in named and named[rp[0]] in stored]
