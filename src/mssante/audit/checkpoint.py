"""Signed checkpoints of the audit log: C2SP tlog-checkpoint in a C2SP signed note,
signed with Ed25519.

A checkpoint is the note text

    <origin>\\n<tree size, decimal>\\n<root hash, base64>\\n

followed by an empty line and one signature line per signer,

    — <key name> base64(key ID || signature)\\n

where the signature is Ed25519 over the note text (with its final newline) and the
key ID is the first 4 bytes of SHA-256(key name || 0x0A || 0x01 || public key), 0x01
naming Ed25519 (C2SP signed-note). The verifier key is published in the note
ecosystem's form ``<name>+<key ID, hex>+base64(0x01 || public key)``, which
``Verifier.parse`` reads back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from mssante.audit.merkle import HASH_SIZE

ED25519 = b"\x01"
DASH = "\u2014"  # — : signature lines begin with an em dash and a space
MAX_CHECKPOINT = 64 * 1024


class CheckpointError(ValueError):
    """A checkpoint that is malformed or not signed by the expected key."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def _valid_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" for c in name)


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


class Verifier:
    def __init__(self, name: str, public: Ed25519PublicKey) -> None:
        if not _valid_name(name):
            raise CheckpointError(f"not a key name: {name!r}")
        self.name = name
        self.public = public
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.raw = raw
        self.key_id = key_id(name, raw)

    def vkey(self) -> str:
        return (f"{self.name}+{self.key_id.hex()}+"
                f"{base64.b64encode(ED25519 + self.raw).decode()}")

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        name, sep, rest = vkey.strip().partition("+")
        hint, sep2, key = rest.partition("+")
        try:
            raw = base64.b64decode(key, validate=True)
        except binascii.Error:
            raise CheckpointError("the verifier key's base64 is invalid") from None
        if not sep or not sep2 or len(raw) != 33 or raw[:1] != ED25519:
            raise CheckpointError("not an Ed25519 verifier key <name>+<id>+<key>")
        made = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if made.key_id.hex() != hint.lower():
            raise CheckpointError("the verifier key's id does not match its key")
        return made

    def open(self, note: str) -> Checkpoint:
        """The checkpoint ``note`` holds, once its signature by this key is verified."""
        if len(note) > MAX_CHECKPOINT:
            raise CheckpointError("checkpoint too large")
        text, sep, signatures = note.partition("\n\n")
        if not sep or not signatures.endswith("\n"):
            raise CheckpointError("no signature block after an empty line")
        text += "\n"
        mine = False
        for line in signatures[:-1].split("\n"):
            prefix = f"{DASH} {self.name} "
            if not line.startswith(prefix):
                continue
            try:
                blob = base64.b64decode(line[len(prefix):], validate=True)
            except binascii.Error:
                raise CheckpointError("a signature's base64 is invalid") from None
            if len(blob) != 4 + 64 or blob[:4] != self.key_id:
                continue
            try:
                self.public.verify(blob[4:], text.encode())
            except InvalidSignature:
                raise CheckpointError(f"the signature of {self.name} is invalid") from None
            mine = True
        if not mine:
            raise CheckpointError(f"not signed by {self.name}")
        lines = text.split("\n")
        if len(lines) < 4 or not lines[1].isdigit() or lines[1] != str(int(lines[1])):
            raise CheckpointError("the note is not a checkpoint: origin, size, root hash")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except binascii.Error:
            raise CheckpointError("the root hash's base64 is invalid") from None
        if len(root) != HASH_SIZE:
            raise CheckpointError("the root hash is not 32 bytes")
        return Checkpoint(lines[0], int(lines[1]), root)


class Signer:
    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        self.private = private
        self.verifier = Verifier(name, private.public_key())

    @property
    def name(self) -> str:
        return self.verifier.name

    def sign(self, checkpoint: Checkpoint) -> str:
        text = checkpoint.text()
        signature = self.private.sign(text.encode())
        blob = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{text}\n{DASH} {self.name} {blob}\n"

    @classmethod
    def load_or_create(cls, name: str, path: Path) -> Signer:
        """The key in ``path`` (PKCS#8 PEM), made there (mode 0600) the first time."""
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise CheckpointError(f"{path} does not hold an Ed25519 private key")
            return cls(name, key)
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=False)
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return cls(name, key)
