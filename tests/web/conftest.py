"""Browser fixtures (tests/web/browser.py): ``browser`` and ``page`` trust the session's
``environment``; ``browser_trusting`` opens a browser for an environment of a test's own.

A module that uses them holds plain ``def`` tests (see browser.py: the event loop)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.conftest import RunningEnvironment
from tests.web.browser import Tools, launch, new_context, tools, trusting_home, watched


@pytest.fixture(scope="session")
def browser_tools() -> Tools:
    """chromium, certutil and axe-core, or skip (fail under MSSANTE_REQUIRE_CLIENTS)."""
    return tools()


@pytest.fixture(scope="module")
def playwright(browser_tools: Tools) -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright, browser_tools: Tools, environment: RunningEnvironment,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless chromium trusting the session environment's root CA."""
    home = trusting_home(tmp_path_factory.mktemp("browser-home"), [environment.ca_file],
                         browser_tools.certutil)
    opened = launch(playwright, browser_tools, home)
    yield opened
    opened.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh profile (fr-FR, Europe/Paris, 1280×800); the test fails if the
    page throws or its Content-Security-Policy blocks something."""
    context = new_context(browser)
    try:
        with watched(context.new_page()) as opened:
            yield opened
    finally:
        context.close()


@pytest.fixture
def browser_trusting(playwright: Playwright, browser_tools: Tools,
                     tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[Callable[..., Browser]]:
    """``browser_trusting(*ca_files)``: a browser that trusts those roots (another
    environment's: ``running_environment(...).ca_file``; none: no root at all), closed
    after the test."""
    opened: list[Browser] = []

    def open_browser(*ca_files: str) -> Browser:
        home = trusting_home(tmp_path_factory.mktemp("browser-home"), list(ca_files),
                             browser_tools.certutil)
        opened.append(launch(playwright, browser_tools, home))
        return opened[-1]

    yield open_browser
    for each in opened:
        each.close()
