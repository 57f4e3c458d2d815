"""The project's exceptions.

    MSSanteError
    ├── ConfigError            a missing or wrong setting (names the key)
    ├── InvalidAddress         not a syntactically valid mail address
    │   └── InvalidINS         a patient address whose INS is malformed or has a bad key
    ├── PolicyViolation        a rule of the trust space refuses an action (carries a reason)
    ├── PKIError               certificate authority, issuing, revocation
    │   └── CertificateRejected   a peer certificate fails the trust-space checks
    ├── WhitelistError         whitelist parse, checksum or signature failure
    ├── TrustSpaceUnavailable  the trust space could not be reached
    │   └── DirectoryUnavailable   its directory's search did not answer (for the webmail)
    ├── OAuthError             the PSC provider refuses a request (knows its OAuth error code)
    ├── DocumentRefused        an IHE XDM archive or a CDA document fails its checks (all reasons)
    └── StoreError             database failure, converted at the store boundary
        ├── StorageFull        the database's disk (or quota) is full: nothing was written
        ├── NotFound           the named person, mailbox or queue entry does not exist
        ├── Conflict           it exists already, or the change breaks an invariant
        ├── Replayed           another transaction stored these XMSS-DELIVERY ids meanwhile
        └── Ambiguous          what should name one object matches several
"""

from __future__ import annotations


class MSSanteError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(MSSanteError):
    """A setting is missing or has a wrong value; the message names the key."""


class InvalidAddress(MSSanteError, ValueError):
    """Not a valid mail address."""


class InvalidINS(InvalidAddress):
    """A patient address whose local part is not a valid INS."""


class PolicyViolation(MSSanteError):
    """A trust-space rule refuses the action; ``str()`` is a reason a person understands."""


class PKIError(MSSanteError):
    """Certificate authority failure: issuing, revoking, loading."""


class CertificateRejected(PKIError):
    """A peer certificate does not chain to the trust space, is revoked or is not listed."""


class WhitelistError(MSSanteError):
    """The whitelist could not be parsed, or its checksum or signature is wrong."""


class TrustSpaceUnavailable(MSSanteError):
    """The trust space did not answer."""


class DirectoryUnavailable(TrustSpaceUnavailable):
    """The national directory's search did not answer (out of reach, too slow, an error
    or an answer that is not one): ``str()`` is what a person is shown, ``reason``
    the technical cause, for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__("Annuaire indisponible")
        self.reason = reason


class OAuthError(MSSanteError):
    """The PSC provider refuses a request: ``error`` is the OAuth 2.0 error code
    (RFC 6749 §5.2, RFC 6750 §3.1), ``str()`` the description, ``status`` the HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class DocumentRefused(MSSanteError):
    """An IHE XDM archive, or a clinical document in it, fails its checks: ``reasons``
    holds every reason found (one line each), ``str()`` joins them."""

    def __init__(self, reasons: list[str] | tuple[str, ...]) -> None:
        self.reasons = tuple(reasons) or ("refused",)
        super().__init__("; ".join(self.reasons))


class StoreError(MSSanteError):
    """A database operation failed."""


class StorageFull(StoreError):
    """The database could not write for want of space (SQLite ``SQLITE_FULL``,
    PostgreSQL ``53100 disk_full``, ``ENOSPC``); the transaction was rolled back."""


class NotFound(StoreError):
    """The named object does not exist."""


class Conflict(StoreError):
    """The object exists already, or the change would break an invariant."""


class Replayed(StoreError):
    """Another transaction, committed meanwhile, stored a message for some of the same
    XMSS-DELIVERY identifiers: nothing was written; the sender should try again."""


class Ambiguous(StoreError):
    """A request that should name one object (an identifier, a conditional target)
    matches several of them."""
