"""Failed password logins per client address: past a limit, the address must wait.

Every listener that checks passwords (IMAP, SMTP submission) shares one throttle per
operator process. Closing a connection after three failures (both listeners do)
does not stop a client that opens another: this does.

- A failure is counted per client IP address over a sliding window
  (``operator.login_failure_window`` seconds); at ``operator.max_login_failures``
  failures the address is refused until its oldest failure leaves the window. An
  IPv6 client counts for its /64 (one site), an IPv4-mapped one as IPv4.
- An attempt counts as a failure from before its password is checked, and is taken
  back if the password was right: many connections trying at the same moment cannot
  get more guesses than the limit.
- A refused address's password is not checked at all, right or wrong: guessing goes
  no further, and refusals cost no argon2 work.
- Certificate logins (EXTERNAL) are not throttled: there is nothing to guess.
- Memory is bounded: at most ``MAX_ADDRESSES`` addresses are followed, the one seen
  longest ago forgotten first.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_ADDRESSES = 100_000


class LoginThrottle:
    def __init__(self, limit: int, window: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``limit`` failures per address within ``window`` seconds; 0: no limit."""
        if limit < 0 or window <= 0:
            raise ValueError("the limit cannot be negative and the window must be positive")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, address: str) -> float:
        """Seconds before ``address`` may try a password again (0: now)."""
        if self.limit == 0:
            return 0.0
        failures = self._recent(client_key(address))
        if failures is None or len(failures) < self.limit:
            return 0.0
        return max(0.0, failures[0] + self.window - self._clock())

    def failed(self, address: str) -> float:
        """Count a failed password login from ``address`` (or one about to be checked:
        see ``forgive``); returns its time."""
        now = self._clock()
        if self.limit == 0:
            return now
        key = client_key(address)
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
        failures = self._failures.get(client_key(address))
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
