"""Failed logins counted across the processes of one operator (auth/throttle.py,
operator/runtime.py): two stores on one database stand for two workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from tests.store.conftest import DOMAIN, Database

from mssante.auth.passwordlogin import LoginThrottled, PasswordLoginFailed, password_login
from mssante.auth.passwords import hash_password
from mssante.config import OperatorSettings
from mssante.domain.logins import PasswordPolicy, WayIn
from mssante.domain.mailboxes import PersonKind
from mssante.operator.runtime import OperatorRuntime
from mssante.pki.verify import CertificateChecker
from mssante.store import Store
from mssante.whitelist.model import Whitelist

ADDRESS = "192.0.2.9"


class NoTrustSpace:
    """These tests check passwords only: nothing asks the trust space."""

    @property
    def whitelist(self) -> Whitelist:
        raise AssertionError("not used by password logins")

    @property
    def checker(self) -> CertificateChecker:
        raise AssertionError("not used by password logins")


async def _until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _runtime(store: Store) -> OperatorRuntime:
    settings = OperatorSettings(domains=[DOMAIN], hostname=f"mta.{DOMAIN}",
                                max_login_failures=4)
    return OperatorRuntime(settings, store, NoTrustSpace())


async def _guess(runtime: OperatorRuntime, password: str) -> None:
    await password_login(runtime.store, runtime.logins, "dr", password, ADDRESS,
                         PasswordPolicy(), way=WayIn.MAIL_CLIENT)


async def test_a_guesser_gets_no_more_tries_by_landing_on_several_workers(
        database: Database) -> None:
    first, second = await database.open(), await database.open()
    for store in (first, second):
        store.listen_for_changes()
    await _until(lambda: first.folders.hub.listening and second.folders.hub.listening)
    await first.create_person("dr", PersonKind.HEALTH, "Dr Alice Martin",
                              password_hash=hash_password("the right one"))
    one, two = _runtime(first), _runtime(second)
    for runtime in (one, two, one, two):  # 4 wrong guesses, 2 in each worker
        with pytest.raises(PasswordLoginFailed):
            await _guess(runtime, "a guess")
    await _until(lambda: one.logins.refusal("dr", ADDRESS) and
                 two.logins.refusal("dr", ADDRESS))
    for runtime in (one, two):  # the limit (4) holds for the operator, not per worker
        with pytest.raises(LoginThrottled):
            await _guess(runtime, "the right one")


async def test_a_right_password_is_not_told_as_a_failure(database: Database) -> None:
    first, second = await database.open(), await database.open()
    for store in (first, second):
        store.listen_for_changes()
    await _until(lambda: first.folders.hub.listening and second.folders.hub.listening)
    await first.create_person("dr", PersonKind.HEALTH, "Dr Alice Martin",
                              password_hash=hash_password("the right one"))
    one, two = _runtime(first), _runtime(second)
    for _ in range(6):  # told as failures, these alone would lock "dr" out
        await _guess(one, "the right one")
    with pytest.raises(PasswordLoginFailed):
        await _guess(one, "a guess")
    await asyncio.sleep(0.5)  # what the first worker told has arrived
    for _ in range(2):
        with pytest.raises(PasswordLoginFailed):
            await _guess(two, "a guess")
    await _guess(two, "the right one")  # 3 failures of 4: still let in
    with pytest.raises(PasswordLoginFailed):
        await _guess(two, "a guess")
    with pytest.raises(LoginThrottled):  # the 4th: one heard, three its own
        await _guess(two, "the right one")
