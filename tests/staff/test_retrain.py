"""bot.staff.retrain without training: the steps, the gate's decision, hot swap,
history and rollback, on a copy of the project with training, measuring and
swapping replaced by fakes. (tests/staff/test_e2e_staff.py trains for real.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.knowledge.store import make_engine, stored_checksum
from bot.staff import faqs, retrain

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ["小朋友能参加科普日吗", "孩子可以去科普日活动吗", "科普日适合带小孩去吗"]
ANSWER = "可以，科普日活动面向社会公众。"


class Fakes:
    """Records what retrain() asked for; answers with configured results."""

    def __init__(self) -> None:
        self.trained: list[tuple[str, Path | None]] = []
        self.measured: list[str] = []
        self.swapped: list[str] = []
        self.accuracy: dict[str, float] = {}
        self.refuse_finetune = False
        self.smoke_ok = True

    def train(self, name: str, finetune_from: Path | None, steps: Any) -> tuple[bool, str]:
        self.trained.append((name, finetune_from))
        if finetune_from is not None and self.refuse_finetune:
            return False, "InvalidConfigException: Cannot finetune because keys that affect the training ..."
        (retrain.MODELS / f"{name}.tar.gz").write_bytes(b"model")
        return True, ""

    def measure(self, model: str, checks: Any = None, steps: Any = None, label: str = "",
                span: Any = (0.0, 1.0)) -> dict[str, Any]:
        if steps:
            steps.report(label, "gate", span[0])
        self.measured.append(Path(model).name)
        acc = self.accuracy.get(Path(model).name, 0.9)
        return {"accuracy": acc, "answer_accuracy": acc, "oos_rejection": 1.0, "followup_success": 1.0,
                "turns": 10, "failed_turns": 1, "suite": retrain.suite_fingerprint(), "seconds": 1.0,
                "checks": [{"question": q, "expected": e, "present": p, "ok": True, "reply": ""}
                           for q, e, p in checks or []], "measured_at": "now"}

    def swap(self, model: str) -> tuple[list[str], list[str]]:
        self.swapped.append(model)
        return ["http://127.0.0.1:5505"], []

    def run_checks(self, url: str, checks: Any, attempts: int = 1, wait: float = 0) -> list[dict[str, Any]]:
        return [{"question": q, "expected": e, "present": p, "ok": self.smoke_ok, "reply": "…"}
                for q, e, p in checks]


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the training inputs with a 'live' model trained from them."""
    proj = tmp_path / "proj"
    for rel in ("config.yml", "domain.yml", "requirements.lock", "endpoints.yml", "bot/nlu/components.py"):
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, proj / rel)
    for rel in ("data", "knowledge", "tests/conversations"):
        shutil.copytree(ROOT / rel, proj / rel)
    for name, value in {"ROOT": proj, "BUILD": proj / "build", "MODELS": proj / "models",
                        "REJECTED": proj / "models" / "rejected", "CURRENT": proj / "build" / "current_model",
                        "HISTORY": proj / "build" / "model_history.json",
                        "SCORES": proj / "build" / "model_scores.json", "TIMES": proj / "build" / "times.json",
                        "LOCK": proj / "build" / "retrain.lock", "TRAIN_LOG": proj / "build" / "train.log",
                        "CONVERSATIONS": proj / "tests" / "conversations"}.items():
        monkeypatch.setattr(retrain, name, value)
    monkeypatch.setenv("KEPU_DB_URL", f"sqlite:///{tmp_path / 'kb.db'}")
    monkeypatch.setenv("KEPU_KNOWLEDGE_DIR", str(proj / "knowledge"))
    monkeypatch.setenv("KEPU_DATA_DIR", str(proj / "data"))
    (proj / "models").mkdir()
    (proj / "build").mkdir()
    from bot.generate import write
    from bot.knowledge.loader import load_knowledge

    write(load_knowledge(proj / "knowledge"), proj)
    live = f"models/kepu-{retrain.fingerprint()}.tar.gz"
    (proj / live).write_bytes(b"live model")
    (proj / "build" / "current_model").write_text(live + "\n")
    return proj


@pytest.fixture()
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    fake = Fakes()
    monkeypatch.setattr(retrain, "_train", fake.train)
    monkeypatch.setattr(retrain, "measure", fake.measure)
    monkeypatch.setattr(retrain, "_swap", fake.swap)
    monkeypatch.setattr(retrain, "_run_checks", fake.run_checks)
    return fake


