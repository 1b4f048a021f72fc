"""bot.staff.retrain without training: the steps, the gate's decision (a paired
McNemar test on the dev suite's turns), hot swap, history and rollback, on a copy
of the project with training, measuring and swapping replaced by fakes.
(tests/staff/test_e2e_staff.py trains for real.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot import evaluation
from bot.knowledge.store import make_engine, stored_checksum
from bot.staff import faqs, retrain

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ["小朋友能参加科普日吗", "孩子可以去科普日活动吗", "科普日适合带小孩去吗"]
ANSWER = "可以，科普日活动面向社会公众。"
SUITE_TURNS = 100


def outcomes(wrong: set[str] | None = None, accuracy: float | None = None) -> dict[str, bool]:
    """Per-turn outcomes of a fake suite of SUITE_TURNS turns t0#0, t1#0, ...: the `wrong` ones,
    or all but the first round(accuracy * SUITE_TURNS) ones."""
    keys = [f"t{i}#0" for i in range(SUITE_TURNS)]
    if wrong is None:
        right = round((accuracy if accuracy is not None else 1.0) * SUITE_TURNS)
        wrong = set(keys[right:])
    return {k: k not in wrong for k in keys}


def scored(result: dict[str, Any], turns: dict[str, bool]) -> dict[str, Any]:
    """A fake measurement with these per-turn outcomes (accuracy and failures to match)."""
    failures = [{"turn": k, "user": f"问题{k}", "reply": ""} for k, ok in turns.items() if not ok]
    return {**result, "outcomes": turns, "failures": failures, "failed_turns": len(failures),
            "accuracy": round(sum(turns.values()) / len(turns), 4)}


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
        result = {"answer_accuracy": acc, "oos_rejection": 1.0, "followup_success": 1.0,
                  "turns": SUITE_TURNS, "suite": retrain.suite_fingerprint(), "seconds": 1.0,
                  "checks": [{"question": q, "expected": e, "present": p, "ok": True, "reply": ""}
                             for q, e, p in checks or []], "measured_at": "now"}
        return scored(result, outcomes(accuracy=acc))

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
    for rel in ("data", "knowledge", "tests/conversations"):  # dev/ and holdout/
        shutil.copytree(ROOT / rel, proj / rel)
    for name, value in {"ROOT": proj, "BUILD": proj / "build", "MODELS": proj / "models",
                        "REJECTED": proj / "models" / "rejected", "CURRENT": proj / "build" / "current_model",
                        "HISTORY": proj / "build" / "model_history.json",
                        "SCORES": proj / "build" / "model_scores.json", "TIMES": proj / "build" / "times.json",
                        "LOCK": proj / "build" / "retrain.lock", "TRAIN_LOG": proj / "build" / "train.log",
                        "CONVERSATIONS": proj / "tests" / "conversations" / "dev"}.items():
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
        return scored(result, outcomes(accuracy=0.9 if Path(model).name == Path(live).name else 0.5))

    monkeypatch.setattr(retrain, "measure", worse)
    result = retrain.retrain(full=True)
    assert not result.deployed and fakes.trained[0][0].startswith(Path(live).name.removesuffix(".tar.gz") + "-full")
    assert (project / live).exists() and retrain.current_model() == live


def test_a_worse_candidate_never_reaches_the_live_server(project, fakes, monkeypatch):
    live = retrain.current_model()
    faqs.add_faq("kids", QUESTIONS, ANSWER)
    # Live right on 90 turns, the candidate on 85 of them and no other: 5 newly wrong, 0 newly right.

    def worse(model: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = Fakes.measure(fakes, model, *args, **kwargs)
        return result if Path(model).name == Path(live).name else scored(result, outcomes(accuracy=0.85))

    monkeypatch.setattr(retrain, "measure", worse)
    result = retrain.retrain()
    assert not result.deployed and "未通过质量门" in result.reason and "85.0%" in result.reason
    assert "新答错 5 轮、新答对 0 轮" in result.reason and "显著差于线上模型" in result.reason
    assert "新答错：“问题t85#0”" in result.reason
    assert result.gate["comparison"] == {"paired_turns": 100, "newly_wrong": 5, "newly_right": 0,
                                         "p_value": round(1 / 32, 4), "alpha": 0.05, "worse": True}
    assert fakes.swapped == [] and retrain.current_model() == live and result.model == live
    rejected = list((project / "models" / "rejected").glob("*.tar.gz"))
    assert len(rejected) == 1 and not (project / "models" / rejected[0].name).exists()  # `make train` cannot use it
    assert result.gate["passed"] is False


def _measure_with(fakes: Fakes, live: str, live_wrong: set[str], cand_wrong: set[str]) -> Any:
    def measure(model: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = Fakes.measure(fakes, model, *args, **kwargs)
        return scored(result, outcomes(live_wrong if Path(model).name == Path(live).name else cand_wrong))
    return measure


def test_a_candidate_within_noise_goes_live(project, fakes, monkeypatch):
    live = retrain.current_model()
    faqs.add_faq("kids", QUESTIONS, ANSWER)
    # Lower accuracy (97% against 98%) but only 2 newly wrong turns against 1 newly right: noise.
    monkeypatch.setattr(retrain, "measure", _measure_with(fakes, live, {"t0#0", "t1#0"}, {"t1#0", "t2#0", "t3#0"}))
    result = retrain.retrain()
    assert result.deployed, result.reason
    assert "新答错 2 轮、新答对 1 轮" in result.reason and "差异不显著" in result.reason
    assert result.gate["comparison"]["p_value"] == 0.5 and result.gate["comparison"]["worse"] is False
    assert result.gate["fixes"] == ["t0#0"]
    assert [f["turn"] for f in result.gate["regressions"]] == ["t2#0", "t3#0"]
    assert "outcomes" not in result.gate["candidate"] and "outcomes" not in result.gate["live"]


def test_pairing_decides_not_the_accuracy_difference(project, fakes, monkeypatch):
    live = retrain.current_model()
    faqs.add_faq("kids", QUESTIONS, ANSWER)
    # Both candidates score 95% against the live model's 100%...
    five_wrong = {f"t{i}#0" for i in range(5)}
    monkeypatch.setattr(retrain, "measure", _measure_with(fakes, live, set(), five_wrong))
    refused = retrain.retrain()
    assert not refused.deployed and refused.gate["comparison"]["worse"] is True  # p = 1/32
    # ...but against a live model that fails 3 other turns the candidate is 5 worse, 3 better: p = 0.36.
    monkeypatch.setattr(retrain, "measure", _measure_with(fakes, live, {"t90#0", "t91#0", "t92#0"}, five_wrong))
    faqs.update_faq("kids", answer="可以。")  # any new run; the rejected model is reused and re-gated
    monkeypatch.setattr(retrain, "SCORES", project / "build" / "fresh_scores.json")
    accepted = retrain.retrain()
    assert accepted.deployed, accepted.reason
    assert accepted.gate["comparison"]["p_value"] == round(93 / 256, 4)


def test_alpha_zero_never_refuses_on_the_suite(project, fakes, monkeypatch):
    live = retrain.current_model()
    faqs.add_faq("kids", QUESTIONS, ANSWER)
    monkeypatch.setattr(retrain, "measure", _measure_with(fakes, live, set(), {f"t{i}#0" for i in range(40)}))
    monkeypatch.setenv("KEPU_GATE_ALPHA", "0")
    result = retrain.retrain()
    assert result.deployed and result.gate["comparison"]["newly_wrong"] == 40, result.reason


@pytest.mark.parametrize(("value", "alpha"), [(None, 0.05), ("0.01", 0.01), ("0", 0.0), ("abc", 0.05), ("7", 1.0)])
def test_gate_alpha_setting(monkeypatch, value, alpha):
    if value is None:
        monkeypatch.delenv("KEPU_GATE_ALPHA", raising=False)
    else:
        monkeypatch.setenv("KEPU_GATE_ALPHA", value)
    assert retrain.gate_alpha() == alpha


def test_compare_pairs_the_same_turns():
    live = {"a#0": True, "a#1": True, "b#0": True, "c#0": False}
    cand = {"a#0": False, "a#1": False, "b#0": False, "c#0": True}
    assert retrain.compare(None, {"outcomes": cand}, 0.05) == {"paired_turns": 0, "worse": False}
    assert retrain.compare({"outcomes": live}, {"outcomes": cand}, 0.05) == {
        "paired_turns": 4, "newly_wrong": 3, "newly_right": 1, "p_value": 0.3125, "alpha": 0.05, "worse": False}


def test_a_cached_score_without_outcomes_is_measured_again(project, fakes):
    live_name = Path(retrain.current_model()).name
    retrain._write_json(retrain.SCORES, {live_name: {"accuracy": 0.99, "suite": retrain.suite_fingerprint()}})
    faqs.add_faq("kids", QUESTIONS, ANSWER)
    retrain.retrain()
    assert fakes.measured.count(live_name) == 1
    assert "outcomes" in retrain._read_json(retrain.SCORES, {})[live_name]


def test_measure_runs_the_gate_subset_of_dev_only_and_records_every_turn(project, monkeypatch):
    holdout = project / "tests" / "conversations" / "holdout"
    holdout.mkdir(exist_ok=True)
    (holdout / "set_x.yml").write_text(
        'conversations:\n  - id: hb-x-001\n    class: plain\n    turns:\n      - user: "报名最晚哪天"\n'
        '        expect: answer\n', encoding="utf-8")
    served: list[str] = []

    def serve(command: str, model: Any = None) -> subprocess.CompletedProcess:
        served.append(command)
        return subprocess.CompletedProcess([], 0, "", "")

    async def run_suite(url: str, conversations: list[evaluation.Conversation], key_facts: Any = None,
                        concurrency: int = 4) -> list[list[evaluation.TurnResult]]:
        assert "9月24日" in key_facts
        out = []
        for conv in conversations:
            played = []
            for i, t in enumerate(conv.turns):
                reply = evaluation.Reply(200, "好的", (evaluation.REPLY_KIND[t.expect],))
                played.append(evaluation.TurnResult(conv.id, conv.group, i, t, reply, evaluation.judge(t, reply)))
            out.append(played)
        return out

    monkeypatch.setattr(retrain, "_serve", serve)
    monkeypatch.setattr(retrain.live, "is_ready", lambda url, timeout=2.0: False)
    monkeypatch.setattr(retrain, "_run_checks", lambda url, checks, attempts=1, wait=0: [])
    monkeypatch.setattr(evaluation, "run_suite", run_suite)
    result = retrain.measure("models/kepu-x.tar.gz")
    dev = evaluation.load_set("dev", project / "tests" / "conversations")
    played = evaluation.sample(dev, retrain.GATE_TURNS)
    assert set(result["outcomes"]) == {f"{c.id}#{i}" for c in played for i in range(len(c.turns))}
    assert result["turns"] == sum(len(c.turns) for c in played) < sum(len(c.turns) for c in dev)
    holdout_ids = {c.id for c in evaluation.load_set("holdout")}
    assert holdout_ids and not any(key.split("#")[0] in holdout_ids for key in result["outcomes"])
    assert result["turns"] == len(result["outcomes"]) >= 300 and served == ["stop", "start", "stop"]


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
