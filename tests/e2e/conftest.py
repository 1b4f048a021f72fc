"""A live server for end-to-end tests: started once per session with the
trained model (scripts/serve.sh), stopped at the end."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.project_copy import serve_sh

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_url() -> str:
    """The checkout's bot, started for this session on free ports (never a server already running:
    that one may serve another checkout's model)."""
    if not (ROOT / "build" / "current_model").exists():
        pytest.fail("no trained model: run 'make train' first")
    port, actions = _free_port(), _free_port()
    result = serve_sh(ROOT, "start", port, actions)
    if result.returncode != 0:
        pytest.fail(f"could not start the bot on port {port}:\n{result.stdout}\n{result.stderr}")
    yield f"http://127.0.0.1:{port}"
    serve_sh(ROOT, "stop", port, actions)
