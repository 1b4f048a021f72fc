"""Staff FAQs (knowledge/faq.yml): list, add, update, remove.

Every change is checked against the WHOLE knowledge set before anything is
written: the new faq.yml is validated in a temporary copy of knowledge/ (with
the FAQ questions compared to every intent example of data/), and only then
replaces the real file atomically (temp file + os.replace). On any error the
file is left byte-identical and a KnowledgeError names the entry. Each change
is recorded in the audit log. A change reaches the assistant with `bot retrain`.

`check_against_live()` asks the running server how it reads the questions, to
warn when a question is currently answered by another intent.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from bot.knowledge.loader import KnowledgeError, _read_yaml, load_knowledge, read_faqs
from bot.knowledge.model import Faq
from bot.knowledge.store import ROOT
from bot.staff import audit, live

FILE = "faq.yml"
# A live model at least this sure of another intent is worth a warning.
HIGH_CONFIDENCE = 0.8
DEFAULT_HEADER = (
    "# 常见问题（staff-written FAQs). Edit with `bot faq add/update/remove`, then `bot retrain`.\n"
    "# Each entry: id, questions (at least three), answer (Simplified Chinese),\n"
    "# optional source and valid_until (YYYY-MM-DD).\n"
)


def knowledge_dir() -> Path:
    """The knowledge folder (KEPU_KNOWLEDGE_DIR, default knowledge/)."""
    return Path(os.environ.get("KEPU_KNOWLEDGE_DIR") or ROOT / "knowledge")


def data_dir() -> Path:
    """The Rasa training data folder FAQ questions are checked against (KEPU_DATA_DIR, default data/)."""
    return Path(os.environ.get("KEPU_DATA_DIR") or ROOT / "data")


def faq_path() -> Path:
    """knowledge/faq.yml."""
    return knowledge_dir() / FILE


def list_faqs() -> list[Faq]:
    """The FAQs of knowledge/faq.yml, in file order."""
    return read_faqs(faq_path())


# -- writing -----------------------------------------------------------------

@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One FAQ change at a time (across processes) for this knowledge folder."""
    digest = hashlib.sha1(str(knowledge_dir().resolve()).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"kepu-faq-{digest}.lock"
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _header(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines) or DEFAULT_HEADER


def _entry(id: str, questions: Sequence[str], answer: str, source: str | None,
           valid_until: dt.date | str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": id.strip() if isinstance(id, str) else id,
        "questions": [q.strip() if isinstance(q, str) else q for q in questions]
        if isinstance(questions, (list, tuple)) else questions,
        "answer": answer.strip() if isinstance(answer, str) else answer,
    }
    if source:
        entry["source"] = source.strip() if isinstance(source, str) else source
    if valid_until:
        entry["valid_until"] = valid_until.isoformat() if isinstance(valid_until, dt.date) else str(valid_until)
    return entry


def _dump(header: str, entries: list[dict[str, Any]]) -> str:
    body = yaml.safe_dump({"faqs": entries}, allow_unicode=True, sort_keys=False, width=10000,
                          default_flow_style=False)
    return header + body


def _validate(text: str) -> list[Faq]:
    """Load the whole knowledge set with `text` as faq.yml (in a temporary copy)."""
    with tempfile.TemporaryDirectory(prefix="kepu-knowledge-") as tmp:
        copy_dir = Path(tmp) / "knowledge"
        shutil.copytree(knowledge_dir(), copy_dir, ignore=shutil.ignore_patterns(".*"))
        (copy_dir / FILE).write_text(text, encoding="utf-8")
        return load_knowledge(copy_dir, data_dir=data_dir()).faqs


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _change(action: str, actor: str, faq_id: str,
            mutate: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> Faq | None:
    """Apply `mutate` to the entries of faq.yml, validate everything, write, audit."""
    path = faq_path()
    with _locked():
        old_text = path.read_text(encoding="utf-8") if path.exists() else ""
        doc = _read_yaml(path) if path.exists() else {}
        entries = doc.get("faqs") or []
        if not isinstance(entries, list):
            raise KnowledgeError(FILE, "", "faqs 必须是列表")
        entries = copy.deepcopy(entries)
        detail = mutate(entries)
        new_text = _dump(_header(old_text), entries)
        faqs = _validate(new_text)
        _atomic_write(path, new_text)
        try:
            audit.record(actor, action, {"id": faq_id, **detail})
        except Exception:
            _atomic_write(path, old_text)  # no change without its audit row
            raise
    return next((f for f in faqs if f.id == faq_id), None)


def _index(entries: list[dict[str, Any]], faq_id: str) -> int | None:
    return next((i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("id") == faq_id), None)


def add_faq(id: str, questions: Sequence[str], answer: str, source: str = "",
            valid_until: dt.date | str | None = None, actor: str = "cli") -> Faq:
    """Add an FAQ; raise KnowledgeError (and change nothing) when the result is invalid."""
    if not isinstance(id, str) or not id.strip():
        raise KnowledgeError(FILE, "", "缺少 id")
    faq_id = id.strip()

    def mutate(entries: list[dict[str, Any]]) -> dict[str, Any]:
        if _index(entries, faq_id) is not None:
            raise KnowledgeError(FILE, faq_id, "id 已存在（修改请用 update）")
        entry = _entry(faq_id, questions, answer, source, valid_until)
        entries.append(entry)
        return {"entry": entry}

    faq = _change("faq.add", actor, faq_id, mutate)
    assert faq is not None
    return faq


def update_faq(id: str, *, questions: Sequence[str] | None = None, answer: str | None = None,
               source: str | None = None, valid_until: dt.date | str | None = None,
               actor: str = "cli") -> Faq:
    """Change fields of an FAQ. None leaves a field as it is; source="" or
    valid_until="" removes that optional field."""
    faq_id = id.strip() if isinstance(id, str) else id

    def mutate(entries: list[dict[str, Any]]) -> dict[str, Any]:
        i = _index(entries, faq_id)
        if i is None:
            raise KnowledgeError(FILE, str(faq_id), "没有这个常见问题")
        old = entries[i]
        new = _entry(
            faq_id,
            old.get("questions") or [] if questions is None else questions,
            old.get("answer") if answer is None else answer,
            old.get("source") if source is None else source,
            old.get("valid_until") if valid_until is None else valid_until,
        )
        entries[i] = new
        return {"before": old, "after": new}

    faq = _change("faq.update", actor, str(faq_id), mutate)
    assert faq is not None
    return faq


def remove_faq(id: str, actor: str = "cli") -> None:
    """Remove an FAQ; KnowledgeError when there is no such id."""
    faq_id = id.strip() if isinstance(id, str) else id

    def mutate(entries: list[dict[str, Any]]) -> dict[str, Any]:
        i = _index(entries, faq_id)
        if i is None:
            raise KnowledgeError(FILE, str(faq_id), "没有这个常见问题")
        return {"entry": entries.pop(i)}

    _change("faq.remove", actor, str(faq_id), mutate)


# -- what the live model makes of the questions ------------------------------

def check_against_live(questions: Sequence[str], faq_id: str | None = None,
                       url: str | None = None) -> tuple[list[str], str]:
    """Ask the running server (POST /model/parse) how it reads each question.

    Returns (warnings, note): a warning for every question the current model
    answers with another intent (or another FAQ) at high confidence; the note
    says when the check was skipped because no server answered.
    """
    url = url or live.live_urls()[0]
    if not live.is_ready(url):
        return [], f"未检测到运行中的服务器（{url}），已跳过与现有模型的冲突检查。"
    labels = {}
    with contextlib.suppress(Exception):
        labels = {q.intent: q.label for q in load_knowledge(knowledge_dir()).questions}
    warnings: list[str] = []
    for question in questions:
        try:
            parsed = live.parse(url, question)
        except live.LiveError as exc:
            return warnings, f"冲突检查未完成：{exc}"
        intent = parsed.get("intent") or {}
        name, confidence = str(intent.get("name") or ""), float(intent.get("confidence") or 0.0)
        if name == "faq":
            response = ((parsed.get("response_selector") or {}).get("faq") or {}).get("response") or {}
            key = str(response.get("intent_response_key") or "")
            other = key.removeprefix("faq/")
            selector_conf = float(response.get("confidence") or 0.0)
            if other and other != faq_id and confidence >= HIGH_CONFIDENCE and selector_conf >= HIGH_CONFIDENCE:
                warnings.append(f"“{question}”：这个问题目前会被回答为常见问题 {other}（置信度 {selector_conf:.2f}）")
        elif name and name != "nlu_fallback" and confidence >= HIGH_CONFIDENCE:
            label = f"「{labels[name]}」" if name in labels else ""
            warnings.append(f"“{question}”：这个问题目前会被回答为 {name}{label}（置信度 {confidence:.2f}）")
    return warnings, ""
