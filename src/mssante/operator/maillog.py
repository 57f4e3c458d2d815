"""The mail log: one line per message received, refused or delivered, as MTAs log.

Lines go to the ``mssante.mail`` logger at INFO, which ``mssante up`` and
``mssante operator serve`` show without ``-v`` (``show_mail_log``). Their form
follows Postfix's, so that the tools and habits of mail administrators apply:

    4F2A0C1B9E7D6A55: from=<a@x.mssante.fr>, to=<b@y.mssante.fr>, size=1234,
        client=127.0.0.1, dn="CN=mta.x.mssante.fr,…", status=accepted
    5B3E…: from=<a@x.mssante.fr>, to=<b@y.mssante.fr>, size=1234, client=127.0.0.1,
        sasl_username=a@x.mssante.fr, status=accepted
    NOQUEUE: reject: MAIL from 127.0.0.1: 550 5.7.1 Sender domain …; from=<a@x…>,
        dn="CN=…"
    NOQUEUE: reject: STARTTLS from 127.0.0.1: TLS handshake failed: certificate verify
        failed: unable to get local issuer certificate
    queue 17: to=<b@y.mssante.fr>, from=<a@x.mssante.fr>, relay=127.0.0.1:10020,
        delay=0.42, dsn=2.0.0, status=sent (250 2.0.0 Message accepted as …)

(each on one line). ``status`` is ``sent``, ``deferred`` or ``bounced`` on the sending
side, ``accepted`` on the receiving side; ``dsn`` is the enhanced status code
(RFC 3463). Values come from peers: they are printed with ``repr``-style escapes
for control characters, so one record is always one line.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence

from cryptography import x509

from mssante.pki.names import dn_string

log = logging.getLogger("mssante.mail")

# X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: the usual sign of a peer that sent its
# certificate without the intermediate CA.
_NO_ISSUER = 20
SUBMISSION = "ESMTPSA"  # RFC 3848: authenticated ESMTP over TLS, submission's protocol
CHAIN_HINT = ("the peer must send its certificate chain: its certificate, then the "
              "intermediate CA that issued it")


def show_mail_log() -> None:
    """Let the mail log through at INFO whatever the root logger's level."""
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)


def reason(exc: BaseException) -> str:
    """A short text for a connection or TLS failure: ``Connection refused``, ``timed
    out``, ``certificate verify failed: …`` (with a hint when the chain is missing)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        text = f"certificate verify failed: {exc.verify_message}"
        return f"{text} ({CHAIN_HINT})" if exc.verify_code == _NO_ISSUER else text
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _clean(text: str) -> str:
    """One line: control characters escaped (values come from peers)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def dn_of(der: bytes | None) -> str | None:
    """The subject DN of a DER certificate, for the log; None without one."""
    if der is None:
        return None
    try:
        return dn_string(x509.load_der_x509_certificate(der).subject)
    except ValueError:
        return "(unreadable certificate)"


def received(queue_id: str, *, sender: str, recipients: Sequence[str], size: int,
             client: str | None, dn: str | None) -> None:
    """A message accepted from a peer (after the commit, before the 250)."""
    log.info("%s: from=<%s>, to=%s, size=%d, client=%s, dn=\"%s\", status=accepted",
             queue_id, _clean(sender), ",".join(f"<{_clean(r)}>" for r in recipients), size,
             client or "unknown", _clean(dn or ""))


def received_again(queue_id: str, *, sender: str, recipients: Sequence[str],
                   client: str | None, dn: str | None) -> None:
    """A peer's retry of a transaction already stored (XMSS-DELIVERY): answered 250,
    not stored again."""
    log.info("%s: from=<%s>, to=%s, client=%s, dn=\"%s\", status=duplicate (stored before, "
             "not stored again)", queue_id, _clean(sender),
             ",".join(f"<{_clean(r)}>" for r in recipients), client or "unknown",
             _clean(dn or ""))


def submitted(queue_id: str, *, sender: str, recipients: Sequence[str], size: int,
              client: str | None, login: str, protocol: str = SUBMISSION) -> None:
    """A message accepted from an authenticated identity (Postfix's ``sasl_username``),
    after the commit, before the client is told. ``protocol`` is the way it came in:
    submission's lines are Postfix's; another way (the web) is named with ``proto=``."""
    proto = "" if protocol == SUBMISSION else f", proto={_clean(protocol)}"
    log.info("%s: from=<%s>, to=%s, size=%d, client=%s, sasl_username=%s%s, status=accepted",
             queue_id, _clean(sender), ",".join(f"<{_clean(r)}>" for r in recipients), size,
             client or "unknown", _clean(login), proto)


def refused(stage: str, *, client: str | None, reason: str, dn: str | None = None,
            sender: str | None = None, recipient: str | None = None) -> None:
    """A peer refused: at STARTTLS (the handshake), MAIL, RCPT or DATA."""
    details = []
    if sender is not None:
        details.append(f"from=<{_clean(sender)}>")
    if recipient is not None:
        details.append(f"to=<{_clean(recipient)}>")
    details.append(f"dn=\"{_clean(dn)}\"" if dn else "dn=none")
    log.info("NOQUEUE: reject: %s from %s: %s; %s", stage, client or "unknown",
             _clean(reason), ", ".join(details))


def delivery(entry_id: int, *, sender: str, recipient: str, relay: str | None, delay: float,
             dsn: str, status: str, text: str) -> None:
    """The outcome of one attempt to deliver one queue entry."""
    log.info("queue %d: to=<%s>, from=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)",
             entry_id, _clean(recipient), _clean(sender), relay or "none", delay, dsn, status,
             _clean(text))
