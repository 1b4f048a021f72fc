"""The dialogue's words as data: knowledge/cues.yml and knowledge/replies.yml.

Loaded once per file version (cached by modification time), validated on load:
a broken pattern, an unknown question type or fact id, or a reply template with
an unknown placeholder raises LexiconError naming the file and the entry.
`make kb` runs the same validation (bot.knowledge.build), so a bad edit stops
the build instead of the live assistant.
"""

from __future__ import annotations

import functools
import os
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

# Question types the dialogue answers (bot.dialogue.topics.HANDLERS) plus the ones
# resolved elsewhere; cue targets and families must be among them.
QUESTION_TYPES = {
    "ask_notice_overview", "ask_doc_number", "ask_issuer", "ask_issue_date", "ask_basis", "ask_audience",
    "ask_attachment", "ask_theme", "ask_time", "ask_venue", "ask_event_content", "ask_organizer",
    "ask_participants", "ask_agenda", "ask_main_content", "ask_main_activities", "ask_joint_actions",
    "ask_requirements", "ask_registration", "ask_app_download", "ask_deadline", "ask_commendation",
    "ask_contact", "ask_registration_status", "ask_unstated", "request_human",
}
PLACEHOLDERS = {"phone", "unit", "person", "mobile", "title", "year", "notice_year", "period", "what", "name",
                "facts", "reason", "status", "date", "start", "days", "main", "congress", "names", "count",
                "organizer", "lead", "answer", "number", "item", "question", "source"}


class LexiconError(ValueError):
    """A problem in cues.yml or replies.yml, with the file and entry named."""

    def __init__(self, file: str, entry: str, message: str) -> None:
        super().__init__(f"{file}: {entry}: {message}" if entry else f"{file}: {message}")


@dataclass(frozen=True)
class Cue:
    """A question word: which question type it asks for, and which types already answer it."""

    name: str
    pattern: re.Pattern[str]
    target: str
    family: frozenset[str]
    anchors: bool = False  # the word itself belongs to the notice ("截止", "文号"), unlike "在哪"
    overrides: bool = False  # wins over the classifier however sure it is


@dataclass(frozen=True)
class Role:
    """Who asks ("我们是科普基地") and the facts that say what they do."""

    name: str
    pattern: re.Pattern[str]
    facts: tuple[str, ...]


@dataclass(frozen=True)
class Lexicon:
    """Everything of cues.yml, compiled."""

    cues: tuple[Cue, ...]
    status: re.Pattern[str]
    errand: re.Pattern[str]
    asking_for_info: re.Pattern[str]
    unstated: tuple[tuple[re.Pattern[str], str], ...]
    unstated_related: dict[str, str]  # detail label -> the fact the notice does give nearby
    web_address: re.Pattern[str]
    correction: re.Pattern[str]
    part: re.Pattern[str]
    parts: dict[str, tuple[str, ...]]
    ordinal: re.Pattern[str]
    list_words: dict[str, str]
    list_of_fact: dict[str, str]
    ordinal_question: re.Pattern[str]
    ordinal_question_not: re.Pattern[str]
    ordinal_event_fact: dict[str, str]
    date_mention: re.Pattern[str]
    date_preference: tuple[str, ...]
    relative_years: dict[str, int]
    explicit_year: re.Pattern[str]
    notice_year: int
    roles: tuple[Role, ...]
    role_question: re.Pattern[str]
    asker: re.Pattern[str]
    duty_question: re.Pattern[str]
    unit_question: re.Pattern[str]
    anchors: tuple[str, ...]
    weak_anchors: frozenset[str]
    generic_words: frozenset[str]
    english: tuple[tuple[str, str], ...]
    acknowledgement: re.Pattern[str]
    self_intro: re.Pattern[str]
    speaker: re.Pattern[str]
    correction_target: re.Pattern[str]
    question_markers: re.Pattern[str]
    places: frozenset[str]
    common_stretch: tuple[str, ...] = ()
    fact_ids: frozenset[str] = field(default_factory=frozenset)

    def cue(self, name: str) -> Cue:
        """The cue called `name`."""
        return next(c for c in self.cues if c.name == name)

    def cues_in(self, text: str) -> list[Cue]:
        """The question words found in `text`, in file order."""
        return [c for c in self.cues if c.pattern.search(text)]


