"""The webmail's application passwords over real HTTPS (httpx): an application password
never opens the webmail; creating one needs a session that passed the second factor;
every form needs the session's CSRF token; the password is shown once, in the status
region of a page that is not cached. The page in a browser, by accessible names:
test_app_passwords_browser.py."""

from __future__ import annotations

import base64
import html
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from mssante.auth import apppasswords
from mssante.auth.totp import totp
from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL, Account, connect, fresh_person
from tests.web.test_web_login import hidden, log_in
from tests.web.test_web_second_factor import cli, client_for

PAGE = "/compte/mots-de-passe-application"


def enrol(environment: RunningEnvironment, login: str) -> bytes:
    """Enrol ``login`` in TOTP with the operator's command; their secret."""
    config = str(environment.service(HOSPITAL).config.path)
    out = cli("operator", "user", "totp", "enrol", login, "-c", config)
    found = re.search(r"secret: ([A-Z2-7]+)", out)
    assert found is not None
    return base64.b32decode(found.group(1) + "=" * (-len(found.group(1)) % 8))


def app_password(environment: RunningEnvironment, login: str, label: str) -> str:
    store = environment.service(HOSPITAL).store
    created = environment.runner.call(apppasswords.create(store.logins, login, label))
    return created.password


@pytest.fixture
def enrolled(environment: RunningEnvironment) -> Iterator[tuple[httpx.Client, Account]]:
    """A professional enrolled in TOTP, logged in at the web with password and code."""
    person = fresh_person(environment)
    secret = enrol(environment, person.login)
    with client_for(environment, HOSPITAL) as client:
        assert log_in(client, person.login, person.password).headers["location"] == \
            "/connexion/code"
        done = client.post("/connexion/code", data={"code": totp(secret, time.time())})
        assert done.headers["location"] == "/courrier"
        yield client, person


def test_an_app_password_does_not_open_the_webmail(environment: RunningEnvironment) -> None:
    """It opens IMAP, and at the web it is a wrong password like any other."""
    person = fresh_person(environment)
    password = app_password(environment, person.login, "Thunderbird")
    with connect(environment) as imap:
        assert imap.login(person.login, password)[0] == "OK"
    with client_for(environment, HOSPITAL) as client:
        for typed in (password, password.replace(" ", "")):
            refused = log_in(client, person.login, typed)
            assert refused.status_code == 401
            assert "Identifiant ou mot de passe incorrect." in refused.text
        assert client.get("/courrier").headers["location"] == "/connexion"


def test_creating_one_needs_a_session_that_passed_the_second_factor(
        environment: RunningEnvironment) -> None:
    """A password alone (a person without a second factor) may list and revoke, not
    create: a stolen password does not make itself a lasting way in."""
    person = fresh_person(environment)
    password = app_password(environment, person.login, "Ancien téléphone")
    with client_for(environment, HOSPITAL) as client:
        assert log_in(client, person.login, person.password).headers["location"] == \
            "/courrier"
        page = client.get(PAGE)
        assert page.status_code == 200 and "Ancien téléphone" in page.text
        assert "Nom de l'appareil</label>" not in html.unescape(page.text)
        assert "connectez-vous avec votre second facteur" in html.unescape(page.text)
        refused = client.post(PAGE, data={"csrf": hidden(page.text, "csrf"), "nom": "x"})
        assert refused.status_code == 403 and 'role="alert"' in refused.text
        assert [e.label for e in listed(environment, person.login)] == ["Ancien téléphone"]
        revoke = re.search(rf'action="({PAGE}/\d+/revoquer)"', page.text)
        assert revoke is not None
        done = client.post(revoke.group(1), data={"csrf": hidden(page.text, "csrf")})
        assert done.status_code == 303 and done.headers["location"] == PAGE
        assert listed(environment, person.login) == []
        assert "est révoqué" in client.get(PAGE).text
    with connect(environment) as imap, pytest.raises(imap.error):
        imap.login(person.login, password)


def listed(environment: RunningEnvironment, login: str) -> list[apppasswords.AppPassword]:
    store = environment.service(HOSPITAL).store
    return environment.runner.call(store.logins.app_passwords(login))


