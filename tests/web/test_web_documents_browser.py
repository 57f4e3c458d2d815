"""Clinical documents in the webmail, in a real browser (Debian's chromium through
Playwright), by the names people and screen readers meet: Dr Dupont attaches a CDA
and its PDF rendering by their labels and sends them; a hostile CDA is announced in an
alert, what he typed kept. Every page passes axe-core without a serious violation."""

from __future__ import annotations

import uuid

from playwright.sync_api import FilePayload, Page, expect

from tests.conftest import RunningEnvironment
from tests.content.xdmtools import CONSULTATION, CONSULTATION_PDF
from tests.web.browser import axe_check, screenshot
from tests.web.test_web_documents import MARTIN, PATIENT_LINE, XXE
from tests.web.test_webmail_browser import log_in

DUPONT = "dupont@ch-xyz.mssante.fr"


def compose(page: Page, label: str, cda: bytes) -> None:
    page.get_by_role("link", name="Nouveau message").click()
    page.get_by_label("À", exact=True).fill(MARTIN)
    page.get_by_label("Objet").fill(label)
    page.get_by_label("Message", exact=True).fill("Cher confrère, voici le compte rendu.")
    page.get_by_label("Documents cliniques (CDA)").set_input_files(
        FilePayload(name="CR.xml", mimeType="text/xml", buffer=cda))
    page.get_by_label("Rendus PDF des documents").set_input_files(
        FilePayload(name="CR.pdf", mimeType="application/pdf", buffer=CONSULTATION_PDF))


def test_the_doctor_attaches_a_cda_by_its_label_and_sends_it(
        environment: RunningEnvironment, page: Page) -> None:
    log_in(page, environment, DUPONT)
    label = f"Compte rendu {uuid.uuid4().hex[:6]}"
    compose(page, label, CONSULTATION)
    axe_check(page)
    screenshot(page, "webmail-documents")
    page.get_by_role("button", name="Envoyer").click()
    expect(page.get_by_role("status")).to_contain_text("Message envoyé")
    found = environment.wait_message(MARTIN, f"XDM/1.0/DDM+{label} {PATIENT_LINE}", 30)
    assert found.message_id


def test_a_hostile_cda_is_announced_and_the_input_kept(environment: RunningEnvironment,
                                                       page: Page) -> None:
    log_in(page, environment, DUPONT)
    label = f"Piège {uuid.uuid4().hex[:6]}"
    compose(page, label, XXE)
    page.get_by_role("button", name="Envoyer").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Documents cliniques refusés")
    expect(alert).to_contain_text("CR.xml: a document type declaration (DTD) is not allowed")
    expect(page.get_by_label("Objet")).to_have_value(label)
    expect(page.get_by_label("À", exact=True)).to_have_value(MARTIN)
    expect(page.get_by_label("Documents cliniques (CDA)")).to_have_attribute(
        "aria-invalid", "true")
    axe_check(page)
    assert not [m for m in environment.messages(DUPONT) if label in (m.subject or "")]
