"""Who may write to whom, and as whom: the sending rules of the trust space.

The I/O-free part: callers pass what they looked up (whitelist membership,
the mailboxes an identity may use).
"""

from __future__ import annotations

from collections.abc import Collection

from mssante.domain.addresses import Address, is_trust_space_domain
from mssante.errors import PolicyViolation


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
