"""The web login's second factor over real HTTPS: a person enrolled in TOTP (by the
operator's command) types the code of their application after the password; a patient
whose one-time code is on receives it at their personal address (the demo's
notification sink) and types it. Wrong codes are refused and counted."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mssante.auth.totp import totp
from mssante.cli import app
from mssante.pki.tls import client_context
from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL, fresh_person
from tests.web.test_web_login import account, log_in, web

PATIENTS = "patient.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"


def client_for(environment: RunningEnvironment, domain: str) -> httpx.Client:
    base = web(environment, domain)
    return httpx.Client(base_url=base, verify=client_context(Path(environment.ca_file)),
                        timeout=30, headers={"Origin": base})


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_a_person_enrolled_in_totp_gives_the_code_after_the_password(
        environment: RunningEnvironment) -> None:
    person = fresh_person(environment)
    config = str(environment.service(HOSPITAL).config.path)
    out = cli("operator", "user", "totp", "enrol", person.login, "-c", config)
    found = re.search(r"secret: ([A-Z2-7]+)", out)
    assert found is not None
    secret = base64.b32decode(found.group(1) + "=" * (-len(found.group(1)) % 8))
    with client_for(environment, HOSPITAL) as client:
        response = log_in(client, person.login, person.password)
        assert response.status_code == 303 and response.headers["location"] == "/connexion/code"
        assert client.get("/courrier").headers["location"] == "/connexion"  # not yet in
        page = client.get("/connexion/code")
        assert '<label for="code">Code de vérification</label>' in page.text
        wrong = client.post("/connexion/code", data={"code": "000000"})
        assert wrong.status_code == 401 and 'role="alert"' in wrong.text
        code = totp(secret, time.time())
        right = client.post("/connexion/code", data={"code": code})
        assert right.status_code == 303 and right.headers["location"] == "/courrier"
        assert client.get("/courrier").headers["location"].startswith("/courrier/")
    with client_for(environment, HOSPITAL) as again:  # the same code is not taken twice
        log_in(again, person.login, person.password)
        assert again.post("/connexion/code", data={"code": code}).status_code == 401


@pytest.fixture
def patient_code_on(environment: RunningEnvironment) -> Iterator[None]:
    config = str(environment.service(PATIENTS).config.path)
    cli("operator", "user", "contact", PATIENT, "--code", "-c", config)
    try:
        yield
    finally:
        cli("operator", "user", "contact", PATIENT, "--no-code", "-c", config)


def newest_code(environment: RunningEnvironment, after: float) -> str:
    folder = environment.env.notifications_dir

    def found() -> bool:
        return any(p.stat().st_mtime >= after for p in folder.glob("*.eml"))

    environment.wait_for(found, 20, "a one-time code in the notification sink")
    newest = max((p for p in folder.glob("*.eml")), key=lambda p: p.stat().st_mtime)
    message = email.message_from_bytes(newest.read_bytes(), policy=email.policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    code = re.search(r"\b(\d{6,8})\b", body.get_content())
    assert code is not None
    return code.group(1)


def test_a_patient_types_the_code_sent_to_their_personal_address(
        environment: RunningEnvironment, patient_code_on: None) -> None:
    with client_for(environment, PATIENTS) as client:
        started = time.time() - 1
        response = log_in(client, PATIENT, account(environment, PATIENT)["password"])
        assert response.headers["location"] == "/connexion/code"
        page = client.get("/connexion/code")
        assert "adresse personnelle" in page.text
        code = newest_code(environment, started)
        right = client.post("/connexion/code", data={"code": code})
        assert right.status_code == 303 and right.headers["location"] == "/courrier"
        # the code is used up, and the login waiting for it is done
        assert client.post("/connexion/code", data={"code": code}).status_code == 400


def test_five_wrong_codes_send_the_patient_back_to_the_password(
        environment: RunningEnvironment, patient_code_on: None) -> None:
    with client_for(environment, PATIENTS) as client:
        log_in(client, PATIENT, account(environment, PATIENT)["password"])
        answers = [client.post("/connexion/code", data={"code": "1"}) for _ in range(5)]
        assert [a.status_code for a in answers] == [401] * 5
        assert "connectez-vous à nouveau" in answers[-1].text
        assert client.get("/connexion/code").headers["location"] == "/connexion"

