"""Failed password logins, per login and per client address: past a limit, they wait.

Every listener that checks passwords (IMAP, SMTP submission) shares one
``FailedLogins`` per operator process. Closing a connection after three failures
(both listeners do) does not stop a client that opens another: this does.

- A failure is counted twice over a sliding window (``operator.login_failure_window``
  seconds, 15 minutes by default): for the login tried, and for the client's IP
  address. At ``operator.max_login_failures`` failures (10) a login is refused, from
  everywhere, until its oldest failure leaves the window: guessing one person's
  password from many addresses goes no faster. At
  ``operator.max_login_failures_per_address`` failures (100) an address is refused
  for every login: trying many logins from one address is bounded too. The
  per-address bound is the higher one, so that the people behind one NAT (a
  hospital) are not all locked out by one person's mistakes: a login that waits
  does not make the others wait. An IPv6 client counts for its /64 (one site), an
  IPv4-mapped one as IPv4; a login is counted case-insensitively. 0 disables a bound.
- Whoever knows a login can make it wait by failing on purpose; a certificate
  login (EXTERNAL) still works then, and the wait ends with the window.
- An attempt counts as a failure from before its password is checked, and is taken
  back if the password was right: many connections trying at the same moment cannot
  get more guesses than the limit.
- A refused address's password is not checked at all, right or wrong: guessing goes
  no further, and refusals cost no argon2 work.
- Certificate logins (EXTERNAL) are not throttled: there is nothing to guess.
- Memory is bounded: at most ``MAX_ADDRESSES`` addresses, and as many logins, are
  followed, the one seen longest ago forgotten first.
- An operator served by several processes (environment/workers.py) counts in each,
  and each failure found (``confirmed``: the password or code was wrong) is told to
  the others (``share``, over ``pg_notify`` or the SQLite bus), which count it too
  (``heard``): a guesser gets no more tries by landing on several processes. Only
  the attempts still being checked at that moment in other processes escape it.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

MAX_ADDRESSES = 100_000
MAX_LOGIN_KEY = 320  # octets of a login kept as a key (an address is at most 254)


class LoginThrottle:
    """Failures per key (a client address by default) over a sliding window."""

    def __init__(self, limit: int, window: float, *,
                 clock: Callable[[], float] = time.monotonic,
                 key: Callable[[str], str] | None = None) -> None:
        """``limit`` failures per key within ``window`` seconds; 0: no limit."""
        if limit < 0 or window <= 0:
            raise ValueError("the limit cannot be negative and the window must be positive")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._key = key or client_key
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, address: str) -> float:
        """Seconds before ``address`` may try a password again (0: now)."""
        if self.limit == 0:
            return 0.0
        failures = self._recent(self._key(address))
        if failures is None or len(failures) < self.limit:
            return 0.0
        return max(0.0, failures[0] + self.window - self._clock())

    def failed(self, address: str, at: float | None = None) -> float:
        """Count a failed password login from ``address`` (or one about to be checked:
        see ``forgive``) at ``at`` (default: now); returns its time."""
        now = self._clock() if at is None else at
        if self.limit == 0:
            return now
        key = self._key(address)
        failures = self._recent(key)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=self.limit)
            while len(self._failures) > MAX_ADDRESSES:
                self._failures.popitem(last=False)
        self._failures.move_to_end(key)
        failures.append(now)
        return now

    def forgive(self, address: str, when: float) -> None:
        """Take back the failure counted at ``when``: the password was right."""
        failures = self._failures.get(self._key(address))
        if failures is not None and when in failures:
            failures.remove(when)

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        horizon = self._clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures


class FailedLogins:
    """The two counts of failed password logins: per login and per client address."""

    def __init__(self, per_login: int, per_address: int, window: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.by_login = LoginThrottle(per_login, window, clock=clock, key=login_key)
        self.by_address = LoginThrottle(per_address, window, clock=clock)
        # tells the operator's other processes of a failure (operator/runtime.py)
        self.share: Callable[[str, str], Awaitable[None]] | None = None

    def refusal(self, login: str, address: str) -> str | None:
        """Why a password for ``login`` from ``address`` is not to be checked now (a
        message for the client), or None."""
        wait = self.by_address.wait(address)
        if wait:
            return f"Too many failed logins from {address}; try again in {minutes(wait)}"
        wait = self.by_login.wait(login)
        if wait:
            return f"Too many failed logins for this login; try again in {minutes(wait)}"
        return None

    def failed(self, login: str, address: str) -> float:
        """Count a failure for both (see LoginThrottle.failed); returns its time."""
        now = self._clock()
        self.by_login.failed(login, now)
        self.by_address.failed(address, now)
        return now

    def forgive(self, login: str, address: str, when: float) -> None:
        """Take back the failure counted at ``when``: the password was right."""
        self.by_login.forgive(login, when)
        self.by_address.forgive(address, when)

    async def confirmed(self, login: str, address: str) -> None:
        """The attempt counted by ``failed`` was wrong: tell the other processes. Their
        not hearing of it (a database hiccup) only costs them that one count."""
        if self.share is None:
            return
        try:
            await self.share(login, address)
        except Exception as exc:
            log.warning("a failed login could not be told to the other processes: %s", exc)

    def heard(self, login: str, address: str) -> None:
        """Another process of the operator found a failure: count it here too."""
        self.failed(login, address)


def login_key(login: str) -> str:
    """What failures of a login are counted by: the login, case-insensitive, bounded."""
    return login.strip().lower()[:MAX_LOGIN_KEY]


def client_key(address: str) -> str:
    """What failures are counted by: the IPv4 address, or the /64 of an IPv6 one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def minutes(seconds: float) -> str:
    """A wait as people read it: "1 minute", "12 minutes"."""
    count = max(1, math.ceil(seconds / 60))
    return f"{count} minute" + ("s" if count > 1 else "")
