"""Drafts and acting on messages in a real browser (Debian's chromium through
Playwright), by the names people and screen readers meet, with the keyboard where it
matters; an IMAP client (imaplib) sees each change: the draft with ``\\Draft``, the
``\\Flagged`` flag, ``\\Seen`` taken off, the move. Every new page and state passes
axe-core, on a desktop and on a phone's width."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from tests.conftest import RunningEnvironment
from tests.imap.conftest import HOSPITAL, Account, fresh_person
from tests.imap.conftest import login as imap_login
from tests.web.browser import axe_check, new_context, screenshot

DUPONT = "dupont@ch-xyz.mssante.fr"


def log_in(page: Page, env: RunningEnvironment, who: Account) -> None:
    page.goto(str(env.operator(HOSPITAL)["web"]["url"]) + "/connexion")
    page.get_by_label("Identifiant").fill(who.login)
    page.get_by_label("Mot de passe").fill(who.password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_label("Boîte aux lettres")).to_be_visible()


def imap_flags(env: RunningEnvironment, who: Account, folder: str) -> list[set[bytes]]:
    """The flags of every message of a folder, as an IMAP client fetches them, but
    ``\\Recent``: a session's own view (RFC 3501 §2.3.2), which EXAMINE shows for the
    messages no session has selected yet."""
    imap = imap_login(env, who)
    try:
        status, count = imap.select(folder, readonly=True)
        assert status == "OK"
        if count[0] == b"0":
            return []
        status, data = imap.fetch("1:*", "(FLAGS)")
        assert status == "OK"
        found = [re.search(rb"FLAGS \(([^)]*)\)", d) for d in data if isinstance(d, bytes)]
        return [set(f.group(1).split()) - {b"\\Recent"} for f in found if f is not None]
    finally:
        imap.logout()


def put(env: RunningEnvironment, address: str, subject: str) -> None:
    body = (f"From: Dr Martin <jean.martin@medecin.mssante.fr>\r\nTo: {address}\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}@medecin.mssante.fr>\r\n"
            "\r\nBonjour.\r\n").encode()
    env.runner.call(env.service(HOSPITAL).store.folders.bulk_append(
        address, "INBOX", [(body, "", 1_700_000_000.0)]))


def test_a_draft_is_saved_resumed_and_sent(environment: RunningEnvironment,
                                          page: Page) -> None:
    person = fresh_person(environment)
    subject = f"Demande d'avis {uuid.uuid4().hex[:6]}"
    log_in(page, environment, person)
    page.get_by_role("link", name="Nouveau message").click()
    page.get_by_label("À", exact=True).fill(DUPONT)
    page.get_by_label("Objet").fill(subject)
    page.get_by_label("Message", exact=True).fill("Cher confrère,\nà compléter")
    page.get_by_label("Demander un accusé de remise").check()
    page.get_by_role("button", name="Enregistrer le brouillon").click()
    expect(page.get_by_role("status")).to_contain_text("Brouillon enregistré")
    expect(page.get_by_label("Objet")).to_have_value(subject)
    expect(page.get_by_label("Demander un accusé de remise")).to_be_checked()
    axe_check(page)
    screenshot(page, "webmail-draft-saved")
    assert imap_flags(environment, person, "Drafts") == [{b"\\Draft", b"\\Seen"}]

    page.get_by_label("Message", exact=True).fill("Cher confrère,\nvotre avis ?")
    page.get_by_role("button", name="Enregistrer le brouillon").click()
    expect(page.get_by_role("status")).to_contain_text("Brouillon enregistré")
    assert len(imap_flags(environment, person, "Drafts")) == 1  # replaced, not added

    page.get_by_role("link", name="Brouillons").click()
    page.get_by_role("link", name=re.compile(re.escape(subject))).click()
    resume = page.get_by_role("link", name="Reprendre le brouillon")
    expect(resume).to_be_visible()
    axe_check(page)
    resume.click()
    expect(page.get_by_label("Message", exact=True)).to_have_value(
        re.compile("votre avis"))
    page.get_by_role("button", name="Envoyer").click()
    expect(page.get_by_role("status")).to_contain_text("Message envoyé")
    environment.wait_message(DUPONT, subject)
    page.get_by_role("link", name="Brouillons").click()
    expect(page.get_by_text("Aucun message.")).to_be_visible()
    assert imap_flags(environment, person, "Drafts") == []


def test_acting_on_messages_with_the_keyboard(environment: RunningEnvironment,
                                             page: Page) -> None:
    person = fresh_person(environment)
    subject = f"Résultats {uuid.uuid4().hex[:6]}"
    put(environment, person.address, subject)
    log_in(page, environment, person)
    page.get_by_role("link", name=re.compile(re.escape(subject))).click()
    page.get_by_role("button", name="Marquer comme important").click()
    expect(page.get_by_role("status")).to_contain_text("Message marqué comme important")
    assert imap_flags(environment, person, "INBOX") == [{b"\\Flagged", b"\\Seen"}]
    axe_check(page)

    page.get_by_role("link", name=re.compile(re.escape(subject))).click()
    expect(page.get_by_role("button", name="Retirer l'important")).to_be_visible()
    axe_check(page)
    screenshot(page, "webmail-message-actions")
    page.get_by_role("button", name="Marquer comme non lu").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Message marqué comme non lu")
    assert imap_flags(environment, person, "INBOX") == [{b"\\Flagged"}]

    # from the list: ticked with the keyboard, moved to Archives
    box = page.get_by_role("checkbox", name=f"Sélectionner : {subject}")
    box.focus()
    page.keyboard.press("Space")
    expect(box).to_be_checked()
    page.get_by_label("Déplacer vers").select_option(label="Archives")
    page.get_by_role("button", name="Déplacer", exact=True).press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Message déplacé vers Archives")
    axe_check(page)
    assert imap_flags(environment, person, "INBOX") == []
    assert imap_flags(environment, person, "Archive") == [{b"\\Flagged"}]

    # deleted: to the Trash, then for good once confirmed
    page.get_by_role("link", name="Archives").click()
    page.get_by_role("link", name=re.compile(re.escape(subject))).click()
    page.get_by_role("button", name="Supprimer", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Message placé dans la corbeille")
    page.get_by_role("link", name="Corbeille").click()
    page.get_by_role("checkbox", name=f"Sélectionner : {subject}").check()
    page.get_by_role("button", name="Supprimer définitivement").click()
    expect(page.get_by_role("heading", name="Supprimer définitivement ?")).to_be_visible()
    axe_check(page)
    screenshot(page, "webmail-confirm-delete")
    assert len(imap_flags(environment, person, "Trash")) == 1  # not before the confirmation
    page.get_by_role("button", name="Supprimer définitivement").click()
    expect(page.get_by_role("status")).to_contain_text("Message supprimé définitivement")
    assert imap_flags(environment, person, "Trash") == []


def test_the_actions_fit_a_phone(environment: RunningEnvironment, page: Page) -> None:
    person = fresh_person(environment)
    subject = f"Sur téléphone {uuid.uuid4().hex[:6]}"
    put(environment, person.address, subject)
    with new_context(page.context.browser,  # type: ignore[arg-type]
                     viewport={"width": 390, "height": 844}, is_mobile=True,
                     has_touch=True) as context:
        phone = context.new_page()
        log_in(phone, environment, person)

        def fits() -> None:
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{phone.url} is {width} px wide"
            axe_check(phone)

        expect(phone.get_by_role("checkbox", name=f"Sélectionner : {subject}")).to_be_visible()
        fits()
        screenshot(phone, "webmail-phone-actions")
        phone.get_by_role("link", name=re.compile(re.escape(subject))).click()
        expect(phone.get_by_role("button", name="Marquer comme important")).to_be_visible()
        fits()
