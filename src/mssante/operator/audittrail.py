"""The operator's side of the audit trail: the key that signs checkpoints, the
sequencer that seals waiting entries every ``seal_interval``, the witness file every
checkpoint is appended to, and the purge of entries past retention.

The witness file (``<data_dir>/audit/checkpoints.log``, one JSON object ``{"note": …}``
a line) keeps every signed checkpoint outside the database: someone able to rewrite the
database, entries and checkpoints alike, cannot make the log shorter than what was
witnessed (``verify`` compares the last witnessed checkpoint with the database's).
Copying it elsewhere (another machine, the trust space) makes that guarantee
independent of this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path

from mssante.audit.checkpoint import Signer, Verifier
from mssante.config import AuditSettings, OperatorSettings
from mssante.store import Store

log = logging.getLogger(__name__)

WITNESS = "checkpoints.log"


def last_witnessed(path: Path) -> str | None:
    """The last checkpoint note of the witness file, if any."""
    if not path.exists():
        return None
    last = None
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                last = line
    if last is None:
        return None
    try:
        note = json.loads(last)["note"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"the last line of {path} is not a witnessed checkpoint") from None
    return str(note)


def audit_dir(settings: OperatorSettings) -> Path:
    return settings.data_dir / "audit"


def _path(setting: str, settings: OperatorSettings, default: str) -> Path:
    """A setting's path (relative: to the data directory), or ``default`` in the
    audit folder."""
    if not setting:
        return audit_dir(settings) / default
    path = Path(setting).expanduser()
    return path if path.is_absolute() else settings.data_dir / path


def key_path(audit: AuditSettings, settings: OperatorSettings) -> Path:
    return _path(audit.key_file, settings, "ed25519.pem")


def export_path(audit: AuditSettings, settings: OperatorSettings) -> Path:
    return _path(audit.export_dir, settings, "exports")


def origin_of(audit: AuditSettings, settings: OperatorSettings) -> str:
    return audit.origin or f"{settings.domains[0]}/audit"


def signer_of(audit: AuditSettings, settings: OperatorSettings) -> Signer:
    return Signer.load_or_create(origin_of(audit, settings), key_path(audit, settings))


def verifier_of(audit: AuditSettings, settings: OperatorSettings) -> Verifier:
    return signer_of(audit, settings).verifier


class AuditTrail:
    """Seal every ``seal_interval`` seconds; purge every ``purge_interval``."""

    def __init__(self, store: Store, audit: AuditSettings, settings: OperatorSettings) -> None:
        self.store = store
        self.settings = audit
        self.origin = origin_of(audit, settings)
        self.signer = signer_of(audit, settings)
        self.witness = audit_dir(settings) / WITNESS
        self.exports = export_path(audit, settings)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._seal_loop()), loop.create_task(self._purge_loop())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):  # the last entries get their place
            await self.seal()

    async def seal(self) -> str | None:
        note = await self.store.audit_seal(self.signer, self.origin)
        if note is not None:
            self.witness.parent.mkdir(parents=True, exist_ok=True)
            with open(self.witness, "a", encoding="utf-8") as out:
                out.write(json.dumps({"note": note}) + "\n")
        return note

    async def purge_once(self) -> int:
        before = time.time() - self.settings.retention_days * 86400
        count, path = await self.store.audit_purge(before=before, export_dir=self.exports,
                                                   actor="retention")
        if count:
            log.info("audit trail: %d entries older than %g days exported to %s and purged",
                     count, self.settings.retention_days, path)
        return count

    async def _seal_loop(self) -> None:
        while True:
            try:
                while await self.seal() is not None:
                    pass  # a backlog larger than one batch: seal on at once
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("audit trail: sealing failed")
            await asyncio.sleep(self.settings.seal_interval)

    async def _purge_loop(self) -> None:
        while True:
            try:
                await self.purge_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("audit trail: purge failed")
            await asyncio.sleep(self.settings.purge_interval)
