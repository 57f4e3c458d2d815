"""The PSC-like provider over real HTTPS on 127.0.0.1 with the trust space's PKI:
discovery, the authorization code flow with PKCE, the tokens and what they are checked
against, refresh rotation, userinfo, introspection, end-session. Each refusal is named
after the attack it stops."""

from __future__ import annotations

import base64
import html.parser
import urllib.parse
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from mssante.psc.flow import pkce_pair, token_flow
from tests.psc.conftest import DUPONT, LOGOUT_URI, REDIRECT_URI, Provider

MARTIN = "810003456789"


async def configuration(http: httpx.AsyncClient, p: Provider) -> dict[str, Any]:
    response = await http.get(f"{p.issuer}/.well-known/openid-configuration")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def auth_params(p: Provider, challenge: str, **changes: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": p.client.client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid scope_all", "state": "st-1", "nonce": "n-1",
        "code_challenge": challenge, "code_challenge_method": "S256", "acr_values": "eidas1"}
    params.update(changes)
    return {k: v for k, v in params.items() if v is not None}


async def get_code(http: httpx.AsyncClient, p: Provider, challenge: str,
                   id_nat_ps: str = DUPONT, **changes: str | None) -> str:
    """Approve on the simulated e-CPS page, as the professional would."""
    params = auth_params(p, challenge, **changes)
    page = await http.get(f"{p.issuer}/protocol/openid-connect/auth", params=params)
    assert page.status_code == 200, page.text
    approved = await http.post(f"{p.issuer}/protocol/openid-connect/auth",
                               data={**params, "id_nat_ps": id_nat_ps, "action": "approve"})
    assert approved.status_code == 303, approved.text
    location = approved.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert query["state"] == "st-1" and query["iss"] == p.issuer
    return query["code"]


async def exchange(http: httpx.AsyncClient, p: Provider, code: str, verifier: str | None,
                   *, redirect_uri: str = REDIRECT_URI, client: Any = None) -> httpx.Response:
    client = client or p.client
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    return await http.post(f"{p.issuer}/protocol/openid-connect/token",
                           auth=(client.client_id, client.secret), data=data)


async def login(http: httpx.AsyncClient, p: Provider, id_nat_ps: str = DUPONT
                ) -> dict[str, Any]:
    tokens = await token_flow(http, p.issuer, client_id=p.client.client_id,
                              client_secret=p.client.secret, redirect_uri=REDIRECT_URI,
                              id_nat_ps=id_nat_ps)
    return tokens


async def served_keys(http: httpx.AsyncClient, p: Provider) -> KeySet:
    response = await http.get(f"{p.issuer}/protocol/openid-connect/certs")
    assert response.status_code == 200
    return KeySet.import_key_set(response.json())


async def refresh(http: httpx.AsyncClient, p: Provider, token: str) -> httpx.Response:
    return await http.post(f"{p.issuer}/protocol/openid-connect/token",
                           auth=(p.client.client_id, p.client.secret),
                           data={"grant_type": "refresh_token", "refresh_token": token})


async def introspect(http: httpx.AsyncClient, p: Provider, token: str) -> dict[str, Any]:
    response = await http.post(f"{p.issuer}/protocol/openid-connect/token/introspect",
                               data={"token": token, "client_id": p.client.client_id,
                                     "client_secret": p.client.secret})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def userinfo(http: httpx.AsyncClient, p: Provider, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await http.get(f"{p.issuer}/protocol/openid-connect/userinfo", headers=headers)


def error_of(response: httpx.Response) -> str:
    if response.status_code == 303:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
            response.headers["location"]).query))
        return query["error"]
    return str(response.json()["error"])


# -- discovery and the happy path -------------------------------------------------------

