"""Fixtures for the widget's browser tests: a running bot on a test port and a
real headless Chromium (Debian's /usr/bin/chromium, never a downloaded browser).

- `web_url`: the checkout's bot (tests/conftest.py: checkout_bot) on KEPU_WEB_TEST_PORT (default: a free
  port; actions on KEPU_WEB_TEST_ACTIONS_PORT, default another free port), started
  with scripts/serve.sh for the session and stopped at the end -- never a server
  some other checkout or person started;
- `front`: the bot's web front without a model (tests/web/front.py) on a free port,
  with its own databases and a staff account, for the tests that need no answers;
- `browser`: one Chromium for the session;
- `page`: a fresh context (empty sessionStorage/localStorage) per test that
  records every request, dialog, page error and console error; at the end of
  each test it checks that no request went to any host but the bot's and that
  no dialog (alert) opened and no script error happened.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.web.front import Front, start_front, stop_front

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = ROOT / "results" / "screenshots"


@pytest.fixture(scope="session")
def web_url(checkout_bot: str) -> str:
    """The bot's base URL: the checkout's bot of tests/conftest.py, started for the session."""
    return checkout_bot


FRONT_STAFF = ("e2e-front", "front-password-" + os.urandom(6).hex())


@pytest.fixture(scope="session")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    """The web front without a model, with the staff account FRONT_STAFF (name, password)."""
    env = {"KEPU_ADMIN_USER": FRONT_STAFF[0], "KEPU_ADMIN_PASSWORD": FRONT_STAFF[1]}
    try:
        started = start_front(tmp_path_factory.mktemp("front"), env)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield started
    stop_front(started)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium, shared by the tests of one module.

    Not per session: Playwright's sync API keeps its event loop marked as running in this thread
    until it is stopped, so the asyncio tests of a later module (pytest-asyncio) would find a
    running loop and fail to start their own."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run 'make test-deps' (apt-get install chromium fonts-noto-cjk)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
    playwright.stop()


@dataclass
class Recorder:
    """What a page did: requests, dialogs, errors; hosts it may talk to."""

    allowed_hosts: set[str]
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests
                if urlsplit(url).scheme not in ("data", "blob")
                and urlsplit(url).netloc not in self.allowed_hosts]


@pytest.fixture()
def recorder(web_url: str) -> Recorder:
    return Recorder(allowed_hosts={urlsplit(web_url).netloc})


def _on_console(recorder: Recorder, message: object) -> None:
    # A failed webhook call is logged by Chromium as a console error on purpose in
    # the failure tests; CSP violations and script errors are what we look for.
    text = message.text  # type: ignore[attr-defined]
    if message.type == "error" and ("Content Security Policy" in text or "Refused" in text):  # type: ignore[attr-defined]
        recorder.errors.append(text)


def _on_dialog(recorder: Recorder, dialog: object) -> None:
    recorder.dialogs.append(dialog.message)  # type: ignore[attr-defined]
    dialog.dismiss()  # type: ignore[attr-defined]


@pytest.fixture()
def make_page(browser: object, recorder: Recorder) -> Iterator[object]:
    """A factory of pages in one fresh context, with a given viewport."""
    contexts: list[object] = []

    def factory(width: int = 1280, height: int = 800, **options: object) -> object:
        context = browser.new_context(  # type: ignore[attr-defined]
            viewport={"width": width, "height": height}, locale="zh-CN", **options)
        context.set_default_timeout(15_000)
        context.on("request", lambda request: recorder.requests.append(request.url))
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: _on_dialog(recorder, dialog))
        page.on("pageerror", lambda error: recorder.errors.append(str(error)))
        page.on("console", lambda message: _on_console(recorder, message))
        return page

    yield factory
    for context in contexts:
        context.close()  # type: ignore[attr-defined]
    assert not recorder.foreign_requests(), f"requests to other hosts: {recorder.foreign_requests()}"
    assert not recorder.dialogs, f"dialogs opened: {recorder.dialogs}"
    assert not recorder.errors, f"page errors: {recorder.errors}"


@pytest.fixture()
def page(make_page: object) -> object:
    """A desktop-sized page in a fresh context."""
    return make_page()  # type: ignore[operator]


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def node() -> str:
    """Path of node (to syntax-check widget.js), or skip."""
    path = shutil.which("node") or shutil.which("nodejs")
    if not path:
        pytest.skip("node is not installed")
    return path
