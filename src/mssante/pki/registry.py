"""The registry of issued certificates, ``issued.json`` in the PKI directory.

One record per end-entity certificate: what it is, who issued it, where its files
went and whether it was revoked. The CRLs are computed from it. Callers hold the
directory lock around a read-modify-write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from mssante.errors import PKIError
from mssante.pki.files import write_atomic

REGISTRY_FILE = "issued.json"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class IssuedCertificateRecord:
    """One issued certificate as the CA remembers it."""

    serial: int
    kind: str  # "server" | "organisation" | "person" | "signing"
    subject_dn: str
    ca: str  # issuing CA: "organisations" | "persons"
    issued_at: datetime
    not_after: datetime
    cert_file: Path
    revoked_at: datetime | None = None
    reason: str | None = None  # RFC 5280 §5.3.1 reason name, e.g. "keyCompromise"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self, at: datetime, reason: str) -> IssuedCertificateRecord:
        return replace(self, revoked_at=at, reason=reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "kind": self.kind,
            "subject_dn": self.subject_dn,
            "ca": self.ca,
            "issued_at": self.issued_at.isoformat(),
            "not_after": self.not_after.isoformat(),
            "cert_file": str(self.cert_file),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IssuedCertificateRecord:
        revoked_at = data.get("revoked_at")
        return cls(
            serial=int(data["serial"]),
            kind=str(data["kind"]),
            subject_dn=str(data["subject_dn"]),
            ca=str(data["ca"]),
            issued_at=datetime.fromisoformat(data["issued_at"]),
            not_after=datetime.fromisoformat(data["not_after"]),
            cert_file=Path(data["cert_file"]),
            revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
            reason=data.get("reason"),
        )


def load_registry(directory: Path) -> list[IssuedCertificateRecord]:
    path = directory / REGISTRY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise PKIError(f"cannot read the registry {path}: {exc}") from exc
    try:
        if data.get("version") != FORMAT_VERSION:
            raise PKIError(f"{path}: unknown registry version {data.get('version')!r}")
        return [IssuedCertificateRecord.from_json(item) for item in data["certificates"]]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise PKIError(f"{path}: malformed registry ({exc!r})") from exc


def save_registry(directory: Path, records: list[IssuedCertificateRecord]) -> None:
    body = {"version": FORMAT_VERSION, "certificates": [r.to_json() for r in records]}
    write_atomic(directory / REGISTRY_FILE,
                 (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode())
