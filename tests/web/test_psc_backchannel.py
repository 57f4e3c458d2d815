"""The whole path of a Pro Santé Connect logout: the professional logs out at the
provider, which posts a logout token to the operator's ``/psc/backchannel-logout``
(registered by ``mssante up``); the IMAP session opened with that session's token ends.
Real provider, real HTTPS, imaplib and smtplib, in the running environment."""

from __future__ import annotations

import base64
import imaplib
import smtplib
from pathlib import Path
from typing import Any

import httpx
import pytest

from mssante.pki.tls import client_context
from mssante.psc.clients import Clients
from tests.auth.test_psc_logout import session_ended as ended
from tests.auth.test_psc_tokens import DUPONT, psc_tokens, xoauth2
from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL, connect, tls_context

PATH = "/psc/backchannel-logout"


def web_url(env: RunningEnvironment) -> str:
    return str(env.operator(HOSPITAL)["web"]["url"])


def http(env: RunningEnvironment) -> httpx.Client:
    return httpx.Client(verify=client_context(Path(env.ca_file)), timeout=30)


def logged_in(env: RunningEnvironment, token: str) -> imaplib.IMAP4:
    client = connect(env)
    assert client.authenticate("XOAUTH2", lambda _: xoauth2(DUPONT, token))[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    return client


def logout_at_the_provider(env: RunningEnvironment, tokens: dict[str, Any]) -> None:
    issuer = str(env.description["psc"]["issuer"])
    with http(env) as client:
        response = client.get(f"{issuer}/protocol/openid-connect/logout",
                              params={"id_token_hint": tokens["id_token"]})
    assert response.status_code == 200, response.text


def test_the_operator_is_registered_for_back_channel_logout(
        environment: RunningEnvironment) -> None:
    issuer = str(environment.description["psc"]["issuer"])
    with http(environment) as client:
        discovery = client.get(f"{issuer}/.well-known/openid-configuration").json()
    assert discovery["backchannel_logout_supported"] is True
    assert environment.env.trust_space is not None
    registered = Clients(environment.env.trust_space.psc_dir).get(HOSPITAL)
    assert registered is not None
    assert registered.backchannel_logout_uri == web_url(environment) + PATH


def test_logging_out_at_pro_sante_connect_ends_the_imap_session(
        environment: RunningEnvironment) -> None:
    mine, other = psc_tokens(environment), psc_tokens(environment)
    session = logged_in(environment, mine["access_token"])
    other_session = logged_in(environment, other["access_token"])
    smtp = smtplib.SMTP(environment.operator(HOSPITAL)["submission"]["host"],
                        environment.operator(HOSPITAL)["submission"]["port"], timeout=30)
    smtp.starttls(context=tls_context(environment))
    smtp.ehlo("client.test")
    assert smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(
        xoauth2(DUPONT, mine["access_token"])).decode())[0] == 235
    logout_at_the_provider(environment, mine)
    assert ended(session)
    assert smtp.docmd("MAIL", f"FROM:<{DUPONT}>")[0] == 421
    smtp.close()
    assert not ended(other_session)  # another PSC session of the same professional
    other_session.logout()
    # the ended session's access token no longer logs in
    with connect(environment) as client, pytest.raises(imaplib.IMAP4.error,
                                                       match="AUTHENTICATIONFAILED"):
        client.authenticate("XOAUTH2", lambda _: xoauth2(DUPONT, mine["access_token"]))


@pytest.mark.parametrize("body,headers,status", [
    (b"logout_token=not-a-jwt", {}, 400),
    (b"", {}, 400),
    (b"logout_token=a&logout_token=b", {}, 400),
    (b"token=x", {}, 400),
    (b"%zz=%", {}, 400),
    (b"\xff\xfe", {}, 400),
    (b'{"logout_token": "x"}', {"content-type": "application/json"}, 400),
    (b"logout_token=" + b"a" * 20_000, {}, 413),
])
def test_what_is_not_a_logout_token_is_refused(environment: RunningEnvironment, body: bytes,
                                               headers: dict[str, str], status: int) -> None:
    tokens = psc_tokens(environment)
    session = logged_in(environment, tokens["access_token"])
    sent = {"content-type": "application/x-www-form-urlencoded", **headers}
    with http(environment) as client:
        response = client.post(web_url(environment) + PATH, content=body, headers=sent)
    assert response.status_code == status
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == "invalid_request"
    assert not ended(session)
    session.logout()


def test_only_post_is_answered(environment: RunningEnvironment) -> None:
    with http(environment) as client:
        assert client.get(web_url(environment) + PATH).status_code == 405
