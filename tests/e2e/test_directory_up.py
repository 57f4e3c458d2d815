"""The directory of ``mssante up``: the operators publish their mailboxes by themselves
and they are found through the trust space's autocomplete, FHIR API and extract."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx

from mssante.domain.mailboxes import MailboxType, Rules
from tests.conftest import RunningEnvironment, environment_json

PUBLISHED = {"dupont@ch-xyz.mssante.fr", "jean.martin@medecin.mssante.fr",
             "cardiologie@ch-xyz.mssante.fr", "compte_rendu_patient_noreply@ch-xyz.mssante.fr"}


def client(env: dict[str, Any]) -> httpx.Client:
    context = ssl.create_default_context(cafile=env["ca_file"])
    return httpx.Client(verify=context, timeout=10.0)


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the directory did not follow the operators in time")
        time.sleep(0.2)


def autocomplete(http: httpx.Client, env: dict[str, Any], text: str) -> list[str]:
    answer = http.get(env["directory"]["autocomplete"], params={"q": text, "limit": 50})
    answer.raise_for_status()
    return [hit["address"] for hit in answer.json()["results"]]


def extract(http: httpx.Client, env: dict[str, Any]) -> str:
    answer = http.get(env["directory"]["extract"])
    answer.raise_for_status()
    return answer.text


def test_the_demo_mailboxes_are_published(environment: RunningEnvironment) -> None:
    env = environment_json(environment)
    with client(env) as http:
        eventually(lambda: set(extract(http, env).split("|")) >= PUBLISHED)
        text = extract(http, env)
        assert "279035121518989@patient.mssante.fr" not in text  # patients are not listed
        assert "dupont@ch-xyz.mssante.fr" in autocomplete(http, env, "dupont cardio")
        assert "jean.martin@medecin.mssante.fr" in autocomplete(http, env, "martin lyon")
        assert "cardiologie@ch-xyz.mssante.fr" in autocomplete(http, env, "cardiologie paris")
        fhir = http.get(env["directory"]["fhir"] + "/Practitioner",
                        params={"mailbox-mss:exact": "dupont@ch-xyz.mssante.fr"})
        assert fhir.status_code == 200
        bundle = fhir.json()
        assert bundle["total"] == 1
        assert bundle["entry"][0]["resource"]["id"] == "810102727017"
        org = http.get(env["directory"]["fhir"] + "/Organization/1750000001").json()
        assert {"cardiologie@ch-xyz.mssante.fr", "compte_rendu_patient_noreply@ch-xyz.mssante.fr"
                } <= {t["value"] for t in org["telecom"]}


def test_a_new_mailbox_is_published_then_withdrawn(environment: RunningEnvironment) -> None:
    env = environment_json(environment)
    operator = environment.env.operators[0]  # ch-xyz.mssante.fr
    store = operator.store
    assert store is not None
    address = "urgences@ch-xyz.mssante.fr"
    rules = Rules(social_may_hold_per=operator.config.operator.social_may_hold_per)
    environment.runner.call(store.create_mailbox(
        address, MailboxType.ORG, rules=rules, responsible=["dupont@ch-xyz.mssante.fr"],
        description="Service des urgences", service="Urgences", structure="1750000001"))
    try:
        with client(env) as http:
            eventually(lambda: address in autocomplete(http, env, "urgences"))
            environment.runner.call(store.update_mailbox(address, liste_rouge=True))
            eventually(lambda: address not in autocomplete(http, env, "urgences"))
            assert address not in extract(http, env)
    finally:
        environment.runner.call(store.delete_mailbox(address))
    with client(env) as http:
        eventually(lambda: address not in extract(http, env))
