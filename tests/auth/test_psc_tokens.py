"""Pro Santé Connect access tokens at IMAP and submission (SASL XOAUTH2 and
OAUTHBEARER), against the running environment: tokens from the real authorization
code flow of the trust space's provider, real servers, imaplib and smtplib. Each
refusal is named after the attack it stops."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import json
import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.imap_server import NoTrustSpace
from joserfc import jwt
from joserfc.jwk import RSAKey
from tests.conftest import RunningEnvironment, running_environment
from tests.e2e.mail import message, unique
from tests.imap.conftest import HOSPITAL, connect, fresh_person, tls_context
from typer.testing import CliRunner

from mssante.cli import app
from mssante.config import Listener, OperatorConfig, OperatorSettings, TrustSettings
from mssante.imap.server import start_imap
from mssante.operator.runtime import OperatorRuntime
from mssante.pki.tls import client_context
from mssante.psc.flow import token_flow
from mssante.psc.keys import SigningKeys
from mssante.smtp.server import start_listeners
from mssante.store import open_store

DUPONT = "dupont@ch-xyz.mssante.fr"
DUPONT_ID = "810102727017"
MARTIN_ID = "810003456789"
CABINET = "medecin.mssante.fr"


# -- getting tokens, building SASL messages -------------------------------------------

def psc_tokens(env: RunningEnvironment, id_nat_ps: str = DUPONT_ID,
               domain: str = HOSPITAL) -> dict[str, Any]:
    """The professional logs in at the provider through ``domain``'s client."""
    client = env.operator(domain)["psc_client"]

    async def run() -> dict[str, Any]:
        async with httpx.AsyncClient(verify=client_context(Path(env.ca_file)),
                                     timeout=30.0) as http:
            return await token_flow(http, str(env.description["psc"]["issuer"]),
                                    client_id=client["client_id"],
                                    client_secret=client["client_secret"],
                                    redirect_uri=client["redirect_uri"], id_nat_ps=id_nat_ps)

    return asyncio.run(run())


def access_token(env: RunningEnvironment, id_nat_ps: str = DUPONT_ID,
                 domain: str = HOSPITAL) -> str:
    return str(psc_tokens(env, id_nat_ps, domain)["access_token"])


