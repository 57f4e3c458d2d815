"""Files of the PKI: atomic writes, private key permissions, the directory lock.

Every file is written to a temporary file in the same directory, flushed to disk and
renamed over the target (``os.replace``), so a reader sees the old file or the new
one, never half of one. Private keys are created with mode 0600 from the start
(``os.open(..., 0o600)``): there is no instant where another user could read them.
Mutations of the registry and CRLs happen under an exclusive ``flock`` on
``<directory>/.lock``, so the trust space and the ``mssante pki`` command can work on
the same directory at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from mssante import files
from mssante.errors import PKIError

PUBLIC_MODE = 0o644
PRIVATE_MODE = 0o600


def write_atomic(path: Path, data: bytes, *, mode: int = PUBLIC_MODE) -> None:
    """Replace ``path`` with ``data`` in one step (mssante.files); PKIError on failure."""
    try:
        files.write_atomic(path, data, mode)
    except OSError as exc:
        raise PKIError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_private(path: Path, data: bytes) -> None:
    """Write a private key: mode 0600 from creation on."""
    write_atomic(path, data, mode=PRIVATE_MODE)


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PKIError(f"cannot read {path}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the exclusive lock of a PKI directory (across processes and threads)."""
    try:
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    except OSError as exc:
        raise PKIError(f"cannot lock {directory}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


