"""Who a TLS client certificate logs in as (SASL EXTERNAL, RFC 4422 Appendix A), for
IMAP and SMTP submission alike.

- The certificate is checked against the trust space's CAs and CRLs
  (``CertificateChecker``).
- From the persons CA (a professional's card): the subject's serialNumber is the
  idNatPs of a person of this operator, who then has the rights of their login.
- From the organisations CA: the DN must be bound to an active APP mailbox; the
  program acts as that mailbox only.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from mssante.errors import CertificateRejected
from mssante.operator.runtime import OperatorRuntime
from mssante.store.models import Person

PERSONS_CA = "MSSanté Persons CA"  # pki.ca: the common name of the persons CA


class CertificateLoginFailed(Exception):
    """The certificate identifies no one here; the message is safe to show the client."""


@dataclass(frozen=True, slots=True)
class CertificateHolder:
    """A card holder (``person``) or a program (``app``: its APP mailbox's address)."""

    subject_dn: str
    person: Person | None = None
    app: str | None = None


async def certificate_holder(ctx: OperatorRuntime, der: bytes | None) -> CertificateHolder:
    """The holder of the client certificate ``der``, or CertificateLoginFailed."""
    if der is None:
        raise CertificateLoginFailed("EXTERNAL needs a TLS client certificate")
    try:
        peer = ctx.trust.checker.check(der)
    except CertificateRejected as exc:
        raise CertificateLoginFailed(f"Certificate refused: {exc}") from exc
    if _common_name(peer.certificate.issuer) == PERSONS_CA:
        serials = peer.certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        id_nat_ps = str(serials[0].value) if serials else ""
        person = await ctx.store.person_by_id_nat_ps(id_nat_ps)
        if person is None:
            raise CertificateLoginFailed(
                f"No account for the card holder {id_nat_ps or peer.subject_dn}")
        return CertificateHolder(peer.subject_dn, person=person)
    mailbox = await ctx.store.mailbox_for_certificate(peer.subject_dn)
    if mailbox is None or not mailbox.active:
        raise CertificateLoginFailed(f"No applicative mailbox for {peer.subject_dn}")
    return CertificateHolder(peer.subject_dn, app=mailbox.address)


def _common_name(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else ""
