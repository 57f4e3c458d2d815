"""Logging in to the webmail over real HTTPS (httpx): the password path shares the
throttle and the password policy of IMAP and submission, the Pro Santé Connect path
runs the real authorization code flow at the trust space's provider; sessions,
cookies, CSRF and the security headers. The pages themselves are driven in a real
browser in test_webmail_browser.py."""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mssante.pki.tls import client_context
from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL

DUPONT = "dupont@ch-xyz.mssante.fr"
SECRETARY = "marie.bernard"
DUPONT_ID = "810102727017"


def account(env: RunningEnvironment, login: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in env.description["accounts"]
                                 if a["login"] == login)
    return found


def web(env: RunningEnvironment, domain: str = HOSPITAL) -> str:
    return str(env.operator(domain)["web"]["url"])


@pytest.fixture
def client(environment: RunningEnvironment) -> Iterator[httpx.Client]:
    """An HTTP client that keeps cookies, as a browser does, and sends its origin."""
    base = web(environment)
    with httpx.Client(base_url=base, verify=client_context(Path(environment.ca_file)),
                      timeout=30, headers={"Origin": base}) as client:
        yield client


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, f"no {name} in the page"
    return html.unescape(found.group(1))


def log_in(client: httpx.Client, login: str, password: str) -> httpx.Response:
    form = client.get("/connexion")
    assert form.status_code == 200
    return client.post("/connexion", data={"identifiant": login, "mot_de_passe": password,
                                           "jeton": hidden(form.text, "jeton")})


def test_the_login_page_has_its_fields_and_the_psc_link(client: httpx.Client) -> None:
    page = client.get("/connexion")
    assert page.status_code == 200
    assert '<label for="identifiant">Identifiant</label>' in page.text
    assert '<label for="mot_de_passe">Mot de passe</label>' in page.text
    assert ">Se connecter</button>" in page.text
    assert 'href="/connexion/psc">Se connecter avec Pro Santé Connect</a>' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("__Host-mssante-login=")
    assert all(flag in cookie for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"))


def test_a_secretary_logs_in_and_sees_her_mailbox(environment: RunningEnvironment,
                                                  client: httpx.Client) -> None:
    response = log_in(client, SECRETARY, account(environment, SECRETARY)["password"])
    assert response.status_code == 303 and response.headers["location"] == "/courrier"
    session_cookie = next(c for c in response.headers.get_list("set-cookie")
                          if c.startswith("__Host-mssante="))
    assert all(flag in session_cookie for flag in ("Secure", "HttpOnly", "SameSite=Lax"))
    page = client.get("/courrier", follow_redirects=True)
    assert page.status_code == 200
    assert "cardiologie@ch-xyz.mssante.fr" in page.text
    assert '<label for="boite">Boîte aux lettres</label>' in page.text
    assert "Nouveau message" in page.text


def test_a_wrong_password_is_refused_with_an_alert(environment: RunningEnvironment,
                                                   client: httpx.Client) -> None:
    response = log_in(client, SECRETARY, "wrong")
    assert response.status_code == 401
    assert 'role="alert"' in response.text and "Identifiant ou mot de passe incorrect" \
        in response.text
    assert client.get("/courrier").status_code == 303  # still not logged in


def test_a_login_form_from_another_site_is_refused(environment: RunningEnvironment,
                                                   client: httpx.Client) -> None:
    """Login CSRF: a form posted from another origin, or without the form's token."""
    password = account(environment, SECRETARY)["password"]
    response = client.post("/connexion", data={"identifiant": SECRETARY,
                                                "mot_de_passe": password, "jeton": "x"},
                            headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    client.get("/connexion")
    response = client.post("/connexion", data={"identifiant": SECRETARY,
                                                "mot_de_passe": password, "jeton": "forged"})
    assert response.status_code == 400 and "formulaire a expiré" in response.text


def test_logging_out_needs_the_sessions_token(environment: RunningEnvironment,
                                              client: httpx.Client) -> None:
    log_in(client, SECRETARY, account(environment, SECRETARY)["password"])
    page = client.get("/courrier", follow_redirects=True)
    client.post("/deconnexion", data={"csrf": "forged"})
    # still logged in: sent on to the mailbox, not to the login page
    assert client.get("/courrier").headers["location"].startswith("/courrier/")
    response = client.post("/deconnexion", data={"csrf": hidden(page.text, "csrf")})
    assert response.status_code == 303
    assert client.get("/courrier").headers["location"] == "/connexion"


def test_a_professional_logs_in_with_pro_sante_connect(environment: RunningEnvironment,
                                                       client: httpx.Client) -> None:
    """The whole authorization code flow, as a browser follows it: the operator sends
    the browser to the provider, the simulated e-CPS approves, the provider sends it
    back with a code, the operator opens a session for Dr Dupont."""
    start = client.get("/connexion/psc")
    assert start.status_code == 303
    authorize = start.headers["location"]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize).query))
    assert query["scope"] == "openid scope_all" and query["acr_values"] == "eidas1"
    assert query["code_challenge_method"] == "S256"
    with httpx.Client(verify=client_context(Path(environment.ca_file)), timeout=30) as idp:
        page = idp.get(authorize)
        assert "Identifiant e-CPS" in page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action is not None
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                                 page.text))
        fields = {k: html.unescape(v) for k, v in fields.items()}
        approved = idp.post(urllib.parse.urljoin(authorize, html.unescape(action.group(1))),
                            data={**fields, "id_nat_ps": DUPONT_ID, "action": "approve"})
    assert approved.status_code in (302, 303)
    back = approved.headers["location"]
    assert back.startswith(web(environment) + "/connexion/psc/retour?")
    landed = client.get(back)
    assert landed.status_code == 303 and landed.headers["location"] == "/courrier"
    page = client.get("/courrier", follow_redirects=True)
    assert "dupont@ch-xyz.mssante.fr" in page.text and "cardiologie@" in page.text
    # the code cannot be used twice, nor by another browser
    assert client.get(back).status_code == 400


def test_a_psc_return_without_the_browsers_attempt_is_refused(
        client: httpx.Client) -> None:
    response = client.get("/connexion/psc/retour", params={"code": "x", "state": "y"})
    assert response.status_code == 400 and "expiré" in response.text
