"""The published whitelist set: file names, the SHA-256 checksum file, atomic writes."""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
from pathlib import Path

from mssante.errors import WhitelistError

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


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a synced temporary file and os.replace."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_dir(directory: Path) -> None:
    """Make renames inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