def _compile(value: Any, file: str, entry: str) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise LexiconError(file, entry, "必须是非空的正则表达式字符串")
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise LexiconError(file, entry, f"正则表达式有误：{exc}") from exc


def _types(values: Iterable[Any], file: str, entry: str) -> frozenset[str]:
    names = frozenset(str(v) for v in values)
    unknown = names - QUESTION_TYPES
    if unknown:
        raise LexiconError(file, entry, f"未知的问题类型 {sorted(unknown)}")
    return names


def _cues(raw: Any, file: str) -> tuple[Cue, ...]:
    if not isinstance(raw, list) or not raw:
        raise LexiconError(file, "question_words", "必须是非空列表")
    cues = []
    for i, item in enumerate(raw):
        entry = f"question_words[{i}]"
        if not isinstance(item, dict) or not item.get("name"):
            raise LexiconError(file, entry, "缺少 name")
        target = str(item.get("target", ""))
        _types([target], file, entry)
        cues.append(Cue(str(item["name"]), _compile(item.get("pattern"), file, entry), target,
                        _types(item.get("family") or [], file, entry), bool(item.get("anchors")),
                        bool(item.get("overrides"))))
    return tuple(cues)


def _facts_known(ids: Iterable[str], fact_ids: frozenset[str], file: str, entry: str) -> tuple[str, ...]:
    ids = tuple(str(i) for i in ids)
    missing = [i for i in ids if fact_ids and i not in fact_ids and not i.endswith(".")]
    if missing:
        raise LexiconError(file, entry, f"知识库里没有这些条目 {missing}")
    return ids


def _roles(raw: Any, file: str, fact_ids: frozenset[str]) -> tuple[Role, ...]:
    roles = []
    for i, item in enumerate(raw or []):
        entry = f"roles[{i}]"
        roles.append(Role(str(item.get("name", i)), _compile(item.get("pattern"), file, entry),
                          _facts_known(item.get("facts") or [], fact_ids, file, entry)))
    return tuple(roles)


