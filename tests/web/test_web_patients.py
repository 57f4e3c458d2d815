"""A professional's conversations with patients over real HTTPS (httpx): the list reads
what the operator recorded at acceptance, and nobody closes a conversation that is not
in a mailbox they may write in."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mssante.pki.tls import client_context
from tests.conftest import RunningEnvironment
from tests.web.test_web_compose import secretary  # noqa: F401  (fixture)
from tests.web.test_web_login import account, hidden, log_in, web
from tests.web.test_web_reading import dupont  # noqa: F401  (fixture)

DUPONT = "dupont@ch-xyz.mssante.fr"
CARDIO = "cardiologie@ch-xyz.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"


def start_conversation(client: httpx.Client, subject: str) -> int:
    """Dr Dupont writes to the patient from the web; the conversation's id."""
    form = client.get(f"/courrier/{DUPONT}/nouveau")
    response = client.post(f"/courrier/{DUPONT}/envoyer", data={
        "csrf": hidden(form.text, "csrf"), "a": PATIENT, "objet": subject,
        "message": "Bonjour,\nvos résultats sont arrivés.\n"})
    assert response.status_code == 303
    listing = client.get(f"/courrier/{DUPONT}/patients", params={"etat": "ouvertes"})
    found = re.search(rf'href="/courrier/{re.escape(DUPONT)}/patients/(\d+)" dir="auto">'
                      + re.escape(subject), listing.text)
    assert found is not None, "the new conversation is not listed as open"
    return int(found.group(1))


@pytest.fixture
def csrf(dupont: httpx.Client) -> Iterator[str]:  # noqa: F811
    yield hidden(dupont.get(f"/courrier/{DUPONT}/patients").text, "csrf")


def test_closing_from_the_list_closes_it_on_both_sides(environment: RunningEnvironment,
                                                       dupont: httpx.Client,  # noqa: F811
                                                       csrf: str) -> None:
    subject = f"Bilan {uuid.uuid4().hex[:8]}"
    thread = start_conversation(dupont, subject)
    response = dupont.post(f"/courrier/{DUPONT}/patients/{thread}/clore",
                           data={"csrf": csrf, "retour": "liste"})
    assert (response.status_code, response.headers["location"]) == (
        303, f"/courrier/{DUPONT}/patients")
    page = dupont.get(response.headers["location"])
    assert "Conversation close." in page.text  # the status
    closed = dupont.get(f"/courrier/{DUPONT}/patients", params={"etat": "closes"}).text
    assert subject in closed
    shown = dupont.get(f"/courrier/{DUPONT}/patients/{thread}").text
    assert "Conversation close" in shown and "Clore la conversation" not in shown
    # the patient's operator got the closing message: the patient may no longer reply
    store = environment.service("patient.mssante.fr").store

    def closed_at_patient() -> bool:
        known = environment.runner.call(store.conversations(PATIENT))
        return any(c.closed and DUPONT in c.professionals for c in known
                   if c.thread.startswith("<"))

    environment.wait_for(closed_at_patient, timeout=30)
    # closing again says so and sends nothing more
    again = dupont.post(f"/courrier/{DUPONT}/patients/{thread}/clore", data={"csrf": csrf})
    assert "déjà close" in dupont.get(again.headers["location"]).text


def test_a_close_without_the_sessions_token_closes_nothing(dupont: httpx.Client,  # noqa: F811
                                                           ) -> None:
    thread = start_conversation(dupont, f"Bilan {uuid.uuid4().hex[:8]}")
    response = dupont.post(f"/courrier/{DUPONT}/patients/{thread}/clore",
                           data={"csrf": "forged"})
    assert response.status_code == 303
    assert "Clore la conversation" in dupont.get(f"/courrier/{DUPONT}/patients/{thread}").text


def test_another_mailbox_cannot_close_a_conversation_by_its_id(
        dupont: httpx.Client, secretary: httpx.Client) -> None:  # noqa: F811
    """Insecure direct object reference: the secretary names Dr Dupont's conversation
    under a mailbox she may use, or under his mailbox, and closes nothing."""
    thread = start_conversation(dupont, f"Bilan {uuid.uuid4().hex[:8]}")
    token = hidden(secretary.get(f"/courrier/{CARDIO}/patients").text, "csrf")
    under_hers = secretary.post(f"/courrier/{CARDIO}/patients/{thread}/clore",
                                data={"csrf": token})
    assert under_hers.status_code == 403
    assert secretary.get(f"/courrier/{CARDIO}/patients/{thread}").status_code == 404
    under_his = secretary.post(f"/courrier/{DUPONT}/patients/{thread}/clore",
                               data={"csrf": token})
    assert under_his.status_code == 404  # not a mailbox of hers
    assert "Clore la conversation" in dupont.get(f"/courrier/{DUPONT}/patients/{thread}").text


def test_a_patient_has_no_such_list(environment: RunningEnvironment) -> None:
    base = web(environment, "patient.mssante.fr")
    with httpx.Client(base_url=base, verify=client_context(Path(environment.ca_file)),
                      timeout=30, headers={"Origin": base}) as client:
        assert log_in(client, PATIENT, account(environment, PATIENT)["password"]
                      ).status_code == 303
        response = client.get(f"/courrier/{PATIENT}/patients")
        assert (response.status_code, response.headers["location"]) == (
            303, f"/courrier/{PATIENT}/conversations")
        assert client.get(f"/courrier/{PATIENT}/patients/1").status_code == 404
