"""Read receipts and a sent message's timeline in a real browser (Debian's chromium
through Playwright), by the names people and screen readers meet: Dr Dupont asks Dr
Martin, at another operator, for a read receipt; Martin is asked and sends it; Dupont's
« Suivi de l'envoi » shows the message read (« lu »). A patient cannot refuse one: it
is sent as they open the message, once. Every page passes axe-core."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from tests.conftest import RunningEnvironment
from tests.web.browser import axe_check, new_context, screenshot
from tests.web.test_webmail_browser import log_in, url

HOSPITAL = "ch-xyz.mssante.fr"
PRACTICE = "medecin.mssante.fr"
PATIENTS = "patient.mssante.fr"
DUPONT = "dupont@ch-xyz.mssante.fr"
MARTIN = "jean.martin@medecin.mssante.fr"
PATIENT = "279035121518989@patient.mssante.fr"


def write_asking_receipt(page: Page, to: str, subject: str) -> None:
    page.get_by_role("link", name="Nouveau message").click()
    page.get_by_label("À", exact=True).fill(to)
    page.get_by_label("Objet").fill(subject)
    page.get_by_label("Message", exact=True).fill("Bonjour,\nvoici vos résultats.")
    page.get_by_label("Demander un accusé de lecture").check()
    page.get_by_role("button", name="Envoyer").click()
    expect(page.get_by_role("status")).to_contain_text("Message envoyé")


def state_of(page: Page, recipient: str) -> str:
    """The state the table « État par destinataire » gives ``recipient``."""
    table = page.get_by_role("region", name="Suivi de l'envoi").get_by_role(
        "table", name="État par destinataire")
    row = table.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name=recipient, exact=True))
    return row.get_by_role("cell").inner_text().strip()


def test_a_doctor_sends_the_receipt_and_the_sender_sees_it_read(
        environment: RunningEnvironment, page: Page) -> None:
    subject = f"Compte rendu {uuid.uuid4().hex[:6]}"
    doctor = page
    log_in(doctor, environment, DUPONT)
    write_asking_receipt(doctor, MARTIN, subject)
    environment.wait_message(MARTIN, subject, timeout=30)

    with new_context(doctor.context.browser) as context:  # type: ignore[arg-type]
        martin = context.new_page()
        log_in(martin, environment, MARTIN, PRACTICE)
        martin.get_by_role("link", name=re.compile(re.escape(subject))).click()
        receipt = martin.get_by_role("region", name="Accusé de lecture")
        expect(receipt).to_contain_text(DUPONT)
        expect(receipt.get_by_role("button", name="Ne pas envoyer")).to_be_visible()
        axe_check(martin)
        screenshot(martin, "webmail-read-receipt-offer")
        receipt.get_by_role("button", name="Envoyer l'accusé de lecture").click()
        expect(martin.get_by_role("status")).to_contain_text(
            f"Accusé de lecture envoyé à {DUPONT}")
        expect(martin.get_by_role("button", name="Envoyer l'accusé de lecture")
               ).to_have_count(0)
        martin.reload()  # offered once
        expect(martin.get_by_role("button", name="Envoyer l'accusé de lecture")
               ).to_have_count(0)

    doctor.get_by_role("link", name="Envoyés").click()
    doctor.get_by_role("link", name=re.compile(re.escape(subject))).click()
    expect(doctor.get_by_role("heading", name="Suivi de l'envoi")).to_be_visible()

    def read() -> bool:
        doctor.reload()
        return state_of(doctor, MARTIN) == "lu"

    environment.wait_for(read, 30, "« lu » for Dr Martin in the timeline")
    steps = doctor.get_by_role("table", name="Étapes de l'envoi")
    expect(steps.get_by_role("row").filter(
        has=doctor.get_by_role("cell", name="transmis", exact=True))).to_contain_text(
        f"opérateur de {PRACTICE}")
    expect(steps.get_by_role("cell", name="lu", exact=True)).to_have_count(1)
    axe_check(doctor)
    screenshot(doctor, "webmail-sent-timeline")


def test_a_patient_opening_the_message_sends_the_receipt_once(
        environment: RunningEnvironment, page: Page) -> None:
    subject = f"Vos résultats {uuid.uuid4().hex[:6]}"
    doctor = page
    log_in(doctor, environment, DUPONT)
    write_asking_receipt(doctor, PATIENT, subject)
    environment.wait_message(PATIENT, subject, timeout=30)

    with new_context(doctor.context.browser) as context:  # type: ignore[arg-type]
        patient = context.new_page()
        log_in(patient, environment, PATIENT, PATIENTS)
        patient.get_by_role("link", name=re.compile(re.escape(subject))).click()
        expect(patient.get_by_text(f"Un accusé de lecture a été envoyé à {DUPONT}")
               ).to_be_visible()
        expect(patient.get_by_role("button", name="Ne pas envoyer")).to_have_count(0)
        axe_check(patient)
        screenshot(patient, "patient-read-receipt")
        patient.reload()
        expect(patient.get_by_text("à la première ouverture de ce message")).to_be_visible()

    sent = [m for m in environment.messages(DUPONT)
            if (m.subject or "").startswith("Accusé de lecture")]
    message_id = next(m.message_id for m in environment.messages(PATIENT)
                      if m.subject == subject)
    store = environment.service(HOSPITAL).store
    bodies = [environment.runner.call(store.get_body(m.body_sha256)) for m in sent]
    assert len([b for b in bodies if f"Original-Message-ID: {message_id}".encode() in b]
               ) == 1  # reopening sent no second one
    doctor.goto(url(environment) + "/courrier")
    doctor.get_by_role("link", name="Envoyés").click()
    doctor.get_by_role("link", name=re.compile(re.escape(subject))).click()

    def read() -> bool:
        doctor.reload()
        return state_of(doctor, PATIENT) == "lu"

    environment.wait_for(read, 30, "« lu » for the patient in the timeline")
