"""The published whitelist set: file names, the SHA-256 checksum file, atomic writes."""

from __future__ import annotations

import hashlib
import hmac

from mssante.errors import WhitelistError
from mssante.files import fsync_dir, write_atomic

__all__ = ["check_checksum", "checksum_text", "fsync_dir", "write_atomic"]

XML_NAME = "listeblanchemssante.xml"
SHA256_NAME = XML_NAME + ".sha256"
SIG_NAME = XML_NAME + ".sig"
SIGNER_NAME = "listeblanchemssante.signer.pem"


def checksum_text(data: bytes, name: str = XML_NAME) -> str:
    """The sha256sum(1) line for ``data``: lower-case hex, two spaces, file name."""
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n"


def check_checksum(data: bytes, text: bytes | str) -> None:
    """Raise WhitelistError unless ``text`` (sha256sum format) is the digest of ``data``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise WhitelistError("whitelist checksum file is not ASCII") from None
    fields = text.split()
    if not fields or len(fields[0]) != 64:
        raise WhitelistError("whitelist checksum file has no SHA-256 digest")
    expected = fields[0].lower()
    actual = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(expected, actual):
        raise WhitelistError(f"whitelist checksum mismatch: published {expected}, "
                             f"computed {actual}")


