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

from typing import Protocol

from cryptography import x509
from cryptography.x509.oid import NameOID

from mssante.auth.identity import PROGRAM, Identity
from mssante.errors import CertificateRejected
from mssante.pki.verify import CertificateChecker
from mssante.store.models import Mailbox, Person

PERSONS_CA = "MSSanté Persons CA"  # pki.ca: the common name of the persons CA


class CertificateLoginFailed(Exception):
    """The certificate identifies no one here; the message is safe to show the client."""


class Holders(Protocol):
    """Where certificate holders are found (the operator's store)."""

    async def person_by_id_nat_ps(self, id_nat_ps: str) -> Person | None: ...

    async def mailbox_for_certificate(self, dn: str) -> Mailbox | None: ...


async def certificate_login(checker: CertificateChecker, holders: Holders, der: bytes | None,
                            authzid: str = "") -> Identity:
    """The holder of the client certificate ``der``, or CertificateLoginFailed. An
    authorisation identity, if the client gives one, must name the same identity
    (RFC 4422 Appendix A): the card holder's login, or the program's APP mailbox."""
    if der is None:
        raise CertificateLoginFailed("EXTERNAL needs a TLS client certificate")
    try:
        peer = checker.check(der)
    except CertificateRejected as exc:
        raise CertificateLoginFailed(f"Certificate refused: {exc}") from exc
    if _common_name(peer.certificate.issuer) == PERSONS_CA:
        serials = peer.certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        id_nat_ps = str(serials[0].value) if serials else ""
        person = await holders.person_by_id_nat_ps(id_nat_ps)
        if person is None:
            raise CertificateLoginFailed(
                f"No account for the card holder {id_nat_ps or peer.subject_dn}")
        identity = Identity(person.login, person.kind.value)
    else:
        mailbox = await holders.mailbox_for_certificate(peer.subject_dn)
        if mailbox is None or not mailbox.active:
            raise CertificateLoginFailed(f"No applicative mailbox for {peer.subject_dn}")
        identity = Identity(peer.subject_dn, PROGRAM, app=mailbox.address)
    named = identity.app if identity.is_program else identity.login
    if authzid and authzid != named:
        raise CertificateLoginFailed("The authorisation identity is not the certificate's")
    return identity


def _common_name(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else ""
