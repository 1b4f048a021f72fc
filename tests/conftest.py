"""Shared fixtures: the knowledge set, a fixed clock, trackers built the way
RasaHQ/rasa-demo's tests/conftest.py builds them (Tracker.from_dict on a saved
state), a CollectingDispatcher and the project's Domain."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import KnowledgeSet

ROOT = Path(__file__).resolve().parents[1]
KNOWLEDGE = ROOT / "knowledge"
AFTER_EVERYTHING = dt.date(2026, 11, 29)


@pytest.fixture(scope="session")
def checkout_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The checkout's own bot (trained model, action server) for the whole session, on free ports
    (KEPU_WEB_TEST_PORT / KEPU_WEB_TEST_ACTIONS_PORT override them); never a server already running,
    which may serve another checkout's model. One for the end-to-end and the browser tests: a Rasa
    start costs about 25 s. Its conversations go to a fresh SQLite file of this session, not to
    build/conversations.db: a test's sender id never meets a conversation of an earlier run (Rasa
    keeps a session for 60 minutes), and test questions stay out of the staff reports."""
    from bot.staff.live import is_ready
    from tests.ports import web_test_ports
    from tests.project_copy import serve_sh

    if not (ROOT / "build" / "current_model").exists():
        pytest.fail("no trained model (build/current_model): run 'make train' first")
    port, actions = web_test_ports(os.environ)
    url = f"http://127.0.0.1:{port}"
    folder = tmp_path_factory.mktemp("checkout-bot")
    endpoints = (ROOT / "endpoints.yml").read_text(encoding="utf-8")
    if "db: build/conversations.db" not in endpoints:
        pytest.fail("endpoints.yml no longer keeps conversations in build/conversations.db: update this fixture")
    (folder / "endpoints.yml").write_text(
        endpoints.replace("db: build/conversations.db", f"db: {folder / 'conversations.db'}"), encoding="utf-8")
    env = {**os.environ, "RASA_ENDPOINTS": str(folder / "endpoints.yml")}
    result = serve_sh(ROOT, "start", port, actions, env=env, timeout=400)
    if result.returncode != 0 or not is_ready(url):
        pytest.fail(f"could not start the bot on port {port}:\n{result.stdout}\n{result.stderr}")
    yield url
    serve_sh(ROOT, "stop", port, actions)


@pytest.fixture(scope="session")
def kb() -> KnowledgeSet:
    return load_knowledge(KNOWLEDGE)


@pytest.fixture()
def knowledge_copy(tmp_path: Path) -> Path:
    """A writable copy of knowledge/ for tests that break files."""
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, target)
    return target


@pytest.fixture()
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kb.db'}"


@pytest.fixture(scope="session")
def tracker_state() -> dict[str, Any]:
    return json.loads((ROOT / "tests" / "data" / "tracker_state.json").read_text(encoding="utf-8"))


@pytest.fixture()
def make_tracker(tracker_state: dict[str, Any]) -> Callable[..., Any]:
    """Tracker.from_dict of the saved state with the latest message replaced."""
    from rasa_sdk import Tracker

    def build(text: str, intent: str, entities: list[tuple[str, str]] | None = None,
              context: dict[str, Any] | None = None, ranking: list[tuple[str, float]] | None = None,
              confidence: float = 0.95) -> Tracker:
        state = json.loads(json.dumps(tracker_state))
        state["latest_message"] = {
            "text": text,
            "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": [{"name": n, "confidence": c} for n, c in (ranking or [(intent, confidence)])],
            "entities": [{"entity": t, "value": v, "extractor": "KnowledgeEntityExtractor"}
                         for t, v in (entities or [])],
        }
        state["slots"]["context"] = context
        return Tracker.from_dict(state)

    return build


@pytest.fixture()
def dispatcher():
    from rasa_sdk.executor import CollectingDispatcher

    return CollectingDispatcher()


@pytest.fixture(scope="session")
def domain() -> dict[str, Any]:
    from rasa.shared.core.domain import Domain

    return Domain.load(str(ROOT / "domain.yml")).as_dict()


@pytest.fixture()
async def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kb: KnowledgeSet) -> Any:
    """The project's whole HTTP surface (tests/servers.py) served on a free port, WeChat's API by the
    fake WeChat API server on another; the audit log and every other store on a temporary database.
    Yields (base URL, Project)."""
    from tests.channels.conftest import FakeWeChatApi
    from tests.servers import SanicServer, build_project

    db_url = f"sqlite:///{tmp_path / 'project.db'}"
    monkeypatch.setenv("KEPU_DB_URL", db_url)
    api = FakeWeChatApi()
    await api.start()
    built = build_project(kb, db_url, api)
    server = await SanicServer(built.app).start()
    yield server.base, built
    await server.stop()
    await api.stop()
