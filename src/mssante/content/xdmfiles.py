"""Writing the documents of a checked IHE XDM archive into a folder: the one place the
archive's content touches the disk.

Only documents the check accepted are written (content/xdm.py ``check``: every hash
and size matched); README.TXT, INDEX.HTM and anything unlisted stay in the archive.
Names are not taken from the archive as paths: each file is the last component of its
name reduced to ``[A-Za-z0-9._-]`` (no leading dot), made unique, and created inside
the target folder through that folder's descriptor with ``O_CREAT | O_EXCL |
O_NOFOLLOW``: no path, no ``..``, no symbolic link planted in the folder, and no
existing file is ever overwritten.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mssante.content.xdm import DEFAULT_LIMITS, CheckedArchive, Limits, check
from mssante.errors import DocumentRefused

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, taken: set[str]) -> str:
    """A plain file name for ``name`` (a member path), unique among ``taken`` (compared
    without case, as on the file systems that ignore it)."""
    base = _UNSAFE.sub("_", name.replace("\\", "/").rpartition("/")[2]).lstrip(".")
    base = base[:100] or "document"
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    candidate, number = base, 1
    while candidate.casefold() in taken:
        number += 1
        candidate = f"{stem}-{number}.{suffix}" if suffix else f"{stem}-{number}"
    taken.add(candidate.casefold())
    return candidate


def extract(data: bytes, into: Path, limits: Limits = DEFAULT_LIMITS) -> list[Path]:
    """Check the archive ``data``, then write its documents into the folder ``into``
    (created if missing, mode 0700); the paths written, in archive order.
    DocumentRefused when the archive is refused (nothing is written then) or a file
    cannot be created."""
    checked = check(data, limits)
    return write_documents(checked, into)


def write_documents(checked: CheckedArchive, into: Path) -> list[Path]:
    """The documents of an archive already checked, written as ``extract`` does."""
    into.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        folder = os.open(into, flags)
    except OSError as exc:
        raise DocumentRefused([f"{into}: not a folder to extract into ({exc.strerror})"]) \
            from None
    taken = {entry.casefold() for entry in os.listdir(folder)}
    written: list[Path] = []
    try:
        for document in checked.documents:
            name = safe_name(document.name, taken)
            create = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            try:
                handle = os.open(name, create, 0o600, dir_fd=folder)
            except OSError as exc:
                raise DocumentRefused([f"{into / name}: cannot be created "
                                       f"({exc.strerror})"]) from None
            with os.fdopen(handle, "wb") as out:
                out.write(document.data)
            written.append(into / name)
    finally:
        os.close(folder)
    return written
