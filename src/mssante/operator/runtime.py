"""What the SMTP servers and the queue share inside one operator process."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mssante.auth.emailcode import LoginCodes
from mssante.auth.psctoken import TokenChecker
from mssante.auth.throttle import FailedLogins
from mssante.auth.totp import TotpChecker
from mssante.config import NotificationSettings, OperatorSettings
from mssante.content.dsn import RecipientStatus, build_dsn
from mssante.content.headers import read_headers
from mssante.domain.logins import (
    PasswordPolicy,
    SecondFactor,
    SecondFactorPolicy,
    SecondFactorUnavailable,
)
from mssante.domain.mailboxes import Rules
from mssante.domain.policy import serves
from mssante.notify.sender import OutsideMail
from mssante.operator.directorysearch import DirectorySearch
from mssante.pki.verify import CertificateChecker
from mssante.store import Store
from mssante.store.models import Mailbox, MessageSummary, OutboundRecipient
from mssante.whitelist.model import Whitelist

MAILBOX_CACHE_SECONDS = 2.0
FAILURES_CHANNEL = "mssante_login_failures"  # failed logins, between processes
BODY_CACHE_BYTES = 64 * 1024 * 1024


class BodyCache:
    """Bodies just accepted, kept for the delivery worker so that a message relayed
    at once is not read back from the database (bounded, least recently used out)."""

    def __init__(self, limit: int = BODY_CACHE_BYTES) -> None:
        self._limit = limit
        self._size = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def put(self, sha256: str, body: bytes) -> None:
        if sha256 in self._items or len(body) > self._limit // 4:
            return
        self._items[sha256] = body
        self._size += len(body)
        while self._size > self._limit:
            _, old = self._items.popitem(last=False)
            self._size -= len(old)

    def get(self, sha256: str) -> bytes | None:
        body = self._items.get(sha256)
        if body is not None:
            self._items.move_to_end(sha256)
        return body

    async def fetch(self, store: Store, sha256: str) -> bytes:
        cached = self.get(sha256)
        return cached if cached is not None else await store.get_body(sha256)


class TrustView(Protocol):
    """The operator's current view of the trust space (see whitelist.client.TrustClient)."""

    @property
    def whitelist(self) -> Whitelist: ...

    @property
    def checker(self) -> CertificateChecker: ...


