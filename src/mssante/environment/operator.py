"""One operator process: store, trust client, directory publisher and search, SMTP,
IMAP and HTTPS listeners, the delivery worker and the queue's retention.

Served by several processes (environment/workers.py), each runs one of these; the
directory publisher, the queue's retention and the audit trail's sealing run in
worker 0 only, and the listeners share their ports with the other workers.

The directory publisher starts right after the store (entries left by a previous
run, or written by the CLI, go as soon as the trust space answers) and stops
before it, so that it can give back the claims of the sends it interrupted.
"""

from __future__ import annotations

import asyncio
import logging

from mssante.auth.pscsessions import EndedSessions
from mssante.auth.psctoken import TokenChecker
from mssante.config import OperatorConfig
from mssante.environment.workers import WorkerRole
from mssante.imap.server import ImapListeners, start_imap
from mssante.notify.notices import MessageNotices
from mssante.operator.audittrail import AuditTrail
from mssante.operator.directorysearch import SEARCH_TIMEOUT, DirectorySearch
from mssante.operator.runtime import OperatorRuntime
from mssante.publishing.client import DirectoryClient
from mssante.publishing.publisher import DirectoryPublisher
from mssante.queue.retention import QueueRetention
from mssante.queue.worker import DeliveryWorker
from mssante.smtp.server import Listeners, start_listeners
from mssante.store import Store, open_store
from mssante.web.server import WebListener, start_web
from mssante.whitelist.client import TrustClient

log = logging.getLogger(__name__)


class OperatorService:
    """Start with ``await start()``, stop with ``await stop()``; nothing runs at construction."""

    def __init__(self, config: OperatorConfig, role: WorkerRole | None = None) -> None:
        self.config = config
        self.role = role  # None: the operator's only process
        self.store: Store | None = None
        self.runtime: OperatorRuntime | None = None  # what the protocol servers share
        self.trust: TrustClient | None = None
        self.directory: DirectorySearch | None = None  # recipient suggestions
        self.publisher: DirectoryPublisher | None = None
        self.worker: DeliveryWorker | None = None
        self.listeners: Listeners | None = None
        self.imap: ImapListeners | None = None
        self.web: WebListener | None = None
        self.retention: QueueRetention | None = None
        self.audit: AuditTrail | None = None  # None: [audit] off
        self.notices: MessageNotices | None = None  # None: [notifications] off
        self._worker_task: asyncio.Task[None] | None = None

    @property
    def ports(self) -> dict[str, int]:
        ports = dict(self.listeners.ports) if self.listeners else {}
        if self.imap is not None:
            ports.update(self.imap.ports)
        if self.web is not None:
            ports.update(self.web.ports)
        return ports

    async def start(self) -> None:
        config = self.config
        try:
            self.store = await open_store(config.database_url)
            self.store.audit_enabled = config.audit.enabled
            singletons = self.role is None or self.role.runs_singletons
            reuse_port = self.role is not None
            if config.audit.enabled and singletons:
                self.audit = AuditTrail(self.store, config.audit, config.operator)
                self.audit.start()
            if singletons:
                self.publisher = DirectoryPublisher(
                    self.store,
                    DirectoryClient(config.trust.url, ca_file=config.tls.ca_file,
                                    cert_file=config.tls.cert_file,
                                    key_file=config.tls.key_file,
                                    timeout=config.trust.timeout),
                    poll_interval=config.queue.poll_interval, timeout=config.trust.timeout)
                self.publisher.start()
            self.trust = TrustClient(
                config.trust.url, config.tls.ca_file, config.operator.data_dir / "trust-cache",
                refresh_interval=config.trust.refresh_interval,
                stale_after=config.trust.stale_after, timeout=config.trust.timeout)
            await self.trust.start()
            psc = config.psc
            tokens = None
            if psc.enabled:  # the PSC sessions ended are kept in the store (pscsessions.py)
                ended = EndedSessions(records=self.store.psc_ended)
                await ended.start()
                tokens = TokenChecker(psc.issuer, psc.expected_audience, config.tls.ca_file,
                                      leeway=psc.leeway, timeout=config.trust.timeout,
                                      client_id=psc.client_id, ended=ended)
            self.directory = DirectorySearch(DirectoryClient(
                config.trust.url, ca_file=config.tls.ca_file, cert_file=config.tls.cert_file,
                key_file=config.tls.key_file,
                timeout=min(config.trust.timeout, SEARCH_TIMEOUT)))
            ctx = OperatorRuntime(config.operator, self.store, self.trust, tokens=tokens,
                                 passwords=psc.password_policy, directory=self.directory,
                                 second_factors=psc.second_factor_policy,
                                 notifications=config.notifications)
            if ctx.outside_mail is not None:
                self.notices = MessageNotices(self.store.logins, ctx.outside_mail)
                self.store.on_delivered = self.notices.delivered
            self.worker = DeliveryWorker(ctx, config.queue, config.routes,
                                         cert_file=str(config.tls.cert_file),
                                         key_file=str(config.tls.key_file),
                                         ca_file=str(config.tls.ca_file))
            ctx.wake_queue = self.worker.wake
            self.runtime = ctx
            self.listeners = await start_listeners(ctx, config, reuse_port=reuse_port)
            self.imap = await start_imap(ctx, config, reuse_port=reuse_port)
            self.web = await start_web(ctx, config, reuse_port=reuse_port)
            self._worker_task = asyncio.get_running_loop().create_task(self.worker.run())
            if singletons:
                self.retention = QueueRetention(self.store, config.queue)
                self.retention.start()
        except BaseException:
            await self.stop()
            raise
        log.info("operator %s listening on %s", ", ".join(config.operator.domains), self.ports)

    async def stop(self) -> None:
        if self.web is not None:
            await self.web.stop()
            self.web = None
        if self.imap is not None:
            self.imap.close()
            await self.imap.wait_closed()
            self.imap = None
        if self.listeners is not None:
            self.listeners.close()
            await self.listeners.wait_closed()
            self.listeners = None
        if self.notices is not None:
            if self.store is not None:
                self.store.on_delivered = None
            await self.notices.stop()
            self.notices = None
        if self.retention is not None:
            await self.retention.stop()
            self.retention = None
        if self._worker_task is not None:
            self._worker_task.cancel()
            await asyncio.gather(self._worker_task, return_exceptions=True)
            self._worker_task = None
        if self.trust is not None:
            await self.trust.stop()
            self.trust = None
        if self.publisher is not None:
            await self.publisher.stop()
            self.publisher = None
        if self.audit is not None:  # after every server: the last entries are sealed
            await self.audit.stop()
            self.audit = None
        self.runtime = None
        if self.directory is not None:
            await self.directory.aclose()
            self.directory = None
        if self.store is not None:
            await self.store.close()
            self.store = None
