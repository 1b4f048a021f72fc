"""A live server for end-to-end tests: started once per session with the
trained model (scripts/serve.sh), stopped at the end."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# KEPU_TEST_PORT runs the suite on another port (actions on port + 50), e.g. beside a dev server.
PORT = int(os.environ.get("KEPU_TEST_PORT", "5005"))
URL = f"http://127.0.0.1:{PORT}"
ENV = {**os.environ, "RASA_PORT": str(PORT), "ACTIONS_PORT": str(PORT + 50)}


def _ready() -> bool:
    try:
        with urllib.request.urlopen(f"{URL}/status", timeout=2) as resp:
            return resp.status == 200
    except Exception:
        return False


@pytest.fixture(scope="session")
def live_url() -> str:
    if not (ROOT / "build" / "current_model").exists():
        pytest.fail("no trained model: run 'make train' first")
    started = False
    if not _ready():
        subprocess.run([str(ROOT / "scripts" / "serve.sh"), "start"], check=True, env=ENV)
        started = True
    yield URL
    if started:
        subprocess.run([str(ROOT / "scripts" / "serve.sh"), "stop"], check=False, env=ENV)
