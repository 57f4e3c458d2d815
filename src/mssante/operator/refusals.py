"""Why a message, its sender or one of its recipients is refused, whatever way it came.

The acceptance path (``accept.py``, ``sending.py``) raises these; each way in turns
them into its own answer at its boundary: SMTP into a reply code
(``smtp/replies.py``), the web into a form error. ``str()`` is the reason a person
understands, naming the address concerned; ``address`` is that address when the
refusal is about one.

    Refused
    ├── SenderNotAllowed     the identity may not send as that address (or the null sender)
    ├── BadAddress           not a syntactically valid address (RFC 5322 §3.4.1)
    ├── OutsideTrustSpace    a remote recipient whose domain is not on the whitelist
    ├── UnknownMailbox       no such mailbox (or not a valid patient address)
    ├── ClosedMailbox        the mailbox exists but is closed
    ├── PatientRule          the patient messaging rules (domain/patient.py)
    ├── HeadersRefused       the message's header section cannot be trusted
    ├── TooManyRecipients    more recipients than one message may have
    ├── MessageTooBig        larger than the operator's max_message_size
    └── StoredMeanwhile      another transaction stored it for these recipients meanwhile
                             (a sending operator's retry, XMSS-DELIVERY): try again
"""

from __future__ import annotations

from mssante.errors import MSSanteError


class Refused(MSSanteError):
    """The acceptance path refuses; ``str()`` is the reason, ``address`` the address it
    is about (None when it is about the whole message)."""

    def __init__(self, reason: str, *, address: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.address = address


class SenderNotAllowed(Refused):
    """The identity may not use this sender (envelope, ``From`` or ``Sender``)."""


class BadAddress(Refused):
    """Not a valid mail address."""


class OutsideTrustSpace(Refused):
    """A recipient outside the MSSanté trust space."""


class UnknownMailbox(Refused):
    """The recipient has no mailbox (RFC 3463 X.1.1)."""


class ClosedMailbox(Refused):
    """The recipient's mailbox is closed (RFC 3463 X.2.1)."""


class StoredMeanwhile(Refused):
    """A concurrent transaction of the same queue entries (XMSS-DELIVERY) committed
    first; nothing was stored, and the sender's next attempt is answered from what was."""


class PatientRule(Refused):
    """Refused by the patient messaging rules."""


class HeadersRefused(Refused):
    """The header section is malformed or ambiguous."""


class TooManyRecipients(Refused):
    """More recipients than one message may have."""


class MessageTooBig(Refused):
    """Larger than the operator accepts (``max_message_size``)."""
