"""The operator's trust client: fetch, verify and cache the whitelist and the CRLs.

Invariants:
- The root CA comes from the operator's configuration (``ca_file``), never from the
  network. Intermediate CAs, CRLs, the whitelist and its signer come from the trust
  space and are trusted only once checked against that root.
- A set (whitelist, checksum, signature, signer chain, CA certificates, CRLs) is
  used only when every check passes: checksum, signer certificate, signature, XML.
  Otherwise the previous good set stays in use (MSSanté: operators keep the last
  good copy); nothing is half-updated.
- A whitelist older than the one in use is refused (replay of an old signed list).
- The cache on disk is a directory per set plus a ``current`` pointer replaced
  atomically: a crash while writing leaves the previous set in use. The cached set
  is verified again on load, like a download.
- The processes serving one operator (environment/workers.py) share the cache: each
  write (a new set, the pointer, the removal of older sets) and each load holds the
  cache's lock file (``flock``), so that one process never removes the set another
  is writing or reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from mssante.errors import MSSanteError, TrustSpaceUnavailable, WhitelistError
from mssante.files import DIR_MODE, FILE_MODE, private_dir
from mssante.pki.tls import client_context
from mssante.pki.verify import CertificateChecker
from mssante.whitelist.files import (
    SHA256_NAME,
    SIG_NAME,
    SIGNER_NAME,
    XML_NAME,
    check_checksum,
    fsync_dir,
    write_atomic,
)
from mssante.whitelist.model import Whitelist
from mssante.whitelist.signature import verify
from mssante.whitelist.xmlformat import from_xml

log = logging.getLogger(__name__)

INTERMEDIATE_CAS = ("organisations", "persons")
CRL_CAS = ("root", "organisations", "persons")
MAX_DOWNLOAD = 64 * 1024 * 1024  # the real whitelist is a few MB
CURRENT_NAME = "current"
LOCK_NAME = ".lock"  # held while a set is written or read
FETCHED_AT_NAME = "fetched-at"


def _ca_name(ca: str) -> str:
    return f"{ca}-ca.pem"


def _crl_name(ca: str) -> str:
    return f"{ca}.crl"


@dataclass(frozen=True)
class TrustSet:
    """One download from the trust space, as bytes (the unit fetched, checked and cached)."""

    xml: bytes
    sha256: bytes
    signature: bytes
    signer_pem: bytes
    ca_pems: dict[str, bytes]
    crls: dict[str, bytes]

    def files(self) -> dict[str, bytes]:
        files = {XML_NAME: self.xml, SHA256_NAME: self.sha256, SIG_NAME: self.signature,
                 SIGNER_NAME: self.signer_pem}
        files.update({_ca_name(ca): pem for ca, pem in self.ca_pems.items()})
        files.update({_crl_name(ca): der for ca, der in self.crls.items()})
        return files

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name, data in sorted(self.files().items()):
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return digest.hexdigest()

    @classmethod
    def read(cls, directory: Path) -> TrustSet:
        return cls(
            xml=(directory / XML_NAME).read_bytes(),
            sha256=(directory / SHA256_NAME).read_bytes(),
            signature=(directory / SIG_NAME).read_bytes(),
            signer_pem=(directory / SIGNER_NAME).read_bytes(),
            ca_pems={ca: (directory / _ca_name(ca)).read_bytes() for ca in INTERMEDIATE_CAS},
            crls={ca: (directory / _crl_name(ca)).read_bytes() for ca in CRL_CAS})

    def verified(self, root_pem: bytes) -> tuple[Whitelist, CertificateChecker]:
        """Check everything against ``root_pem``; raise WhitelistError or PKIError."""
        check_checksum(self.xml, self.sha256)
        checker = CertificateChecker(
            root_pem,
            ca_pems=[self.ca_pems[ca] for ca in INTERMEDIATE_CAS],
            crls=[self.crls[ca] for ca in CRL_CAS])
        verify(self.xml, self.signature, self.signer_pem, checker)
        return from_xml(self.xml), checker


class TrustClient:
    """Keeps a verified whitelist and certificate checker, refreshed on a timer."""

    def __init__(self, base_url: str, ca_file: Path, cache_dir: Path, *,
                 refresh_interval: float = 300.0, stale_after: float = 86400.0,
                 timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.ca_file = ca_file
        self.cache_dir = cache_dir
        self.refresh_interval = refresh_interval
        self.stale_after = stale_after
        self.timeout = timeout
        self._whitelist: Whitelist | None = None
        self._checker: CertificateChecker | None = None
        self._last_refresh: datetime | None = None
        self._fingerprint: str | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- state ------------------------------------------------------------------

    @property
    def whitelist(self) -> Whitelist:
        """The verified whitelist in use; empty (nobody allowed) before the first load."""
        return self._whitelist if self._whitelist is not None else Whitelist.empty()

    @property
    def checker(self) -> CertificateChecker:
        """The certificate checker (root, intermediates, CRLs) of the set in use."""
        if self._checker is None:
            raise TrustSpaceUnavailable("no verified trust-space data loaded yet")
        return self._checker

    @property
    def last_refresh(self) -> datetime | None:
        """When the set in use was fetched from the trust space."""
        return self._last_refresh

    @property
    def ready(self) -> bool:
        return self._checker is not None

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each refresh or cache load that changes the set in use."""
        self._callbacks.append(callback)

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Load the cache, refresh once, then refresh every ``refresh_interval`` seconds."""
        self.load_cache()
        await self.refresh()
        if not self.ready:
            raise TrustSpaceUnavailable(
                f"trust space {self.base_url} unreachable and no valid cached copy in "
                f"{self.cache_dir}")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="trust-client-refresh")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except Exception:  # keep refreshing whatever happens
                log.exception("trust client refresh crashed")

    # -- refresh ----------------------------------------------------------------

    async def refresh(self) -> bool:
        """Fetch and verify a new set; swap it in and cache it. False keeps the old one."""
        async with self._lock:
            try:
                trust_set = await self._fetch()
                whitelist, checker = trust_set.verified(self._root_pem())
                self._check_not_older(whitelist)
                fetched_at = datetime.now(UTC)
                self._write_cache(trust_set, fetched_at)
            except (httpx.HTTPError, MSSanteError, OSError, ValueError, KeyError) as exc:
                self._log_failure(f"whitelist refresh from {self.base_url} failed: "
                                  f"{_reason(exc)}")
                return False
            self._swap(trust_set, whitelist, checker, fetched_at)
            return True

    def load_cache(self) -> bool:
        """Load and verify the cached set; False (and a warning) when there is none or it
        does not verify."""
        try:
            with self._cache_locked():
                directory = self._current_cache_dir()
                if directory is None:
                    log.info("no cached trust-space data in %s", self.cache_dir)
                    return False
                trust_set = TrustSet.read(directory)
                fetched_at = _read_fetched_at(directory)
            whitelist, checker = trust_set.verified(self._root_pem())
        except (MSSanteError, OSError, ValueError, KeyError) as exc:
            log.warning("cached trust-space data in %s refused: %s", self.cache_dir,
                        _reason(exc))
            return False
        self._swap(trust_set, whitelist, checker, fetched_at)
        return True

    def _root_pem(self) -> bytes:
        try:
            return self.ca_file.read_bytes()
        except OSError as exc:
            raise TrustSpaceUnavailable(f"cannot read the trust-space root {self.ca_file}: "
                                        f"{exc.strerror}") from None

    async def _fetch(self) -> TrustSet:
        context = client_context(self.ca_file, check_hostname=True)
        async with httpx.AsyncClient(base_url=self.base_url, verify=context,
                                     timeout=self.timeout, follow_redirects=False) as http:
            async def get(path: str) -> bytes:
                async with http.stream("GET", path) as response:
                    response.raise_for_status()
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_DOWNLOAD:
                            raise WhitelistError(f"{path}: larger than {MAX_DOWNLOAD} bytes")
                    return bytes(body)

            paths = [f"/{XML_NAME}", f"/{SHA256_NAME}", f"/{SIG_NAME}", f"/{SIGNER_NAME}"]
            paths += [f"/pki/{_ca_name(ca)}" for ca in INTERMEDIATE_CAS]
            paths += [f"/crl/{_crl_name(ca)}" for ca in CRL_CAS]
            # One after the other, on one kept-alive connection: one TLS handshake.
            bodies = [await get(path) for path in paths]
        xml, sha256, signature, signer, *rest = bodies
        cas, crls = rest[:len(INTERMEDIATE_CAS)], rest[len(INTERMEDIATE_CAS):]
        return TrustSet(xml=xml, sha256=sha256, signature=signature, signer_pem=signer,
                        ca_pems=dict(zip(INTERMEDIATE_CAS, cas, strict=True)),
                        crls=dict(zip(CRL_CAS, crls, strict=True)))

    def _check_not_older(self, whitelist: Whitelist) -> None:
        if self._whitelist is not None and whitelist.generated_at < self._whitelist.generated_at:
            raise WhitelistError(
                f"whitelist generated {whitelist.generated_at:%Y-%m-%dT%H:%M:%SZ} is older "
                f"than the one in use ({self._whitelist.generated_at:%Y-%m-%dT%H:%M:%SZ})")

    def _swap(self, trust_set: TrustSet, whitelist: Whitelist, checker: CertificateChecker,
              fetched_at: datetime) -> None:
        changed = trust_set.fingerprint != self._fingerprint
        self._whitelist, self._checker = whitelist, checker
        self._last_refresh, self._fingerprint = fetched_at, trust_set.fingerprint
        if not changed:
            return
        log.info("trust-space data in use: whitelist of %s generated %s, %d entries",
                 self.base_url, whitelist.generated_at.isoformat(), len(whitelist))
        for callback in self._callbacks:
            try:
                callback()
            except Exception:
                log.exception("trust client on_change callback failed")

    def _log_failure(self, message: str) -> None:
        if self._last_refresh is None:
            log.error("%s; no whitelist in use", message)
            return
        age = (datetime.now(UTC) - self._last_refresh).total_seconds()
        if age > self.stale_after:
            log.error("%s; whitelist last refreshed %.1f hours ago", message, age / 3600)
        else:
            log.warning("%s; keeping the copy fetched %s", message,
                        self._last_refresh.isoformat(timespec="seconds"))

    # -- cache ------------------------------------------------------------------

    def _current_cache_dir(self) -> Path | None:
        try:
            name = (self.cache_dir / CURRENT_NAME).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        if not name or "/" in name or name.startswith("."):
            raise WhitelistError(f"bad cache pointer {name!r}")
        return self.cache_dir / name

    @contextlib.contextmanager
    def _cache_locked(self) -> Iterator[None]:
        """Hold the cache's lock, across the processes sharing it (released on close)."""
        private_dir(self.cache_dir)
        fd = os.open(self.cache_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_cache(self, trust_set: TrustSet, fetched_at: datetime) -> None:
        with self._cache_locked():
            self._write_cache_locked(trust_set, fetched_at)

    def _write_cache_locked(self, trust_set: TrustSet, fetched_at: datetime) -> None:
        name = f"set-{time.time_ns()}"
        directory = self.cache_dir / name
        directory.mkdir(mode=DIR_MODE)
        for file_name, data in trust_set.files().items():
            write_atomic(directory / file_name, data)
        write_atomic(directory / FETCHED_AT_NAME, fetched_at.isoformat().encode("ascii"))
        fsync_dir(directory)
        write_atomic(self.cache_dir / CURRENT_NAME, (name + "\n").encode("ascii"))
        fsync_dir(self.cache_dir)
        for old in self.cache_dir.glob("set-*"):
            if old.name != name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)


def _read_fetched_at(directory: Path) -> datetime:
    moment = datetime.fromisoformat(
        (directory / FETCHED_AT_NAME).read_text(encoding="ascii").strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code} for {exc.request.url.path}"
    if isinstance(exc, httpx.HTTPError) and not text:
        return type(exc).__name__
    return text or type(exc).__name__
