"""Mail addresses of the trust space.

An MSSanté address is an ordinary RFC 5321 mailbox whose domain belongs to the trust
space (every such domain ends in ``mssante.fr``, and must also be on the whitelist:
that second check needs I/O and lives in the whitelist package).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mssante.errors import InvalidAddress

PATIENT_DOMAIN = "patient.mssante.fr"
TRUST_SPACE_SUFFIX = "mssante.fr"

# RFC 5321 §4.1.2 Dot-string local part (no quoted strings: nobody in the trust space
# uses them, and refusing them closes a class of parser ambiguities).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_RE = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
# RFC 5321 §4.1.2 Domain: LDH labels, at least two of them.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")

MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2
MAX_PATH = 256  # RFC 5321 §4.5.3.1.3


@dataclass(frozen=True, slots=True, order=True)
class Address:
    """A mailbox address, domain lower-cased, local part kept as written."""

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """The form used to compare and store addresses: all lower case."""
        return f"{self.local.lower()}@{self.domain}"

    @property
    def in_trust_space_namespace(self) -> bool:
        """True when the domain is ``mssante.fr`` or one of its subdomains."""
        return is_trust_space_domain(self.domain)

    @property
    def is_patient(self) -> bool:
        return self.domain == PATIENT_DOMAIN


def is_trust_space_domain(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return domain == TRUST_SPACE_SUFFIX or domain.endswith("." + TRUST_SPACE_SUFFIX)


def parse_address(text: str) -> Address:
    """Parse ``local@domain`` (angle brackets allowed) or raise InvalidAddress."""
    raw = text.strip()
    if raw.startswith("<") and raw.endswith(">"):
        raw = raw[1:-1]
    if len(raw) > MAX_PATH - 2:
        raise InvalidAddress(f"address too long: {text!r}")
    local, sep, domain = raw.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidAddress(f"not a mail address: {text!r}")
    domain = domain.lower().rstrip(".")
    if len(local) > MAX_LOCAL_PART:
        raise InvalidAddress(f"local part longer than {MAX_LOCAL_PART} characters: {text!r}")
    if not _LOCAL_RE.match(local):
        raise InvalidAddress(f"invalid local part in {text!r}")
    if len(domain) > MAX_DOMAIN or not _DOMAIN_RE.match(domain):
        raise InvalidAddress(f"invalid domain in {text!r}")
    return Address(local, domain)
