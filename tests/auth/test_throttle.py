"""Failed password logins per login and per client address (throttle.py), alone and
in a running operator: IMAP and submission share one count."""

from __future__ import annotations

import imaplib
import smtplib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.e2e.mail import submission
from tests.imap.conftest import HOSPITAL, connect, fresh_person

from mssante.auth.throttle import MAX_ADDRESSES, FailedLogins, LoginThrottle, client_key, minutes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_once_it_reached_the_limit() -> None:
    clock = Clock()
    throttle = LoginThrottle(3, 60.0, clock=clock)
    for _ in range(2):
        throttle.failed("192.0.2.1")
        clock.now += 10
    assert throttle.wait("192.0.2.1") == 0
    throttle.failed("192.0.2.1")  # the third, at 1020
    assert throttle.wait("192.0.2.1") == pytest.approx(40.0)  # the first leaves at 1060
    assert throttle.wait("192.0.2.2") == 0  # another address is not concerned
    clock.now = 1060.0
    assert throttle.wait("192.0.2.1") == 0
    throttle.failed("192.0.2.1")  # 1010, 1020, 1060: full again until 1070
    assert throttle.wait("192.0.2.1") == pytest.approx(10.0)
    clock.now = 1200.0
    assert throttle.wait("192.0.2.1") == 0


def test_attempts_count_before_the_check_and_a_right_password_is_forgiven() -> None:
    """Connections trying at the same moment each count at once: no more guesses than
    the limit; a right password takes its count back."""
    clock = Clock()
    throttle = LoginThrottle(3, 60.0, clock=clock)
    pending = []
    for _ in range(3):  # three checks in flight, none answered yet
        assert throttle.wait("192.0.2.1") == 0
        pending.append(throttle.failed("192.0.2.1"))
        clock.now += 1
    assert throttle.wait("192.0.2.1") > 0  # a fourth must wait
    throttle.forgive("192.0.2.1", pending[1])  # that one was the right password
    assert throttle.wait("192.0.2.1") == 0
    throttle.forgive("192.0.2.9", 0.0)  # nothing to forgive: no error


def test_ipv6_counts_per_site_and_mapped_ipv4_as_ipv4() -> None:
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == \
        "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("unknown") == "unknown"
    throttle = LoginThrottle(2, 60.0)
    throttle.failed("2001:db8::1")
    throttle.failed("2001:db8::2")
    assert throttle.wait("2001:db8::3") > 0


def test_no_limit_and_bad_settings() -> None:
    throttle = LoginThrottle(0, 60.0)
    for _ in range(100):
        throttle.failed("192.0.2.1")
    assert throttle.wait("192.0.2.1") == 0
    with pytest.raises(ValueError):
        LoginThrottle(-1, 60.0)
    with pytest.raises(ValueError):
        LoginThrottle(3, 0.0)


def test_memory_is_bounded_forgetting_the_oldest_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(1, 60.0, clock=clock)
    throttle.failed("first")
    for n in range(MAX_ADDRESSES):
        throttle.failed(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}")
    assert throttle.wait("first") == 0  # forgotten
    assert throttle.wait("10.0.0.1") == pytest.approx(60.0)
    assert len(throttle._failures) == MAX_ADDRESSES


def test_minutes() -> None:
    assert [minutes(s) for s in (0.5, 60, 61, 900)] == [
        "1 minute", "1 minute", "2 minutes", "15 minutes"]


def test_a_login_that_failed_too_often_waits_alone() -> None:
    """Threat: one person's wrong passwords behind a hospital's NAT locked every
    colleague out. A login waits past its own bound, from every address; another
    login from the same address goes on until the higher per-address bound."""
    clock = Clock()
    logins = FailedLogins(3, 5, 60.0, clock=clock)
    for _ in range(3):
        assert logins.refusal("Alice@ch-xyz.mssante.fr", "192.0.2.1") is None
        logins.failed("alice@ch-xyz.mssante.fr", "192.0.2.1")  # case does not matter
    refusal = logins.refusal("alice@ch-xyz.mssante.fr", "198.51.100.7")  # from anywhere
    assert refusal == "Too many failed logins for this login; try again in 1 minute"
    assert logins.refusal("bob@ch-xyz.mssante.fr", "192.0.2.1") is None
    for n in range(2):  # the address's fourth and fifth failures, other logins
        logins.failed(f"guess{n}@ch-xyz.mssante.fr", "192.0.2.1")
    assert logins.refusal("bob@ch-xyz.mssante.fr", "192.0.2.1") == \
        "Too many failed logins from 192.0.2.1; try again in 1 minute"
    assert logins.refusal("bob@ch-xyz.mssante.fr", "192.0.2.2") is None
    clock.now += 60
    assert logins.refusal("alice@ch-xyz.mssante.fr", "192.0.2.1") is None


def test_a_right_password_is_forgiven_for_the_login_and_the_address() -> None:
    clock = Clock()
    logins = FailedLogins(1, 1, 60.0, clock=clock)
    attempt = logins.failed("alice", "192.0.2.1")
    logins.forgive("alice", "192.0.2.1", attempt)
    assert logins.refusal("alice", "192.0.2.1") is None
    assert FailedLogins(0, 0, 60.0).refusal("alice", "192.0.2.1") is None  # 0: no bound


