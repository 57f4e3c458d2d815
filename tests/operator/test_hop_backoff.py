"""The dead next hop cache (queue/backoff.py): one probe per back-off period, and a
peer that comes back is probed within PROBE_INTERVAL however long it was down."""

from __future__ import annotations

from mssante.queue.backoff import PROBE_INTERVAL, HopBackoff
from mssante.queue.client import DeliveryError
from mssante.queue.nexthop import Hop

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
