"""A second ch-xyz operator for one test: its own store, real IMAP and submission
listeners on free ports, the running environment's PKI, trust view and PSC provider,
and its own token checker (so that sessions it ends concern this test only)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL

from mssante.auth.psctoken import TokenChecker
from mssante.config import Listener, OperatorConfig, OperatorSettings, TrustSettings
from mssante.domain.logins import PasswordPolicy, SecondFactorPolicy
from mssante.imap.server import start_imap
from mssante.operator.runtime import OperatorRuntime
from mssante.smtp.server import start_listeners
from mssante.store import Store, open_store


@dataclass
class SideOperator:
    imaps: int
    submissions: int
    store: Store
    tokens: TokenChecker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def side_operator(environment: RunningEnvironment, tmp_path: Path, *,
                        passwords: PasswordPolicy | None = None,
                        second_factors: SecondFactorPolicy | None = None,
                        store: Store | None = None, max_login_failures: int = 10
                        ) -> AsyncIterator[SideOperator]:
    """``store``: the test's own (on either engine), left open; by default a SQLite
    file of the operator's, closed with it."""
    service = environment.service(HOSPITAL)
    assert service.trust is not None
    owned = store is None
    if store is None:
        store = await open_store(f"sqlite:///{tmp_path / 'side-operator.sqlite3'}")
    client = environment.operator(HOSPITAL)["psc_client"]
    tokens = TokenChecker(str(environment.description["psc"]["issuer"]), client["client_id"],
                          Path(environment.ca_file))
    imaps, submissions = free_port(), free_port()
    config = OperatorConfig(
        path=Path("operator.toml"), tls=service.config.tls,
        operator=OperatorSettings(domains=[HOSPITAL], hostname=f"mta.{HOSPITAL}",
                                  max_login_failures=max_login_failures),
        trust=TrustSettings(url="https://127.0.0.1:9"), imaps=Listener("127.0.0.1", imaps),
        submissions=Listener("127.0.0.1", submissions))
    ctx = OperatorRuntime(config.operator, store, service.trust, tokens=tokens,
                          passwords=passwords or PasswordPolicy(),
                          second_factors=second_factors or SecondFactorPolicy())
    imap = await start_imap(ctx, config)
    smtp = await start_listeners(ctx, config)
    try:
        yield SideOperator(imaps, submissions, store, tokens)
    finally:
        imap.close()
        smtp.close()
        await imap.wait_closed()
        await smtp.wait_closed()
        if owned:
            await store.close()