@pytest.fixture
def throttled(environment: Any) -> Iterator[FailedLogins]:
    """The hospital operator with bounds of 3 failures a minute per login and 5 per
    address (the suite's operators run without: tests/conftest.py)."""
    worker = environment.service(HOSPITAL).worker
    assert worker is not None
    ctx = worker.ctx
    before = ctx.logins
    ctx.logins = FailedLogins(3, 5, 60.0)
    try:
        yield ctx.logins
    finally:
        ctx.logins = before


def test_one_person_failing_behind_a_nat_does_not_lock_out_the_others(
        environment: Any, throttled: FailedLogins) -> None:
    careless, colleague = fresh_person(environment), fresh_person(environment)
    for n in range(3):  # one connection each: a connection closes after 3 failures itself
        client = connect(environment)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(careless.login, f"wrong {n}")
        client.logout()
    client = connect(environment)
    try:  # the login waits, even with its right password
        with pytest.raises(imaplib.IMAP4.error,
                           match=r"UNAVAILABLE.*Too many failed logins for this login"):
            client.login(careless.login, careless.password)
    finally:
        client.logout()
    client = connect(environment)  # same address (127.0.0.1), another login: welcome
    try:
        assert client.login(colleague.login, colleague.password)[0] == "OK"
    finally:
        client.logout()
    with submission(environment, HOSPITAL) as smtp:
        assert smtp.login(colleague.login, colleague.password)[0] == 235
    for n in range(2):  # the address's 4th and 5th failures, with logins that do not exist
        client = connect(environment)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(f"nobody{n}@ch-xyz.mssante.fr", "guess")
        client.logout()
    client = connect(environment)
    try:  # past the per-address bound, everyone at that address waits
        with pytest.raises(imaplib.IMAP4.error,
                           match=r"UNAVAILABLE.*Too many failed logins from 127\.0\.0\.1"):
            client.login(colleague.login, colleague.password)
    finally:
        client.logout()


def test_an_address_that_failed_too_often_is_refused_by_imap_and_submission(
        environment: Any, throttled: FailedLogins) -> None:
    person = fresh_person(environment)
    for n in range(5):  # one connection each: a connection closes after 3 failures itself
        client = connect(environment)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(f"{n}.{person.login}", f"wrong {n}")  # five logins
        client.logout()
    assert throttled.by_address.wait("127.0.0.1") > 0
    client = connect(environment)
    try:  # the right password is not even checked
        with pytest.raises(imaplib.IMAP4.error,
                           match=r"UNAVAILABLE.*Too many failed logins from 127.0.0.1"):
            client.login(person.login, person.password)
    finally:
        client.logout()
    with (submission(environment, HOSPITAL) as smtp,
          pytest.raises(smtplib.SMTPAuthenticationError) as refused):
        smtp.login(person.login, person.password)
    assert refused.value.smtp_code == 454
    assert b"4.7.0 Too many failed logins" in refused.value.smtp_error
    # a certificate login has nothing to guess: not throttled
    app = environment.description["applications"][0]
    client = connect(environment, cert=(app["cert_file"], app["key_file"]))
    try:
        assert client.authenticate("EXTERNAL", lambda _challenge: b"")[0] == "OK"
    finally:
        client.logout()
    throttled.by_address._failures.clear()  # the window has passed
    client = connect(environment)
    try:
        typ, _ = client.login(person.login, person.password)
        assert typ == "OK"
    finally:
        client.logout()


def test_submission_failures_count_for_imap(environment: Any,
                                             throttled: FailedLogins) -> None:
    person = fresh_person(environment)
    for n in range(3):  # one mechanism each (smtplib's login tries PLAIN, then LOGIN)
        with submission(environment, HOSPITAL) as smtp:
            smtp.user, smtp.password = person.login, f"wrong {n}"
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                smtp.auth("PLAIN", smtp.auth_plain)
            assert refused.value.smtp_code == 535
    client = connect(environment)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
            client.login(person.login, person.password)
    finally:
        client.logout()


def test_a_program_opening_many_connections_at_once_is_not_locked_out(
        environment: Any, throttled: FailedLogins) -> None:
    """Twelve connections of one program log in at the same moment with the right
    password, four times the per-login bound: each check counts as a failure until it
    ends, so without turns the late ones were refused as a guessing attack."""
    person = fresh_person(environment)

    def log_in(_: int) -> int:
        with submission(environment, HOSPITAL) as smtp:
            return int(smtp.login(person.login, person.password)[0])

    with ThreadPoolExecutor(12) as pool:
        assert list(pool.map(log_in, range(12))) == [235] * 12


def test_guesses_in_parallel_still_count_one_by_one(environment: Any,
                                                    throttled: FailedLogins) -> None:
    person = fresh_person(environment)

    def guess(n: int) -> str:
        client = connect(environment)
        try:
            client.login(person.login, f"wrong {n}")
        except imaplib.IMAP4.error as exc:
            return str(exc)
        finally:
            client.logout()
        return "OK"

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(guess, range(8)))
    assert sum("AUTHENTICATIONFAILED" in a for a in answers) == 3  # the bound, no more
    assert sum("Too many failed logins for this login" in a for a in answers) == 5
