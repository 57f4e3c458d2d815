"""TOTP (RFC 6238 over RFC 4226): the RFCs' test vectors, the window, no replay, the
sealed secret, and the checker the web calls, on a real store."""

from __future__ import annotations

import base64
import stat
import urllib.parse
from pathlib import Path

import pytest

from mssante.auth import totp
from mssante.auth.throttle import FailedLogins
from mssante.domain.mailboxes import PersonKind
from mssante.errors import ConfigError
from mssante.store import Store, open_store

RFC_SECRET = b"12345678901234567890"  # RFC 4226 Appendix D, RFC 6238 Appendix B (SHA-1)


@pytest.mark.parametrize(("counter", "code"), list(enumerate(
    ["755224", "287082", "359152", "969429", "338314",
     "254676", "287922", "162583", "399871", "520489"])))
def test_hotp_rfc4226_appendix_d(counter: int, code: str) -> None:
    assert totp.hotp(RFC_SECRET, counter) == code


@pytest.mark.parametrize(("when", "code"), [
    (59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
    (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130")])
def test_totp_rfc6238_appendix_b_sha1(when: int, code: str) -> None:
    assert totp.totp(RFC_SECRET, when, digits=8) == code
    assert totp.totp(RFC_SECRET, when) == code[-6:]  # 6 digits: the same, modulo 10^6


def test_a_code_is_accepted_one_step_either_side_and_no_further() -> None:
    now = 1_000_000_000.0
    step = totp.time_step(now)
    for offset in (-1, 0, 1):
        code = totp.hotp(RFC_SECRET, step + offset)
        assert totp.matching_step(RFC_SECRET, code, now) == step + offset
    for offset in (-2, 2):
        assert totp.matching_step(RFC_SECRET, totp.hotp(RFC_SECRET, step + offset), now) is None
    spaced = totp.hotp(RFC_SECRET, step)
    assert totp.matching_step(RFC_SECRET, f" {spaced[:3]} {spaced[3:]} ", now) == step
    for bad in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        assert totp.matching_step(RFC_SECRET, bad, now) is None


def test_provisioning_uri_is_what_authenticator_applications_read() -> None:
    secret = totp.new_secret()
    assert len(secret) == 20
    uri = totp.provisioning_uri(secret, account="marie.bernard", issuer="ch-xyz.mssante.fr")
    parts = urllib.parse.urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert urllib.parse.unquote(parts.path) == "/ch-xyz.mssante.fr:marie.bernard"
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert query == {"secret": totp.base32(secret), "issuer": "ch-xyz.mssante.fr",
                     "algorithm": "SHA1", "digits": "6", "period": "30"}
    assert "=" not in query["secret"]


def test_sealed_secret_opens_only_with_its_key_and_for_its_login(tmp_path: Path) -> None:
    path = tmp_path / "data" / "totp.key"
    key = totp.SealingKey.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == 32
    again = totp.SealingKey.create(path)  # an existing key is kept
    sealed = key.seal(RFC_SECRET, "marie.bernard")
    assert totp.base32(RFC_SECRET) not in sealed and RFC_SECRET.decode() not in sealed
    assert again.open(sealed, "marie.bernard") == RFC_SECRET
    assert key.open(sealed, "someone.else") is None  # moved to another row: useless
    other = totp.SealingKey.create(tmp_path / "other.key")
    assert other.open(sealed, "marie.bernard") is None
    assert key.open("v1:not base64!", "marie.bernard") is None
    assert "secret" in repr(key) and repr(key).count("\\x") == 0
    with pytest.raises(ConfigError, match="no TOTP key"):
        totp.SealingKey.load(tmp_path / "missing.key")


@pytest.fixture
async def store(tmp_path: Path) -> Store:
    opened = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'operator.sqlite3'}")
    await opened.create_person("marie.bernard", PersonKind.STAFF, "Marie Bernard")
    yield opened  # type: ignore[misc]
    await opened.close()


async def test_checker_accepts_a_code_once_then_refuses_its_replay(store: Store,
                                                                  tmp_path: Path) -> None:
    key_path = tmp_path / "totp.key"
    enrolment = await totp.enrol(store.logins, totp.SealingKey.create(key_path),
                                 "marie.bernard", issuer="ch-xyz.mssante.fr")
    secret = base64.b32decode(enrolment.secret + "=" * (-len(enrolment.secret) % 8))
    assert "secret" in repr(enrolment) and enrolment.secret not in repr(enrolment)
    record = await store.logins.totp("marie.bernard")
    assert record is not None and enrolment.secret not in record.sealed
    assert record.sealed not in repr(record)
    checker = totp.TotpChecker(store.logins, key_path, FailedLogins(10, 100, 900.0))
    now = 1_700_000_000.0
    code = totp.totp(secret, now)
    assert await checker.verify("marie.bernard", code, "192.0.2.1", now=now)
    assert not await checker.verify("marie.bernard", code, "192.0.2.1", now=now)  # replay
    # the previous step's code is still in the window, but older than the one used
    previous = totp.hotp(secret, totp.time_step(now) - 1)
    assert not await checker.verify("marie.bernard", previous, "192.0.2.1", now=now)
    # the next step's code is accepted once its time comes
    later = now + totp.STEP
    assert await checker.verify("marie.bernard", totp.totp(secret, later), "192.0.2.1",
                                now=later)
    assert not await checker.verify("marie.bernard", "000000", "192.0.2.1", now=later)
    assert not await checker.verify("nobody", code, "192.0.2.1", now=now)


async def test_wrong_codes_count_as_failed_logins(store: Store, tmp_path: Path) -> None:
    key_path = tmp_path / "totp.key"
    enrolment = await totp.enrol(store.logins, totp.SealingKey.create(key_path),
                                 "marie.bernard", issuer="x")
    secret = base64.b32decode(enrolment.secret + "=" * (-len(enrolment.secret) % 8))
    checker = totp.TotpChecker(store.logins, key_path, FailedLogins(3, 100, 900.0))
    now = 1_700_000_000.0
    right = totp.totp(secret, now)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(3):
        assert not await checker.verify("marie.bernard", wrong, "192.0.2.1", now=now)
    # the login now waits: even the right code is not checked
    assert not await checker.verify("marie.bernard", right, "192.0.2.1", now=now)


async def test_a_disabled_or_replaced_secret_no_longer_opens(store: Store,
                                                            tmp_path: Path) -> None:
    key_path = tmp_path / "totp.key"
    key = totp.SealingKey.create(key_path)
    first = await totp.enrol(store.logins, key, "marie.bernard", issuer="x")
    old = base64.b32decode(first.secret + "=" * (-len(first.secret) % 8))
    await totp.enrol(store.logins, key, "marie.bernard", issuer="x")  # a new telephone
    checker = totp.TotpChecker(store.logins, key_path, FailedLogins(0, 0, 900.0))
    now = 1_700_000_000.0
    assert not await checker.verify("marie.bernard", totp.totp(old, now), "192.0.2.1",
                                    now=now)
    await store.logins.set_totp("marie.bernard", None)
    assert await store.logins.totp("marie.bernard") is None
    contact = await store.logins.contact("marie.bernard")
    assert contact is not None and not contact.totp_enrolled
