"""The bot's web front for browser tests that need no answers from a model.

`start_front(folder)` starts the real server (`python -m bot.server run`: Rasa
plus the project's routes, so the real widget, demo page and admin page) on a
free port, without a model, with its own knowledge database, tracker store and
staff accounts in `folder`, and stops it afterwards. The tests talk only to the
server they started, so several checkouts can run them side by side, and they
need no training: the widget's layout, focus and text handling are tested on
conversations the widget restores from sessionStorage, the admin reports on
conversations written into the front's tracker store with Rasa's own SQLTrackerStore.
`stop_front(front)` stops it.

`prefix` runs the server under another command, e.g. `faketime` for a server clock.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
START_TIMEOUT = 180.0


@dataclass
class Front:
    """A started web front: its URL, its databases (SQLAlchemy URLs) and its process."""

    url: str
    db_url: str
    tracker_url: str
    tracker_db: Path
    process: subprocess.Popen
    log: Path


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _environment(folder: Path, db_url: str, tracker_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEPU_", "WECHAT_"))}
    env.update({"KEPU_DB_URL": db_url, "TRACKER_URL": tracker_url, "PYTHONPATH": str(ROOT),
                "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                "RASA_TELEMETRY_ENABLED": "false", "HOME": str(folder)})
    env.update(extra)
    return env


def _build_knowledge(env: dict[str, str]) -> None:
    done = subprocess.run([PYTHON, "-m", "bot.knowledge.build"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"knowledge build failed:\n{done.stdout}\n{done.stderr}")


def start_front(folder: Path, extra_env: dict[str, str] | None = None, prefix: list[str] | None = None,
                with_model: bool = True) -> Front:
    """Build the knowledge database in `folder` and start the web front on a free port.

    `--model` names a path that does not exist, so Rasa falls back to the checkout's newest model in
    models/ and the REST channel answers. `with_model=False` makes that path an empty folder: Rasa
    then loads no model at all (GET /status is 503, the web pages and the admin work), which is
    what the admin-only tests need, and it starts in seconds. (Measured: under faketime, loading the
    model sometimes did not finish within START_TIMEOUT in a full `make test`.)"""
    folder.mkdir(parents=True, exist_ok=True)
    if not with_model:
        (folder / "no-model").mkdir(exist_ok=True)
    tracker_db = folder / "conversations.db"
    db_url, tracker_url = f"sqlite:///{folder / 'knowledge.db'}", f"sqlite:///{tracker_db}"
    env = _environment(folder, db_url, tracker_url, dict(extra_env or {}))
    _build_knowledge(env)
    endpoints = folder / "endpoints.yml"
    endpoints.write_text(f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {tracker_db}\n", encoding="utf-8")
    port = free_port()
    log = folder / "server.log"
    command = [*(prefix or []), PYTHON, "-m", "bot.server", "run", "--port", str(port), "--enable-api",
               "--auth-token", secrets.token_urlsafe(16), "--cors", "*", "--credentials", "credentials.yml",
               "--endpoints", str(endpoints), "--model", str(folder / "no-model")]
    with open(log, "wb") as out:
        # Its own process group: a prefix such as faketime forks the server as its child.
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    front = Front(f"http://127.0.0.1:{port}", db_url, tracker_url, tracker_db, process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(front.url + "/widget/widget.js"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_front(front)
            raise RuntimeError(f"the web front did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    return front


def stop_front(front: Front) -> None:
    """Stop the front's process group (started by start_front, so ours to stop)."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if front.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(front.process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            front.process.wait(timeout=wait)
