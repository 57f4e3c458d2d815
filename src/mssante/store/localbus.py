"""News between the processes that share one SQLite database, over Unix datagram
sockets (PostgreSQL has ``pg_notify`` for this; SQLite has no channel of its own).

Every process that opens the database binds one socket, ``<token>.sock``, in the
bus directory beside the database file (``<database>-bus/``, mode 0700). ``send``
writes one datagram to every other socket found there: the news reaches the other
processes as soon as the sender's transaction committed, not at their next poll.

- A datagram is ``<channel> NUL <payload>``, at most ``MAX_DATAGRAM`` octets (a
  payload is a list of ids or a short record; longer is refused, never cut).
- Sending never blocks: a receiver whose queue is full misses that datagram. News
  only ever says "read again" (store/changes.py), and the receivers keep their
  periodic check, so a lost datagram costs a delay, never a wrong view.
- A socket whose process is gone refuses the datagram (``ECONNREFUSED``): the
  sender removes it. A process that stops cleanly removes its own.
- Only the database's owner can reach the sockets: the directory is created 0700,
  and a directory that is not ours, or open to others, is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import socket
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MAX_DATAGRAM = 4096
MAX_SOCKET_PATH = 107  # sun_path: 108 octets with the final NUL (unix(7))
TOKEN_LENGTH = 16  # a ChangeHub token: 8 random octets in hex
SUFFIX = ".sock"
RESCAN_SECONDS = 1.0  # how long the list of the others' sockets is trusted

Receiver = Callable[[str, str], None]  # (channel, payload)


class LocalBus:
    """One process's end of the bus in ``directory``; ``start`` binds, ``stop`` removes."""

    def __init__(self, directory: Path, token: str, receiver: Receiver) -> None:
        self.directory = directory
        self.token = token
        self._receiver = receiver
        self._socket: socket.socket | None = None
        self._path = directory / f"{token}{SUFFIX}"
        self._peers: list[Path] = []
        self._scanned = -RESCAN_SECONDS

    @staticmethod
    def beside(database: Path) -> Path:
        """The bus directory of a SQLite database file: ``<database>-bus`` beside it,
        or, when a socket's path there would pass the 107 octets a Unix socket's name
        may have, a directory of the temporary folder named after the database's
        absolute path (every process of that database finds the same)."""
        database = database.absolute()
        directory = database.with_name(database.name + "-bus")
        if len(os.fsencode(directory)) + 1 + TOKEN_LENGTH + len(SUFFIX) <= MAX_SOCKET_PATH:
            return directory
        digest = hashlib.sha256(os.fsencode(database)).hexdigest()[:24]
        return Path(tempfile.gettempdir()) / f"mssante-bus-{os.getuid()}-{digest}"

    def start(self) -> None:
        _private_directory(self.directory)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if self._path.exists():
                self._path.unlink()
            sock.bind(str(self._path))
            os.chmod(self._path, 0o600)
        except BaseException:
            sock.close()
            raise
        self._socket = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def stop(self) -> None:
        sock = self._socket
        if sock is None:
            return
        self._socket = None
        with contextlib.suppress(RuntimeError):  # the loop is gone already
            asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    def send(self, channel: str, payload: str) -> None:
        """Tell every other process; never blocks, never raises."""
        sock = self._socket
        if sock is None:
            return
        datagram = f"{channel}\0{payload}".encode()
        if len(datagram) > MAX_DATAGRAM:
            log.warning("news on %s too long for the bus (%d octets): not sent",
                        channel, len(datagram))
            return
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._scanned >= RESCAN_SECONDS:
            self._rescan()
            self._scanned = loop_time
        for peer in list(self._peers):
            try:
                sock.sendto(datagram, str(peer))
            except (ConnectionRefusedError, FileNotFoundError):
                self._forget(peer)  # its process is gone
            except BlockingIOError:
                log.debug("bus socket %s full: one news item missed", peer.name)
            except OSError as exc:
                if exc.errno in (errno.ENOTSOCK, errno.EPROTOTYPE):
                    self._forget(peer)
                else:
                    log.warning("cannot send news to %s: %s", peer.name, exc)

    def _rescan(self) -> None:
        try:
            names = os.listdir(self.directory)
        except OSError as exc:
            log.warning("cannot read the bus directory %s: %s", self.directory, exc)
            return
        own = self._path.name
        self._peers = [self.directory / name for name in names
                       if name.endswith(SUFFIX) and name != own]

    def _forget(self, peer: Path) -> None:
        with contextlib.suppress(OSError):
            peer.unlink()
        if peer in self._peers:
            self._peers.remove(peer)

    def _readable(self) -> None:
        sock = self._socket
        while sock is not None:
            try:
                datagram = sock.recv(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("bus socket: %s", exc)
                return
            channel, sep, payload = datagram.decode("utf-8", "replace").partition("\0")
            if not sep or len(datagram) > MAX_DATAGRAM:
                log.warning("ignored a malformed datagram on the bus")
                continue
            try:
                self._receiver(channel, payload)
            except Exception:  # one receiver's bug must not stop the bus
                log.exception("a bus receiver failed on %s", channel)


def _private_directory(directory: Path) -> None:
    """Create ``directory`` 0700, or check that an existing one is ours and private."""
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(f"{directory} is not a directory")
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(f"{directory} must belong to this user with mode 0700 "
                      f"(found uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o})")
