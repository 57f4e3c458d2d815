"""Back-channel logout: when a session ends, the provider posts a signed logout token to
the client's registered URI over HTTPS (OpenID Connect Back-Channel Logout 1.0)."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from joserfc import jws, jwt

from mssante.pki.tls import server_context
from mssante.psc.clients import Clients
from mssante.trustspace.service import TrustSpace
from tests.psc.conftest import DUPONT, REDIRECT_URI, Provider, start_provider
from tests.psc.test_flow import login, refresh, served_keys

EVENT = "http://schemas.openid.net/event/backchannel-logout"


class Receiver:
    """A client's back-channel logout endpoint: an HTTPS server that keeps what it is
    posted and answers 200."""

    def __init__(self) -> None:
        self.bodies: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        body = await reader.readexactly(length)
        await self.bodies.put(dict(urllib.parse.parse_qsl(body.decode())))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver(trust_space: TrustSpace, tmp_path: Path) -> AsyncIterator[Receiver]:
    cert = await asyncio.to_thread(
        trust_space.pki.issue_server, "webmail.ch-xyz.mssante.fr",
        organisation="CENTRE HOSPITALIER XYZ", ip_addresses=["127.0.0.1"], out_dir=tmp_path,
        name="webmail")
    context = server_context(cert.cert_file, cert.key_file, trust_space.root_cert_file,
                             client_cert="none")
    found = Receiver()
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0, ssl=context)
    found.url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/psc/backchannel"
    async with server:
        yield found


@pytest.fixture
async def told(trust_space: TrustSpace, receiver: Receiver) -> AsyncIterator[Provider]:
    async for p in start_provider(trust_space):
        Clients(trust_space.psc_dir).register(
            p.client.client_id, (REDIRECT_URI,), backchannel_logout_uri=receiver.url)
        yield p


async def test_logout_tells_the_client_by_a_signed_logout_token(
        told: Provider, receiver: Receiver) -> None:
    async with told.http() as http:
        tokens = await login(http, told)
        response = await http.get(f"{told.issuer}/protocol/openid-connect/logout",
                                  params={"id_token_hint": tokens["id_token"]})
        assert response.status_code == 200
        keys = await served_keys(http, told)
    body = await asyncio.wait_for(receiver.bodies.get(), 5)
    token = jwt.decode(body["logout_token"], keys, algorithms=["RS256"])
    assert jws.extract_compact(body["logout_token"].encode()).protected["typ"] == "logout+jwt"
    claims = token.claims
    identity = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"]).claims
    assert claims["iss"] == told.issuer and claims["aud"] == told.client.client_id
    assert claims["sub"] == DUPONT and claims["sid"] == identity["sid"]
    assert claims["events"] == {EVENT: {}}
    assert "nonce" not in claims  # Back-Channel Logout §2.4


async def test_a_replayed_refresh_token_logs_the_client_out(
        told: Provider, receiver: Receiver) -> None:
    async with told.http() as http:
        tokens = await login(http, told)
        assert (await refresh(http, told, tokens["refresh_token"])).status_code == 200
        assert (await refresh(http, told, tokens["refresh_token"])).status_code == 400
        keys = await served_keys(http, told)
    body = await asyncio.wait_for(receiver.bodies.get(), 5)
    claims = jwt.decode(body["logout_token"], keys, algorithms=["RS256"]).claims
    assert claims["sub"] == DUPONT
    assert receiver.bodies.empty()  # told once


async def test_an_unreachable_client_does_not_stop_the_logout(
        trust_space: TrustSpace) -> None:
    async for p in start_provider(trust_space):
        Clients(trust_space.psc_dir).register(
            p.client.client_id, (REDIRECT_URI,),
            backchannel_logout_uri="https://127.0.0.1:9/psc/backchannel")
        async with p.http() as http:
            tokens = await login(http, p)
            response = await http.get(f"{p.issuer}/protocol/openid-connect/logout",
                                      params={"id_token_hint": tokens["id_token"]})
            assert response.status_code == 200
            assert (await refresh(http, p, tokens["refresh_token"])).status_code == 400
