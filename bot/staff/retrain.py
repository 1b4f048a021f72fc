"""Retrain with a quality gate, then hot-swap the live servers.

    validate (load_knowledge) -> build the knowledge DB -> generate data/generated/*
    -> train (finetune the live model when only knowledge/faq.yml changed, else full)
    -> gate: serve the candidate on a spare port, run a fixed stratified subset of the dev
       conversation suite (tests/conversations/dev, KEPU_GATE_TURNS turns; never the
       holdout) against it, pair its turns with
       the live model's on the same suite
    -> deploy: PUT /model on every live server (KEPU_LIVE_URLS), smoke question,
       build/current_model, build/model_history.json (for rollback()).

The live servers keep answering with the old model during all of it: the
candidate runs on its own port (KEPU_GATE_PORT, default 5405, actions 5455)
with an in-memory tracker store, and Rasa's PUT /model swaps agents only once
the new one is loaded. The gate compares like with like: both models' per-turn
outcomes on the same dev turns, by an exact McNemar test (turns the live model
gets right and the candidate wrong against the reverse). It refuses the
candidate only when it is significantly worse (one-sided p < KEPU_GATE_ALPHA,
default 0.05), or when a changed FAQ does not get its answer. A broken
knowledge/ stops at the first step; a refused model is moved to
models/rejected/ (so `make train` cannot pick it up) and never reaches a live
server. A lock file keeps two
retrains (or a retrain and a rollback) from running at once.

Model names match scripts/train.sh (kepu-<fingerprint of the training inputs>),
so `make train` / `make run` recognise a model trained here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot import clock, evaluation
from bot.faq import is_expired
from bot.knowledge.answers import short
from bot.knowledge.loader import KnowledgeError, load_knowledge
from bot.knowledge.model import Faq, KnowledgeSet
from bot.knowledge.store import ROOT, build_database, make_engine, read_database, stored_checksum
from bot.staff import audit, live

Progress = Callable[[str, float], None]

BUILD = ROOT / "build"
MODELS = ROOT / "models"
REJECTED = MODELS / "rejected"
CURRENT = BUILD / "current_model"
HISTORY = BUILD / "model_history.json"
SCORES = BUILD / "model_scores.json"
TIMES = BUILD / "retrain_times.json"
LOCK = BUILD / "retrain.lock"
TRAIN_LOG = BUILD / "retrain-train.log"
GENERATED_FAQ = "data/generated/faq.yml"
CONVERSATIONS = ROOT / "tests" / "conversations" / "dev"  # the gate never sees the holdout set
GATE_ALPHA = 0.05
# The gate plays a fixed stratified subset of the dev suite (evaluation.sample): the whole suite
# (3 300 turns) twice would cost more than the training itself. KEPU_GATE_TURNS=0 plays all of it.
GATE_TURNS = 1000
EPOCH_FRACTION = 0.3
# Rough share of the whole run each step takes, for the progress bar.
PHASES = {"validate": (0.0, 0.02), "build_kb": (0.02, 0.03), "generate": (0.03, 0.05),
          "train": (0.05, 0.6), "gate": (0.6, 0.92), "deploy": (0.92, 1.0)}
DEFAULT_SECONDS = {"full": 240.0, "finetune": 120.0, "serve": 40.0, "suite": 60.0}
SMOKE_FALLBACK = ("联系电话是多少", "contact.phone")


class RetrainError(RuntimeError):
    """A step failed; the message says which and why (in Chinese)."""


@dataclass
class RetrainResult:
    """What a retrain did: whether the candidate went live, and why."""

    deployed: bool
    model: str
    reason: str
    seconds: float
    gate: dict = field(default_factory=dict)
    steps: list[tuple[str, float]] = field(default_factory=list)


# -- small helpers -----------------------------------------------------------

def _env() -> dict[str, str]:
    # RASA_MAX_CACHE_SIZE=0: Rasa's training cache makes a model depend on what was cached before
    # (measured: the same data trained with and without it agrees on 378 of 409 held-out intents);
    # without it, the same inputs always give the same model, so the gate compares like with like.
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "RASA_MAX_CACHE_SIZE": "0"}


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _today() -> dt.date:
    return clock.today()


def current_model() -> str:
    """The deployed model as written in build/current_model (relative to the project), or ''."""
    return CURRENT.read_text(encoding="utf-8").strip() if CURRENT.exists() else ""


def _abs(model: str) -> Path:
    path = Path(model)
    return path if path.is_absolute() else ROOT / path


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return path.relative_to(ROOT).as_posix()
    return str(path)


def training_inputs() -> list[str]:
    """The files scripts/train.sh fingerprints, in its order (paths relative to the project)."""
    data = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "data").rglob("*.yml"))
    return ["config.yml", "domain.yml", *data, "bot/nlu/components.py", "requirements.lock"]


def fingerprint(overrides: dict[str, bytes | None] | None = None) -> str:
    """sha256 of the training inputs, first 16 hex digits: the same as scripts/train.sh.

    `overrides` replaces the content of some inputs (None: the file is absent).
    """
    overrides = overrides or {}
    files = training_inputs()
    for rel in overrides:
        if rel not in files and overrides[rel] is not None:
            files.append(rel)
    data = sorted(f for f in files if f.startswith("data/"))
    ordered = ["config.yml", "domain.yml", *data, "bot/nlu/components.py", "requirements.lock"]
    digest = hashlib.sha256()
    for rel in ordered:
        content = overrides[rel] if rel in overrides else (ROOT / rel).read_bytes()
        if content is not None:
            digest.update(content)
    return digest.hexdigest()[:16]


def model_fingerprint(model: str) -> str:
    """The fingerprint in a model's name (models/kepu-<fp>.tar.gz), or ''."""
    name = Path(model).name
    if name.startswith("kepu-") and name.endswith(".tar.gz"):
        return name[len("kepu-"):-len(".tar.gz")]
    return ""


