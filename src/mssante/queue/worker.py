"""The delivery worker: claims due queue entries and delivers them.

Implementation notes:
- Entries are claimed with a lease (Store.claim_due): several workers, even in
  several processes sharing one PostgreSQL, never deliver the same entry at once.
  An entry whose worker died becomes due again when its lease ends.
- Entries with the same body, sender and recipient domain travel in one SMTP
  transaction, one RCPT each (RFC 5321 §3.3); a group claimed with several but fewer
  than ``RCPT_BATCH`` recipients takes the message's other due entries for that domain
  with it (``Store.claim_companions``), so that an alert to thousands of mailboxes
  of one operator goes in transactions of ``RCPT_BATCH``, not of whatever one claim
  happened to find.
- Outcome per recipient: 2xx delivered; 5xx failed and bounced; 4xx or a
  connection failure deferred with the configured backoff, then failed with
  status 4.4.7 once older than ``max_lifetime`` (RFC 3463 X.4.7).
- DSNs (RFC 3461 §4.1): FAILURE unless NOTIFY=NEVER (the default NOTIFY means
  FAILURE); DELAY once after ``delay_notice_after`` when asked; SUCCESS as
  "relayed" when the next hop does not support DSN (it reports delivery otherwise).
- A failure decided here (the domain off the whitelist, the next hop's certificate
  not listed for it, no connection) has no reply code: its DSN says ``X-mssante``
  and names no remote MTA (RFC 3464 §2.3.5-2.3.6); a next hop refused at the DN
  check is closed at once, not put back in the pool.
- Each outcome is one line of the mail log (``mssante.operator.maillog``); a delivered entry
  keeps no ``last_error``.
- A message is marked delivered only after the next hop's ``250`` to DATA. The
  outcomes of a transaction are written together (one group commit) and a stop
  (cancellation) does not interrupt them. A crash between the ``250`` and that commit
  leaves the entries queued: they are sent again. To an mssante operator (its EHLO
  offers ``XMSS-DELIVERY``) each RCPT carries its queue entry's identifier, the same
  at every attempt, and the receiver answers ``250`` to a transaction it already
  stored without storing it again; to another MTA the message can arrive twice
  (at-least-once, like every MTA); nothing is lost.
- Leases name this process (``leases.Heartbeat``): a process that died is known by
  its heartbeat, and its leases go back to the queue at once, not at their end.
- A next hop that does not answer is not tried again before its back-off ends
  (``backoff.py``); its other entries are deferred without connecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence

from mssante import leases
from mssante.config import QueueSettings
from mssante.content.dsn import Action, RecipientStatus
from mssante.content.headers import header_section
from mssante.errors import StoreError
from mssante.operator import maillog
from mssante.operator.accept import RcptParams
from mssante.operator.runtime import OperatorRuntime
from mssante.pki.tls import client_context
from mssante.queue.backoff import HopBackoff
from mssante.queue.client import Connection, ConnectionPool, DeliveryError
from mssante.queue.nexthop import Hop, NextHopError, NextHops
from mssante.queue.smtpclient import ServerReply, SMTPClientError, to_wire
from mssante.smtp.params import XMSS_DELIVERY, rcpt_params_wire, xtext_encode
from mssante.store.models import QueueEntry

log = logging.getLogger(__name__)

# Longer than any delivery can take (connect, TLS and the 10-minute DATA timeout of
# RFC 5321 §4.5.3.2.6), so that a live worker never outlives its lease; only what a
# crashed process held waits this long.
LEASE_SECONDS = 900.0
# Recipients of one message at one domain sent in one transaction, at most: the number
# every SMTP server must accept (RFC 5321 §4.5.3.1.8), so that no peer answers 452.
RCPT_BATCH = 100
# An outcome the store could not take is written again after this, doubling up to the
# second: a store back (PostgreSQL restarted) gets it within that.
RECORD_RETRY_FIRST = 0.5
RECORD_RETRY_MAX = 10.0


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def delivery_id(entry: QueueEntry) -> str:
    """The identifier of ``entry`` sent as XMSS-DELIVERY: the same at every attempt, and
    never another entry's (an id SQLite may give again after a purge comes with the
    time of creation and the body)."""
    return f"{entry.id}.{int(entry.created_at * 1_000_000):x}.{entry.body_sha256[:16]}"


def _wants(entry: QueueEntry, what: str) -> bool:
    if "NEVER" in entry.notify:
        return False
    if not entry.notify:  # RFC 3461 §4.1: default is FAILURE (and maybe DELAY)
        return what == "FAILURE"
    return what in entry.notify


class DeliveryWorker:
    def __init__(self, ctx: OperatorRuntime, settings: QueueSettings,
                 routes: dict[str, str], *, cert_file: str, key_file: str,
                 ca_file: str) -> None:
        self.ctx = ctx
        self.settings = settings
        self.hops = NextHops(routes)
        tls = client_context(ca_file=ca_file, cert_file=cert_file, key_file=key_file)  # type: ignore[arg-type]
        self.pool = ConnectionPool(tls, ctx.trust, ctx.hostname, settings.connect_timeout)
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.workers)
        self._tasks: set[asyncio.Task[None]] = set()
        self._claimed: set[int] = set()  # entries leased by this worker, not yet settled
        self.heartbeat = leases.Heartbeat(ctx.store, on_reclaimed=self.wake)
        self.backoff = HopBackoff(settings.retry_delays)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        await record_until_stored(self.heartbeat.start)
        try:
            wait = RECORD_RETRY_FIRST
            while True:
                try:
                    claimed = await self.run_once(wait=False)
                    if not claimed:
                        await self._sleep()
                    wait = RECORD_RETRY_FIRST
                except StoreError as exc:
                    # the store unreachable (PostgreSQL restarting): the queue waits for
                    # it, it does not stop (it did, for good, until the process restarted)
                    log.warning("delivery worker: %s; again in %.1f s", exc, wait)
                    await asyncio.sleep(wait)
                    wait = min(wait * 2, RECORD_RETRY_MAX)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            # Entries in flight go back to the queue at once rather than when the lease ends.
            await self.ctx.store.release_claims(sorted(self._claimed))
            self._claimed.clear()
            await self.heartbeat.stop()
            await self.pool.close()

    async def _sleep(self) -> None:
        timeout = self.settings.poll_interval
        due = await self.ctx.store.next_due()
        probe = self.backoff.next_probe()
        for when in (due, probe):
            if when is not None:
                timeout = max(0.0, min(timeout, when - time.time()))
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _probe(self, hop: Hop, domains: set[str]) -> None:
        """Connect to a down hop whose back-off ended although no delivery needed it
        (what waits for it is deferred on its own schedule): back, its mail is due."""
        try:
            conn = await self.pool.get(hop)
        except DeliveryError as exc:
            self.backoff.failed(hop, exc, now=time.time())
            return
        except BaseException:
            self.backoff.abandoned(hop)
            raise
        self.pool.put(conn)
        if self.backoff.connected(hop):
            log.info("next hop %s answers again", hop)
            for domain in sorted(domains):
                await self.ctx.store.retry_domain(domain, now=time.time())
            self.wake()

    async def run_once(self, *, wait: bool = True) -> int:
        """Claim due entries and start their delivery; with ``wait``, until done."""
        for hop, domains in self.backoff.probes_due(now=time.time()):
            task = asyncio.get_running_loop().create_task(self._probe(hop, domains))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        free = self.settings.workers - (len(self._tasks))
        if free <= 0:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            return 1
        # Claim only what can start now: a claimed entry never waits for a slot while
        # its lease runs.
        entries = await leases.claim(
            self.ctx.store.claim_due(now=time.time(), limit=free, lease=LEASE_SECONDS,
                                     holder=self.heartbeat.holder.id),
            self._claimed)
        groups: dict[tuple[str, str, str, str | None, str | None], list[QueueEntry]]
        groups = defaultdict(list)
        for entry in entries:
            key = (entry.body_sha256, entry.envelope_from, _domain(entry.recipient),
                   entry.envid, entry.ret)
            groups[key].append(entry)
        for (_, _, domain, _, _), group in groups.items():
            # the same message's other recipients there: looked for only when this claim
            # already found several (a message to many), not for every one-recipient
            # message, where the extra transaction per group held deliveries back
            if 1 < len(group) < RCPT_BATCH:
                group += await leases.claim(self.ctx.store.claim_companions(
                    group[0], domain, now=time.time(), limit=RCPT_BATCH - len(group),
                    lease=LEASE_SECONDS, holder=self.heartbeat.holder.id), self._claimed)
        started = [self._start(group) for group in groups.values()]
        if wait and started:
            await asyncio.gather(*started, return_exceptions=True)
        return len(entries)

    def _start(self, group: list[QueueEntry]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._deliver_guarded(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver_guarded(self, group: list[QueueEntry]) -> None:
        async with self._slots:
            try:
                await self.deliver(group)
            except Exception as exc:  # a bug must not stop the queue
                log.exception("delivery of %s failed unexpectedly", [e.id for e in group])
                # counted as an attempt, so that the entry still expires and bounces
                error = DeliveryError("4.3.0", f"internal error: {exc!r}", permanent=False)
                with contextlib.suppress(Exception):
                    await self._all(group, error)
            self._claimed.difference_update(e.id for e in group)

    async def deliver(self, group: Sequence[QueueEntry]) -> None:
        domain = _domain(group[0].recipient)
        whitelist = self.ctx.trust.whitelist
        if not whitelist.is_listed(domain):
            error = DeliveryError("5.7.1", f"{domain} is not on the MSSanté whitelist",
                                  permanent=True)
            await self._all(group, error)
            return
        try:
            hops = await self.hops.resolve(domain)
        except NextHopError as exc:  # RFC 3463 X.1.2 permanent, X.4.3 routing (temporary)
            await self._all(group, DeliveryError("5.1.2" if exc.permanent else "4.4.3",
                                                 str(exc), permanent=exc.permanent))
            return
        last: DeliveryError | None = None
        not_before: float | None = None
        for hop in hops:
            held = self.backoff.held(hop, now=time.time())
            if held is not None:  # down: deferred without connecting
                last, until = held
                not_before = until if not_before is None else min(not_before, until)
                self.backoff.waiting(hop, domain)
                continue
            try:
                conn = await self.pool.get(hop)
            except DeliveryError as exc:
                self.backoff.failed(hop, exc, now=time.time(), domain=domain)
                last, not_before = exc, None
                continue
            except BaseException:
                self.backoff.abandoned(hop)
                raise
            if self.backoff.connected(hop):  # back: what waited for it goes now
                log.info("next hop %s answers again", hop)
                await self.ctx.store.retry_domain(domain, now=time.time())
                self.wake()
            if not whitelist.allows(domain, conn.peer.subject_dn):
                # Closed at once: a connection to a server we refused serves no one.
                await self.pool.close_connection(conn)
                last = DeliveryError("4.7.5", f"certificate {conn.peer.subject_dn} of {hop} "
                                     f"is not listed for {domain}", permanent=False)
                continue
            await self._transact(conn, group)
            return
        assert last is not None
        await self._all(group, last, not_before=not_before)

    async def _transact(self, conn: Connection, group: Sequence[QueueEntry]) -> None:
        first = group[0]
        body = await self.ctx.bodies.fetch(self.ctx.store, first.body_sha256)
        dsn = conn.supports("DSN")
        options: list[str] = []
        if conn.supports("SIZE"):
            options.append(f"SIZE={len(body)}")
        head = header_section(body)  # the headers alone: no copy of a 25 MB body
        if not head.isascii():  # RFC 6532 headers need SMTPUTF8 on the way (RFC 6531 §3.4)
            if not conn.supports("SMTPUTF8"):
                self.pool.put(conn)
                await self._all(group, DeliveryError(
                    "5.6.9", f"{conn.hop} does not accept UTF-8 headers (SMTPUTF8)",
                    permanent=True), conn)
                return
            options.append("SMTPUTF8")
        if not body.isascii():
            if not conn.supports("8BITMIME"):  # RFC 6152 §3: no downgrade done here
                self.pool.put(conn)
                await self._all(group, DeliveryError(
                    "5.6.3", f"{conn.hop} does not accept 8-bit messages (8BITMIME)",
                    permanent=True), conn)
                return
            options.append("BODY=8BITMIME")
        if dsn and first.ret:
            options.append(f"RET={first.ret}")
        if dsn and first.envid:
            options.append(f"ENVID={xtext_encode(first.envid)}")
        recipients = [(e.recipient, self._rcpt_params(conn, e, dsn=dsn)) for e in group]
        try:
            mail, rcpts, final = await conn.smtp.transaction(first.envelope_from, recipients,
                                                             options, to_wire(body))
        except SMTPClientError as exc:
            self.pool.discard(conn)
            await self._all(group, DeliveryError("4.4.2", f"during the transaction with "
                                                 f"{conn.hop}: {exc}", permanent=False), conn)
            return
        # From the next hop's answer on, the outcomes are written whatever happens to
        # this task: a stop in between would send the message again.
        await leases.unstoppable(asyncio.ensure_future(
            self._settle(conn, group, rcpts, final, dsn=dsn, closing=mail.code == 421)))

    def _rcpt_params(self, conn: Connection, entry: QueueEntry, *, dsn: bool) -> list[str]:
        params = rcpt_params_wire(RcptParams(notify=entry.notify, orcpt=entry.orcpt)) \
            if dsn else []
        if conn.supports(XMSS_DELIVERY):  # an mssante operator: retries are recognised
            params.append(f"{XMSS_DELIVERY}={xtext_encode(delivery_id(entry))}")
        return params

    async def _settle(self, conn: Connection, group: Sequence[QueueEntry],
                      rcpts: Sequence[ServerReply], final: ServerReply | None, *, dsn: bool,
                      closing: bool) -> None:
        """Record each recipient's outcome, all in one group commit (concurrently)."""
        if closing or (final is not None and final.code == 421):
            self.pool.discard(conn)  # RFC 5321 §3.8: the server is closing the channel
        else:
            self.pool.put(conn)
        now = time.time()
        settling = []
        for entry, reply in zip(group, rcpts, strict=True):
            if not reply.ok:
                settling.append(self._outcome(
                    entry, DeliveryError.from_reply(reply.code, reply.text), conn))
            elif final is not None and not final.ok:
                settling.append(self._outcome(
                    entry, DeliveryError.from_reply(final.code, final.text), conn))
            elif final is not None:
                settling.append(self._delivered(entry, final, conn, now=now, dsn=dsn))
        results = await asyncio.gather(*settling, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def _delivered(self, entry: QueueEntry, final: ServerReply, conn: Connection, *,
                         now: float, dsn: bool) -> None:
        await record_until_stored(lambda: self.ctx.store.mark_delivered(
            entry.id, now=now, relay=str(conn.hop)))
        sent = DeliveryError.from_reply(final.code, final.text)
        maillog.delivery(entry.id, sender=entry.envelope_from, recipient=entry.recipient,
                         relay=_relay(conn), delay=now - entry.created_at,
                         dsn=sent.status, status="sent", text=str(final))
        if not dsn and _wants(entry, "SUCCESS"):
            # RFC 3461 §4.2: "relayed" to a server that does not report delivery
            await self._dsn(entry, Action.RELAYED, "2.0.0", sent.diagnostic, conn)

    async def _all(self, group: Sequence[QueueEntry], error: DeliveryError,
                   conn: Connection | None = None, *, not_before: float | None = None) -> None:
        for entry in group:
            await self._outcome(entry, error, conn, not_before=not_before)

    async def _outcome(self, entry: QueueEntry, error: DeliveryError,
                       conn: Connection | None, *, not_before: float | None = None) -> None:
        """Record a failed attempt; ``conn`` is the connection it was made on, if any;
        a deferred entry is not tried again before ``not_before``."""
        now = time.time()
        age = now - entry.created_at
        relay = _relay(conn)
        if error.permanent or age >= self.settings.max_lifetime:
            status = error.status if error.permanent else "4.4.7"
            text = str(error) if error.permanent else f"delivery time expired: {error}"
            await record_until_stored(lambda: self.ctx.store.mark_failed(
                entry.id, error=text, now=now))
            maillog.delivery(entry.id, sender=entry.envelope_from, recipient=entry.recipient,
                             relay=relay, delay=age, dsn=status, status="bounced", text=text)
            if _wants(entry, "FAILURE"):
                await self._dsn(entry, Action.FAILED, status, error.diagnostic,
                                conn if error.remote else None)
            return
        delays = self.settings.retry_delays or [60.0]
        delay = delays[min(entry.attempts, len(delays) - 1)]
        if not_before is not None:
            delay = max(delay, not_before - now)
        await record_until_stored(lambda: self.ctx.store.mark_deferred(
            entry.id, next_attempt_at=now + delay, error=str(error)))
        maillog.delivery(entry.id, sender=entry.envelope_from, recipient=entry.recipient,
                         relay=relay, delay=age, dsn=error.status, status="deferred",
                         text=f"{error}; next attempt in {delay:.0f}s")
        if (_wants(entry, "DELAY") and not entry.delay_notified
                and age >= self.settings.delay_notice_after):
            await self.ctx.store.mark_delay_notified(entry.id)
            await self._dsn(entry, Action.DELAYED, error.status if error.status.startswith("4")
                            else "4.0.0", error.diagnostic, conn if error.remote else None,
                            retry_until=entry.created_at + self.settings.max_lifetime)

    async def _dsn(self, entry: QueueEntry, action: Action, status: str, diagnostic: str,
                   conn: Connection | None, *, retry_until: float | None = None) -> None:
        """Queue a DSN; a failure is logged, never allowed to undo the entry's outcome."""
        try:
            await self._send_dsn(entry, action, status, diagnostic, conn, retry_until)
        except Exception:
            log.exception("DSN for queue entry %d could not be queued", entry.id)

    async def _send_dsn(self, entry: QueueEntry, action: Action, status: str, diagnostic: str,
                        conn: Connection | None, retry_until: float | None) -> None:
        original = await self.ctx.bodies.fetch(self.ctx.store, entry.body_sha256)
        st = RecipientStatus(recipient=entry.recipient, action=action, status=status,
                             diagnostic=diagnostic, orcpt=entry.orcpt,
                             remote_mta=conn.hop.host if conn else None,
                             will_retry_until=retry_until)
        await self.ctx.send_dsn(to=entry.envelope_from, statuses=[st], original=original,
                                envid=entry.envid, ret=entry.ret, arrival=entry.created_at)



def _relay(conn: Connection | None) -> str | None:
    """The next hop and its certificate's DN, for the mail log."""
    if conn is None:
        return None
    return f"{conn.hop} (dn=\"{conn.peer.subject_dn}\")"


async def record_until_stored(write: Callable[[], Awaitable[object]], *,
                              first: float = RECORD_RETRY_FIRST,
                              most: float = RECORD_RETRY_MAX) -> None:
    """Write an entry's outcome, again and again while the store cannot be reached
    (PostgreSQL restarting, a disk full): the entry stays claimed by this live process
    meanwhile, and an outcome given up would leave it held until its lease ends (15
    minutes) although its fate is known. Each wait doubles, up to ``most``."""
    wait = first
    while True:
        try:
            await write()
            return
        except StoreError as exc:
            log.warning("the store did not take a write (%s); again in %.1f s", exc, wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, most)
