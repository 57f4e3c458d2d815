"""A health alert in the webmail, in a real browser: an unread alert is listed first,
above newer mail, with a visible "Alerte sanitaire" label; axe-core finds no serious
violation."""

from __future__ import annotations

import re
import time
import uuid

from playwright.sync_api import Page, expect
from typer.testing import CliRunner

from mssante.cli import app
from tests.conftest import RunningEnvironment
from tests.e2e.mail import message, send
from tests.e2e.test_health_alerts import CARDIO, published  # noqa: F401  (fixture)
from tests.web.browser import axe_check
from tests.web.test_web_login import SECRETARY
from tests.web.test_webmail_browser import log_in

DUPONT = "dupont@ch-xyz.mssante.fr"


def test_an_unread_alert_is_listed_first_with_its_label(
        published: RunningEnvironment, page: Page, tmp_path) -> None:  # noqa: F811
    environment = published
    subject = f"DGS-Urgent {uuid.uuid4().hex[:6]} : rappel de lot"
    body = tmp_path / "alerte.txt"
    body.write_text("Ne plus administrer le lot 12345.\n", encoding="utf-8")
    result = CliRunner().invoke(app, [
        "alert", "send", "--env", str(environment.env.data_dir / "environment.json"),
        "--type", "ORG", "--department", "75", "--subject", subject,
        "--body-file", str(body)])
    assert result.exit_code == 0, result.output
    environment.wait_message(CARDIO, subject)
    time.sleep(1.1)  # the newer message has a later date
    newer = f"Compte rendu {uuid.uuid4().hex[:6]}"
    assert send(environment, DUPONT, message(DUPONT, CARDIO, newer)) == {}
    environment.wait_message(CARDIO, newer)

    log_in(page, environment, SECRETARY)
    page.get_by_label("Boîte aux lettres").select_option(CARDIO)
    page.get_by_role("button", name="Afficher").click()
    alert = page.get_by_role("link", name=re.compile(
        "Alerte sanitaire.*" + re.escape(subject)))
    expect(alert).to_be_visible()
    names = page.get_by_role("link").all_inner_texts()
    at = next(i for i, n in enumerate(names) if subject in n)
    assert at < next(i for i, n in enumerate(names) if newer in n)  # above newer mail
    axe_check(page)
    # once read, the alert keeps its label and goes back to its place by date
    page.get_by_role("link", name=re.compile(re.escape(subject))).click()
    page.go_back()
    page.reload()
    expect(page.get_by_role("link", name=re.compile(
        "Alerte sanitaire.*" + re.escape(subject)))).to_be_visible()
