"""bot/staff/follow.py against a stand-in Rasa server on loopback: it loads the model
build/current_model names when the server serves another one, leaves it alone otherwise, waits
for a server that is not ready, and logs a failed load instead of stopping."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.staff import follow
from tests.ports import free_port


class FakeRasa:
    def __init__(self) -> None:
        self.model = "kepu-old.tar.gz"
        self.ready = True
        self.fail_loads = False
        self.loads: list[dict[str, Any]] = []


@pytest.fixture
def rasa() -> Iterator[tuple[str, FakeRasa]]:
    state = FakeRasa()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if not state.ready:
                self._send(503, {"status": "loading"})
            elif "token=" in self.path:
                self._send(200, {"model_file": state.model})
            else:
                self._send(200, {"status": "ready"})

        def do_PUT(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.loads.append({"path": self.path, **body})
            if state.fail_loads:
                self._send(400, {"message": "bad model"})
                return
            state.model = Path(body["model_file"]).name
            self._send(204, {})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", state
    server.shutdown()


def project(tmp_path: Path, current: str | None) -> Path:
    (tmp_path / "build").mkdir()
    (tmp_path / "models").mkdir()
    for name in ("kepu-old.tar.gz", "kepu-new.tar.gz"):
        (tmp_path / "models" / name).write_bytes(b"m")
    if current is not None:
        (tmp_path / "build" / "current_model").write_text(current + "\n")
    return tmp_path


def test_a_changed_current_model_is_loaded(tmp_path: Path, rasa):
    url, state = rasa
    root = project(tmp_path, "models/kepu-new.tar.gz")
    assert follow.follow_once(url, "tok", root) == (follow.LOADED, str(root / "models/kepu-new.tar.gz"))
    assert state.loads == [{"path": "/model?token=tok", "model_file": str(root / "models/kepu-new.tar.gz")}]
    assert follow.follow_once(url, "tok", root)[0] == follow.SAME
    assert len(state.loads) == 1


def test_the_served_model_is_left_alone(tmp_path: Path, rasa):
    url, state = rasa
    assert follow.follow_once(url, "tok", project(tmp_path, "models/kepu-old.tar.gz"))[0] == follow.SAME
    assert state.loads == []


def test_nothing_happens_without_a_model_or_a_ready_server(tmp_path: Path, rasa):
    url, state = rasa
    root = project(tmp_path, None)
    assert follow.follow_once(url, "tok", root) == (follow.NO_MODEL, "")
    (root / "build" / "current_model").write_text("models/kepu-missing.tar.gz\n")
    assert follow.follow_once(url, "tok", root) == (follow.NO_MODEL, "")
    (root / "build" / "current_model").write_text("models/kepu-new.tar.gz\n")
    state.ready = False
    assert follow.follow_once(url, "tok", root)[0] == follow.NOT_READY
    assert state.loads == []


def test_a_failed_load_is_logged_and_tried_again(tmp_path: Path, rasa, monkeypatch, caplog):
    url, state = rasa
    root = project(tmp_path, "models/kepu-new.tar.gz")
    monkeypatch.setattr(follow.live, "api_token", lambda: "tok")
    monkeypatch.setattr(follow.time, "sleep", lambda _seconds: None)
    state.fail_loads = True
    follow.follow(url, interval=1.0, rounds=3, root=root)
    assert len(state.loads) == 3
    assert "加载模型失败" in caplog.text