def _mapping(raw: Any, file: str, entry: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise LexiconError(file, entry, "必须是映射")
    return {str(k): str(v) for k, v in raw.items()}


def parse_lexicon(doc: dict[str, Any], file: str = "cues.yml", fact_ids: Iterable[str] = ()) -> Lexicon:
    """Compile and validate the contents of cues.yml."""
    ids = frozenset(fact_ids)
    parts = {str(k): _facts_known(v, ids, file, f"parts.{k}") for k, v in (doc.get("parts") or {}).items()}
    english = sorted(_mapping(doc.get("english") or {}, file, "english").items(), key=lambda kv: -len(kv[0]))
    event_facts = _mapping(doc.get("ordinal_event_fact") or {}, file, "ordinal_event_fact")
    _facts_known(event_facts.values(), ids, file, "ordinal_event_fact")
    return Lexicon(
        cues=_cues(doc.get("question_words"), file),
        status=_compile(doc.get("status"), file, "status"),
        errand=_compile(doc.get("errand"), file, "errand"),
        asking_for_info=_compile(doc.get("asking_for_info"), file, "asking_for_info"),
        unstated=tuple((_compile(d.get("pattern"), file, f"unstated_details[{i}]"), str(d.get("label")))
                       for i, d in enumerate(doc.get("unstated_details") or [])),
        unstated_related={str(d.get("label")): _facts_known([d["related"]], ids, file, f"unstated_details.{d.get('label')}")[0]
                          for d in doc.get("unstated_details") or [] if d.get("related")},
        web_address=_compile(doc.get("web_address"), file, "web_address"),
        correction=_compile(doc.get("correction"), file, "correction"),
        part=_compile(doc.get("part"), file, "part"),
        parts=parts,
        ordinal=_compile(doc.get("ordinal"), file, "ordinal"),
        list_words=_mapping(doc.get("list_words") or {}, file, "list_words"),
        list_of_fact=_mapping(doc.get("list_of_fact") or {}, file, "list_of_fact"),
        ordinal_question=_compile(doc.get("ordinal_question"), file, "ordinal_question"),
        ordinal_question_not=_compile(doc.get("ordinal_question_not"), file, "ordinal_question_not"),
        ordinal_event_fact=event_facts,
        date_mention=_compile(doc.get("date_mention"), file, "date_mention"),
        date_preference=tuple(str(p) for p in doc.get("date_preference") or []),
        relative_years={str(k): int(v) for k, v in (doc.get("relative_years") or {}).items()},
        explicit_year=_compile(doc.get("explicit_year"), file, "explicit_year"),
        notice_year=int(doc.get("notice_year") or 2021),
        roles=_roles(doc.get("roles"), file, ids),
        role_question=_compile(doc.get("role_question"), file, "role_question"),
        asker=_compile(doc.get("asker"), file, "asker"),
        duty_question=_compile(doc.get("duty_question"), file, "duty_question"),
        unit_question=_compile(doc.get("unit_question"), file, "unit_question"),
        anchors=tuple(str(a).lower() for a in doc.get("anchors") or []),
        weak_anchors=frozenset(str(a).lower() for a in doc.get("weak_anchors") or []),
        generic_words=frozenset(str(w) for w in doc.get("generic_words") or []),
        english=tuple(english),
        acknowledgement=_compile(doc.get("acknowledgement"), file, "acknowledgement"),
        self_intro=_compile(doc.get("self_intro"), file, "self_intro"),
        speaker=_compile(doc.get("speaker"), file, "speaker"),
        correction_target=_compile(doc.get("correction_target"), file, "correction_target"),
        question_markers=_compile(doc.get("question_markers"), file, "question_markers"),
        places=frozenset(str(p) for p in doc.get("places") or []),
        common_stretch=tuple(str(w) for w in doc.get("common_stretch") or []),
        fact_ids=ids,
    )


def parse_replies(doc: dict[str, Any], file: str = "replies.yml") -> dict[str, str]:
    """Validate the templates of replies.yml: strings with known placeholders only."""
    raw = doc.get("replies")
    if not isinstance(raw, dict) or not raw:
        raise LexiconError(file, "", "缺少顶层键 replies")
    out = {}
    for key, text in raw.items():
        if not isinstance(text, str) or not text.strip():
            raise LexiconError(file, str(key), "必须是非空字符串")
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
        unknown = names - PLACEHOLDERS
        if unknown:
            raise LexiconError(file, str(key), f"未知的占位符 {sorted(unknown)}")
        out[str(key)] = text.strip()
    missing = REQUIRED_REPLIES - set(out)
    if missing:
        raise LexiconError(file, "", f"缺少这些回复模板 {sorted(missing)}")
    return out


REQUIRED_REPLIES = {
    "greet", "thank", "goodbye", "bot_identity", "bot_capabilities", "request_human", "refusal",
    "reason_out_of_scope", "reason_unreadable", "reason_errand", "reason_lost_follow_up", "other_year",
    "other_year_reference", "clarify", "unstated", "unstated_about", "unstated_lead_in", "unstated_default_what", "empty",
    "deny_offered", "affirm_plain", "correction_empty", "status_closed", "status_later", "status_phone",
    "status_not_started", "status_open", "other_deadlines", "other_mobiles", "faq_expired", "faq_source",
}


def knowledge_dir() -> Path:
    """The knowledge folder (KEPU_KNOWLEDGE_DIR, default knowledge/ of this checkout)."""
    return Path(os.environ.get("KEPU_KNOWLEDGE_DIR") or ROOT / "knowledge")


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path` (LexiconError naming the file when it cannot be read)."""
    return _read(path)


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LexiconError(path.name, "", f"无法读取：{exc}") from exc
    if not isinstance(doc, dict):
        raise LexiconError(path.name, "", "顶层必须是映射")
    return doc


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@functools.lru_cache(maxsize=4)
def _lexicon(path: str, stamp: float, fact_ids: frozenset[str]) -> Lexicon:
    return parse_lexicon(_read(Path(path)), Path(path).name, fact_ids)


@functools.lru_cache(maxsize=4)
def _replies(path: str, stamp: float) -> dict[str, str]:
    return parse_replies(_read(Path(path)), Path(path).name)


def lexicon(fact_ids: Iterable[str] = ()) -> Lexicon:
    """The current cues.yml, compiled (re-read when the file changes)."""
    path = knowledge_dir() / "cues.yml"
    return _lexicon(str(path), _mtime(path), frozenset(fact_ids))


def replies() -> dict[str, str]:
    """The current reply templates of replies.yml."""
    path = knowledge_dir() / "replies.yml"
    return _replies(str(path), _mtime(path))
