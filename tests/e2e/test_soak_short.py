"""The soak of bench/soak.py, short: relay load while both operators are killed with
SIGKILL (whole process groups and single workers) and started again; no message that
got a ``250`` may be lost. On SQLite, and on PostgreSQL (fresh databases).

Seeded: the same kills (which operator, how, when) on every run. The operators serve
from two processes each (a supervisor and its workers, environment/workers.py), retry
after 0.5, 1 and then every 2 s, so that the queue drains within seconds once both
run again. Nothing may be lost, duplicated, or left waiting for a dead process's lease.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from bench.soak import Options, drop_databases, soak, table

from tests.conftest import REQUIRE_POSTGRES

pytestmark = pytest.mark.slow


def postgres_reachable() -> None:
    """Skip when the PostgreSQL server bench/soak.py creates its databases on is out of
    reach, unless MSSANTE_REQUIRE_POSTGRES is set."""
    try:
        asyncio.run(drop_databases([]))
    except (OSError, asyncpg.PostgresError) as exc:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL unreachable: {exc} (MSSANTE_REQUIRE_POSTGRES is set)")
        pytest.skip(f"PostgreSQL unreachable: {exc}")


@pytest.mark.parametrize("engine", ["sqlite",
                                    pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_no_accepted_message_is_lost_when_operators_are_killed(tmp_path: Path,
                                                                engine: str) -> None:
    if engine == "postgresql":
        postgres_reachable()  # fresh databases, dropped at the end
    outcome, chaos = soak(Options(
        engine=engine, duration=30.0, clients=4, rate=4.0, kills=4, kill_mode="mixed",
        processes=2, seed=9, retry_delays=(0.5, 1.0, 2.0), drain_timeout=60.0,
        wait_stranded=False, quiet=True), tmp_path / "env")
    print("\n".join(table(outcome)))  # shown when the test fails, or with -s
    # seed 9: each operator loses its whole process group once and one worker once
    struck = {(target, how.split()[1]) for _, target, how in chaos.events}
    assert struck == {(target, kind) for target in ("sender", "receiver")
                      for kind in ("group", "worker")}, chaos.events
    assert outcome.accepted > 0
    assert outcome.lost == 0, outcome.lost_ids
    # Every accepted message is at the receiver once: a killed process's leases are
    # taken back as soon as it is known dead (leases.py), and a retry of what a killed
    # receiver had stored is recognised by XMSS-DELIVERY and not stored again.
    assert outcome.drained_in is not None
    assert outcome.queued == 0
    assert outcome.duplicated == 0, outcome.duplicated_ids
    assert outcome.stored_once == outcome.accepted
    assert outcome.late == 0  # none delivered more than 60 s after the last restart
