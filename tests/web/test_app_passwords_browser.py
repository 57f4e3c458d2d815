"""The webmail's application passwords in a real browser (Debian's chromium through
Playwright), by the names people and screen readers meet: a professional enrolled in
TOTP logs in with password and code, opens "Mots de passe d'application" from the
header, creates one for Thunderbird (shown once, announced in the status region), which
then opens IMAP, and revokes it, after which it no longer does. Every page passes
axe-core without a serious violation."""

from __future__ import annotations

import base64
import imaplib
import re
import time

import pytest
from playwright.sync_api import Page, expect

from mssante.auth import totp
from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL, connect, fresh_person
from tests.web.browser import axe_check, screenshot

LABEL = "Thunderbird du cabinet"


def url(env: RunningEnvironment) -> str:
    return str(env.operator(HOSPITAL)["web"]["url"])


def enrolled_secret(env: RunningEnvironment, login: str) -> bytes:
    """Enrol ``login`` in TOTP as `operator user totp enrol` does (on the environment's
    loop: this thread's belongs to the browser); their secret."""
    service = env.service(HOSPITAL)
    key = totp.SealingKey.create(service.config.operator.totp_key_path)
    enrolment = env.runner.call(totp.enrol(service.store.logins, key, login,
                                           issuer=HOSPITAL))
    padded = enrolment.secret + "=" * (-len(enrolment.secret) % 8)
    return base64.b32decode(padded)


def imap_login(env: RunningEnvironment, login: str, password: str) -> str:
    with connect(env) as client:
        return str(client.login(login, password)[0])


def test_a_professional_creates_and_revokes_an_app_password(
        environment: RunningEnvironment, page: Page) -> None:
    person = fresh_person(environment)
    secret = enrolled_secret(environment, person.login)
    with pytest.raises(imaplib.IMAP4.error, match="application password"):
        imap_login(environment, person.login, person.password)  # TOTP: not the password

    page.goto(url(environment) + "/connexion")
    page.get_by_label("Identifiant").fill(person.login)
    page.get_by_label("Mot de passe").fill(person.password)
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_label("Code de vérification").fill(totp.totp(secret, time.time()))
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_label("Boîte aux lettres")).to_be_visible()

    page.get_by_role("navigation", name="Compte").get_by_role(
        "link", name="Mots de passe d'application").click()
    expect(page.get_by_role("heading", name="Mots de passe d'application", level=1)
           ).to_be_visible()
    expect(page.get_by_text("Aucun mot de passe d'application.")).to_be_visible()
    axe_check(page)

    page.get_by_label("Nom de l'appareil").fill(LABEL)
    page.get_by_role("button", name="Créer un mot de passe d'application").click()
    status = page.get_by_role("status")
    expect(status).to_contain_text(LABEL)
    expect(status).to_contain_text("il ne sera plus affiché")
    shown = re.search(r"\b[a-z]{4} [a-z]{4} [a-z]{4} [a-z]{4}\b", status.inner_text())
    assert shown is not None
    row = page.get_by_role("row", name=re.compile(LABEL))
    expect(row).to_contain_text("Jamais")
    axe_check(page)
    screenshot(page, "webmail-app-passwords")

    assert imap_login(environment, person.login, shown.group(0)) == "OK"
    page.reload()  # shown once: gone from the page now, its last use there
    expect(page.get_by_text(shown.group(0))).to_have_count(0)
    expect(page.get_by_role("row", name=re.compile(LABEL))).to_contain_text("127.0.0.1")

    page.get_by_role("button", name=f"Révoquer « {LABEL} »").click()
    expect(page.get_by_role("status")).to_contain_text(f"« {LABEL} » est révoqué")
    expect(page.get_by_role("row", name=re.compile(LABEL))).to_have_count(0)
    expect(page.get_by_text("Aucun mot de passe d'application.")).to_be_visible()
    axe_check(page)
    with pytest.raises(imaplib.IMAP4.error, match="Authentication failed"):
        imap_login(environment, person.login, shown.group(0))
