"""Files of the data directories: private to their owner, written atomically.

Data directories hold health data and password hashes: folders are 0700 and files
0600. Every entry point of the ``mssante`` command sets the umask to 0077
(``private_umask``), so that what SQLite creates (the database, its WAL and SHM) is
private from its first instant; folders are created with mode 0700
(``private_dir``); ``mssante up`` repairs a tree made readable by others before
(``repair_permissions``).

Writing: the data goes to a temporary file in the same directory, created with its
final mode (a private file is never readable by others, not even for an instant),
flushed to disk, renamed over the target (``os.replace``), and the directory is
synced so that the rename survives a crash.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_umask() -> None:
    """Files and folders this process creates are its user's alone (entry points)."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) with mode 0700 if it does not exist."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return path


def repair_permissions(root: Path) -> list[Path]:
    """Take every right of group and others away under ``root``, ``root`` included
    (0644 becomes 0600, 0755 becomes 0700); symbolic links are not followed.
    Returns what was changed."""
    repaired: list[Path] = []
    if not root.is_dir() or root.is_symlink():
        return repaired
    paths = [root]
    for directory, folders, names in os.walk(root):
        paths.extend(Path(directory) / name for name in [*folders, *names])
    for path in paths:
        mode = path.lstat().st_mode
        if (stat.S_ISDIR(mode) or stat.S_ISREG(mode)) and stat.S_IMODE(mode) & 0o7077:
            os.chmod(path, stat.S_IMODE(mode) & 0o700)
            repaired.append(path)
    return repaired


def fsync_dir(directory: Path) -> None:
    """Make renames inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` in one step; raises OSError."""
    directory = private_dir(path.parent)
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(directory)