def suite_fingerprint() -> str:
    """A fingerprint of the dev conversations and of how turns are judged
    (scores are only comparable on the same suite, judged the same way)."""
    digest = hashlib.sha256(f"{evaluation.JUDGE_VERSION}:{gate_turns()}".encode())
    for path in sorted(CONVERSATIONS.glob("*.yml")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _faq_questions(doc_bytes: bytes | None) -> dict[str, tuple[str, ...]]:
    """FAQ id -> example questions, read from a generated data/generated/faq.yml."""
    if not doc_bytes:
        return {}
    try:
        doc = yaml.safe_load(doc_bytes.decode("utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}
    out = {}
    for item in doc.get("nlu") or []:
        intent = str(item.get("intent") or "")
        if intent.startswith("faq/"):
            out[intent[4:]] = tuple(
                line.strip()[2:].strip() for line in str(item.get("examples") or "").splitlines()
                if line.strip().startswith("- ")
            )
    return out


@contextlib.contextmanager
def _exclusive() -> Iterator[bool]:
    """The retrain lock (build/retrain.lock); yields False when another run holds it."""
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} {dt.datetime.now().isoformat(timespec='seconds')}\n")
            handle.flush()
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Steps:
    """Times the steps and reports progress."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.steps: list[tuple[str, float]] = []

    def report(self, label: str, phase: str, fraction: float) -> None:
        if self.progress:
            start, end = PHASES[phase]
            self.progress(label, start + (end - start) * max(0.0, min(1.0, fraction)))

    @contextlib.contextmanager
    def step(self, name: str, phase: str, label: str) -> Iterator[None]:
        self.report(label, phase, 0.0)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.steps.append((name, round(time.perf_counter() - t0, 2)))
        self.report(label, phase, 1.0)


# -- training ----------------------------------------------------------------

def _train(model_name: str, finetune_from: Path | None, steps: _Steps) -> tuple[bool, str]:
    """Run `rasa train`; return (ok, output tail). Progress is estimated from past run times."""
    mode = "finetune" if finetune_from else "full"
    cmd = [str(ROOT / ".venv" / "bin" / "rasa"), "train", "--config", "config.yml", "--domain", "domain.yml",
           "--data", "data", "--out", "models", "--fixed-model-name", model_name, "--quiet"]
    if finetune_from:
        cmd += ["--finetune", str(finetune_from), "--epoch-fraction", str(EPOCH_FRACTION)]
    expected = float(_read_json(TIMES, {}).get(mode) or DEFAULT_SECONDS[mode])
    label = "微调训练 / finetuning" if finetune_from else "完整训练 / full training"
    t0 = time.perf_counter()
    with open(TRAIN_LOG, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            steps.report(label, "train", min(0.97, (time.perf_counter() - t0) / expected))
            time.sleep(1.0)
    tail = TRAIN_LOG.read_text(encoding="utf-8", errors="replace")[-4000:]
    ok = proc.returncode == 0 and (MODELS / f"{model_name}.tar.gz").exists()
    if ok:
        times = _read_json(TIMES, {})
        times[mode] = round(time.perf_counter() - t0, 1)
        _write_json(TIMES, times)
    return ok, tail


# -- the gate ----------------------------------------------------------------

def gate_alpha() -> float:
    """Significance level of the gate's paired test (KEPU_GATE_ALPHA, default 0.05).

    0 never refuses a candidate for its suite results (the FAQ checks still apply).
    """
    try:
        return min(1.0, max(0.0, float(os.environ.get("KEPU_GATE_ALPHA") or GATE_ALPHA)))
    except ValueError:
        return GATE_ALPHA


def compare(live: dict[str, Any] | None, candidate: dict[str, Any], alpha: float) -> dict[str, Any]:
    """The candidate against the live model on the same dev turns: exact McNemar test.

    `newly_wrong` (b) are turns the live model gets right and the candidate wrong,
    `newly_right` (c) the reverse; `worse` when b > c and the one-sided p < alpha.
    """
    if not live:
        return {"paired_turns": 0, "worse": False}
    b, c, n = evaluation.paired_counts(live.get("outcomes") or {}, candidate.get("outcomes") or {})
    p = evaluation.mcnemar_worse(b, c)
    return {"paired_turns": n, "newly_wrong": b, "newly_right": c, "p_value": round(p, 4), "alpha": alpha,
            "worse": b > c and p < alpha}


def gate_turns() -> int:
    """About how many dev turns the gate plays (KEPU_GATE_TURNS, default GATE_TURNS; 0: all)."""
    try:
        return max(0, int(os.environ.get("KEPU_GATE_TURNS") or GATE_TURNS))
    except ValueError:
        return GATE_TURNS


def gate_suite() -> list[evaluation.Conversation]:
    """The dev conversations the gate plays: the same fixed subset for the live model and the candidate."""
    return evaluation.sample(evaluation.load_conversations(CONVERSATIONS), gate_turns())


def _gate_ports() -> tuple[int, int]:
    return int(os.environ.get("KEPU_GATE_PORT") or 5405), int(os.environ.get("KEPU_GATE_ACTIONS_PORT") or 5455)


def _gate_endpoints() -> Path:
    """endpoints.yml without the tracker store: gate conversations stay out of the conversation log."""
    doc = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}
    doc.pop("tracker_store", None)
    path = BUILD / "gate-endpoints.yml"
    path.write_text("# written by bot/staff/retrain.py for the quality gate\n"
                    + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _serve(command: str, model: Path | None = None) -> subprocess.CompletedProcess:
    port, actions_port = _gate_ports()
    env = {**_env(), "RASA_PORT": str(port), "ACTIONS_PORT": str(actions_port),
           "RASA_ENDPOINTS": str(_gate_endpoints())}
    if model is not None:
        env["RASA_MODEL"] = str(model)
    return subprocess.run([str(ROOT / "scripts" / "serve.sh"), command], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400)


Check = tuple[str, str, bool]  # (question, text expected in the reply, True: must appear / False: must not)


def _run_checks(url: str, checks: list[Check], attempts: int = 1, wait: float = 2.0) -> list[dict[str, Any]]:
    """Ask each check's question in a fresh conversation; retry a failing one `attempts` times."""
    out = []
    for question, expected, present in checks:
        reply, ok = "", False
        for attempt in range(attempts):
            try:
                _, reply = live.ask(url, f"staff-check-{uuid.uuid4().hex[:10]}", question)
            except live.LiveError as exc:
                reply = f"<{exc}>"
            ok = (expected in reply) == present
            if ok:
                break
            if attempt + 1 < attempts:
                time.sleep(wait)
        out.append({"question": question, "expected": expected, "present": present, "ok": ok,
                    "reply": reply[:200]})
    return out


def _share(value: float | None) -> float:
    return round(value, 4) if value is not None else 0.0


def measure(model: str, checks: list[Check] | None = None, steps: _Steps | None = None,
            label: str = "", span: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    """Serve `model` on the gate port, run the dev suite (and `checks`), stop it.

    Returns the suite's figures ("accuracy" is the share of all judged turns
    that are correct), every turn's outcome keyed "conversation id#turn index"
    (so two measurements can be paired), and the checks' results.
    """
    port, _ = _gate_ports()
    url = f"http://127.0.0.1:{port}"
    conversations = gate_suite()
    key_facts = evaluation.key_facts_of(ROOT / "knowledge")
    if steps:
        steps.report(f"{label}：启动 / starting", "gate", span[0])
    _serve("stop")  # a gate server left over by an interrupted run
    if live.is_ready(url):
        raise RetrainError(f"质量门端口 {port} 已被其他服务占用（可用 KEPU_GATE_PORT 换一个端口）")
    started = _serve("start", _abs(model))
    try:
        if started.returncode != 0:
            raise RetrainError(f"模型 {model} 无法在端口 {port} 启动：{(started.stderr or started.stdout)[-500:]}")
        if steps:
            steps.report(f"{label}：评测 / evaluating", "gate", (span[0] + span[1]) / 2)
        t0 = time.perf_counter()
        results = _run_async(lambda: evaluation.run_suite(url, conversations, key_facts))
        summary = evaluation.summarize(results, "dev")
        check_results = _run_checks(url, checks or [])
    finally:
        _serve("stop")
    return {
        "accuracy": _share(summary["accuracy"]),
        "answer_accuracy": _share(summary["answered"]),
        "oos_rejection": _share(summary["oos_refused"]),
        "followup_success": _share(summary["followup"]),
        "turns": summary["turns"],
        "failed_turns": len(summary["failures"]),
        "failures": [{"turn": f"{f['id']}#{f['turn']}", "user": f["user"], "reply": f["reply"][:80]}
                     for f in summary["failures"]],
        "outcomes": summary["outcomes"],
        "suite": suite_fingerprint(),
        "seconds": round(time.perf_counter() - t0, 1),
        "checks": check_results,
        "measured_at": dt.datetime.now().isoformat(timespec="seconds"),
    }


def _score(model: str, checks: list[Check], steps: _Steps, label: str,
           span: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    """The model's cached suite figures (build/model_scores.json), measured when missing.

    `checks` are run only when the model is measured now (they are about this change).
    """
    scores = _read_json(SCORES, {})
    key = Path(model).name
    cached = scores.get(key)
    # Scores without per-turn outcomes (measured before the paired gate) cannot be paired.
    if cached and cached.get("suite") == suite_fingerprint() and "outcomes" in cached and not checks:
        return {**cached, "cached": True}
    result = measure(model, checks, steps, label, span)
    scores[key] = {k: v for k, v in result.items() if k != "checks"}
    _write_json(SCORES, scores)
    return {**result, "cached": False}


def _without_outcomes(score: dict[str, Any] | None) -> dict[str, Any] | None:
    """A score as shown in the gate and the audit log: the per-turn outcomes stay in model_scores.json."""
    return None if score is None else {k: v for k, v in score.items() if k != "outcomes"}


def _differences(live: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """Turns the candidate newly fails (with their text) and turns it newly passes."""
    live_failed = {f["turn"] for f in live.get("failures") or [] if isinstance(f, dict)}
    cand_failed = {f["turn"] for f in candidate.get("failures") or [] if isinstance(f, dict)}
    return {"regressions": [f for f in candidate.get("failures") or []
                            if isinstance(f, dict) and f["turn"] not in live_failed],
            "fixes": sorted(live_failed - cand_failed)}


def _verdict(gate: dict[str, Any]) -> str:
    """The gate's decision in words (Chinese, for staff)."""
    comparison = gate["comparison"]
    text = f"候选模型准确率 {gate['candidate_accuracy']:.1%}"
    if gate["live_accuracy"] is None:
        text += "（没有线上模型可比）"
    else:
        text += (f"，线上模型 {gate['live_accuracy']:.1%}；同一批 {comparison['paired_turns']} 轮配对比较："
                 f"候选模型新答错 {comparison['newly_wrong']} 轮、新答对 {comparison['newly_right']} 轮"
                 f"（McNemar 单侧 p={comparison['p_value']:.3g}）")
        if comparison["worse"]:
            text += f"，显著差于线上模型（p<{comparison['alpha']:g}）"
            if gate.get("regressions"):
                text += "；新答错：" + "、".join(f"“{f['user']}”" for f in gate["regressions"][:5])
        elif comparison["newly_wrong"] > comparison["newly_right"]:
            text += "，差异不显著"
    failed = [c for c in gate["checks"] if not c["ok"]]
    if failed:
        text += "；新问题未得到预期回答：" + "、".join(f"“{c['question']}”" for c in failed)
    return text


def _gate(candidate: str, live_model: str, checks: list[Check], steps: _Steps) -> tuple[dict[str, Any], str]:
    """Measure the live model (cached) and the candidate on the dev suite and decide: (gate, verdict).

    Passed unless the candidate is significantly worse on the paired turns or a check fails.
    """
    has_live = bool(live_model) and _abs(live_model).exists()
    live_score = _score(live_model, [], steps, "线上模型 / live model", (0.0, 0.5)) if has_live else None
    cand_score = _score(candidate, checks, steps, "候选模型 / candidate", (0.5, 1.0))
    comparison = compare(live_score, cand_score, gate_alpha())
    gate: dict[str, Any] = {
        "candidate": _without_outcomes(cand_score), "live": _without_outcomes(live_score),
        "candidate_accuracy": cand_score["accuracy"],
        "live_accuracy": live_score["accuracy"] if live_score else None,
        "checks": cand_score.get("checks", []),
        "comparison": comparison,
    }
    if live_score:
        gate.update(_differences(live_score, cand_score))
    gate["passed"] = not comparison["worse"] and all(c["ok"] for c in gate["checks"])
    return gate, _verdict(gate)


# -- deploying ---------------------------------------------------------------

def _history() -> list[dict[str, Any]]:
    data = _read_json(HISTORY, {})
    return list(data.get("deployments") or []) if isinstance(data, dict) else []


def _save_history(entries: list[dict[str, Any]]) -> None:
    _write_json(HISTORY, {"deployments": entries[-50:]})


def _swap(model: str) -> tuple[list[str], list[str]]:
    """PUT /model on every live server that answers; return (swapped, skipped) URLs."""
    swapped, skipped = [], []
    for url in live.live_urls():
        if not live.is_ready(url):
            skipped.append(url)
            continue
        live.load_model(url, str(_abs(model)))
        swapped.append(url)
    return swapped, skipped


def _smoke_checks(kb: KnowledgeSet, changed: list[Faq], removed: dict[str, tuple[str, ...]],
                  old_faqs: dict[str, Faq]) -> list[Check]:
    checks: list[Check] = []
    for faq in changed:
        expected = "已过期" if is_expired(faq, _today()) else faq.answer[:16]
        checks.append((faq.questions[0], expected, True))
    for faq_id, questions in removed.items():
        old = old_faqs.get(faq_id)
        if questions and old:
            checks.append((questions[0], old.answer[:16], False))
    if not checks and SMOKE_FALLBACK[1] in kb.facts:
        checks.append((SMOKE_FALLBACK[0], short(kb.facts[SMOKE_FALLBACK[1]], kb), True))
    return checks


def _database_faqs() -> dict[str, Faq]:
    """The FAQs in the knowledge database now ({} when it cannot be read)."""
    engine = make_engine()
    try:
        if stored_checksum(engine) is None:
            return {}
        return {f.id: f for f in read_database(engine).faqs}
    except Exception:  # a missing or older database only weakens the smoke check
        return {}
    finally:
        engine.dispose()


def _run_async(factory: Callable[[], Any]) -> Any:
    """asyncio.run(factory()), also when called from a thread that runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


# -- the whole run -----------------------------------------------------------

def retrain(progress: Callable[[str, float], None] | None = None, full: bool = False) -> RetrainResult:
    """Validate, rebuild, train, gate and (if the candidate is at least as good) deploy.

    `progress(label, fraction)` is called along the way (fraction 0..1).
    `full` trains from scratch (no finetuning, no reuse of an existing model).
    """
    t0 = time.perf_counter()
    steps = _Steps(progress)
    with _exclusive() as ok:
        if not ok:
            return RetrainResult(False, current_model(), "另一个重新训练或回滚正在进行，请稍后再试。",
                                 round(time.perf_counter() - t0, 2), {}, [])
        result = _retrain(steps, full, t0)
    with contextlib.suppress(Exception):
        audit.record("retrain", "retrain", {"deployed": result.deployed, "model": result.model,
                                            "reason": result.reason, "seconds": result.seconds,
                                            "steps": result.steps,
                                            "gate": {k: v for k, v in result.gate.items() if k != "checks"}})
    if progress:
        progress("完成 / done", 1.0)
    return result


def _retrain(steps: _Steps, full: bool, t0: float) -> RetrainResult:
    def done(deployed: bool, model: str, reason: str, gate: dict | None = None) -> RetrainResult:
        return RetrainResult(deployed, model, reason, round(time.perf_counter() - t0, 2), gate or {}, steps.steps)

    live_model = current_model()
    old_generated = (ROOT / GENERATED_FAQ).read_bytes() if (ROOT / GENERATED_FAQ).exists() else None
    old_kb_faqs = _database_faqs()  # before the rebuild: the answers of FAQs being removed
    old_faqs = _faq_questions(old_generated)

    # 1. validate
    with steps.step("validate", "validate", "校验知识库 / validating"):
        try:
            kb = load_knowledge(ROOT / "knowledge", data_dir=ROOT / "data")
        except KnowledgeError as exc:
            return done(False, live_model, f"知识库校验失败，线上模型未改动：{exc}")

    # 2. knowledge database (answers live here; the live action server reloads it by checksum)
    with steps.step("build_kb", "build_kb", "构建知识库 / building the knowledge DB"):
        build_database(kb)

    # 3. generated training data
    with steps.step("generate", "generate", "生成训练数据 / generating"):
        from bot.generate import write as generate

        generate(kb, ROOT)

    new_faqs = {f.id: f for f in kb.faqs}
    changed = [f for f in kb.faqs if old_faqs.get(f.id) != f.questions]
    removed = {i: q for i, q in old_faqs.items() if i not in new_faqs}
    fp = fingerprint()
    name = f"kepu-{fp}"
    candidate = f"models/{name}.tar.gz"
    notes: list[str] = []
    if changed:
        notes.append("知识库已更新：模型学会之前，与示例问法相近的提问已能得到新常见问题的答案")

    if candidate == live_model and not full:
        return done(False, live_model, "训练数据没有变化，线上模型保持不变；知识库已重建，答案修改已生效。",
                    {"unchanged": True})

    # 4. train
    if full and _abs(candidate).exists():
        # Never overwrite an existing model (it may be the live one): a fresh name for a from-scratch run.
        name = f"kepu-{fp}-full{dt.datetime.now():%Y%m%d%H%M%S}"
        candidate = f"models/{name}.tar.gz"
    candidate_path = _abs(candidate)
    rejected_path = REJECTED / candidate_path.name
    if not candidate_path.exists() and rejected_path.exists() and not full:
        shutil.move(str(rejected_path), candidate_path)
        notes.append("沿用此前未通过质量门的同一模型重新评估")
    if candidate_path.exists() and not full:
        steps.steps.append(("train:reuse", 0.0))
        notes.append(f"已有同样训练数据的模型 {candidate}，无需训练")
    else:
        finetune_from = None
        only_faq_changed = bool(
            live_model and _abs(live_model).exists()
            and fingerprint({GENERATED_FAQ: old_generated}) == model_fingerprint(live_model)
        )
        if only_faq_changed and not full and set(new_faqs) != set(old_faqs):
            # A new or removed FAQ adds or drops a response (utter_faq/<id>) in the domain: Rasa's
            # finetuning validator refuses that, so do not spend the time asking.
            notes.append("新增或删除常见问题会改变领域（utter_faq/<id>），Rasa 不能在线上模型上微调，直接完整训练")
        elif only_faq_changed and not full:
            finetune_from = _abs(live_model)
        with steps.step("train:finetune" if finetune_from else "train:full", "train", "训练 / training"):
            trained, tail = _train(name, finetune_from, steps)
        if not trained and finetune_from is not None:
            refused = "Cannot finetune" in tail
            notes.append("Rasa 拒绝在线上模型上微调（标签或领域有变化），已改为完整训练" if refused
                         else "微调失败，已改为完整训练")
            with steps.step("train:full", "train", "完整训练 / full training"):
                trained, tail = _train(name, None, steps)
        elif finetune_from is not None:
            notes.append(f"在线上模型上微调（epoch-fraction {EPOCH_FRACTION}）")
        if not trained:
            lines = [line for line in tail.splitlines() if line.strip()][-5:]
            return done(False, live_model, "训练失败，线上模型未改动：" + " | ".join(lines))

    # 5. quality gate
    checks = _smoke_checks(kb, changed, removed, old_kb_faqs)
    with steps.step("gate", "gate", "质量门 / quality gate"):
        try:
            gate, verdict = _gate(candidate, live_model, checks, steps)
        except RetrainError as exc:
            return done(False, live_model, f"质量门无法完成，线上模型未改动：{exc}")
    if not gate["passed"]:
        REJECTED.mkdir(parents=True, exist_ok=True)
        if candidate_path.exists():
            shutil.move(str(candidate_path), rejected_path)
        extra = "" if not notes else "（" + "；".join(notes) + "）"
        return done(False, live_model,
                    f"未通过质量门，线上模型未改动（候选模型移至 {_rel(rejected_path)}）：{verdict}。{extra}", gate)

    # 6. deploy: hot swap, smoke question, record
    with steps.step("deploy", "deploy", "上线 / deploying"):
        try:
            swapped, skipped = _swap(candidate)
        except live.LiveError as exc:
            with contextlib.suppress(Exception):
                if live_model:
                    _swap(live_model)
            return done(False, live_model, f"热切换失败，已切回原模型：{exc}", gate)
        smoke = [r for url in swapped for r in _run_checks(url, checks, attempts=4, wait=2.5)]
        gate["smoke"] = smoke
        if any(not r["ok"] for r in smoke):
            if live_model:
                with contextlib.suppress(live.LiveError):
                    _swap(live_model)
            bad = next(r for r in smoke if not r["ok"])
            return done(False, live_model, f"上线后的冒烟检查未通过，已切回原模型：“{bad['question']}”得到“{bad['reply'][:60]}”",
                        gate)
        CURRENT.write_text(candidate + "\n", encoding="utf-8")
        history = _history()
        history.append({"model": candidate, "previous": live_model,
                        "at": dt.datetime.now().isoformat(timespec="seconds"),
                        "accuracy": gate["candidate_accuracy"], "servers": swapped})
        _save_history(history)
    where = "已热切换 " + "、".join(swapped) if swapped else "没有运行中的服务器，下次启动时生效"
    if skipped and swapped:
        where += f"（未运行，跳过：{'、'.join(skipped)}）"
    reason = f"已上线：{verdict}；{where}。" + ("" if not notes else "（" + "；".join(notes) + "）")
    return done(True, candidate, reason, gate)


def rollback() -> str:
    """Swap every live server back to the model deployed before the current one; return it.

    Raises RuntimeError when there is nothing to roll back to.
    """
    with _exclusive() as ok:
        if not ok:
            raise RuntimeError("另一个重新训练或回滚正在进行，请稍后再试。")
        history = _history()
        if not history:
            raise RuntimeError("没有可回滚的上一个模型（build/model_history.json 为空）。")
        entry = history[-1]
        target = str(entry.get("previous") or "")
        if not target or not _abs(target).exists():
            raise RuntimeError(f"上一个模型 {target or '（无）'} 已不存在，无法回滚。")
        swapped, _ = _swap(target)
        CURRENT.write_text(target + "\n", encoding="utf-8")
        history.pop()
        _save_history(history)
    with contextlib.suppress(Exception):
        audit.record("cli", "rollback", {"from": entry.get("model"), "to": target, "servers": swapped})
    return target