async def test_discovery_names_every_endpoint_under_the_issuer(provider: Provider) -> None:
    async with provider.http() as http:
        document = await configuration(http, provider)
        wallet = await http.get(f"{provider.issuer}/.well-known/wallet-openid-configuration")
    issuer = provider.issuer
    assert document["issuer"] == issuer
    for name, path in [("authorization_endpoint", "auth"), ("token_endpoint", "token"),
                       ("userinfo_endpoint", "userinfo"), ("jwks_uri", "certs"),
                       ("introspection_endpoint", "token/introspect"),
                       ("end_session_endpoint", "logout")]:
        assert document[name] == f"{issuer}/protocol/openid-connect/{path}"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["acr_values_supported"] == ["eidas1"]
    assert set(document["scopes_supported"]) == {"openid", "scope_all"}
    assert document["response_types_supported"] == ["code"]
    assert set(document["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"client_secret_basic", "client_secret_post"} <= set(
        document["token_endpoint_auth_methods_supported"])
    assert {"SubjectNameID", "SubjectRefPro", "preferred_username"} <= set(
        document["claims_supported"])
    assert document["backchannel_logout_supported"] is True
    assert wallet.json() == document  # PSC's production name for the same document


async def test_tokens_carry_psc_claims_signed_by_the_served_keys(provider: Provider) -> None:
    async with provider.http() as http:
        tokens = await login(http, provider)
        keys = await served_keys(http, provider)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 300
    assert tokens["refresh_token"] and "." not in tokens["refresh_token"]  # opaque
    access = jwt.decode(tokens["access_token"], keys, algorithms=["RS256"])
    assert access.header["kid"] in {k.kid for k in keys}
    claims = access.claims
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == provider.client.client_id
    assert claims["exp"] - claims["iat"] == 300
    assert claims["sub"] == DUPONT
    assert claims["acr"] == "eidas1"
    assert claims["SubjectNameID"] == claims["preferred_username"] == DUPONT
    identity = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"]).claims
    assert identity["aud"] == provider.client.client_id and identity["nonce"]
    assert identity["SubjectNameID"] == DUPONT
    assert (identity["given_name"], identity["family_name"]) == ("Paul", "DUPONT")
    (exercise,) = identity["SubjectRefPro"]["exercices"]
    assert exercise["codeProfession"] == "10" and exercise["codeSavoirFaire"] == "SM04"
    assert exercise["nomDexercice"] == "DUPONT"
    (activity,) = exercise["activities"]
    assert activity["numeroFinessSite"] == "750000001"
    assert activity["raisonSocialeSite"] == "CENTRE HOSPITALIER XYZ"


async def test_userinfo_gives_the_claims_of_a_valid_token_only(provider: Provider) -> None:
    async with provider.http() as http:
        tokens = await login(http, provider, MARTIN)
        good = await userinfo(http, provider, tokens["access_token"])
        missing = await userinfo(http, provider, None)
        garbage = await userinfo(http, provider, "not-a-token")
        id_token = await userinfo(http, provider, tokens["id_token"])
    assert good.status_code == 200
    info = good.json()
    assert info["SubjectNameID"] == info["preferred_username"] == MARTIN
    assert info["SubjectRefPro"]["exercices"][0]["codeSavoirFaire"] == "SM54"
    assert info["SubjectRefPro"]["exercices"][0]["activities"][0]["numeroFinessSite"] == (
        "690000002")
    assert good.headers["cache-control"] == "no-store"
    for refused in (missing, garbage, id_token):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


# -- refusals at the authorize endpoint -------------------------------------------------

async def test_authorization_without_pkce_is_refused(provider: Provider) -> None:
    verifier, challenge = pkce_pair()
    async with provider.http() as http:
        endpoint = f"{provider.issuer}/protocol/openid-connect/auth"
        without = await http.get(endpoint, params=auth_params(
            provider, challenge, code_challenge=None, code_challenge_method=None))
        plain = await http.get(endpoint, params=auth_params(
            provider, verifier, code_challenge_method="plain"))
    for response in (without, plain):
        assert response.status_code == 303
        assert error_of(response) == "invalid_request"
        assert "state=st-1" in response.headers["location"]


async def test_an_unknown_client_is_never_redirected_to(provider: Provider) -> None:
    _, challenge = pkce_pair()
    async with provider.http() as http:
        endpoint = f"{provider.issuer}/protocol/openid-connect/auth"
        unknown = await http.get(endpoint, params=auth_params(provider, challenge,
                                                              client_id="evil"))
        elsewhere = await http.get(endpoint, params=auth_params(
            provider, challenge, redirect_uri="https://evil.example/callback"))
    for response in (unknown, elsewhere):
        assert response.status_code == 400
        assert "location" not in response.headers
        assert 'role="alert"' in response.text


async def test_another_acr_than_eidas1_is_refused(provider: Provider) -> None:
    _, challenge = pkce_pair()
    async with provider.http() as http:
        response = await http.get(f"{provider.issuer}/protocol/openid-connect/auth",
                                  params=auth_params(provider, challenge, acr_values="eidas3"))
    assert error_of(response) == "invalid_request"


# -- refusals at the token endpoint -----------------------------------------------------

async def test_a_stolen_code_without_its_verifier_is_useless(provider: Provider) -> None:
    verifier, challenge = pkce_pair()
    other, _ = pkce_pair()
    async with provider.http() as http:
        code = await get_code(http, provider, challenge)
        wrong = await exchange(http, provider, code, other)
        code2 = await get_code(http, provider, challenge)
        none = await exchange(http, provider, code2, None)
        # the right verifier comes too late: each code was spent by the failed attempt
        late = await exchange(http, provider, code, verifier)
    assert (wrong.status_code, error_of(wrong)) == (400, "invalid_grant")
    assert (none.status_code, error_of(none)) == (400, "invalid_grant")
    assert (late.status_code, error_of(late)) == (400, "invalid_grant")


async def test_authorization_code_cannot_be_replayed(provider: Provider) -> None:
    verifier, challenge = pkce_pair()
    async with provider.http() as http:
        code = await get_code(http, provider, challenge)
        first = await exchange(http, provider, code, verifier)
        again = await exchange(http, provider, code, verifier)
        assert first.status_code == 200
        assert (again.status_code, error_of(again)) == (400, "invalid_grant")
        # RFC 6749 §4.1.2: what the code gave is revoked
        assert (await introspect(http, provider, first.json()["access_token"])) == {
            "active": False}
        after = await refresh(http, provider, first.json()["refresh_token"])
    assert error_of(after) == "invalid_grant"


async def test_a_code_cannot_be_redeemed_for_another_redirect_uri(provider: Provider) -> None:
    verifier, challenge = pkce_pair()
    async with provider.http() as http:
        code = await get_code(http, provider, challenge)
        response = await exchange(http, provider, code, verifier,
                                  redirect_uri="https://evil.example/callback")
    assert (response.status_code, error_of(response)) == (400, "invalid_grant")


async def test_a_code_cannot_be_redeemed_by_another_client(provider: Provider) -> None:
    verifier, challenge = pkce_pair()
    async with provider.http() as http:
        code = await get_code(http, provider, challenge)
        response = await exchange(http, provider, code, verifier, client=provider.other)
    assert (response.status_code, error_of(response)) == (400, "invalid_grant")


async def test_an_unknown_client_or_wrong_secret_gets_no_token(provider: Provider) -> None:
    verifier, challenge = pkce_pair()
    async with provider.http() as http:
        code = await get_code(http, provider, challenge)
        url = f"{provider.issuer}/protocol/openid-connect/token"
        data = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
        wrong = await http.post(url, auth=(provider.client.client_id, "guess"), data=data)
        unknown = await http.post(url, auth=("evil", "guess"), data=data)
        anonymous = await http.post(url, data={**data, "client_id": provider.client.client_id})
        # the code survived those attempts: the right client still gets its tokens
        post = await http.post(url, data={**data, "client_id": provider.client.client_id,
                                          "client_secret": provider.client.secret})
        both = await http.post(url, auth=(provider.client.client_id, provider.client.secret),
                               data={**data, "client_secret": provider.client.secret})
    for response in (wrong, unknown, anonymous):
        assert (response.status_code, error_of(response)) == (401, "invalid_client")
    assert (both.status_code, error_of(both)) == (400, "invalid_request")
    assert post.status_code == 200 and post.headers["cache-control"] == "no-store"


async def test_refresh_tokens_rotate_and_a_replayed_one_ends_the_session(
        provider: Provider) -> None:
    async with provider.http() as http:
        tokens = await login(http, provider)
        renewed = await refresh(http, provider, tokens["refresh_token"])
        assert renewed.status_code == 200
        fresh = renewed.json()
        assert fresh["refresh_token"] != tokens["refresh_token"]
        assert (await introspect(http, provider, fresh["access_token"]))["active"]
        replayed = await refresh(http, provider, tokens["refresh_token"])
        assert (replayed.status_code, error_of(replayed)) == (400, "invalid_grant")
        # the replay means someone else holds the session: it ends for everyone
        assert (await refresh(http, provider, fresh["refresh_token"])).status_code == 400
        assert not (await introspect(http, provider, fresh["access_token"]))["active"]


# -- introspection and end of session ---------------------------------------------------

async def test_introspection_says_active_then_inactive_after_logout(provider: Provider) -> None:
    async with provider.http() as http:
        tokens = await login(http, provider)
        active = await introspect(http, provider, tokens["access_token"])
        refresh_active = await introspect(http, provider, tokens["refresh_token"])
        garbage = await introspect(http, provider, "garbage")
        anonymous = await http.post(f"{provider.issuer}/protocol/openid-connect/token/introspect",
                                    data={"token": tokens["access_token"]})
        logout = await http.get(f"{provider.issuer}/protocol/openid-connect/logout", params={
            "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": LOGOUT_URI,
            "state": "bye"})
        after = await introspect(http, provider, tokens["access_token"])
        info = await userinfo(http, provider, tokens["access_token"])
        renewed = await refresh(http, provider, tokens["refresh_token"])
    assert active["active"] is True
    assert active["sub"] == active["username"] == DUPONT
    assert active["client_id"] == provider.client.client_id and active["acr"] == "eidas1"
    assert refresh_active["active"] is True and refresh_active["token_type"] == "Refresh"
    assert garbage == {"active": False}
    assert anonymous.status_code == 401
    assert logout.status_code == 303 and logout.headers["location"] == LOGOUT_URI + "?state=bye"
    assert after == {"active": False}
    assert info.status_code == 401
    assert error_of(renewed) == "invalid_grant"


async def test_logout_never_redirects_to_an_unregistered_uri(provider: Provider) -> None:
    async with provider.http() as http:
        tokens = await login(http, provider)
        response = await http.get(f"{provider.issuer}/protocol/openid-connect/logout", params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://evil.example/"})
    assert response.status_code == 400 and "location" not in response.headers


async def test_a_token_signed_by_another_key_is_refused(provider: Provider) -> None:
    async with provider.http() as http:
        tokens = await login(http, provider)
        keys = await served_keys(http, provider)
        genuine = jwt.decode(tokens["access_token"], keys, algorithms=["RS256"])
        forger = RSAKey.generate_key(2048, private=True)
        forged = jwt.encode({"alg": "RS256", "kid": genuine.header["kid"]},
                            dict(genuine.claims), forger)
        header, payload, signature = tokens["access_token"].split(".")
        claims = dict(genuine.claims, sub=MARTIN)  # another person, the genuine signature
        tampered = ".".join([header, jwt.encode({"alg": "RS256"}, claims, forger)
                             .split(".")[1], signature])
        none_alg = ".".join([base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode(),
                             payload, ""])
        for token in (forged, tampered, none_alg):
            assert (await userinfo(http, provider, token)).status_code == 401
            assert (await introspect(http, provider, token)) == {"active": False}


# -- the simulated e-CPS page -----------------------------------------------------------

class _Labels(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[str, str] = {}
        self.inputs: set[str] = set()
        self.buttons: list[str] = []
        self.alerts: list[str] = []
        self._in: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "label":
            self._in = ("label", a.get("for") or "")
        elif tag == "button":
            self._in = ("button", "")
        elif a.get("role") == "alert":
            self._in = ("alert", "")
        if tag == "input" and a.get("type") != "hidden":
            self.inputs.add(a.get("id") or "")

    def handle_data(self, data: str) -> None:
        if self._in is None:
            return
        kind, target = self._in
        if kind == "label":
            self.labels[target] = self.labels.get(target, "") + data
        elif kind == "button":
            self.buttons.append(data.strip())
        else:
            self.alerts.append(" ".join(data.split()))
        self._in = None


async def test_the_approval_page_is_labelled_for_everyone(provider: Provider) -> None:
    _, challenge = pkce_pair()
    async with provider.http() as http:
        page = await http.get(f"{provider.issuer}/protocol/openid-connect/auth",
                              params=auth_params(provider, challenge))
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"  # no approval by clickjacking
    found = _Labels()
    found.feed(page.text)
    field = next(k for k, v in found.labels.items() if v == "Identifiant e-CPS")
    assert field in found.inputs
    assert "Se connecter" in found.buttons
    assert '<html lang="fr">' in page.text


async def test_an_unknown_id_nat_ps_is_told_on_the_page(provider: Provider) -> None:
    _, challenge = pkce_pair()
    async with provider.http() as http:
        params = auth_params(provider, challenge)
        response = await http.post(f"{provider.issuer}/protocol/openid-connect/auth",
                                   data={**params, "id_nat_ps": "899999999999",
                                         "action": "approve"})
    assert response.status_code == 400 and "location" not in response.headers
    found = _Labels()
    found.feed(response.text)
    assert any("Identifiant national inconnu : 899999999999" in a for a in found.alerts)
    assert 'aria-invalid="true"' in response.text


async def test_refusing_on_the_e_cps_sends_access_denied(provider: Provider) -> None:
    _, challenge = pkce_pair()
    async with provider.http() as http:
        params = auth_params(provider, challenge)
        response = await http.post(f"{provider.issuer}/protocol/openid-connect/auth",
                                   data={**params, "action": "deny"})
    assert error_of(response) == "access_denied"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_parameter_given_twice_is_refused(provider: Provider, method: str) -> None:
    _, challenge = pkce_pair()
    async with provider.http() as http:
        url = f"{provider.issuer}/protocol/openid-connect/auth"
        body = urllib.parse.urlencode([*auth_params(provider, challenge).items(),
                                       ("redirect_uri", "https://evil.example/")])
        if method == "GET":
            response = await http.get(f"{url}?{body}")
        else:
            response = await http.post(url, content=body, headers={
                "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and "location" not in response.headers
