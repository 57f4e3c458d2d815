"""Web pages in a real browser: Debian's chromium driven by Playwright (sync API).

What a browser test needs, and what it skips or fails without:

- chromium, Debian's package (``/usr/bin/chromium``, or ``MSSANTE_CHROMIUM``). The build
  Playwright downloads (``playwright install``) is never used;
- ``certutil`` (Debian's ``libnss3-tools``), to make the browser trust the environment's
  root CA;
- axe-core, the accessibility checker, at the version of ``tests/web/package-lock.json``:
  ``MSSANTE_AXE_JS`` names its ``axe.min.js`` (``.ci/run`` installs it in a folder of its
  run), else ``tests/web/node_modules/`` (after ``npm ci --prefix tests/web``).

A missing one skips the test, unless MSSANTE_REQUIRE_CLIENTS is set (CI): then it fails.

Trust. The browser verifies the environment's certificates as it would a public site's,
host names included: its root CA is added, as a CA trusted for TLS, to an NSS database in
a home folder of the browser's own (``$HOME/.pki/nssdb``, where chromium on Linux reads
the roots a user added). Nothing is ignored: no ``ignore_https_errors``, no
``--ignore-certificate-errors-spki-list`` (which pins keys and skips every other check,
and matches only the keys of the certificates the server sends, not the root's).

The event loop. The sync API keeps its own asyncio loop marked as running in the test's
thread while a browser is open: ``asyncio.run`` fails there, and so would an asyncio test
run meanwhile. Hence one browser per test module (tests of a browser module are plain
``def`` functions) rather than per session, and helpers that need a loop run it
elsewhere (``RunningEnvironment.messages`` runs on the environment's own loop).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright

REQUIRE_CLIENTS = os.environ.get("MSSANTE_REQUIRE_CLIENTS", "") not in ("", "0")
SCREENSHOTS = os.environ.get("MSSANTE_SCREENSHOTS", "") not in ("", "0")
HERE = Path(__file__).resolve().parent
SCREENSHOT_DIR = HERE.parents[1] / "docs" / "screenshots"
LOCK = HERE / "package-lock.json"
# What every page is opened with: a French professional's desktop browser.
CONTEXT_OPTIONS: dict[str, Any] = {
    "locale": "fr-FR", "timezone_id": "Europe/Paris",
    "viewport": {"width": 1280, "height": 800}, "color_scheme": "light",
}
# axe-core's impacts (https://github.com/dequelabs/axe-core/blob/develop/doc/API.md):
# minor, moderate, serious, critical. The last two fail a test.
FAILING_IMPACTS = ("serious", "critical")
_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Tools:
    chromium: str
    certutil: str
    axe_js: Path


def _missing(reason: str) -> None:
    if REQUIRE_CLIENTS:
        pytest.fail(f"{reason}, and MSSANTE_REQUIRE_CLIENTS is set")
    pytest.skip(reason)


def axe_version() -> str:
    """The axe-core version tests/web/package-lock.json pins."""
    lock = json.loads(LOCK.read_text(encoding="utf-8"))
    return str(lock["packages"]["node_modules/axe-core"]["version"])


def tools() -> Tools:
    """What a browser test needs, or skip (fail when MSSANTE_REQUIRE_CLIENTS is set)."""
    chromium = os.environ.get("MSSANTE_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        _missing("chromium is not installed (Debian package chromium)")
    certutil = shutil.which("certutil")
    if certutil is None:
        _missing("certutil is not installed (Debian package libnss3-tools)")
    configured = os.environ.get("MSSANTE_AXE_JS")
    axe_js = Path(configured) if configured else (
        HERE / "node_modules" / "axe-core" / "axe.min.js")
    if not axe_js.is_file():
        _missing(f"axe-core {axe_version()} is not at {axe_js} "
                 "(`npm ci --prefix tests/web`, or MSSANTE_AXE_JS)")
    assert chromium is not None and certutil is not None
    return Tools(chromium, certutil, axe_js)


def trusting_home(home: Path, ca_files: list[str], certutil: str) -> Path:
    """A home folder whose NSS database trusts ``ca_files`` as CAs for TLS (``C,,``)."""
    database = home / ".pki" / "nssdb"
    database.mkdir(parents=True, exist_ok=True)
    run = functools.partial(subprocess.run, check=True, capture_output=True, timeout=60)
    run([certutil, "-N", "-d", f"sql:{database}", "--empty-password"])
    for index, ca_file in enumerate(ca_files):
        run([certutil, "-A", "-d", f"sql:{database}", "-n", f"mssante test root {index}",
             "-t", "C,,", "-i", ca_file])
    return home


def launch(playwright: Playwright, tools: Tools, home: Path) -> Browser:
    """Headless chromium with ``home`` as its HOME (hence its NSS database). Playwright
    adds ``--no-sandbox`` itself (``chromium_sandbox`` is off by default), which running
    as root requires."""
    return playwright.chromium.launch(executable_path=tools.chromium, headless=True,
                                      env={**os.environ, "HOME": str(home)})


def new_context(browser: Browser, **options: Any) -> BrowserContext:
    """A fresh profile (no cookies, no storage) with ``CONTEXT_OPTIONS``, overridable."""
    return browser.new_context(**{**CONTEXT_OPTIONS, **options})


@contextlib.contextmanager
def watched(page: Page) -> Iterator[Page]:
    """Fail on what a person would not see but what breaks the page: an uncaught script
    error, or something the Content-Security-Policy blocked."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"uncaught error: {error}"))
    page.on("console", lambda message: problems.append(f"console: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None)
    yield page
    assert not problems, "the page reported:\n" + "\n".join(problems)


@functools.cache
def _axe_source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def axe_check(page: Page) -> dict[str, Any]:
    """Run axe-core on the page as it is now; fail listing every violation of impact
    serious or critical, with the elements concerned. Return axe's results (violations of
    lesser impact, passes, incomplete) for a test that wants more.

    axe is evaluated through the DevTools protocol, which the page's CSP does not govern:
    the page is checked with the headers it is served with."""
    axe_js = tools().axe_js
    page.evaluate(_axe_source(axe_js))
    version = page.evaluate("() => window.axe.version")
    assert version == axe_version(), (
        f"{axe_js} is axe-core {version}, tests/web/package-lock.json pins {axe_version()}: "
        "run `npm ci --prefix tests/web`")
    results: dict[str, Any] = page.evaluate("() => window.axe.run(document)")
    failing = [v for v in results["violations"] if v["impact"] in FAILING_IMPACTS]
    assert not failing, (f"axe-core {version} on {page.url}:\n"
                         + "\n".join(_describe(v) for v in failing))
    return results


def _describe(violation: dict[str, Any]) -> str:
    lines = [f"- {violation['id']} ({violation['impact']}): {violation['help']} "
             f"<{violation['helpUrl']}>"]
    for node in violation["nodes"]:
        summary = " ".join(str(node.get("failureSummary", "")).split())
        lines.append(f"    {' '.join(map(str, node['target']))}: {summary}")
    return "\n".join(lines)


def screenshot(page: Page, name: str) -> Path | None:
    """With MSSANTE_SCREENSHOTS set, write the whole page to docs/screenshots/NAME.png
    and return its path; otherwise do nothing (a normal run leaves the tree clean)."""
    assert _NAME.fullmatch(name), f"screenshot names are lower-case words with '-': {name}"
    if not SCREENSHOTS:
        return None
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=path, full_page=True, animations="disabled", caret="hide")
    return path
