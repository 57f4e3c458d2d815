"""The trust space's side of the whitelist: change it, sign it, publish it.

Invariants:
- Every change runs under an exclusive ``fcntl.flock`` on ``<directory>/.lock``:
  two CLI invocations (or the CLI and a server) never lose each other's update.
- Each file is replaced atomically (temporary file, fsync, ``os.replace``), in the
  order signer chain, signature, XML, checksum: a reader never sees a torn file.
  A client fetching during a publication may see a new signature with the old XML;
  the signature check then fails, the client keeps its last good copy and
  succeeds on its next refresh.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mssante.errors import WhitelistError
from mssante.files import FILE_MODE, private_dir
from mssante.whitelist.files import (
    SHA256_NAME,
    SIG_NAME,
    SIGNER_NAME,
    XML_NAME,
    checksum_text,
    fsync_dir,
    write_atomic,
)
from mssante.whitelist.model import Whitelist, WhitelistEntry, utc_now
from mssante.whitelist.signature import sign
from mssante.whitelist.xmlformat import from_xml, to_xml

LOCK_NAME = ".lock"


class WhitelistPublisher:
    """The published whitelist under ``directory``, signed with ``signer_cert``/``signer_key``."""

    def __init__(self, directory: Path, signer_cert: Path, signer_key: Path) -> None:
        self.directory = directory
        self.signer_cert = signer_cert
        self.signer_key = signer_key
        private_dir(directory)

    @property
    def xml_file(self) -> Path:
        return self.directory / XML_NAME

    @property
    def sha256_file(self) -> Path:
        return self.directory / SHA256_NAME

    @property
    def sig_file(self) -> Path:
        return self.directory / SIG_NAME

    @property
    def signer_file(self) -> Path:
        return self.directory / SIGNER_NAME

    def is_published(self) -> bool:
        return all(p.exists() for p in (self.xml_file, self.sha256_file, self.sig_file,
                                         self.signer_file))

    def current(self) -> Whitelist:
        """The published whitelist; an empty one when nothing is published yet."""
        try:
            data = self.xml_file.read_bytes()
        except FileNotFoundError:
            return Whitelist.empty()
        return from_xml(data)

    def add(self, entry: WhitelistEntry) -> Whitelist:
        """Publish the list with ``entry`` added (replacing the same domain and DN)."""
        with self._locked():
            whitelist = self.current().with_entry(entry).with_generated_at(utc_now())
            self._write(whitelist)
        return whitelist

    def remove(self, domain: str, dn: str | None = None) -> Whitelist:
        """Publish the list without ``domain`` (only its entry for ``dn`` when given)."""
        with self._locked():
            current = self.current()
            whitelist = current.without(domain, dn)
            if len(whitelist) == len(current):
                detail = f" with DN {dn}" if dn is not None else ""
                raise WhitelistError(f"{domain} is not on the whitelist{detail}")
            whitelist = whitelist.with_generated_at(utc_now())
            self._write(whitelist)
        return whitelist

    def publish(self, whitelist: Whitelist) -> None:
        """Sign and publish ``whitelist`` as it is."""
        with self._locked():
            self._write(whitelist)

    def republish(self) -> None:
        """Sign the current list again (after the signing certificate changed)."""
        with self._locked():
            self._write(self.current())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, whitelist: Whitelist) -> None:
        xml = to_xml(whitelist)
        signature = sign(xml, self.signer_cert, self.signer_key)
        write_atomic(self.signer_file, self.signer_cert.read_bytes())
        write_atomic(self.sig_file, signature)
        write_atomic(self.xml_file, xml)
        write_atomic(self.sha256_file, checksum_text(xml).encode("ascii"))
        fsync_dir(self.directory)
