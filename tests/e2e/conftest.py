"""A live server for end-to-end tests: started once per session with the
trained model (scripts/serve.sh), stopped at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.staff.live import is_ready
from tests.project_copy import serve_sh

ROOT = Path(__file__).resolve().parents[2]
# KEPU_TEST_PORT runs the suite on another port (actions on port + 50), e.g. beside a dev server.
PORT = int(os.environ.get("KEPU_TEST_PORT", "5005"))
URL = f"http://127.0.0.1:{PORT}"


@pytest.fixture(scope="session")
def live_url() -> str:
    if not (ROOT / "build" / "current_model").exists():
        pytest.fail("no trained model: run 'make train' first")
    started = False
    if not is_ready(URL):
        result = serve_sh(ROOT, "start", PORT)
        if result.returncode != 0:
            pytest.fail(f"could not start the bot on port {PORT}:\n{result.stdout}\n{result.stderr}")
        started = True
    yield URL
    if started:
        serve_sh(ROOT, "stop", PORT)
