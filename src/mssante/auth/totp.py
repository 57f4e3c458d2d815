"""Time-based one-time passwords: the second factor of an authenticator application.

TOTP is RFC 6238 over HOTP (RFC 4226), as every authenticator application reads it
from an ``otpauth://`` URI: HMAC-SHA-1, 6 digits, 30-second steps from the Unix
epoch. Written here in a few lines of ``hmac`` rather than taken from a library: the
computation is twelve lines, is checked against the RFCs' own test vectors
(tests/auth/test_totp.py), and what a library would not do for us (no replay,
sealing the secret) is the larger part of this module.

Implementation notes:
- A code is accepted for the current step and one step either side (RFC 6238 §5.2:
  "at most one time step" of network delay and clock drift).
- A code is accepted once: the step it matched is recorded, and a code of that step
  or an earlier one is refused afterwards (RFC 6238 §5.2, "the verifier MUST NOT
  accept the second attempt of the OTP"), across processes (store/logins.py).
- The secret is 20 random bytes (RFC 4226 §4 R6: 160 bits recommended). It must be
  read back to check a code, so it cannot be hashed like a password; it is stored
  sealed with AES-256-GCM under the operator's key file (``[operator]
  totp_key_file``, 0600, never in the database), the person's login as associated
  data, so that a copy of the database (a backup, a replica) does not give away the
  secrets, and a sealed secret moved to another person's row does not open.
  The secret is shown once, at enrolment, and never logged.
- Wrong codes count as failed logins (auth/throttle.py), like wrong passwords: with
  three codes accepted at any moment, ten guesses have a chance in 33,000.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import secrets
import struct
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mssante.auth.throttle import FailedLogins
from mssante.errors import ConfigError
from mssante.files import private_dir
from mssante.store.logins import LoginStore

DIGITS = 6  # RFC 6238 §4 / RFC 4226 §5.3: at least 6
STEP = 30  # seconds, RFC 6238 §5.2 recommended time step X
WINDOW = 1  # steps either side accepted (RFC 6238 §5.2)
SECRET_BYTES = 20  # RFC 4226 §4 R6
_KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # AES-GCM (NIST SP 800-38D §8.2.2: random 96-bit nonces)
_SEALED_PREFIX = "v1:"

log = logging.getLogger(__name__)


def hotp(secret: bytes, counter: int, digits: int = DIGITS,
         digest: str = "sha1") -> str:
    """RFC 4226 §5.3: HMAC of the 8-byte counter, dynamic truncation, modulo 10^digits."""
    mac = hmac.new(secret, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F  # RFC 4226 §5.4: the low 4 bits of the last byte
    binary = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(binary % 10 ** digits).zfill(digits)


def time_step(now: float, step: int = STEP) -> int:
    """RFC 6238 §4.2: T = floor((Current Unix time - T0) / X), T0 = 0."""
    return int(now // step)


def totp(secret: bytes, now: float, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 6238 §4.2: TOTP = HOTP(K, T)."""
    return hotp(secret, time_step(now), digits, digest)


def matching_step(secret: bytes, code: str, now: float, window: int = WINDOW) -> int | None:
    """The time step within ``window`` of ``now`` whose code ``code`` is, or None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    current = time_step(now)
    found = None
    for step in range(current - window, current + window + 1):  # all compared: no timing
        if hmac.compare_digest(hotp(secret, step), code):
            found = step if found is None else found
    return found


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def base32(secret: bytes) -> str:
    """The form authenticator applications take (RFC 4648 §6, without padding)."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def provisioning_uri(secret: bytes, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/`` URI (Key Uri Format of Google Authenticator, which the
    other applications read too), usually shown as a QR code."""
    label = urllib.parse.quote(f"{issuer}:{account}", safe="@:")
    query = urllib.parse.urlencode({"secret": base32(secret), "issuer": issuer,
                                    "algorithm": "SHA1", "digits": DIGITS, "period": STEP})
    return f"otpauth://totp/{label}?{query}"


class SealingKey:
    """The operator's key that seals TOTP secrets (AES-256-GCM), in its own file.

    ``load`` reads it; ``create`` also makes it when the file does not exist (the
    first enrolment). The file is written whole before it appears under its name
    (a link of a complete temporary file): two enrolments at once agree on one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ConfigError(f"a TOTP key is {_KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SealingKey(<secret>)"

    @classmethod
    def load(cls, path: Path) -> SealingKey:
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no TOTP key (no one was enrolled with "
                              "`operator user totp enrol`)") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the TOTP key: {exc}") from None

    @classmethod
    def create(cls, path: Path) -> SealingKey:
        if not path.exists():
            private_dir(path.parent)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secrets.token_bytes(_KEY_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another enrolment made it first: theirs is the key
            finally:
                tmp.unlink()
        return cls.load(path)

    def seal(self, secret: bytes, login: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret, login.encode("utf-8"))
        return _SEALED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, login: str) -> bytes | None:
        """The secret, or None when it was not sealed by this key for ``login``."""
        if not sealed.startswith(_SEALED_PREFIX):
            return None
        try:
            raw = base64.b64decode(sealed[len(_SEALED_PREFIX):], validate=True)
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                      login.encode("utf-8"))
        except (ValueError, InvalidTag):
            return None


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What a person's authenticator application is given, once."""

    secret: str  # base32, for typing in by hand
    uri: str  # otpauth://totp/..., for a QR code

    def __repr__(self) -> str:
        return "Enrolment(<secret>)"


async def enrol(logins: LoginStore, key: SealingKey, login: str, *,
                issuer: str) -> Enrolment:
    """Give ``login`` a new TOTP secret (replacing any), and what to show them."""
    secret = new_secret()
    await logins.set_totp(login, key.seal(secret, login))
    return Enrolment(base32(secret), provisioning_uri(secret, account=login, issuer=issuer))


class TotpChecker:
    """Checks people's TOTP codes for the web (``runtime.totp``).

    The key file is read at the first check, so that an operator started before the
    first enrolment needs no restart."""

    def __init__(self, logins: LoginStore, key_path: Path, throttle: FailedLogins) -> None:
        self._logins = logins
        self._key_path = key_path
        self._key: SealingKey | None = None
        self._throttle = throttle

    def _sealing_key(self) -> SealingKey:
        if self._key is None:
            self._key = SealingKey.load(self._key_path)
        return self._key

    async def verify(self, login: str, code: str, address: str, *,
                     now: float | None = None) -> bool:
        """Whether ``code`` is ``login``'s TOTP code now, not used before. Call it after
        ``password_login`` accepted the password; ``address`` is the client's IP (its
        failures count with the wrong passwords, throttle.py). A login throttled, not
        enrolled, or whose secret does not open under this key: False."""
        if self._throttle.refusal(login, address) is not None:
            return False
        attempt = self._throttle.failed(login, address)
        record = await self._logins.totp(login)
        if record is None:
            return False
        try:
            secret = self._sealing_key().open(record.sealed, login)
        except ConfigError as exc:
            log.error("TOTP of %s cannot be checked: %s", login, exc)
            return False
        if secret is None:
            log.error("the TOTP secret of %s does not open with %s (another key?)",
                      login, self._key_path)
            return False
        step = matching_step(secret, code, time.time() if now is None else now)
        if step is None or not await self._logins.use_totp_step(login, step, record.sealed):
            await self._throttle.confirmed(login, address)  # a wrong (or replayed) code
            return False
        self._throttle.forgive(login, address, attempt)
        return True
