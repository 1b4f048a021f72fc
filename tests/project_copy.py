"""Servers for end-to-end tests: `serve_sh` (scripts/serve.sh on a given port) and a
throwaway copy of the project with its own live server, for tests that retrain.

Its own knowledge/, data/, models/, build/ and databases (.venv is shared), its own
live server and quality-gate ports, so the checkout, its database and any server
on 5005 are never touched. The checkout's model is reused when the copy's
training inputs are the same (training is reproducible), else the copy trains.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.staff import live

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "e2e-copy-token"
IGNORE = shutil.ignore_patterns(".venv", "models", "build", "results", ".rasa", ".git", "__pycache__",
                                ".pytest_cache", ".ruff_cache", "node_modules")


def serve_sh(root: Path, command: str, port: int, actions_port: int | None = None,
             env: dict[str, str] | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
    """`scripts/serve.sh start|stop` in `root` for the bot on `port` (actions on `actions_port`,
    default port + 50), with `env` (default: this process's environment)."""
    full = {**(os.environ if env is None else env), "RASA_PORT": str(port),
            "ACTIONS_PORT": str(actions_port or port + 50)}
    return subprocess.run([str(root / "scripts" / "serve.sh"), command], cwd=root, env=full, check=False,
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class ProjectCopy:
    """The copy at `path`, its live server on `port` (actions port + 50), its gate on `gate_port`."""

    path: Path
    port: int
    gate_port: int
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def python(self) -> str:
        return str(self.path / ".venv" / "bin" / "python")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("KEPU_DB_URL", "TRACKER_URL", "KEPU_KNOWLEDGE_DIR", "KEPU_DATA_DIR")}
        env.update({
            "PYTHONPATH": str(self.path), "RASA_API_TOKEN": TOKEN, "KEPU_LIVE_URLS": self.url,
            "KEPU_GATE_PORT": str(self.gate_port), "KEPU_GATE_ACTIONS_PORT": str(self.gate_port + 50),
            "TF_CPP_MIN_LOG_LEVEL": "2", "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        })
        env.update(self.extra_env)
        return env

    def run(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), cwd=self.path, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)

    def bot(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        """The staff command (`bot ...`) in the copy."""
        return self.run(self.python, "-m", "bot.cli", *args, timeout=timeout)

    def serve(self, command: str, gate: bool = False) -> subprocess.CompletedProcess:
        return serve_sh(self.path, command, self.gate_port if gate else self.port, env=self.env())

    def ask(self, text: str) -> str:
        """One question in a new conversation; the reply's text."""
        return live.ask(self.url, f"e2e-{uuid.uuid4().hex[:10]}", text)[1]

    def parse(self, text: str) -> dict:
        """The live model's reading of `text` (Rasa's /model/parse)."""
        return live.parse(self.url, text, TOKEN)

    def model_name(self) -> str:
        return live.model_name(self.url, TOKEN)

    def current_model(self) -> str:
        return (self.path / "build" / "current_model").read_text().strip()

    def stop(self) -> None:
        self.serve("stop")
        self.serve("stop", gate=True)


def start_copy(dest: Path, port: int, gate_port: int, extra_env: dict[str, str] | None = None) -> ProjectCopy:
    """Copy the project to `dest`, build it, give it a model and start its live server."""
    copy = ProjectCopy(dest, port, gate_port, dict(extra_env or {}))
    if live.is_ready(copy.url):
        raise RuntimeError(f"port {port} is already in use")
    shutil.copytree(ROOT, dest, ignore=IGNORE)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    (dest / "models").mkdir()
    (dest / "build").mkdir()
    for module in ("bot.knowledge.build", "bot.generate"):
        done = copy.run(copy.python, "-m", module)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
    fingerprint = copy.run(copy.python, "-c", "from bot.staff.retrain import fingerprint; print(fingerprint())")
    model = f"models/kepu-{fingerprint.stdout.strip()}.tar.gz"
    if (ROOT / model).exists():  # the checkout's model for these very inputs: no need to train
        shutil.copy2(ROOT / model, dest / model)
        (dest / "build" / "current_model").write_text(model + "\n")
    else:
        trained = copy.run(str(dest / "scripts" / "train.sh"))
        if trained.returncode != 0:
            raise RuntimeError(trained.stdout[-2000:] + trained.stderr[-2000:])
    started = copy.serve("start")
    if started.returncode != 0:
        copy.stop()
        raise RuntimeError(started.stdout + started.stderr)
    return copy


@contextmanager
def running_copy(dest: Path, port: int, gate_port: int,
                 extra_env: dict[str, str] | None = None) -> Iterator[ProjectCopy]:
    """start_copy(...) for a fixture: the test fails if it cannot start; its servers stop afterwards."""
    try:
        copy = start_copy(dest, port, gate_port, extra_env)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield copy
    finally:
        copy.stop()
