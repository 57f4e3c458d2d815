"""The provider's signing keys, kept in ``<trust data>/psc/keys.json`` (0600).

Invariants:
- The newest key signs; every key is an RSA 2048 key for RS256 (PSC's algorithm),
  its ``kid`` the RFC 7638 thumbprint.
- A rotated key stays published in the JWKS, and accepted for verification, until
  every token it signed has expired: ``retired_at`` plus the longest token life.
  Later loads drop it.
- The file is read again when it changes on disk, so that ``mssante psc rotate-key``
  run in another process takes effect at the next request, without a restart.
- Private keys never leave this module: the JWKS holds public keys only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet, RSAKey

from mssante.files import write_atomic

KEYS_FILE = "keys.json"
ALGORITHM = "RS256"
RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class StoredKey:
    key: RSAKey
    created_at: float
    retired_at: float | None = None  # when a newer key took over signing

    @property
    def kid(self) -> str:
        return str(self.key.kid)


def new_key() -> RSAKey:
    key = RSAKey.generate_key(RSA_BITS, parameters={"use": "sig", "alg": ALGORITHM},
                              private=True)
    key.ensure_kid()
    return key


class SigningKeys:
    """The keys of one provider; ``token_lifetime`` is the longest life of a token
    they sign (seconds)."""

    def __init__(self, directory: Path, token_lifetime: float) -> None:
        self.file = directory / KEYS_FILE
        self.token_lifetime = token_lifetime
        self._keys: list[StoredKey] = []
        self._stamp: tuple[int, int] | None = None

    # -- reading ----------------------------------------------------------------------

    def _current_keys(self) -> list[StoredKey]:
        if not self.file.exists():
            self.rotate()  # the first key
        st = self.file.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._keys, self._stamp = _read(self.file), stamp
            if not self._keys:
                self.rotate()
        now = time.time()
        return [k for k in self._keys
                if k.retired_at is None or k.retired_at + self.token_lifetime > now]

    def signing_key(self) -> RSAKey:
        """The key that signs new tokens."""
        return self._current_keys()[-1].key

    def verification_keys(self) -> KeySet:
        """The keys a token may have been signed with (the current one and those
        retired less than a token life ago)."""
        return KeySet([k.key for k in self._current_keys()])

    def jwks(self) -> dict[str, Any]:
        """The JWK Set served at the provider's ``jwks_uri`` (RFC 7517 §5), public keys."""
        return {"keys": [k.key.as_dict(private=False) for k in self._current_keys()]}

    def published(self) -> list[StoredKey]:
        return list(self._current_keys())

    # -- writing ----------------------------------------------------------------------

    def rotate(self) -> StoredKey:
        """Make a new key the signing key; the previous one is retired now."""
        now = time.time()
        kept = [k for k in (_read(self.file) if self.file.exists() else [])
                if k.retired_at is None or k.retired_at + self.token_lifetime > now]
        kept = [StoredKey(k.key, k.created_at, k.retired_at if k.retired_at is not None else now)
                for k in kept]
        fresh = StoredKey(new_key(), now)
        _write(self.file, [*kept, fresh])
        self._stamp = None
        self._keys = [*kept, fresh]
        return fresh


def _read(path: Path) -> list[StoredKey]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out: list[StoredKey] = []
    for entry in data["keys"]:
        key = RSAKey.import_key(entry["jwk"])
        retired = entry.get("retired_at")
        out.append(StoredKey(key, float(entry["created_at"]),
                             float(retired) if retired is not None else None))
    return out


def _write(path: Path, keys: list[StoredKey]) -> None:
    data = {"keys": [{"jwk": k.key.as_dict(private=True), "created_at": k.created_at,
                      "retired_at": k.retired_at} for k in keys]}
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"), mode=0o600)
