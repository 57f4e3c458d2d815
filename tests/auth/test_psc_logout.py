"""A Pro Santé Connect session that ends ends the IMAP and submission sessions opened
with its tokens (OpenID Connect Back-Channel Logout 1.0), and only those.

Here the logout tokens are signed with the provider's own key and given to a side
operator's token checker (its own registry of ended sessions); the path through the
provider's logout endpoint and the operator's HTTPS endpoint is in
tests/web/test_psc_backchannel.py. Each refused logout token is named after the forgery
it stops: none of them may end anybody's session."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import smtplib
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from tests.auth.side_operator import SideOperator, side_operator
from tests.auth.test_psc_tokens import (
    DUPONT_ID,
    claims_of,
    provider_key,
    psc_tokens,
    xoauth2,
)
from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL, tls_context

from mssante.auth.passwords import hash_password
from mssante.auth.psctoken import LogoutRefused
from mssante.domain.mailboxes import MailboxType, PersonKind, Rules

DUPONT = "dupont@ch-xyz.mssante.fr"
PASSWORD = "correct horse battery staple"
EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
async def operator(environment: RunningEnvironment,
                   tmp_path: Path) -> AsyncIterator[SideOperator]:
    async with side_operator(environment, tmp_path) as found:
        await found.store.create_person(DUPONT, PersonKind.HEALTH, "Dr Dupont",
                                        password_hash=hash_password(PASSWORD),
                                        rpps=DUPONT_ID[1:])
        await found.store.create_mailbox(DUPONT, MailboxType.PER, rules=Rules(), owner=DUPONT)
        yield found


def client_id(env: RunningEnvironment) -> str:
    return str(env.operator(HOSPITAL)["psc_client"]["client_id"])


def logout_token(env: RunningEnvironment, key: RSAKey | None = None, *,
                 typ: str = "logout+jwt", drop: tuple[str, ...] = (),
                 **claims: Any) -> str:
    """A logout token as the provider makes them (Back-Channel Logout 1.0 §2.4),
    with ``claims`` changed or ``drop`` removed."""
    key = key or provider_key(env)
    now = int(time.time())
    body: dict[str, Any] = {"iss": str(env.description["psc"]["issuer"]),
                            "aud": client_id(env), "iat": now, "exp": now + 120,
                            "jti": str(uuid.uuid4()), "sub": DUPONT_ID,
                            "events": {EVENT: {}}}
    body.update(claims)
    for name in drop:
        body.pop(name, None)
    return jwt.encode({"alg": "RS256", "typ": typ, "kid": str(key.kid)}, body, key)


def imaps(env: RunningEnvironment, op: SideOperator, token: str) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("127.0.0.1", op.imaps, ssl_context=tls_context(env),
                               timeout=30)
    assert client.authenticate("XOAUTH2", lambda _: xoauth2(DUPONT, token))[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    return client


def session_ended(client: imaplib.IMAP4) -> bool:
    """Whether the server ended the session (BYE) at this command."""
    try:
        client.noop()
    except imaplib.IMAP4.abort as exc:
        client.shutdown()
        assert "Pro Sante Connect session has ended" in str(exc)
        return True
    return False


async def test_the_imap_session_ends_at_its_next_command(environment: RunningEnvironment,
                                                         operator: SideOperator) -> None:
    mine, other = await asyncio.gather(asyncio.to_thread(psc_tokens, environment),
                                       asyncio.to_thread(psc_tokens, environment))
    ended = await asyncio.to_thread(imaps, environment, operator, mine["access_token"])
    going_on = await asyncio.to_thread(imaps, environment, operator, other["access_token"])
    with_password = await asyncio.to_thread(imaplib.IMAP4_SSL, "127.0.0.1", operator.imaps,
                                            ssl_context=tls_context(environment), timeout=30)
    await asyncio.to_thread(with_password.login, DUPONT, PASSWORD)
    sid = claims_of(mine["access_token"])["sid"]
    await operator.tokens.logout(logout_token(environment, sid=sid))
    assert await asyncio.to_thread(session_ended, ended)
    # the same person's other PSC session, and his password session, go on
    assert not await asyncio.to_thread(session_ended, going_on)
    assert not await asyncio.to_thread(session_ended, with_password)
    for client in (going_on, with_password):
        await asyncio.to_thread(client.logout)


async def test_the_ended_sessions_tokens_no_longer_log_in(environment: RunningEnvironment,
                                                          operator: SideOperator) -> None:
    """A token replayed after its session ended, before its exp, is refused."""
    tokens = await asyncio.to_thread(psc_tokens, environment)
    token = tokens["access_token"]
    await operator.tokens.logout(logout_token(environment,
                                              sid=claims_of(token)["sid"]))

    def replay() -> None:
        with (imaplib.IMAP4_SSL("127.0.0.1", operator.imaps, timeout=30,
                                ssl_context=tls_context(environment)) as client,
              pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED")):
            client.authenticate("XOAUTH2", lambda _: xoauth2(DUPONT, token))
        with smtplib.SMTP_SSL("127.0.0.1", operator.submissions, timeout=30,
                              context=tls_context(environment)) as smtp:
            smtp.ehlo("client.test")
            code, _ = smtp.docmd("AUTH", "XOAUTH2 " + _b64(xoauth2(DUPONT, token)))
            assert code == 535

    await asyncio.to_thread(replay)


async def test_an_idle_session_is_ended_at_once(environment: RunningEnvironment,
                                                operator: SideOperator) -> None:
    """In IDLE the client sends nothing: the server ends it without waiting for DONE."""
    tokens = await asyncio.to_thread(psc_tokens, environment)
    token = tokens["access_token"]
    context = ssl.create_default_context(cafile=environment.ca_file)
    reader, writer = await asyncio.open_connection("127.0.0.1", operator.imaps, ssl=context)
    try:
        await reader.readline()  # greeting
        writer.write(b"a AUTHENTICATE XOAUTH2 " + _b64(xoauth2(DUPONT, token)).encode()
                     + b"\r\nb SELECT INBOX\r\nc IDLE\r\n")
        while not (line := await reader.readline()).startswith(b"+ "):
            assert line, "the connection closed before IDLE"
        await operator.tokens.logout(logout_token(environment,
                                                  sid=claims_of(token)["sid"]))
        bye = await asyncio.wait_for(reader.readline(), 10)
        assert bye.startswith(b"* BYE ") and b"Pro Sante Connect" in bye
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed
    finally:
        writer.close()


async def test_submission_refuses_the_next_mail(environment: RunningEnvironment,
                                                operator: SideOperator) -> None:
    tokens = await asyncio.to_thread(psc_tokens, environment)
    token = tokens["access_token"]
    smtp = await asyncio.to_thread(smtplib.SMTP_SSL, "127.0.0.1", operator.submissions,
                                   timeout=30, context=tls_context(environment))
    try:
        await asyncio.to_thread(smtp.ehlo, "client.test")
        code, _ = await asyncio.to_thread(smtp.docmd, "AUTH",
                                          "XOAUTH2 " + _b64(xoauth2(DUPONT, token)))
        assert code == 235
        await operator.tokens.logout(logout_token(environment,
                                                  sid=claims_of(token)["sid"]))
        code, text = await asyncio.to_thread(smtp.docmd, "MAIL", f"FROM:<{DUPONT}>")
        assert (code, text[:5]) == (421, b"4.7.0") and b"session has ended" in text
        with pytest.raises(smtplib.SMTPServerDisconnected):
            await asyncio.to_thread(smtp.noop)
    finally:
        smtp.close()


async def test_a_logout_naming_only_the_person_ends_all_his_psc_sessions(
        environment: RunningEnvironment, operator: SideOperator) -> None:
    """§2.4: a logout token with a ``sub`` and no ``sid`` ends every session of that
    person; a token issued afterwards logs in again."""
    first, second = await asyncio.gather(asyncio.to_thread(psc_tokens, environment),
                                         asyncio.to_thread(psc_tokens, environment))
    clients = [await asyncio.to_thread(imaps, environment, operator, t["access_token"])
               for t in (first, second)]
    await operator.tokens.logout(logout_token(environment))  # sub only
    for client in clients:
        assert await asyncio.to_thread(session_ended, client)
    await asyncio.sleep(1.1)  # iat is in whole seconds
    later = await asyncio.to_thread(psc_tokens, environment)
    client = await asyncio.to_thread(imaps, environment, operator, later["access_token"])
    assert not await asyncio.to_thread(session_ended, client)
    await asyncio.to_thread(client.logout)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- forged or replayed logout tokens end nothing ---------------------------------------

def _forgeries(env: RunningEnvironment, sid: str) -> dict[str, str]:
    other_key = RSAKey.generate_key(2048, parameters={"kid": provider_key(env).kid})
    now = int(time.time())
    return {
        "signed_by_another_key": logout_token(env, other_key, sid=sid),
        "for_another_client": logout_token(env, sid=sid, aud="another-operator"),
        "of_another_issuer": logout_token(env, sid=sid, iss="https://psc.example/evil"),
        "without_the_logout_event": logout_token(env, sid=sid, events={}),
        "an_id_token_with_a_nonce": logout_token(env, sid=sid, nonce="n"),
        "naming_no_session_nor_person": logout_token(env, sid=sid, drop=("sid", "sub")),
        "issued_long_ago": logout_token(env, sid=sid, iat=now - 3600, exp=now + 60),
        "expired": logout_token(env, sid=sid, iat=now - 200, exp=now - 100),
        "without_jti": logout_token(env, sid=sid, drop=("jti",)),
        "of_another_type": logout_token(env, sid=sid, typ="JWT+other"),
        "an_access_token": "",  # filled in below: a real access token of the session
        "not_a_jwt": "not.a-token",
    }


async def test_forged_logout_tokens_end_nothing(environment: RunningEnvironment,
                                                operator: SideOperator) -> None:
    tokens = await asyncio.to_thread(psc_tokens, environment)
    token = tokens["access_token"]
    sid = claims_of(token)["sid"]
    client = await asyncio.to_thread(imaps, environment, operator, token)
    forgeries = _forgeries(environment, sid)
    forgeries["an_access_token"] = token
    for name, forged in forgeries.items():
        with pytest.raises(LogoutRefused):
            await operator.tokens.logout(forged)
            pytest.fail(f"{name} was taken")
    assert not await asyncio.to_thread(session_ended, client)
    # a genuine one is taken once; the same one replayed is refused
    genuine = logout_token(environment, sid=sid)
    await operator.tokens.logout(genuine)
    with pytest.raises(LogoutRefused, match="used already"):
        await operator.tokens.logout(genuine)
    assert await asyncio.to_thread(session_ended, client)
