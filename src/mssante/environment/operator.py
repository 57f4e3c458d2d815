"""One operator process: store, trust client, SMTP listeners and the delivery worker."""

from __future__ import annotations

import asyncio
import logging

from mssante.config import OperatorConfig
from mssante.queue.worker import DeliveryWorker
from mssante.smtp.context import OperatorContext
from mssante.smtp.server import Listeners, start_listeners
from mssante.store import Store, open_store
from mssante.whitelist.client import TrustClient

log = logging.getLogger(__name__)


class OperatorService:
    """Start with ``await start()``, stop with ``await stop()``; nothing runs at construction."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.store: Store | None = None
        self.trust: TrustClient | None = None
        self.worker: DeliveryWorker | None = None
        self.listeners: Listeners | None = None
        self._worker_task: asyncio.Task[None] | None = None

    @property
    def ports(self) -> dict[str, int]:
        return self.listeners.ports if self.listeners else {}

    async def start(self) -> None:
        config = self.config
        try:
            self.store = await open_store(config.database_url)
            self.trust = TrustClient(
                config.trust.url, config.tls.ca_file, config.operator.data_dir / "trust-cache",
                refresh_interval=config.trust.refresh_interval,
                stale_after=config.trust.stale_after, timeout=config.trust.timeout)
            await self.trust.start()
            ctx = OperatorContext(config.operator, self.store, self.trust)
            self.worker = DeliveryWorker(ctx, config.queue, config.routes,
                                         cert_file=str(config.tls.cert_file),
                                         key_file=str(config.tls.key_file),
                                         ca_file=str(config.tls.ca_file))
            ctx.wake_queue = self.worker.wake
            self.listeners = await start_listeners(ctx, config)
            self._worker_task = asyncio.get_running_loop().create_task(self.worker.run())
        except BaseException:
            await self.stop()
            raise
        log.info("operator %s listening on %s", ", ".join(config.operator.domains), self.ports)

    async def stop(self) -> None:
        if self.listeners is not None:
            self.listeners.close()
            await self.listeners.wait_closed()
            self.listeners = None
        if self._worker_task is not None:
            self._worker_task.cancel()
            await asyncio.gather(self._worker_task, return_exceptions=True)
            self._worker_task = None
        if self.trust is not None:
            await self.trust.stop()
            self.trust = None
        if self.store is not None:
            await self.store.close()
            self.store = None