def test_the_password_is_shown_once_in_the_status_region(
        enrolled: tuple[httpx.Client, Account], environment: RunningEnvironment) -> None:
    client, person = enrolled
    page = client.get(PAGE)
    answer = client.post(PAGE, data={"csrf": hidden(page.text, "csrf"),
                                     "nom": "  Thunderbird <b>du</b> cabinet "})
    assert answer.status_code == 303 and answer.headers["location"] == PAGE  # no re-post
    created = client.get(PAGE)
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    status = re.search(r'<div role="status" class="notice">(.*?)</div>', created.text,
                       re.S)
    assert status is not None
    shown = re.search(r"<code[^>]*>([a-z]{4}(?: [a-z]{4}){3})</code>", status.group(1))
    assert shown is not None
    assert "Thunderbird &lt;b&gt;du&lt;/b&gt; cabinet" in status.group(1)  # escaped
    again = client.get(PAGE).text
    assert shown.group(1) not in again  # once
    assert html.escape("Thunderbird <b>du</b> cabinet", quote=False) in again
    assert "Jamais" in again
    with connect(environment) as imap:
        assert imap.login(person.login, shown.group(1))[0] == "OK"
    assert " depuis 127.0.0.1" in client.get(PAGE).text  # its last use


def test_every_form_needs_the_sessions_token(enrolled: tuple[httpx.Client, Account],
                                             environment: RunningEnvironment) -> None:
    client, person = enrolled
    refused = client.post(PAGE, data={"csrf": "forged", "nom": "Thunderbird"})
    assert refused.status_code == 400 and listed(environment, person.login) == []
    app_password(environment, person.login, "Téléphone")
    (entry,) = listed(environment, person.login)
    refused = client.post(f"{PAGE}/{entry.id}/revoquer", data={"csrf": "forged"})
    assert refused.status_code == 400 and listed(environment, person.login) == [entry]


def test_a_label_is_checked(enrolled: tuple[httpx.Client, Account],
                            environment: RunningEnvironment) -> None:
    client, person = enrolled
    token = hidden(client.get(PAGE).text, "csrf")
    for label in ("   ", "x" * 65, "a\u202eb"):
        refused = client.post(PAGE, data={"csrf": token, "nom": label})
        assert refused.status_code == 400
        assert 'role="alert"' in refused.text and 'aria-invalid="true"' in refused.text
    assert listed(environment, person.login) == []


def test_another_persons_password_cannot_be_revoked(
        enrolled: tuple[httpx.Client, Account], environment: RunningEnvironment) -> None:
    client, _ = enrolled
    other = fresh_person(environment)
    app_password(environment, other.login, "Thunderbird")
    (entry,) = listed(environment, other.login)
    token = hidden(client.get(PAGE).text, "csrf")
    answer = client.post(f"{PAGE}/{entry.id}/revoquer", data={"csrf": token})
    assert answer.status_code == 303
    assert "n'existe plus" in html.unescape(client.get(PAGE).text)
    assert listed(environment, other.login) == [entry]


def test_without_a_session_the_page_sends_to_the_login(
        environment: RunningEnvironment) -> None:
    with client_for(environment, HOSPITAL) as client:
        assert client.get(PAGE).headers["location"] == "/connexion"
        assert client.post(PAGE, data={"nom": "x"}).headers["location"] == "/connexion"


def test_creating_and_revoking_are_recorded_as_the_persons_from_their_address(
        enrolled: tuple[httpx.Client, Account], environment: RunningEnvironment) -> None:
    """The audit trail names the session's login and the browser's address, never the
    password shown."""
    client, person = enrolled
    client.post(PAGE, data={"csrf": hidden(client.get(PAGE).text, "csrf"), "nom": "Agenda"})
    shown = re.search(r"<code[^>]*>([a-z]{4}(?: [a-z]{4}){3})</code>", client.get(PAGE).text)
    assert shown is not None
    (entry,) = listed(environment, person.login)
    answer = client.post(f"{PAGE}/{entry.id}/revoquer",
                         data={"csrf": hidden(client.get(PAGE).text, "csrf")})
    assert answer.status_code == 303 and listed(environment, person.login) == []
    store = environment.service(HOSPITAL).store
    mine = [e.event for e in environment.runner.call(store.audit_entries(limit=100_000))
            if e.event.action.startswith("admin.person.app-password.")
            and e.event.detail.startswith(f"{person.login}:")]
    assert [(e.action, e.actor, e.source, e.detail) for e in mine] == [
        (f"admin.person.app-password.{verb}", person.login, "HTTPS 127.0.0.1",
         f"{person.login}: application password {entry.id} (Agenda)")
        for verb in ("create", "revoke")]
    assert all(shown.group(1) not in str(e) and shown.group(1).replace(" ", "") not in str(e)
               for e in mine)
