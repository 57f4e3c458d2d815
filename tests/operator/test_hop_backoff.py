"""The dead next hop cache (queue/backoff.py): one probe per back-off period, and a
peer that comes back is probed within PROBE_INTERVAL however long it was down; and
an outcome the store could not take is written again (queue/worker.py)."""

from __future__ import annotations

import itertools
import time

from mssante.errors import StoreError
from mssante.queue.backoff import PROBE_INTERVAL, HopBackoff
from mssante.queue.client import DeliveryError
from mssante.queue.nexthop import Hop
from mssante.queue.worker import record_until_stored

HOP = Hop("mta.medecin.mssante.fr", 25)
REFUSED = DeliveryError("4.4.1", "connection refused", permanent=False)


def test_one_probe_per_period_and_never_more_than_the_probe_interval_apart() -> None:
    backoff = HopBackoff([5, 30, 120, 600, 3600])
    now = 1000.0
    for _ in range(8):  # a peer down for hours: failure after failure
        assert backoff.held(HOP, now=now) is None  # the probe
        backoff.failed(HOP, REFUSED, now=now)
        held = backoff.held(HOP, now=now + 1)  # the others wait, without connecting
        assert held is not None and held[1] <= now + PROBE_INTERVAL
        now = held[1]
    assert backoff.held(HOP, now=now) is None
    assert backoff.connected(HOP) is True  # back: its mail goes now (worker.py)
    assert backoff.held(HOP, now=now) is None and not backoff.is_down(HOP)


def test_a_probe_under_way_is_the_only_one() -> None:
    backoff = HopBackoff([5])
    backoff.failed(HOP, REFUSED, now=0.0)
    assert backoff.held(HOP, now=6.0) is None  # the probe
    assert backoff.held(HOP, now=6.0) is not None  # another entry meanwhile: deferred
    backoff.abandoned(HOP)
    assert backoff.held(HOP, now=6.0) is None


def test_a_probe_is_due_when_mail_waits_even_if_no_delivery_asks() -> None:
    """Mail deferred on its own schedule (600 s) must not wait for it once the peer is
    back: the worker probes the hop itself when its back-off ends."""
    backoff = HopBackoff([5, 600])
    backoff.failed(HOP, REFUSED, now=0.0, domain="medecin.mssante.fr")
    assert backoff.probes_due(now=1.0) == []
    assert backoff.next_probe() == 5.0
    assert backoff.probes_due(now=5.0) == [(HOP, {"medecin.mssante.fr"})]
    assert backoff.probes_due(now=5.0) == []  # under way: once
    assert backoff.held(HOP, now=5.0) is not None  # and deliveries keep waiting
    backoff.failed(HOP, REFUSED, now=6.0)
    assert backoff.next_probe() == 6.0 + PROBE_INTERVAL
    assert backoff.connected(HOP) and backoff.next_probe() is None


def test_no_probe_for_a_hop_no_mail_waits_for() -> None:
    backoff = HopBackoff([5])
    backoff.failed(HOP, REFUSED, now=0.0)
    assert backoff.probes_due(now=10.0) == [] and backoff.next_probe() is None


async def test_an_outcome_is_written_again_until_the_store_takes_it() -> None:
    """PostgreSQL restarting under the soak: the outcome writes of deliveries in flight
    failed, and their entries stayed held by the live worker's 15-minute lease."""
    attempts: list[float] = []

    async def write() -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 4:
            raise StoreError("database error: the database system is shutting down")

    await record_until_stored(write, first=0.01, most=0.02)
    assert len(attempts) == 4
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.01 and all(g >= 0.02 for g in gaps[1:])
