"""The browser fixtures themselves (tests/web/browser.py): the browser trusts the
environment's root and nothing else, axe_check fails on what axe-core finds serious or
critical and names it, a page's script errors and CSP refusals fail the test, and
screenshots are written only when asked for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Error, Page, Route, expect

from tests.conftest import RunningEnvironment
from tests.e2e.mail import message, send, unique
from tests.web import browser as browser_module
from tests.web.browser import axe_check, new_context, screenshot, watched

DISCOVERY = "/.well-known/openid-configuration"
DUPONT = "dupont@ch-xyz.mssante.fr"
# A page served from a made-up https origin by page.route, with the headers given.
FAKE = "https://pages.test/"


def serve(page: Page, body: str, headers: dict[str, str] | None = None) -> None:
    def answer(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=body,
                      headers=headers or {})

    page.route(FAKE, answer)
    page.goto(FAKE)


def test_the_environment_is_verified_not_ignored(
        environment: RunningEnvironment, page: Page,
        browser_trusting: Callable[..., Browser]) -> None:
    issuer = str(environment.description["psc"]["issuer"])
    response = page.goto(issuer + DISCOVERY)
    assert response is not None and response.ok
    assert page.evaluate("() => window.isSecureContext")
    # the same server by a name its certificate does not give: refused, so host names
    # are checked too (the certificates name 127.0.0.1 and localhost; chromium takes any
    # *.localhost for the loopback address)
    with pytest.raises(Error, match="ERR_CERT_COMMON_NAME_INVALID"):
        page.goto(issuer.replace("127.0.0.1", "mssante.localhost") + DISCOVERY)

    stranger = new_context(browser_trusting())  # a browser that trusts no root of ours
    try:
        with pytest.raises(Error, match="ERR_CERT_AUTHORITY_INVALID"):
            stranger.new_page().goto(issuer + DISCOVERY)
    finally:
        stranger.close()


def test_axe_check_names_each_serious_or_critical_violation(page: Page) -> None:
    serve(page, '<!doctype html><html lang="fr"><title>Mauvaise page</title><main>'
                "<h1>Mauvaise page</h1><input id=nameless>"
                '<p style="color:#bbb;background:#fff">Texte trop pâle</p></main></html>')
    with pytest.raises(AssertionError) as failure:
        axe_check(page)
    report = str(failure.value)
    assert "- label (critical)" in report and "#nameless" in report
    assert "- color-contrast (serious)" in report and "Texte trop pâle" not in report


def test_axe_check_passes_a_clean_page_and_returns_the_results(page: Page) -> None:
    serve(page, '<!doctype html><html lang="fr"><title>Page</title><main><h1>Page</h1>'
                '<label for=f>Nom</label><input id=f></main></html>')
    results = axe_check(page)
    assert "label" in {rule["id"] for rule in results["passes"]}


def test_a_script_blocked_by_the_page_policy_fails_the_test(browser: Browser) -> None:
    context = new_context(browser)
    try:
        page = context.new_page()
        with pytest.raises(AssertionError, match="Content Security Policy"), watched(page):
            serve(page, '<!doctype html><html lang="fr"><title>t</title>'
                        "<script>document.title = 'ran'</script></html>",
                  {"Content-Security-Policy": "default-src 'none'"})
            expect(page).to_have_title("t")
    finally:
        context.close()


def test_screenshots_are_written_only_when_asked_for(
        page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(page, '<!doctype html><html lang="fr"><title>t</title><h1>Capture</h1></html>')
    monkeypatch.setattr(browser_module, "SCREENSHOT_DIR", tmp_path)
    monkeypatch.setattr(browser_module, "SCREENSHOTS", False)
    assert screenshot(page, "capture") is None and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(browser_module, "SCREENSHOTS", True)
    written = screenshot(page, "capture")
    assert written == tmp_path / "capture.png"
    assert written.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_mail_can_be_awaited_while_a_page_is_open(
        environment: RunningEnvironment, page: Page) -> None:
    """Playwright's loop runs in the test's thread: the environment's helpers still work
    (they run their coroutines on the environment's loop)."""
    page.goto(str(environment.description["psc"]["issuer"]) + DISCOVERY)
    subject = unique("Vu du navigateur")
    send(environment, DUPONT, message(DUPONT, DUPONT, subject))
    assert environment.wait_message(DUPONT, subject).subject == subject
