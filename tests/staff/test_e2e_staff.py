"""End to end: staff teach the assistant through the `bot` command (slow: it trains).

Runs on a throwaway copy of the project (its own knowledge/, data/, models/,
build/ and databases; .venv is shared) with its own "live" server on
127.0.0.1:5505 (actions 5555) and the quality gate on 5415/5465, so the
checkout, its database and the server on 5005 are never touched:

- `bot faq add ...` -> `bot retrain` -> three unseen paraphrases get the FAQ's
  answer from the live server -> `bot rollback` -> `bot faq remove` ->
  `bot retrain`: faq.yml and the model are back to where they started;
- out-of-scope questions asked over REST show up in `bot report unanswered`.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.staff import live

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LIVE_PORT, LIVE_ACTIONS_PORT = 5505, 5555
GATE_PORT, GATE_ACTIONS_PORT = 5415, 5465
LIVE_URL = f"http://127.0.0.1:{LIVE_PORT}"
IGNORE = shutil.ignore_patterns(".venv", "models", "build", "results", ".rasa", ".git", "__pycache__",
                                ".pytest_cache", ".ruff_cache", "node_modules")

FAQ_ID = "e2e_photos"
FAQ_QUESTIONS = ["科普日活动现场可以拍照吗", "活动时能不能录像", "参加科普日活动可以拍视频吗",
                 "在活动现场拍照留念可以吗", "科普日现场允许摄影吗", "活动当天让不让摄像",
                 "能在科普日活动上拍照片分享吗"]
FAQ_ANSWER = "可以。欢迎在科普日活动现场拍照、录像并分享，请注意不要影响活动秩序，拍摄他人时请先征得同意。"
EXPECTED = "欢迎在科普日活动现场拍照"
# Not among the examples. (Measured: "科普日那天可以摄像吗" is still read as a question about the
# main activities -- "科普日" plus a day pulls towards the notice's own intents.)
PARAPHRASES = ["活动现场能拍照片吗", "拍照录像在现场允许不", "在科普日现场录像可以吗"]
OUT_OF_SCOPE = ["社保怎么交", "附近有什么好吃的餐馆", "股票明天会涨吗"]


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KEPU_DB_URL", "TRACKER_URL", "KEPU_KNOWLEDGE_DIR", "KEPU_DATA_DIR")}
    env.update({
        "PYTHONPATH": str(project), "RASA_API_TOKEN": "e2e-staff-token", "KEPU_LIVE_URLS": LIVE_URL,
        "KEPU_GATE_PORT": str(GATE_PORT), "KEPU_GATE_ACTIONS_PORT": str(GATE_ACTIONS_PORT),
        "TF_CPP_MIN_LOG_LEVEL": "2", "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        # Adding one FAQ means a full retrain, which moves the held-out suite by a few of its 409
        # turns either way (measured: 98.3% -> 97.8%). This test is about the staff workflow; the
        # strict default gate (0) is covered by tests/staff/test_retrain.py.
        "KEPU_GATE_TOLERANCE": "1.0",
    })
    return env


def _run(project: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=project, env=_env(project), capture_output=True, text=True,
                          timeout=timeout)


def _bot(project: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return _run(project, str(project / ".venv" / "bin" / "python"), "-m", "bot.cli", *args, timeout=timeout)


def _serve(project: Path, command: str) -> subprocess.CompletedProcess:
    env = _env(project) | {"RASA_PORT": str(LIVE_PORT), "ACTIONS_PORT": str(LIVE_ACTIONS_PORT)}
    return subprocess.run([str(project / "scripts" / "serve.sh"), command], cwd=project, env=env,
                          capture_output=True, text=True, timeout=400)


def _ask(text: str) -> str:
    return live.ask(LIVE_URL, f"e2e-{uuid.uuid4().hex[:10]}", text)[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the project with a trained model and its live server on 5505."""
    if live.is_ready(LIVE_URL):
        pytest.fail(f"port {LIVE_PORT} is already in use")
    proj = tmp_path_factory.mktemp("kepu") / "main"
    shutil.copytree(ROOT, proj, ignore=IGNORE)
    (proj / ".venv").symlink_to(ROOT / ".venv")
    (proj / "models").mkdir()
    (proj / "build").mkdir()
    python = str(proj / ".venv" / "bin" / "python")
    for module in ("bot.knowledge.build", "bot.generate"):
        done = _run(proj, python, "-m", module)
        assert done.returncode == 0, done.stderr
    fingerprint = _run(proj, python, "-c", "from bot.staff.retrain import fingerprint; print(fingerprint())")
    model = f"models/kepu-{fingerprint.stdout.strip()}.tar.gz"
    if (ROOT / model).exists():  # the checkout's model for these very inputs: no need to train
        shutil.copy2(ROOT / model, proj / model)
        (proj / "build" / "current_model").write_text(model + "\n")
    else:
        trained = _run(proj, str(proj / "scripts" / "train.sh"))
        assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    started = _serve(proj, "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield proj
    finally:
        _serve(proj, "stop")
        gate = _env(proj) | {"RASA_PORT": str(GATE_PORT), "ACTIONS_PORT": str(GATE_ACTIONS_PORT)}
        subprocess.run([str(proj / "scripts" / "serve.sh"), "stop"], cwd=proj, env=gate, capture_output=True)


def test_staff_add_an_faq_and_the_live_server_answers_it(project: Path) -> None:
    faq_file = project / "knowledge" / "faq.yml"
    original_faqs = faq_file.read_bytes()
    original_model = (project / "build" / "current_model").read_text().strip()
    for text in PARAPHRASES:
        assert EXPECTED not in _ask(text)

    args = ["faq", "add", "--id", FAQ_ID, "--answer", FAQ_ANSWER]
    for q in FAQ_QUESTIONS:
        args += ["--question", q]
    added = _bot(project, *args)
    assert added.returncode == 0, added.stdout + added.stderr
    assert f"已添加常见问题 {FAQ_ID}" in added.stdout
    assert FAQ_ID in _bot(project, "faq", "list").stdout

    t0 = time.perf_counter()
    retrained = _bot(project, "retrain")
    seconds = time.perf_counter() - t0
    print(retrained.stdout, file=sys.stderr)
    assert retrained.returncode == 0, retrained.stdout[-3000:] + retrained.stderr[-3000:]
    assert "已上线" in retrained.stdout and "质量门" in retrained.stdout
    new_model = (project / "build" / "current_model").read_text().strip()
    assert new_model != original_model and live.model_name(LIVE_URL, "e2e-staff-token").endswith(Path(new_model).name)

    replies = {text: _ask(text) for text in PARAPHRASES}
    assert all(EXPECTED in reply for reply in replies.values()), replies
    print(f"retrain {seconds:.0f}s; paraphrases answered: {replies}", file=sys.stderr)

    rolled = _bot(project, "rollback")
    assert rolled.returncode == 0 and original_model in rolled.stdout, rolled.stdout + rolled.stderr
    assert (project / "build" / "current_model").read_text().strip() == original_model
    assert EXPECTED not in _ask(PARAPHRASES[0])

    removed = _bot(project, "faq", "remove", FAQ_ID)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert faq_file.read_bytes() == original_faqs
    back = _bot(project, "retrain")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert (project / "build" / "current_model").read_text().strip() == original_model

    audit = _bot(project, "audit").stdout
    assert "faq.add" in audit and "faq.remove" in audit and "rollback" in audit and "retrain" in audit


def test_out_of_scope_questions_show_up_in_the_unanswered_report(project: Path, tmp_path: Path) -> None:
    for text in OUT_OF_SCOPE:
        assert _ask(text).startswith("抱歉")
    _ask(OUT_OF_SCOPE[0] + "？")  # the same question again, with punctuation
    assert "截止" in _ask("截止日期是什么时候")

    out = tmp_path / "unanswered.csv"
    report = _bot(project, "report", "unanswered", "--csv", str(out))
    assert report.returncode == 0, report.stdout + report.stderr
    for text in OUT_OF_SCOPE:
        assert text in report.stdout
    assert "截止日期是什么时候" not in report.stdout
    with open(out, encoding="utf-8-sig", newline="") as handle:
        rows = {row["question"]: row for row in csv.DictReader(handle)}
    assert rows[OUT_OF_SCOPE[0]]["count"] == "2" and rows[OUT_OF_SCOPE[0]]["kinds"] == "refusal"
    assert set(OUT_OF_SCOPE) <= set(rows)
