"""The provider's registered clients (the operators), in ``<trust data>/psc/clients.json``
(0600).

Each client is confidential: it authenticates at the token and introspection endpoints
with its secret (``client_secret_basic`` or ``client_secret_post``, RFC 6749 §2.3.1) and
may only be redirected to one of its registered URIs, compared exactly (RFC 6749 §3.1.2,
OAuth 2.0 Security BCP §4.1.3). The secret is kept as given, in a file of the trust
space's owner only, because ``mssante up`` hands it to the operators at each start.
The file is read again when it changes on disk.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from mssante.files import write_atomic

CLIENTS_FILE = "clients.json"


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    name: str = ""
    # OpenID Connect Back-Channel Logout 1.0: where the provider posts a logout token
    # when a session of this client ends; empty: the client is not told
    backchannel_logout_uri: str = ""

    def secret_matches(self, given: str) -> bool:
        return secrets.compare_digest(self.secret.encode(), given.encode())


class Clients:
    def __init__(self, directory: Path) -> None:
        self.file = directory / CLIENTS_FILE
        self._clients: dict[str, Client] = {}
        self._stamp: tuple[int, int] | None = None

    def _current(self) -> dict[str, Client]:
        try:
            st = self.file.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._clients, self._stamp = _read(self.file), stamp
        return self._clients

    def get(self, client_id: str) -> Client | None:
        return self._current().get(client_id)

    def all(self) -> list[Client]:
        return list(self._current().values())

    def register(self, client_id: str, redirect_uris: tuple[str, ...], *,
                 post_logout_redirect_uris: tuple[str, ...] = (), name: str = "",
                 backchannel_logout_uri: str = "") -> Client:
        """Register a client, or update the URIs of an existing one (its secret is kept)."""
        clients = dict(self._current())
        existing = clients.get(client_id)
        secret = existing.secret if existing is not None else secrets.token_urlsafe(32)
        client = Client(client_id, secret, tuple(redirect_uris),
                        tuple(post_logout_redirect_uris), name, backchannel_logout_uri)
        if client != existing:
            clients[client_id] = client
            _write(self.file, clients)
            self._stamp = None
        return client


def _read(path: Path) -> dict[str, Client]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {c["client_id"]: Client(str(c["client_id"]), str(c["secret"]),
                                   tuple(c.get("redirect_uris", ())),
                                   tuple(c.get("post_logout_redirect_uris", ())),
                                   str(c.get("name", "")),
                                   str(c.get("backchannel_logout_uri", "")))
            for c in data["clients"]}


def _write(path: Path, clients: dict[str, Client]) -> None:
    data = {"clients": [{"client_id": c.client_id, "secret": c.secret, "name": c.name,
                         "redirect_uris": list(c.redirect_uris),
                         "post_logout_redirect_uris": list(c.post_logout_redirect_uris),
                         "backchannel_logout_uri": c.backchannel_logout_uri}
                        for c in clients.values()]}
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"), mode=0o600)
