"""A trust space with its PSC provider, on real HTTPS on 127.0.0.1: the demo referential
in its directory, one registered operator client, the e-CPS simulator on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx
import pytest

from mssante.environment.local import seed_directory
from mssante.pki.tls import client_context
from mssante.psc.clients import Client, Clients
from mssante.trustspace.server import RunningTrustSpace
from mssante.trustspace.service import TrustSpace
from tests.whitelist.conftest import template, trust_space

__all__ = ["template", "trust_space"]

DUPONT = "810102727017"  # the demo cardiologist, at CENTRE HOSPITALIER XYZ
REDIRECT_URI = "https://webmail.ch-xyz.mssante.fr/psc/callback"
LOGOUT_URI = "https://webmail.ch-xyz.mssante.fr/"


@dataclass
class Provider:
    running: RunningTrustSpace
    trust_space: TrustSpace
    client: Client
    other: Client  # another operator's client

    @property
    def issuer(self) -> str:
        return f"{self.running.url}/psc"

    def http(self) -> httpx.AsyncClient:
        context = client_context(self.trust_space.pki.root_cert_file, None, None)
        return httpx.AsyncClient(verify=context, timeout=10.0)


async def start_provider(ts: TrustSpace, *, simulator: bool = True,
                         lifetime: float = 300.0) -> AsyncIterator[Provider]:
    ts.psc = replace(ts.psc, simulator=simulator, access_token_lifetime=lifetime)
    await seed_directory(ts.directory_database)
    clients = Clients(ts.psc_dir)
    client = await asyncio.to_thread(
        clients.register, "ch-xyz.mssante.fr", (REDIRECT_URI,),
        post_logout_redirect_uris=(LOGOUT_URI,), name="CENTRE HOSPITALIER XYZ")
    other = clients.register("medecin.mssante.fr", ("https://medecin.mssante.fr/callback",))
    async with RunningTrustSpace(ts) as running:
        yield Provider(running, ts, client, other)


@pytest.fixture
async def provider(trust_space: TrustSpace) -> AsyncIterator[Provider]:
    async for p in start_provider(trust_space):
        yield p
