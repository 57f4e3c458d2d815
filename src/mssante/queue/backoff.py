"""Next hops that do not answer, and how long their mail waits (like Postfix's dead
destination cache, qmgr(8)).

After a failure to get a connection to a next hop, its other entries are deferred
without connecting until the hop's back-off ends; then one delivery alone probes it
while the others keep waiting. Each failure in a row makes the back-off the next of
the queue's ``retry_delays``, at most ``PROBE_INTERVAL``; a connection forgets it,
and makes what waited for the hop due at once (worker.py). So, while a peer is down,
the connection attempts to it are one per back-off period, not one per due entry; and
once it is back (an operator restarted after a crash, an upgrade), its mail goes
within ``PROBE_INTERVAL``, however long it was down. Postfix's dead destination cache
waits for the queue's own back-off instead (up to ``maximal_backoff_time``, 4000 s):
one connection attempt every half minute to a peer that is down costs less than a
message held minutes after it came back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mssante.queue.client import DeliveryError
from mssante.queue.nexthop import Hop

# How long a down hop waits, at most, for its next probe: a peer back is found within.
PROBE_INTERVAL = 30.0


@dataclass(slots=True)
class _Down:
    failures: int
    until: float
    error: DeliveryError
    probing: bool = False
    domains: set[str] = field(default_factory=set)  # whose mail waits for the hop


class HopBackoff:
    def __init__(self, delays: Sequence[float]) -> None:
        self._delays = [min(d, PROBE_INTERVAL) for d in delays] or [PROBE_INTERVAL]
        self._down: dict[Hop, _Down] = {}

    def held(self, hop: Hop, *, now: float) -> tuple[DeliveryError, float] | None:
        """None: connect to ``hop`` (when it is down, as its one probe: ``failed`` or
        ``connected`` must follow, or ``abandoned``). Else the error to defer with and
        the time before which not to try again."""
        down = self._down.get(hop)
        if down is None:
            return None
        if now >= down.until and not down.probing:
            down.probing = True
            return None
        until = max(down.until, now)
        error = DeliveryError(down.error.status, f"{down.error.text} (not tried again "
                              f"before {until - now:.0f}s)", permanent=False)
        return error, until

    def failed(self, hop: Hop, error: DeliveryError, *, now: float, domain: str = "") -> None:
        """A connection to ``hop`` failed, for mail to ``domain``."""
        down = self._down.get(hop)
        if down is not None and not down.probing and now < down.until:
            if domain:
                down.domains.add(domain)
            return  # another delivery failed at the same moment: one failure, not two
        failures = 1 if down is None else down.failures + 1
        delay = self._delays[min(failures - 1, len(self._delays) - 1)]
        domains = set() if down is None else down.domains
        self._down[hop] = _Down(failures, now + delay, error, domains=domains)
        if domain:
            domains.add(domain)

    def waiting(self, hop: Hop, domain: str) -> None:
        """Mail to ``domain`` was deferred because ``hop`` is down."""
        down = self._down.get(hop)
        if down is not None:
            down.domains.add(domain)

    def probes_due(self, *, now: float) -> list[tuple[Hop, set[str]]]:
        """The down hops whose back-off has ended and which no delivery is probing,
        with the domains whose mail waits for them: the worker probes them itself, so
        that mail deferred on its own longer schedule goes as soon as they are back.
        Each is marked as being probed (``failed``, ``connected`` or ``abandoned``
        must follow)."""
        due = [(hop, set(down.domains)) for hop, down in self._down.items()
               if now >= down.until and not down.probing and down.domains]
        for hop, _ in due:
            self._down[hop].probing = True
        return due

    def next_probe(self) -> float | None:
        """When the next probe of a down hop is due, if any."""
        return min((d.until for d in self._down.values() if not d.probing and d.domains),
                   default=None)

    def connected(self, hop: Hop) -> bool:
        """Forget ``hop``'s failures; True when it was down (its mail can go now)."""
        return self._down.pop(hop, None) is not None

    def abandoned(self, hop: Hop) -> None:
        """A probe stopped before it knew (cancelled): the next delivery probes."""
        down = self._down.get(hop)
        if down is not None:
            down.probing = False

    def is_down(self, hop: Hop) -> bool:
        return hop in self._down
