"""deploy/entrypoint.sh run for real in a stand-in /app (python is a stand-in on PATH that records
how it was called and with which settings): an upgrade refreshes the code-owned knowledge files
and never the staff's faq.yml, the image's model takes over after an upgrade only, secrets come
from NAME_FILE, and a role missing a setting stops with its name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STUB_PYTHON = """#!/bin/sh
printf '%s\\n' "$*" >> "$APP/python.log"
env | grep -E '^(KEPU_|RASA_|TRACKER_|REDIS_|ACTION_|SANIC_)' | sort > "$APP/python.env"
exit 0
"""


def make_app(tmp_path: Path, image_model: str = "kepu-aaa.tar.gz") -> Path:
    app = tmp_path / "app"
    (app / "deploy").mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "entrypoint.sh", app / "deploy" / "entrypoint.sh")
    (app / ".image" / "knowledge").mkdir(parents=True)
    (app / ".image" / "knowledge" / "notice.yml").write_text("notice: v2\n")
    (app / ".image" / "knowledge" / "faq.yml").write_text("faqs: []\n")
    set_image_model(app, image_model)
    (app / "bin").mkdir()
    (app / "bin" / "python").write_text(STUB_PYTHON)
    (app / "bin" / "python").chmod(0o755)
    return app


def set_image_model(app: Path, name: str) -> None:
    models = app / ".image" / "models"
    shutil.rmtree(models, ignore_errors=True)
    models.mkdir(parents=True)
    (models / name).write_bytes(b"model")


def run(app: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {"PATH": f"{app / 'bin'}:{os.environ['PATH']}", "APP": str(app), "HOME": str(app), **env}
    return subprocess.run(["bash", str(app / "deploy" / "entrypoint.sh"), *args], env=environ,
                          capture_output=True, text=True, timeout=60, check=False)


def test_prepare_keeps_the_staff_faqs_and_refreshes_everything_else(tmp_path: Path):
    app = make_app(tmp_path)
    (app / "knowledge").mkdir()
    (app / "knowledge" / "faq.yml").write_text("faqs: [{id: staff}]\n")
    (app / "knowledge" / "notice.yml").write_text("notice: v1\n")
    (app / "knowledge" / "dropped.yml").write_text("old: true\n")
    done = run(app, "prepare", KEPU_DB_URL="sqlite:///kb.db")
    assert done.returncode == 0, done.stderr
    assert (app / "knowledge" / "faq.yml").read_text() == "faqs: [{id: staff}]\n"
    assert (app / "knowledge" / "notice.yml").read_text() == "notice: v2\n"
    assert not (app / "knowledge" / "dropped.yml").exists()
    assert (app / "python.log").read_text().splitlines()[-1] == "-m bot.knowledge.build"


def test_a_first_start_seeds_the_staff_file_from_the_image(tmp_path: Path):
    app = make_app(tmp_path)
    assert run(app, "prepare", KEPU_DB_URL="sqlite:///kb.db").returncode == 0
    assert (app / "knowledge" / "faq.yml").read_text() == "faqs: []\n"
    assert (app / "build" / "current_model").read_text().strip() == "models/kepu-aaa.tar.gz"
    assert (app / "models" / "kepu-aaa.tar.gz").exists()


def test_a_retrained_model_stays_current_until_an_upgrade_brings_a_new_image_model(tmp_path: Path):
    app = make_app(tmp_path)
    assert run(app, "prepare", KEPU_DB_URL="sqlite:///kb.db").returncode == 0
    (app / "models" / "kepu-staff.tar.gz").write_bytes(b"retrained")
    (app / "build" / "current_model").write_text("models/kepu-staff.tar.gz\n")
    assert run(app, "prepare", KEPU_DB_URL="sqlite:///kb.db").returncode == 0  # a restart
    assert (app / "build" / "current_model").read_text().strip() == "models/kepu-staff.tar.gz"
    set_image_model(app, "kepu-bbb.tar.gz")  # the upgrade
    assert run(app, "prepare", KEPU_DB_URL="sqlite:///kb.db").returncode == 0
    assert (app / "build" / "current_model").read_text().strip() == "models/kepu-bbb.tar.gz"
    assert (app / "models" / "kepu-staff.tar.gz").exists()  # still there for `bot rollback`


def test_secrets_come_from_files_and_feed_both_token_variables(tmp_path: Path):
    app = make_app(tmp_path)
    (tmp_path / "token").write_text("s3cret-token")
    done = run(app, "bot", "faq", "list", KEPU_API_TOKEN_FILE=str(tmp_path / "token"))
    assert done.returncode == 0, done.stderr
    env = dict(line.split("=", 1) for line in (app / "python.env").read_text().splitlines())
    assert env["KEPU_API_TOKEN"] == env["RASA_API_TOKEN"] == "s3cret-token"
    assert "KEPU_API_TOKEN_FILE" not in env
    assert (app / "python.log").read_text().splitlines() == ["-m bot.cli faq list"]


def test_rasa_stops_with_the_names_of_missing_settings(tmp_path: Path):
    app = make_app(tmp_path)
    done = run(app, "rasa", KEPU_API_TOKEN="t", KEPU_DB_URL="sqlite:///kb.db")
    assert done.returncode == 1
    assert "TRACKER_URL" in done.stderr and "REDIS_HOST" in done.stderr
    assert not (app / "python.log").exists()


def test_rasa_runs_bot_server_with_the_replica_endpoints(tmp_path: Path):
    app = make_app(tmp_path)
    (app / "build").mkdir()
    (app / "build" / "current_model").write_text("models/kepu-aaa.tar.gz\n")
    done = run(app, "rasa", KEPU_API_TOKEN="t", KEPU_DB_URL="sqlite:///kb.db", TRACKER_URL="sqlite://",
               REDIS_HOST="127.0.0.1")
    assert done.returncode == 0, done.stderr
    call = (app / "python.log").read_text().split()
    assert call[:4] == ["-m", "bot.server", "run", "--model"] and "endpoints.replicas.yml" in call
    env = dict(line.split("=", 1) for line in (app / "python.env").read_text().splitlines())
    assert env["REDIS_PORT"] == "6379" and env["REDIS_PASSWORD"] == ""
    assert env["ACTION_ENDPOINT_URL"] == "http://127.0.0.1:5055/webhook"


def test_the_action_server_binds_loopback_unless_told_otherwise(tmp_path: Path):
    app = make_app(tmp_path)
    assert run(app, "actions", KEPU_DB_URL="sqlite:///kb.db").returncode == 0
    assert "SANIC_HOST=127.0.0.1" in (app / "python.env").read_text()
    assert run(app, "actions", KEPU_DB_URL="sqlite:///kb.db", ACTIONS_HOST="actions-1-private").returncode == 0
    assert "SANIC_HOST=actions-1-private" in (app / "python.env").read_text()
    assert run(app, "nonsense").returncode == 2
