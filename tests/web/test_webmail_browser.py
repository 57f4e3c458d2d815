"""The webmail in a real browser (Debian's chromium through Playwright), by the names
people and screen readers meet: a secretary sends from the service mailbox, a refused
address is announced, Dr Dupont logs in with Pro Santé Connect, and a patient
conversation runs from the first message to its closing. Every page passes axe-core
without a serious violation."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from mssante.store.models import MessageSummary
from tests.conftest import RunningEnvironment
from tests.web.browser import axe_check, new_context, screenshot
from tests.web.test_web_login import DUPONT_ID, SECRETARY, account

HOSPITAL = "ch-xyz.mssante.fr"
PATIENTS = "patient.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"


def url(env: RunningEnvironment, domain: str = HOSPITAL) -> str:
    return str(env.operator(domain)["web"]["url"])


def log_in(page: Page, env: RunningEnvironment, login: str, domain: str = HOSPITAL) -> None:
    page.goto(url(env, domain) + "/connexion")
    page.get_by_label("Identifiant").fill(login)
    page.get_by_label("Mot de passe").fill(account(env, login)["password"])
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_label("Boîte aux lettres")).to_be_visible()


def write(page: Page, to: str, subject: str, text: str) -> None:
    page.get_by_role("link", name="Nouveau message").click()
    page.get_by_label("À", exact=True).fill(to)
    page.get_by_label("Objet").fill(subject)
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Envoyer").click()


def test_the_secretary_sends_from_the_service_mailbox(environment: RunningEnvironment,
                                                      page: Page) -> None:
    page.goto(url(environment))
    expect(page.get_by_role("button", name="Se connecter")).to_be_visible()
    axe_check(page)
    screenshot(page, "webmail-login")
    log_in(page, environment, SECRETARY)
    axe_check(page)
    page.get_by_label("Boîte aux lettres").select_option("cardiologie@ch-xyz.mssante.fr")
    page.get_by_role("button", name="Afficher").click()
    page.get_by_role("link", name="Nouveau message").click()
    axe_check(page)
    screenshot(page, "webmail-compose")
    page.go_back()
    subject = f"Compte rendu de consultation {uuid.uuid4().hex[:6]}"
    write(page, MARTIN, subject, "Bonjour,\nci-joint le compte rendu.")
    expect(page.get_by_role("status")).to_contain_text("Message envoyé")
    environment.wait_message(MARTIN, subject)
    page.get_by_role("link", name="Envoyés").click()
    expect(page.get_by_role("link", name=re.compile(re.escape(subject)))).to_be_visible()
    axe_check(page)
    screenshot(page, "webmail-sent")


def test_an_address_outside_the_trust_space_is_refused_in_the_form(
        environment: RunningEnvironment, page: Page) -> None:
    log_in(page, environment, SECRETARY)
    write(page, "docteur@gmail.com", "Essai", "x")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("docteur@gmail.com")
    expect(alert).to_contain_text("trust space")
    expect(page.get_by_label("À", exact=True)).to_have_value("docteur@gmail.com")
    axe_check(page)


def test_dupont_logs_in_with_pro_sante_connect(environment: RunningEnvironment,
                                               page: Page) -> None:
    page.goto(url(environment) + "/connexion")
    page.get_by_role("link", name=re.compile("Pro Santé Connect")).click()
    page.get_by_label("Identifiant e-CPS").fill(DUPONT_ID)
    page.get_by_role("button", name="Se connecter").click()
    mailbox = page.get_by_label("Boîte aux lettres")
    expect(mailbox).to_be_visible()
    expect(mailbox.locator("option")).to_contain_text(["dupont@ch-xyz.mssante.fr",
                                                       "cardiologie@ch-xyz.mssante.fr"])
    axe_check(page)
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page.get_by_label("Identifiant", exact=True)).to_be_visible()


def test_a_patient_conversation_from_first_message_to_closing(
        environment: RunningEnvironment, page: Page) -> None:
    subject = f"Résultats de votre bilan {uuid.uuid4().hex[:6]}"
    doctor = page
    log_in(doctor, environment, "dupont@ch-xyz.mssante.fr")
    write(doctor, PATIENT, subject, "Bonjour, vos résultats sont normaux.")
    expect(doctor.get_by_role("status")).to_contain_text("Message envoyé")
    environment.wait_message(PATIENT, subject)

    with new_context(doctor.context.browser) as context:  # type: ignore[arg-type]
        patient = context.new_page()
        log_in(patient, environment, PATIENT, PATIENTS)
        expect(patient.get_by_role("link", name="Nouveau message")).to_have_count(0)
        patient.get_by_role("link", name=re.compile(re.escape(subject))).click()
        expect(patient.get_by_role("link", name="Répondre")).to_be_visible()
        # the professional by name and profession, from the national directory
        expect(patient.locator("dd").first).to_contain_text("DUPONT")
        expect(patient.locator("dd").first).to_contain_text("Médecin")
        axe_check(patient)
        screenshot(patient, "patient-message")
        patient.get_by_role("link", name="Répondre").click()
        patient.get_by_label("Message", exact=True).fill("Merci docteur.")
        patient.get_by_role("button", name="Envoyer").click()
        expect(patient.get_by_role("status")).to_contain_text("Message envoyé")
        environment.wait_message("dupont@ch-xyz.mssante.fr", f"Re: {subject}")

        doctor.get_by_role("link", name="Boîte de réception").click()
        doctor.get_by_role("link", name=re.compile(re.escape(f"Re: {subject}"))).click()
        doctor.get_by_role("button", name="Clore la conversation").click()
        expect(doctor.get_by_role("status")).to_contain_text("Conversation close")
        expect(doctor.get_by_text("Conversation close", exact=True)).to_be_visible()
        environment.wait_message(PATIENT, f"Re: {subject}")  # the closing message

        patient.goto(url(environment, PATIENTS) + "/courrier")
        patient.get_by_role("link", name="Mes conversations").click()
        card = patient.locator("section").filter(
            has=patient.get_by_role("link", name=re.compile(re.escape(subject))))
        expect(card.get_by_role("heading")).to_contain_text("DUPONT")
        expect(card.get_by_text("Conversation close", exact=True)).to_be_visible()
        axe_check(patient)
        screenshot(patient, "patient-conversations")
        card.get_by_role("link", name=re.compile(re.escape(subject))).first.click()
        expect(patient.get_by_text("Conversation close", exact=True)).to_be_visible()
        expect(patient.get_by_role("link", name="Répondre")).to_have_count(0)
        axe_check(patient)
        screenshot(patient, "patient-closed")


def test_recipients_are_suggested_from_the_directory(environment: RunningEnvironment,
                                                    page: Page) -> None:
    """The À field is a combobox: typing a name lists mailboxes of the national
    directory as options; the keyboard picks one."""
    log_in(page, environment, SECRETARY)
    page.get_by_label("Boîte aux lettres").select_option("cardiologie@ch-xyz.mssante.fr")
    page.get_by_role("button", name="Afficher").click()
    page.get_by_role("link", name="Nouveau message").click()
    field = page.get_by_role("combobox", name="À")
    field.press_sequentially("mart", delay=50)
    option = page.get_by_role("option", name=re.compile("MARTIN", re.I)).first
    expect(option).to_be_visible()
    expect(option).to_contain_text(MARTIN)
    axe_check(page)
    screenshot(page, "webmail-autocomplete")
    field.press("ArrowDown")
    field.press("Enter")
    expect(field).to_have_value(re.compile(re.escape(MARTIN)))


def test_on_a_phone_nothing_scrolls_sideways(environment: RunningEnvironment,
                                            page: Page) -> None:
    """A phone's viewport (390 × 844, touch): the login, the message list (with a long
    subject and long addresses in it) and the compose form fit its width, and pass
    axe-core."""
    long_subject = "Compte_rendu_" + "tres_long_sans_espace_" * 8 + uuid.uuid4().hex[:6]
    sent = environment.runner.call(environment.service(HOSPITAL).store.accept_message(
        (f"From: compte_rendu_patient_noreply@ch-xyz.mssante.fr\r\n"
         f"To: cardiologie@ch-xyz.mssante.fr\r\nSubject: {long_subject}\r\n"
         f"Message-ID: <{uuid.uuid4().hex}@medecin.mssante.fr>\r\n\r\nx\r\n").encode(),
        envelope_from=MARTIN, local=["cardiologie@ch-xyz.mssante.fr"], remote=[],
        summary=MessageSummary(message_id=None, subject=long_subject,
                               from_header="compte_rendu_patient_noreply@ch-xyz.mssante.fr",
                               date_header=None)))
    assert sent
    with new_context(page.context.browser,  # type: ignore[arg-type]
                     viewport={"width": 390, "height": 844}, is_mobile=True,
                     has_touch=True) as context:
        phone = context.new_page()
        phone.goto(url(environment) + "/connexion")

        def fits() -> None:
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{phone.url} is {width} px wide"
            axe_check(phone)

        fits()
        log_in(phone, environment, SECRETARY)
        fits()
        screenshot(phone, "webmail-phone")
        phone.get_by_label("Boîte aux lettres").select_option("cardiologie@ch-xyz.mssante.fr")
        phone.get_by_role("button", name="Afficher").click()
        phone.get_by_role("link", name="Nouveau message").click()
        fits()


def test_the_doctor_follows_and_closes_patient_conversations_from_one_page(
        environment: RunningEnvironment, page: Page) -> None:
    """"Conversations avec des patients": which are open, who replied, one conversation's
    messages, and closing one from the list; the patient then reads it closed."""
    subject = f"Suivi de votre traitement {uuid.uuid4().hex[:6]}"
    doctor = page
    log_in(doctor, environment, "dupont@ch-xyz.mssante.fr")
    write(doctor, PATIENT, subject, "Bonjour, comment allez-vous ?")
    expect(doctor.get_by_role("status")).to_contain_text("Message envoyé")
    environment.wait_message(PATIENT, subject)
    doctor.get_by_role("link", name="Conversations avec des patients").click()
    row = doctor.get_by_role("row").filter(
        has=doctor.get_by_role("link", name=subject, exact=True))
    expect(row).to_contain_text("Ouverte")
    expect(row).to_contain_text(PATIENT)

    with new_context(doctor.context.browser) as context:  # type: ignore[arg-type]
        patient = context.new_page()
        log_in(patient, environment, PATIENT, PATIENTS)
        patient.get_by_role("link", name=re.compile(re.escape(subject))).click()
        patient.get_by_role("link", name="Répondre").click()
        patient.get_by_label("Message", exact=True).fill("Très bien, merci.")
        patient.get_by_role("button", name="Envoyer").click()
        expect(patient.get_by_role("status")).to_contain_text("Message envoyé")
        environment.wait_message("dupont@ch-xyz.mssante.fr", f"Re: {subject}")

        doctor.reload()
        expect(row.get_by_role("cell").nth(2)).to_have_text("1")  # the patient's replies
        axe_check(doctor)
        screenshot(doctor, "webmail-patient-conversations")
        row.get_by_role("link", name=subject, exact=True).click()
        messages = doctor.get_by_role("listitem").filter(has_text=subject)
        expect(messages).to_have_count(2)
        expect(messages.nth(1)).to_contain_text("Le patient")
        axe_check(doctor)
        doctor.go_back()
        row.get_by_role("button", name=f"Clore la conversation « {subject} »").click()
        expect(doctor.get_by_role("status")).to_contain_text("Conversation close")
        doctor.get_by_role("link", name=re.compile("^Closes")).click()
        expect(row).to_contain_text("Conversation close")
        expect(row.get_by_role("button")).to_have_count(0)
        environment.wait_message(PATIENT, f"Re: {subject}")  # the closing message

        patient.goto(url(environment, PATIENTS) + "/courrier")
        patient.get_by_role("link", name="Mes conversations").click()
        card = patient.locator("section").filter(
            has=patient.get_by_role("link", name=re.compile(re.escape(subject))))
        expect(card.get_by_text("Conversation close", exact=True)).to_be_visible()
