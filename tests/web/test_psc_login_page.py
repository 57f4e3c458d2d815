"""The simulated e-CPS page of Pro Santé Connect, as a professional meets it in chromium:
reached by an operator's authorization request (its client of environment.json, with
PKCE), the field and buttons found by the names a screen reader announces, checked by
axe-core, used with the mouse and with the keyboard alone.

The operator's redirect URI (``http://127.0.0.1/callback``) has no server behind it: the
test reads the browser's request there (``page.expect_request``) as the operator's web
application would read it, and redeems the code. (``page.route`` cannot answer it:
Playwright 1.65 does not intercept the redirected request with Debian's chromium 156.)"""

from __future__ import annotations

import re
import secrets
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Page, Request, expect

from mssante.psc.flow import pkce_pair
from tests.conftest import RunningEnvironment
from tests.web.browser import axe_check, screenshot

HOSPITAL = "ch-xyz.mssante.fr"
DUPONT = "810102727017"  # Dr Dupont, cardiologist at CENTRE HOSPITALIER XYZ
UNKNOWN = "899999999999"
CALLBACK = re.compile(r"^http://127\.0\.0\.1/callback\?")


@dataclass
class Authorization:
    """One authorization request of the hospital's client, and what came back."""
    url: str
    state: str
    verifier: str
    issuer: str
    client: dict[str, str]
    landed: list[str]  # every request of the browser to the redirect URI

    def answer(self, page: Page, act: Callable[[], None]) -> dict[str, str]:
        """Do ``act`` (submit the page); the query the browser brings back to the
        operator, by the provider's redirect (RFC 6749 §4.1.2)."""
        with page.expect_request(CALLBACK) as request:
            act()
        back: Request = request.value
        assert back.is_navigation_request() and back.redirected_from is not None
        assert back.redirected_from.url == self.url.partition("?")[0]
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back.url).query))


@pytest.fixture
def authorization(environment: RunningEnvironment, page: Page) -> Authorization:
    client: dict[str, str] = environment.operator(HOSPITAL)["psc_client"]
    issuer = str(environment.description["psc"]["issuer"])
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(12)
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client["client_id"],
        "redirect_uri": client["redirect_uri"], "scope": "openid scope_all",
        "state": state, "nonce": "n-browser", "acr_values": "eidas1",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    landed: list[str] = []
    page.on("request", lambda request: landed.append(request.url)
            if CALLBACK.match(request.url) else None)
    return Authorization(f"{issuer}/protocol/openid-connect/auth?{query}", state, verifier,
                        issuer, client, landed)


def redeem(environment: RunningEnvironment, auth: Authorization, code: str) -> dict[str, object]:
    """Exchange the code as the operator would; the ID token's verified claims."""
    verify = ssl.create_default_context(cafile=environment.ca_file)
    with httpx.Client(verify=verify, timeout=10.0) as http:
        tokens = http.post(f"{auth.issuer}/protocol/openid-connect/token",
                           auth=(auth.client["client_id"], auth.client["client_secret"]),
                           data={"grant_type": "authorization_code", "code": code,
                                 "redirect_uri": auth.client["redirect_uri"],
                                 "code_verifier": auth.verifier})
        assert tokens.status_code == 200, tokens.text
        keys = KeySet.import_key_set(
            http.get(f"{auth.issuer}/protocol/openid-connect/certs").json())
    return dict(jwt.decode(tokens.json()["id_token"], keys, algorithms=["RS256"]).claims)


def test_dr_dupont_logs_in_and_his_operator_gets_a_code(
        environment: RunningEnvironment, page: Page, authorization: Authorization) -> None:
    page.goto(authorization.url)
    expect(page).to_have_title(re.compile(r"^Connexion avec Pro Santé Connect"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Connexion avec Pro Santé Connect")
    expect(page.get_by_role("main")).to_contain_text("CENTRE HOSPITALIER XYZ")
    field = page.get_by_label("Identifiant e-CPS")
    expect(field).to_have_accessible_description(re.compile("numéro RPPS"))
    axe_check(page)
    screenshot(page, "psc-login")

    field.fill(DUPONT)
    answer = authorization.answer(
        page, page.get_by_role("button", name="Se connecter").click)
    assert answer["state"] == authorization.state
    assert answer["iss"] == authorization.issuer  # RFC 9207
    claims = redeem(environment, authorization, answer["code"])
    assert claims["sub"] == DUPONT and claims["nonce"] == "n-browser"
    assert claims["family_name"] == "DUPONT"


def test_an_unknown_id_nat_ps_is_announced_and_tied_to_the_field(
        page: Page, authorization: Authorization) -> None:
    page.goto(authorization.url)
    page.get_by_label("Identifiant e-CPS").fill(UNKNOWN)
    page.get_by_role("button", name="Se connecter").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(f"Identifiant national inconnu : {UNKNOWN}")
    field = page.get_by_label("Identifiant e-CPS")
    expect(field).to_have_value(UNKNOWN)  # kept, to be corrected rather than retyped
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(
        re.compile(f"Identifiant national inconnu : {UNKNOWN}"))
    assert authorization.landed == []  # the operator was told nothing
    axe_check(page)
    screenshot(page, "psc-login-unknown")


def test_the_keyboard_alone_logs_in(environment: RunningEnvironment, page: Page,
                                    authorization: Authorization) -> None:
    page.goto(authorization.url)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Identifiant e-CPS")).to_be_focused()
    page.keyboard.type(DUPONT)
    # Enter submits with the form's default button, the first: Se connecter
    answer = authorization.answer(page, lambda: page.keyboard.press("Enter"))

    claims = redeem(environment, authorization, answer["code"])
    assert claims["sub"] == DUPONT


def test_refusing_needs_no_identifier_and_tells_the_operator(
        page: Page, authorization: Authorization) -> None:
    page.goto(authorization.url)
    connect = page.get_by_role("button", name="Se connecter")
    connect.click()  # an empty field: the browser keeps the form (required)
    expect(page.get_by_label("Identifiant e-CPS")).to_be_focused()
    assert authorization.landed == []

    answer = authorization.answer(page, page.get_by_role("button", name="Refuser").click)
    assert answer["error"] == "access_denied" and answer["state"] == authorization.state