def xoauth2(login: str, token: str) -> bytes:
    return f"user={login}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(login: str, token: str, port: int = 993) -> bytes:
    return f"n,a={login},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {token}\x01\x01" \
        .encode()


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def header_of(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return data


def provider_key(env: RunningEnvironment) -> RSAKey:
    """The provider's own signing key: what a token must not be able to use to lie
    about anything but what the checks look at."""
    assert env.env.trust_space is not None
    return SigningKeys(env.env.trust_space.psc_dir, 300.0).signing_key()


def signed(claims: dict[str, Any], key: RSAKey, kid: str | None = None) -> str:
    return jwt.encode({"alg": "RS256", "typ": "JWT", "kid": kid or str(key.kid)}, claims, key)


# -- the clients ------------------------------------------------------------------------

class Attempt:
    """What an authobject was asked: the challenges the server sent."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.challenges: list[bytes] = []

    def __call__(self, challenge: bytes) -> bytes:
        if not self.challenges and not challenge:
            self.challenges.append(challenge)
            return self.response
        self.challenges.append(challenge)
        return b"\x01"  # RFC 7628 §3.2.3: the dummy response to the error


def imap_login(env: RunningEnvironment, mechanism: str, response: bytes) -> imaplib.IMAP4:
    client = connect(env)
    client.authenticate(mechanism, Attempt(response))
    return client


def imap_refused(env: RunningEnvironment, mechanism: str, response: bytes) -> Attempt:
    """The login is refused with NO [AUTHENTICATIONFAILED]; the connection stays usable."""
    attempt = Attempt(response)
    with connect(env) as client:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.authenticate(mechanism, attempt)
        assert client.noop()[0] == "OK"
    return attempt


def submission(env: RunningEnvironment, domain: str = HOSPITAL) -> smtplib.SMTP:
    ep = env.operator(domain)["submission"]
    smtp = smtplib.SMTP(ep["host"], ep["port"], timeout=30)
    smtp.starttls(context=tls_context(env))
    smtp.ehlo("client.test")
    return smtp


def smtp_auth(smtp: smtplib.SMTP, mechanism: str, response: bytes,
              attempt: Attempt | None = None) -> Attempt:
    attempt = attempt or Attempt(response)

    def authobject(challenge: bytes | None = None) -> str:
        return attempt(challenge or b"").decode()

    smtp.auth(mechanism, authobject)
    return attempt


def smtp_refused(env: RunningEnvironment, mechanism: str, response: bytes) -> Attempt:
    attempt = Attempt(response)
    with submission(env) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp_auth(smtp, mechanism, response, attempt)
        assert refused.value.smtp_code == 535
        assert refused.value.smtp_error.startswith(b"5.7.8")
    return attempt


def refused_everywhere(env: RunningEnvironment, login: str, token: str) -> None:
    """Neither IMAP nor submission, with either mechanism, takes the token."""
    imap_refused(env, "XOAUTH2", xoauth2(login, token))
    imap_refused(env, "OAUTHBEARER", oauthbearer(login, token))
    smtp_refused(env, "XOAUTH2", xoauth2(login, token))
    smtp_refused(env, "OAUTHBEARER", oauthbearer(login, token, 587))


@pytest.fixture
def dupont_token(environment: RunningEnvironment) -> str:
    return access_token(environment)


# -- logging in ---------------------------------------------------------------------------

def test_the_mechanisms_are_offered_after_tls_only(environment: RunningEnvironment) -> None:
    op = environment.operator(HOSPITAL)
    with imaplib.IMAP4(op["imap"]["host"], op["imap"]["port"], timeout=30) as plain:
        assert "AUTH=XOAUTH2" not in plain.capabilities
        plain.starttls(tls_context(environment))
        plain.capability()
        capabilities = plain.capabilities
    assert {"AUTH=XOAUTH2", "AUTH=OAUTHBEARER", "SASL-IR"} <= set(capabilities)
    with submission(environment) as smtp:
        assert {"XOAUTH2", "OAUTHBEARER"} <= set(smtp.esmtp_features["auth"].split())


def test_a_professional_sends_and_reads_with_a_psc_token(
        environment: RunningEnvironment, dupont_token: str) -> None:
    subject = unique("PSC")
    with submission(environment) as smtp:
        smtp_auth(smtp, "XOAUTH2", xoauth2(DUPONT, dupont_token))
        smtp.send_message(message(DUPONT, DUPONT, subject))
    environment.wait_message(DUPONT, subject)
    with imap_login(environment, "XOAUTH2", xoauth2(DUPONT, dupont_token)) as client:
        assert client.select("INBOX")[0] == "OK"
        status, found = client.search(None, "SUBJECT", f'"{subject}"')
        assert status == "OK" and found[0]


def test_oauthbearer_logs_in_at_imap_and_submission(
        environment: RunningEnvironment, dupont_token: str) -> None:
    with imap_login(environment, "OAUTHBEARER", oauthbearer(DUPONT, dupont_token)) as client:
        assert client.select("INBOX")[0] == "OK"
    with submission(environment) as smtp:
        smtp_auth(smtp, "OAUTHBEARER", oauthbearer(DUPONT, dupont_token, 587))
        assert smtp.mail(DUPONT)[0] == 250
    # without an initial response: AUTH, then the message after an empty 334
    with submission(environment) as smtp:
        assert smtp.docmd("AUTH", "XOAUTH2") == (334, b"")
        code, _ = smtp.docmd(base64.b64encode(xoauth2(DUPONT, dupont_token)).decode())
        assert code == 235
    # the authzid may be left out: the token names the person (RFC 7628 §3.1)
    with imap_login(environment, "OAUTHBEARER",
                    f"n,,\x01auth=Bearer {dupont_token}\x01\x01".encode()) as client:
        assert client.select("INBOX")[0] == "OK"


def sasl_ir(env: RunningEnvironment, command: bytes) -> list[bytes]:
    """One AUTHENTICATE with an initial response (RFC 4959), over a raw TLS socket."""
    op = env.operator(HOSPITAL)["imaps"]
    with socket.create_connection((op["host"], op["port"]), timeout=30) as raw, \
            tls_context(env).wrap_socket(raw, server_hostname=op["host"]) as tls:
        reader = tls.makefile("rb")
        reader.readline()  # greeting
        tls.sendall(command + b"\r\n")
        lines = [reader.readline()]
        while lines[-1].startswith(b"+ "):
            tls.sendall(b"AQ==\r\n")  # ^A, the dummy response
            lines.append(reader.readline())
        return lines


def test_sasl_ir_in_one_round_trip(environment: RunningEnvironment, dupont_token: str) -> None:
    ok = sasl_ir(environment, b"a AUTHENTICATE XOAUTH2 " +
                 base64.b64encode(xoauth2(DUPONT, dupont_token)))
    assert ok[0].startswith(b"a OK [CAPABILITY "), ok
    refused = sasl_ir(environment, b"b AUTHENTICATE OAUTHBEARER " +
                      base64.b64encode(oauthbearer("marie.bernard", dupont_token)))
    assert len(refused) == 2 and refused[1].startswith(b"b NO [AUTHENTICATIONFAILED]")
    error = json.loads(base64.b64decode(refused[0][2:].strip()))
    issuer = environment.description["psc"]["issuer"]
    assert error == {"status": "invalid_token", "scope": "openid scope_all",
                     "openid-configuration": f"{issuer}/.well-known/openid-configuration"}


# -- refusals -----------------------------------------------------------------------------

def test_malformed_messages_are_refused(environment: RunningEnvironment,
                                                    dupont_token: str) -> None:
    """No user, channel binding asked, no bearer token: refused like a wrong token."""
    for tag, mechanism, blob in [
            (b"a", b"XOAUTH2", f"auth=Bearer {dupont_token}\x01\x01".encode()),
            (b"b", b"OAUTHBEARER", f"p=tls-unique,a={DUPONT},\x01auth=Bearer "
                                   f"{dupont_token}\x01\x01".encode()),
            (b"c", b"OAUTHBEARER", b"n,,\x01auth=Basic ZHVwb250OnB3\x01\x01")]:
        lines = sasl_ir(environment, tag + b" AUTHENTICATE " + mechanism + b" " +
                        base64.b64encode(blob))
        assert lines[-1].startswith(tag + b" NO [AUTHENTICATIONFAILED]"), lines
        assert len(lines) == (2 if mechanism == b"OAUTHBEARER" else 1)
    lines = sasl_ir(environment, b"d AUTHENTICATE XOAUTH2 not*base64")
    assert lines[-1].startswith(b"d BAD"), lines


def test_a_token_naming_another_person_than_user(environment: RunningEnvironment,
                                                 dupont_token: str) -> None:
    """Dupont's token does not open his secretary's login."""
    refused_everywhere(environment, "marie.bernard", dupont_token)


def test_the_oauthbearer_refusal_sends_the_rfc7628_error_first(
        environment: RunningEnvironment, dupont_token: str) -> None:
    attempt = imap_refused(environment, "OAUTHBEARER",
                           oauthbearer("marie.bernard", dupont_token))
    assert json.loads(attempt.challenges[1])["status"] == "invalid_token"
    attempt = smtp_refused(environment, "OAUTHBEARER",
                           oauthbearer("marie.bernard", dupont_token, 587))
    assert json.loads(attempt.challenges[-1])["status"] == "invalid_token"
    # XOAUTH2 is refused at once
    assert len(imap_refused(environment, "XOAUTH2",
                            xoauth2("marie.bernard", dupont_token)).challenges) == 1


def test_a_token_signed_by_another_key(environment: RunningEnvironment,
                                       dupont_token: str) -> None:
    forger = RSAKey.generate_key(2048, private=True)
    claims = claims_of(dupont_token)
    # the provider's key id, a forged signature; then the forger's own key id
    refused_everywhere(environment, DUPONT,
                       signed(claims, forger, kid=header_of(dupont_token)["kid"]))
    forger.ensure_kid()
    refused_everywhere(environment, DUPONT, signed(claims, forger))


def test_a_tampered_token(environment: RunningEnvironment, dupont_token: str) -> None:
    """Another professional's idNatPs put in Dupont's token, his signature kept."""
    victim = fresh_person(environment)
    victim_id = "8" + str(environment.runner.call(
        environment.service(HOSPITAL).store.get_person(victim.login)).rpps)
    head, _, signature = dupont_token.split(".")
    claims = {**claims_of(dupont_token), "SubjectNameID": victim_id,
              "preferred_username": victim_id}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    refused_everywhere(environment, victim.login, f"{head}.{body}.{signature}")


def test_a_token_of_another_issuer(environment: RunningEnvironment,
                                   dupont_token: str) -> None:
    claims = {**claims_of(dupont_token), "iss": "https://psc.attacker.example/auth"}
    refused_everywhere(environment, DUPONT, signed(claims, provider_key(environment)))


def test_a_token_for_another_audience(environment: RunningEnvironment) -> None:
    """A token the provider gave to another operator's client is not this operator's."""
    token = access_token(environment, DUPONT_ID, CABINET)
    assert claims_of(token)["aud"] == CABINET
    refused_everywhere(environment, DUPONT, token)


def test_a_token_below_eidas1_or_an_id_token(environment: RunningEnvironment) -> None:
    tokens = psc_tokens(environment)
    low = {**claims_of(tokens["access_token"]), "acr": "eidas0"}
    refused_everywhere(environment, DUPONT, signed(low, provider_key(environment)))
    refused_everywhere(environment, DUPONT, str(tokens["id_token"]))


def test_a_professional_without_an_account_here(environment: RunningEnvironment) -> None:
    """Dr Martin logs in at the provider through the hospital's client: a valid token,
    but he has no account at the hospital."""
    token = access_token(environment, MARTIN_ID)
    refused_everywhere(environment, "jean.martin@medecin.mssante.fr", token)


def test_xoauth2_before_starttls(environment: RunningEnvironment, dupont_token: str) -> None:
    op = environment.operator(HOSPITAL)
    with imaplib.IMAP4(op["imap"]["host"], op["imap"]["port"], timeout=30) as plain, \
            pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        plain.authenticate("XOAUTH2", Attempt(xoauth2(DUPONT, dupont_token)))
    ep = op["submission"]
    with smtplib.SMTP(ep["host"], ep["port"], timeout=30) as smtp:
        smtp.ehlo("client.test")
        assert "auth" not in smtp.esmtp_features
        blob = base64.b64encode(xoauth2(DUPONT, dupont_token)).decode()
        code, _ = smtp.docmd("AUTH", "XOAUTH2 " + blob)
        assert code == 530


def test_failed_tokens_use_up_the_connection_budget(environment: RunningEnvironment,
                                                    dupont_token: str) -> None:
    """Three refused tokens close the connection, as three wrong passwords do."""
    wrong = xoauth2("marie.bernard", dupont_token)
    client = connect(environment)
    try:
        for _ in range(3):
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                client.authenticate("XOAUTH2", Attempt(wrong))
        with pytest.raises(imaplib.IMAP4.abort):  # the server said BYE and closed
            client.noop()
    finally:
        client.shutdown()
    smtp = submission(environment)
    try:
        for code in (535, 535, 421):
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                smtp_auth(smtp, "XOAUTH2", wrong)
            assert refused.value.smtp_code == code
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()
    finally:
        smtp.close()


# -- key rotation -------------------------------------------------------------------------

def test_after_a_key_rotation_new_tokens_log_in(environment: RunningEnvironment,
                                                dupont_token: str) -> None:
    """The operator holds the provider's keys; a token signed by a newer key makes it
    fetch them again, and tokens of the retired key still work until they expire."""
    with imap_login(environment, "XOAUTH2", xoauth2(DUPONT, dupont_token)):
        pass  # the keys are now held by the operator
    time.sleep(3.5)  # psctoken.JWKS_MIN_INTERVAL: keys are fetched at most that often
    config = environment.env.data_dir / "trust.toml"
    result = CliRunner().invoke(app, ["psc", "rotate-key", "--config", str(config)])
    assert result.exit_code == 0, result.output
    fresh = access_token(environment)
    assert header_of(fresh)["kid"] != header_of(dupont_token)["kid"]
    for token in (fresh, dupont_token):
        with imap_login(environment, "XOAUTH2", xoauth2(DUPONT, token)) as client:
            assert client.select("INBOX")[0] == "OK"
        with submission(environment) as smtp:
            smtp_auth(smtp, "XOAUTH2", xoauth2(DUPONT, token))


# -- expiry: an environment whose tokens live two seconds ----------------------------------

@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEnvironment]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MSSANTE_PSC__LEEWAY", "0")
        with running_environment(tmp_path_factory.mktemp("psc-short"),
                                 psc_token_lifetime=2.0) as env:
            yield env


def test_an_expired_token(short_lived: RunningEnvironment) -> None:
    token = access_token(short_lived)
    with imap_login(short_lived, "XOAUTH2", xoauth2(DUPONT, token)):
        pass
    time.sleep(3.1)  # exp is in whole seconds
    refused_everywhere(short_lived, DUPONT, token)


# -- an operator without a [psc] issuer ----------------------------------------------

async def test_not_offered_without_an_issuer(environment: RunningEnvironment,
                                             tmp_path: Path) -> None:
    """IMAP and submission of an operator without the section: the mechanisms are
    neither advertised nor accepted."""
    tls = environment.service(HOSPITAL).config.tls
    store = await open_store(f"sqlite:///{tmp_path / 'operator.sqlite3'}")
    imaps, submissions = _free_port(), _free_port()
    config = OperatorConfig(
        path=Path("operator.toml"), tls=tls,
        operator=OperatorSettings(domains=[HOSPITAL], hostname=f"mta.{HOSPITAL}"),
        trust=TrustSettings(url="https://127.0.0.1:9"), imaps=Listener("127.0.0.1", imaps),
        submissions=Listener("127.0.0.1", submissions))
    assert not config.psc.enabled
    ctx = OperatorRuntime(config.operator, store, NoTrustSpace())
    imap = await start_imap(ctx, config)
    smtp = await start_listeners(ctx, config)
    blob = base64.b64encode(xoauth2(DUPONT, "token")).decode()

    def clients() -> None:
        with imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=tls_context(environment),
                               timeout=30) as client:
            assert "AUTH=PLAIN" in client.capabilities
            assert not {"AUTH=XOAUTH2", "AUTH=OAUTHBEARER"} & set(client.capabilities)
            with pytest.raises(imaplib.IMAP4.error, match="CANNOT"):
                client.authenticate("XOAUTH2", Attempt(xoauth2(DUPONT, "token")))
        with smtplib.SMTP_SSL("127.0.0.1", submissions, context=tls_context(environment),
                              timeout=30) as sub:
            sub.ehlo("client.test")
            assert sub.esmtp_features["auth"].split() == ["EXTERNAL", "LOGIN", "PLAIN"]
            assert sub.docmd("AUTH", "XOAUTH2 " + blob)[0] == 504

    try:
        await asyncio.to_thread(clients)
    finally:
        imap.close()
        smtp.close()
        await imap.wait_closed()
        await smtp.wait_closed()
        await store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
