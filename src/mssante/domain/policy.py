"""Who may write to whom, and as whom: the sending rules of the trust space.

The I/O-free part: callers pass what they looked up (whitelist membership,
the mailboxes an identity may use).
"""

from __future__ import annotations

from collections.abc import Collection

from mssante.domain.addresses import Address, is_trust_space_domain
from mssante.domain.ins import validate_ins
from mssante.errors import InvalidAddress, PolicyViolation


def check_recipient_in_trust_space(recipient: Address, whitelisted: bool) -> None:
    """Refuse an address outside the trust space (MSSanté reference: "Only addresses
    inside the trust space can exchange mail")."""
    if whitelisted and is_trust_space_domain(recipient.domain):
        return
    raise PolicyViolation(
        f"{recipient} is outside the MSSanté trust space: its domain "
        f"{recipient.domain} is not on the MSSanté whitelist, so health data cannot be "
        "sent to it")


def check_may_send_as(identity: str, sender: Address, usable: Collection[str]) -> None:
    """The envelope sender and the ``From`` must be a mailbox the identity may use."""
    if sender.key in usable:
        return
    raise PolicyViolation(f"{identity} is not allowed to send as {sender}")


def vouched_for(domain: str, certificate_domains: Collection[str]) -> bool:
    """Whether a domain is vouched for by the sending operator's certificate: the
    whitelist lists it with that certificate's DN (MSSanté: "accept a sender domain only
    when that certificate's DN is listed for it"). ``certificate_domains`` are the
    domains the whitelist binds to the DN, lower case."""
    return domain.lower().rstrip(".") in certificate_domains


def check_vouched_for(what: str, domain: str, certificate_dn: str,
                      certificate_domains: Collection[str]) -> None:
    """Between operators, the envelope sender and every From and Sender address must be
    of a domain the client certificate is listed for; ``what`` names the field."""
    if vouched_for(domain, certificate_domains):
        return
    raise PolicyViolation(f"{what} domain {domain} is not served by certificate "
                          f"{certificate_dn}")


class NoSuchMailbox(PolicyViolation):
    """The recipient has no mailbox here (RFC 3463 X.1.1)."""


class MailboxClosed(PolicyViolation):
    """The recipient's mailbox exists but is closed (RFC 3463 X.2.1)."""


def serves(domains: Collection[str], domain: str) -> bool:
    """Whether this operator serves ``domain``; ``domains`` lower case."""
    return domain.lower().rstrip(".") in domains


def check_served(domains: Collection[str], address: Address) -> None:
    """An operator creates mailboxes, and accepts mail from other operators, only for
    the domains it serves (never an open relay)."""
    if serves(domains, address.domain):
        return
    raise PolicyViolation(f"{address.domain} is not a domain of this operator "
                          f"({', '.join(sorted(domains))})")


def check_patient_address(recipient: Address) -> None:
    """A patient address is ``<INS>@patient.mssante.fr`` with a valid INS (MSSanté
    reference, "Patient messaging"); other addresses pass."""
    if not recipient.is_patient:
        return
    try:
        validate_ins(recipient.local)
    except InvalidAddress as exc:
        raise NoSuchMailbox(f"{recipient} is not a patient address: {exc}") from None


def check_deliverable(recipient: Address, *, exists: bool, active: bool) -> None:
    """A local recipient must be an existing, open mailbox."""
    if not exists:
        raise NoSuchMailbox(f"No such mailbox: {recipient}")
    if not active:
        raise MailboxClosed(f"Mailbox closed: {recipient}")