def test_fingerprint_is_the_one_scripts_train_sh_computes():
    shell = subprocess.run(
        ["bash", "-c", "cat config.yml domain.yml $(find data -name '*.yml' | LC_ALL=C sort) "
                       "bot/nlu/components.py requirements.lock | sha256sum | cut -c1-16"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert retrain.fingerprint() == shell
    assert retrain.model_fingerprint(f"models/kepu-{shell}.tar.gz") == shell
    assert retrain.model_fingerprint("models/other.tar.gz") == ""


def test_added_faq_is_trained_gated_and_deployed(project, fakes):
    live = retrain.current_model()
    faqs.add_faq("kids", QUESTIONS, ANSWER)
    steps: list[tuple[str, float]] = []
    result = retrain.retrain(progress=lambda label, fraction: steps.append((label, fraction)))

    assert result.deployed, result.reason
    assert result.model != live and retrain.current_model() == result.model
    # A new FAQ adds a response to the domain: Rasa cannot finetune, so it is a full train.
    assert fakes.trained == [(Path(result.model).name.removesuffix(".tar.gz"), None)]
    assert "不能在线上模型上微调" in result.reason
    assert fakes.swapped == [result.model]
    assert [name for name, _ in result.steps] == ["validate", "build_kb", "generate", "train:full", "gate",
                                                   "deploy"]
    assert result.gate["passed"] and result.gate["checks"][0]["question"] == QUESTIONS[0]
    assert [s["question"] for s in result.gate["smoke"]] == [QUESTIONS[0]]
    assert steps[-1] == ("完成 / done", 1.0) and all(0 <= f <= 1 for _, f in steps)
    assert [f for _, f in steps] == sorted(f for _, f in steps)
    history = retrain._history()
    assert history[-1]["model"] == result.model and history[-1]["previous"] == live
    assert "kids" in (project / "data" / "generated" / "faq.yml").read_text(encoding="utf-8")


def test_new_examples_for_an_existing_faq_finetune_the_live_model(project, fakes):
    live = retrain.current_model()
    purpose = faqs.list_faqs()[0]
    faqs.update_faq(purpose.id, questions=[*purpose.questions, "开展科普日的用意是什么"])
    result = retrain.retrain()
    assert result.deployed and fakes.trained == [(Path(result.model).name.removesuffix(".tar.gz"), project / live)]
    assert "微调" in result.reason and [n for n, _ in result.steps if n.startswith("train")] == ["train:finetune"]
    assert result.gate["checks"][0]["question"] == purpose.questions[0]


def test_answer_only_change_needs_no_training(project, fakes):
    purpose = faqs.list_faqs()[0]
    faqs.update_faq(purpose.id, answer="新的答案。")
    result = retrain.retrain()
    assert result.gate == {"unchanged": True} and fakes.trained == []
    from bot.knowledge.store import read_database

    engine = make_engine()
    assert next(f for f in read_database(engine).faqs if f.id == purpose.id).answer == "新的答案。"
    engine.dispose()


def test_finetune_refused_falls_back_to_a_full_train(project, fakes):
    fakes.refuse_finetune = True
    purpose = faqs.list_faqs()[0]
    faqs.update_faq(purpose.id, questions=[*purpose.questions, "开展科普日的用意是什么"])
    result = retrain.retrain()
    assert result.deployed
    assert [f is not None for _, f in fakes.trained] == [True, False]
    assert "拒绝" in result.reason and "完整训练" in result.reason
    assert [n for n, _ in result.steps if n.startswith("train")] == ["train:finetune", "train:full"]


def test_full_flag_never_finetunes(project, fakes):
    faqs.add_faq("kids", QUESTIONS, ANSWER)
    assert retrain.retrain(full=True).deployed
    assert [f for _, f in fakes.trained] == [None]


def test_full_retrain_of_the_live_inputs_keeps_the_live_model_file(project, fakes, monkeypatch):
    live = retrain.current_model()

    def worse(model: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = Fakes.measure(fakes, model, *args, **kwargs)
        result["accuracy"] = 0.9 if Path(model).name == Path(live).name else 0.5
        return result

    monkeypatch.setattr(retrain, "measure", worse)
    result = retrain.retrain(full=True)
    assert not result.deployed and fakes.trained[0][0].startswith(Path(live).name.removesuffix(".tar.gz") + "-full")
    assert (project / live).exists() and retrain.current_model() == live


def test_a_worse_candidate_never_reaches_the_live_server(project, fakes, monkeypatch):
    live = retrain.current_model()
    faqs.add_faq("kids", QUESTIONS, ANSWER)

    def worse(model: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = Fakes.measure(fakes, model, *args, **kwargs)
        if Path(model).name != Path(live).name:
            result["accuracy"] = 0.85
        return result

    monkeypatch.setattr(retrain, "measure", worse)
    result = retrain.retrain()
    assert not result.deployed and "未通过质量门" in result.reason and "85.0%" in result.reason
    assert fakes.swapped == [] and retrain.current_model() == live and result.model == live
    rejected = list((project / "models" / "rejected").glob("*.tar.gz"))
    assert len(rejected) == 1 and not (project / "models" / rejected[0].name).exists()  # `make train` cannot use it
    assert result.gate["passed"] is False


def test_tolerance_lets_a_candidate_within_noise_through(project, fakes, monkeypatch):
    live = retrain.current_model()
    faqs.add_faq("kids", QUESTIONS, ANSWER)

    def slightly_worse(model: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = Fakes.measure(fakes, model, *args, **kwargs)
        is_live = Path(model).name == Path(live).name
        result["accuracy"] = 0.9 if is_live else 0.895
        result["failures"] = [{"turn": "a#0", "user": "甲", "reply": ""}] if is_live else \
            [{"turn": "b#0", "user": "乙", "reply": ""}, {"turn": "c#0", "user": "丙", "reply": ""}]
        return result

    monkeypatch.setattr(retrain, "measure", slightly_worse)
    rejected = retrain.retrain()
    assert not rejected.deployed and "新答错：“乙”、“丙”" in rejected.reason
    assert rejected.gate["fixes"] == ["a#0"] and rejected.gate["tolerance"] == 0.0

    monkeypatch.setenv("KEPU_GATE_TOLERANCE", "1")
    faqs.update_faq("kids", answer="可以。")  # any new run; the rejected model is reused and re-gated
    accepted = retrain.retrain()
    assert accepted.deployed and "允许低 1 个百分点" in accepted.reason, accepted.reason


def test_a_broken_faq_yml_stops_before_anything_is_built(project, fakes):
    live = retrain.current_model()
    (project / "knowledge" / "faq.yml").write_text("faqs:\n  - id: x\n    questions: [a]\n", encoding="utf-8")
    result = retrain.retrain()
    assert not result.deployed and "知识库校验失败" in result.reason and "faq.yml" in result.reason
    assert fakes.trained == [] and fakes.swapped == [] and retrain.current_model() == live
    assert [n for n, _ in result.steps] == ["validate"]
    engine = make_engine()
    assert stored_checksum(engine) is None  # the database was not touched
    engine.dispose()


def test_nothing_changed_means_no_training(project, fakes):
    result = retrain.retrain()
    assert not result.deployed and result.gate == {"unchanged": True} and fakes.trained == []


def test_live_score_is_cached_per_model(project, fakes):
    faqs.add_faq("kids", QUESTIONS, ANSWER)
    retrain.retrain()
    faqs.add_faq("kids2", ["小学生能去科普日吗", "中学生可以参加科普日吗", "学生适合去科普日吗"], ANSWER)
    retrain.retrain()
    live_name = Path(retrain._history()[0]["previous"]).name
    assert fakes.measured.count(live_name) == 1  # measured once, then read from build/model_scores.json
    assert len(fakes.measured) == 3


def test_failed_smoke_check_swaps_back(project, fakes):
    live = retrain.current_model()
    fakes.smoke_ok = False
    faqs.add_faq("kids", QUESTIONS, ANSWER)
    result = retrain.retrain()
    assert not result.deployed and "冒烟检查未通过" in result.reason
    assert fakes.swapped[-1] == live and len(fakes.swapped) == 2
    assert retrain.current_model() == live and retrain._history() == []


def test_rollback_swaps_to_the_previous_model(project, fakes):
    live = retrain.current_model()
    faqs.add_faq("kids", QUESTIONS, ANSWER)
    deployed = retrain.retrain().model
    assert retrain.rollback() == live
    assert fakes.swapped == [deployed, live]
    assert retrain.current_model() == live and retrain._history() == []
    with pytest.raises(RuntimeError, match="没有可回滚"):
        retrain.rollback()


def test_two_retrains_cannot_run_at_once(project, fakes):
    with retrain._exclusive() as got_it:
        assert got_it
        result = retrain.retrain()
    assert not result.deployed and "正在进行" in result.reason and fakes.trained == []
    with retrain._exclusive() as got_it, pytest.raises(RuntimeError, match="正在进行"):
        assert got_it
        retrain.rollback()


def test_the_gate_refuses_a_port_someone_else_answers_on(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(retrain, "_serve", lambda command, model=None: calls.append(command))
    monkeypatch.setattr(retrain.live, "is_ready", lambda url, timeout=2.0: True)
    with pytest.raises(retrain.RetrainError, match="已被其他服务占用"):
        retrain.measure("models/kepu-x.tar.gz")
    assert calls == ["stop"]  # never started: it would have measured the other server