@dataclass
class OperatorRuntime:
    settings: OperatorSettings
    store: Store
    trust: TrustView
    wake_queue: Callable[[], None] = lambda: None
    # checks Pro Santé Connect access tokens (XOAUTH2, OAUTHBEARER); None: not offered
    tokens: TokenChecker | None = None
    # who may log in with a password ([psc.passwords], domain/logins.py)
    passwords: PasswordPolicy = field(default_factory=PasswordPolicy)
    # who must give a TOTP code after their password ([psc.second_factor])
    second_factors: SecondFactorPolicy = field(default_factory=SecondFactorPolicy)
    # mail to personal addresses ([notifications]): one-time codes, new-message notices
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    # recipient suggestions from the national directory (operator/directorysearch.py);
    # None: not offered (a runtime built without a trust space, in some tests)
    directory: DirectorySearch | None = None
    rules: Rules = field(init=False)
    local_domains: frozenset[str] = field(init=False)
    _mailboxes: dict[str, tuple[float, Mailbox | None]] = field(init=False, default_factory=dict)
    bodies: BodyCache = field(init=False, default_factory=lambda: BodyCache())
    logins: FailedLogins = field(init=False)  # shared by IMAP, submission and the web
    outside_mail: OutsideMail | None = field(init=False)  # None: [notifications] off
    totp: TotpChecker = field(init=False)  # TOTP codes of the web's logins
    login_codes: LoginCodes = field(init=False)  # patients' one-time codes by mail

    def __post_init__(self) -> None:
        self.rules = Rules(social_may_hold_per=self.settings.social_may_hold_per)
        self.logins = FailedLogins(self.settings.max_login_failures,
                                   self.settings.max_login_failures_per_address,
                                   self.settings.login_failure_window)
        # the operator's other processes count the failures found here, and this one
        # theirs (throttle.py): over pg_notify or the SQLite bus
        self.logins.share = self._share_failure
        self.store.follow(FAILURES_CHANNEL, self._heard_failure)
        self.local_domains = frozenset(d.lower() for d in self.settings.domains)
        self.outside_mail = (OutsideMail(self.notifications) if self.notifications.enabled
                             else None)
        self.totp = TotpChecker(self.store.logins, self.settings.totp_key_path, self.logins)
        self.login_codes = LoginCodes(self.store.logins, self.outside_mail,
                                      self.notifications, self.second_factors)

    async def _share_failure(self, login: str, address: str) -> None:
        await self.store.announce(FAILURES_CHANNEL, json.dumps(
            [self.store.scope, self.store.folders.hub.token, login, address]))

    def _heard_failure(self, payload: str | None) -> None:
        if payload is None:  # (re)connected: what went by is not kept anywhere
            return
        try:
            scope, token, login, address = json.loads(payload)
        except (ValueError, TypeError):
            return
        if scope == self.store.scope and token != self.store.folders.hub.token \
                and isinstance(login, str) and isinstance(address, str):
            self.logins.heard(login, address)

    async def second_factor(self, login: str) -> SecondFactor | None:
        """What must follow ``login``'s right password at the web: TOTP, a one-time
        code by mail, or nothing (domain/logins.py). Raises SecondFactorUnavailable
        (refuse the login, show its message) when one is needed that the person does
        not have."""
        contact = await self.store.logins.contact(login)
        if contact is None:
            raise SecondFactorUnavailable("Authentication failed")
        return self.second_factors.needed(contact.factors)

    @property
    def hostname(self) -> str:
        return self.settings.hostname

    @property
    def postmaster(self) -> str:
        return f"postmaster@{self.settings.domains[0].lower()}"

    async def mailbox(self, address: str) -> Mailbox | None:
        """The local mailbox, from a cache kept ``MAILBOX_CACHE_SECONDS``: RCPT looks the
        same few mailboxes up again and again, and a change (a mailbox closed) may take
        that long to be seen by SMTP. Delivery itself re-checks in the transaction.
        Only an open mailbox is answered from the cache: a refusal (unknown, closed) is
        permanent for the sender, so it is always read afresh, and a mailbox created or
        opened again is served at once."""
        now = time.monotonic()
        hit = self._mailboxes.get(address)
        if (hit is not None and hit[1] is not None and hit[1].active
                and now - hit[0] < MAILBOX_CACHE_SECONDS):
            return hit[1]
        mailbox = await self.store.get_mailbox(address)
        if len(self._mailboxes) > 10_000:
            self._mailboxes.clear()
        self._mailboxes[address] = (now, mailbox)
        return mailbox

    def is_local(self, address: str) -> bool:
        return serves(self.local_domains, address.rpartition("@")[2])

    async def submit_internal(self, body: bytes, recipient: str) -> None:
        """Queue a message the operator itself writes (a DSN), from the null sender,
        never itself the subject of a DSN (RFC 3461 §6.2: NOTIFY=NEVER)."""
        headers = read_headers(body)
        summary = MessageSummary(message_id=headers.message_id, subject=headers.subject,
                                 from_header=headers.from_header, date_header=headers.date)
        if self.is_local(recipient):
            await self.store.accept_message(body, envelope_from="", local=[recipient.lower()],
                                            remote=[], summary=summary)
            return
        await self.store.accept_message(
            body, envelope_from="", local=[],
            remote=[OutboundRecipient(recipient, None, frozenset({"NEVER"}))], summary=summary)
        self.wake_queue()

    async def send_dsn(self, *, to: str, statuses: Sequence[RecipientStatus], original: bytes,
                       envid: str | None, ret: str | None, arrival: float) -> None:
        """Send a DSN to ``to`` unless it is the null sender (RFC 3461 §6.2)."""
        if not to or to == "<>" or not statuses:
            return
        report = build_dsn(reporting_mta=self.hostname, from_address=self.postmaster, to=to,
                           statuses=statuses, original=original, envid=envid, ret=ret,
                           arrival=arrival, now=time.time())
        await self.submit_internal(report, to)
