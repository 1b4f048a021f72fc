"""Read and validate the YAML files of knowledge/ into a KnowledgeSet.

Every problem is reported as a KnowledgeError naming the file and the entry,
so staff can fix a broken file without reading a traceback.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml

from bot.knowledge.model import (
    DATE_KINDS,
    EntityValue,
    Fact,
    Faq,
    KnowledgeSet,
    Question,
    Source,
)
from bot.text import normalize

FACT_FIELDS = {
    "id", "title", "answer", "short", "source", "date", "end_date",
    "start_date", "date_kind", "data",
}
PLACEHOLDER = re.compile(r"\{(\w+)\}")
DATE_PLACEHOLDERS = {"date", "end_date", "end_day", "start_date"}
COMPUTED_PLACEHOLDERS = {"joint_actions", "phone", "deadlines"}
_CJK_GAP = re.compile(r"(?<=[^\x00-\x7f])\s+(?=[^\x00-\x7f])")
WEEKDAYS = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")


class KnowledgeError(ValueError):
    """A knowledge file is malformed; the message names the file and entry."""

    def __init__(self, file: str, entry: str, message: str) -> None:
        self.file, self.entry = file, entry
        where = f"{file}" + (f" 条目 {entry}" if entry else "")
        super().__init__(f"{where}: {message}")


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings, so a bad date is reported with its entry."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (safe loader)
    except yaml.YAMLError as exc:
        raise KnowledgeError(path.name, "", f"YAML 格式错误：{exc}") from exc
    except UnicodeDecodeError as exc:
        raise KnowledgeError(path.name, "", "文件不是 UTF-8 编码") from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise KnowledgeError(path.name, "", "文件顶层必须是映射（key: value）")
    return doc


def _date(value: Any, file: str, entry: str, name: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise KnowledgeError(file, entry, f"{name} 不是有效日期（应为 YYYY-MM-DD）：{value!r}") from exc


def _text(value: Any, file: str, entry: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise KnowledgeError(file, entry, f"缺少字段 {name} 或为空")
    # Folded YAML turns line breaks into spaces; Chinese text needs none.
    return _CJK_GAP.sub("", " ".join(value.split()))


def _source_part(raw: dict[str, Any], file: str, entry: str, sources: dict[str, str]) -> tuple[str, dict[str, Any]]:
    src = raw.get("source")
    if not isinstance(src, dict) or "part" not in src:
        raise KnowledgeError(file, entry, "缺少字段 source.part")
    part = str(src["part"])
    if part not in sources:
        raise KnowledgeError(file, entry, f"source.part {part!r} 不在 sources.yml 中")
    return part, src


def _check_dates(date: dt.date | None, end_date: dt.date | None, date_kind: str, file: str, entry: str) -> None:
    if date and date_kind not in DATE_KINDS:
        raise KnowledgeError(file, entry, f"有 date 时 date_kind 必须是 {'/'.join(DATE_KINDS)}")
    if date_kind and not date:
        raise KnowledgeError(file, entry, "有 date_kind 时必须给出 date")
    if end_date and date and end_date < date:
        raise KnowledgeError(file, entry, "end_date 早于 date")


def _check_placeholders(texts: tuple[str, ...], date: dt.date | None, end_date: dt.date | None,
                        file: str, entry: str) -> None:
    for text in texts:
        for name in PLACEHOLDER.findall(text):
            if name not in DATE_PLACEHOLDERS | COMPUTED_PLACEHOLDERS:
                raise KnowledgeError(file, entry, f"未知占位符 {{{name}}}")
            if name in ("end_date", "end_day") and not end_date:
                raise KnowledgeError(file, entry, f"占位符 {{{name}}} 需要 end_date")
            if name == "date" and not date:
                raise KnowledgeError(file, entry, "占位符 {date} 需要 date")


def _check_weekdays(weekdays: Any, date: dt.date | None, file: str, entry: str) -> None:
    if weekdays and date:
        days = [date + dt.timedelta(days=i) for i in range(len(weekdays))]
        actual = [WEEKDAYS[d.weekday()] for d in days]
        if list(weekdays) != actual:
            raise KnowledgeError(file, entry, f"星期与日期不符：写的是 {weekdays}，实际是 {actual}")


def _fact(raw: Any, file: str, index: int, sources: dict[str, str]) -> Fact:
    if not isinstance(raw, dict):
        raise KnowledgeError(file, f"#{index + 1}", "每个事实必须是映射")
    entry = str(raw.get("id") or f"#{index + 1}")
    unknown = set(raw) - FACT_FIELDS
    if unknown:
        raise KnowledgeError(file, entry, f"未知字段：{', '.join(sorted(unknown))}")
    fid = _text(raw.get("id"), file, entry, "id")
    if not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*", fid):
        raise KnowledgeError(file, entry, "id 只能由小写字母、数字、下划线和点组成")
    part, src = _source_part(raw, file, entry, sources)
    date_kind = str(raw.get("date_kind") or "")
    date = _date(raw.get("date"), file, entry, "date")
    end_date = _date(raw.get("end_date"), file, entry, "end_date")
    start_date = _date(raw.get("start_date"), file, entry, "start_date")
    _check_dates(date, end_date, date_kind, file, entry)
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise KnowledgeError(file, entry, "data 必须是映射")
    answer = _text(raw.get("answer"), file, entry, "answer")
    short = str(raw.get("short") or "")
    _check_placeholders((answer, short), date, end_date, file, entry)
    _check_weekdays(data.get("weekdays"), date, file, entry)
    return Fact(
        id=fid,
        title=_text(raw.get("title"), file, entry, "title"),
        answer=answer,
        short=short,
        source=Source(part=part, item=str(src.get("item") or "")),
        date=date,
        end_date=end_date,
        start_date=start_date,
        date_kind=date_kind,
        data=data,
        origin=file,
    )


def _entities(doc: dict[str, Any], file: str) -> dict[str, dict[str, EntityValue]]:
    result: dict[str, dict[str, EntityValue]] = {}
    raw_types = doc.get("entities")
    if not isinstance(raw_types, dict):
        raise KnowledgeError(file, "", "缺少顶层键 entities")
    for type_, values in raw_types.items():
        if not isinstance(values, dict):
            raise KnowledgeError(file, str(type_), "实体类型下必须是取值映射")
        result[type_] = {}
        for value, spec in values.items():
            entry = f"{type_}.{value}"
            if not isinstance(spec, dict):
                raise KnowledgeError(file, entry, "必须有 name 和 aliases")
            aliases = spec.get("aliases") or []
            if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
                raise KnowledgeError(file, entry, "aliases 必须是非空字符串列表")
            name = _text(spec.get("name"), file, entry, "name")
            result[type_][str(value)] = EntityValue(
                type=type_, value=str(value), name=name,
                aliases=tuple(dict.fromkeys([name, *aliases])),
            )
    return result


def _questions(doc: dict[str, Any], file: str) -> list[Question]:
    items = doc.get("questions")
    if not isinstance(items, list):
        raise KnowledgeError(file, "", "缺少顶层键 questions")
    out = []
    for i, raw in enumerate(items):
        entry = str(raw.get("intent") if isinstance(raw, dict) else f"#{i + 1}")
        if not isinstance(raw, dict):
            raise KnowledgeError(file, entry, "必须是映射")
        out.append(Question(
            intent=_text(raw.get("intent"), file, entry, "intent"),
            label=_text(raw.get("label"), file, entry, "label"),
            hot=int(raw.get("hot") or 0),
            entities={str(k): str(v) for k, v in (raw.get("entities") or {}).items()},
            keywords=tuple(str(k) for k in raw.get("keywords") or []),
        ))
    return out


FAQ_FIELDS = {"id", "questions", "answer", "source", "valid_until"}
FAQ_MIN_QUESTIONS = 3
_NOT_WORD = re.compile(r"[\W_]+")
_ANNOTATION = re.compile(r"\[([^\]]*)\]\([^)]*\)|\[([^\]]*)\]\{[^}]*\}")


def question_key(text: str) -> str:
    """How two example questions are compared: normalised, case and punctuation ignored."""
    return _NOT_WORD.sub("", normalize(text).lower())


def _faq_questions(raw: Any, file: str, entry: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise KnowledgeError(file, entry, f"questions 必须是列表（至少{FAQ_MIN_QUESTIONS}个示例问题）")
    questions: list[str] = []
    seen: dict[str, str] = {}
    for i, q in enumerate(raw):
        if not isinstance(q, str) or not q.strip():
            raise KnowledgeError(file, entry, f"第{i + 1}个示例问题为空或不是文字")
        q = " ".join(q.split())
        key = question_key(q)
        if not key:
            raise KnowledgeError(file, entry, f"示例问题“{q}”没有文字内容")
        if key in seen:
            raise KnowledgeError(file, entry, f"示例问题“{q}”与本条的“{seen[key]}”重复")
        seen[key] = q
        questions.append(q)
    if len(questions) < FAQ_MIN_QUESTIONS:
        raise KnowledgeError(file, entry, f"至少需要{FAQ_MIN_QUESTIONS}个示例问题（现在只有{len(questions)}个）")
    return tuple(questions)


def _faqs(doc: dict[str, Any], file: str) -> list[Faq]:
    items = doc.get("faqs") or []
    if not isinstance(items, list):
        raise KnowledgeError(file, "", "faqs 必须是列表")
    out: list[Faq] = []
    seen: set[str] = set()
    owner: dict[str, tuple[str, str]] = {}  # question key -> (faq id, question)
    for i, raw in enumerate(items):
        if not isinstance(raw, dict):
            raise KnowledgeError(file, f"#{i + 1}", "必须是映射")
        entry = str(raw.get("id") or f"#{i + 1}")
        unknown = set(raw) - FAQ_FIELDS
        if unknown:
            raise KnowledgeError(file, entry, f"未知字段：{', '.join(sorted(map(str, unknown)))}")
        fid = _text(raw.get("id"), file, entry, "id")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", fid):
            raise KnowledgeError(file, entry, "id 只能由小写字母、数字和下划线组成，并以字母开头")
        if fid in seen:
            raise KnowledgeError(file, entry, "id 重复")
        seen.add(fid)
        questions = _faq_questions(raw.get("questions"), file, entry)
        for q in questions:
            other = owner.get(question_key(q))
            if other:
                raise KnowledgeError(file, entry, f"示例问题“{q}”与常见问题 {other[0]} 的“{other[1]}”相同")
        for q in questions:
            owner[question_key(q)] = (fid, q)
        source = raw.get("source")
        if source is not None and not isinstance(source, str):
            raise KnowledgeError(file, entry, "source 必须是文字")
        out.append(Faq(
            id=fid,
            questions=questions,
            answer=_text(raw.get("answer"), file, entry, "answer"),
            source=" ".join((source or "").split()),
            valid_until=_date(raw.get("valid_until"), file, entry, "valid_until"),
        ))
    return out


def read_faqs(path: str | Path) -> list[Faq]:
    """The FAQs of one faq.yml, validated on their own (an absent file has none)."""
    path = Path(path)
    if not path.exists():
        return []
    return _faqs(_read_yaml(path), path.name)


def nlu_examples(data_dir: str | Path) -> dict[str, tuple[str, str, str]]:
    """Every intent example of the Rasa training data, by question key -> (intent, text, file).

    Retrieval intents (faq/...) and data/generated/faq.yml are left out: they are
    the FAQs themselves.
    """
    data_dir = Path(data_dir)
    found: dict[str, tuple[str, str, str]] = {}
    for path in sorted(data_dir.rglob("*.yml")):
        rel = path.relative_to(data_dir).as_posix()
        if rel == "generated/faq.yml":
            continue
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            continue  # Rasa's own validation reports broken training files
        items = doc.get("nlu") if isinstance(doc, dict) else None
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("examples"), str):
                continue
            intent = str(item.get("intent") or "")
            if not intent or intent == "faq" or intent.startswith("faq/"):
                continue
            for line in item["examples"].splitlines():
                line = line.strip()
                if not line.startswith("- "):
                    continue
                text = _ANNOTATION.sub(lambda m: m.group(1) or m.group(2) or "", line[2:])
                key = question_key(text)
                if key:
                    found.setdefault(key, (intent, text.strip(), f"data/{rel}"))
    return found


def check_faq_examples(faqs: list[Faq], data_dir: str | Path) -> None:
    """Raise KnowledgeError when an FAQ question is identical to another intent's training example."""
    examples = nlu_examples(data_dir)
    for faq in faqs:
        for q in faq.questions:
            hit = examples.get(question_key(q))
            if hit:
                intent, text, file = hit
                raise KnowledgeError(
                    "faq.yml", faq.id, f"示例问题“{q}”与 {file} 中意图 {intent} 的示例“{text}”相同，请换一种问法或删去"
                )


def load_knowledge(directory: str | Path, data_dir: str | Path | None = None) -> KnowledgeSet:
    """Read every knowledge file of `directory`; raise KnowledgeError on any problem.

    FAQ questions are also checked against the intent examples of the Rasa
    training data in `data_dir` (default: the `data/` folder next to
    `directory`, when there is one).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise KnowledgeError(str(directory), "", "知识库目录不存在")
    docs = {p.name: _read_yaml(p) for p in sorted(directory.glob("*.yml"))}
    for required in ("sources.yml", "entities.yml", "questions.yml"):
        if required not in docs:
            raise KnowledgeError(required, "", "缺少此文件")
    sources = docs["sources.yml"].get("sources")
    if not isinstance(sources, dict) or not sources:
        raise KnowledgeError("sources.yml", "", "缺少顶层键 sources")
    sources = {str(k): str(v) for k, v in sources.items()}
    facts: dict[str, Fact] = {}
    for name, doc in docs.items():
        raw_facts = doc.get("facts")
        if raw_facts is None:
            continue
        if not isinstance(raw_facts, list):
            raise KnowledgeError(name, "", "facts 必须是列表")
        for i, raw in enumerate(raw_facts):
            fact = _fact(raw, name, i, sources)
            if fact.id in facts:
                raise KnowledgeError(name, fact.id, f"id 与 {facts[fact.id].origin} 中的条目重复")
            facts[fact.id] = fact
    entities = _entities(docs["entities.yml"], "entities.yml")
    questions = _questions(docs["questions.yml"], "questions.yml")
    faqs = _faqs(docs["faq.yml"], "faq.yml") if "faq.yml" in docs else []
    kb = KnowledgeSet(sources=sources, facts=facts, entities=entities, questions=questions, faqs=faqs)
    _check_links(kb)
    if data_dir is None and (directory.parent / "data").is_dir():
        data_dir = directory.parent / "data"
    if faqs and data_dir is not None:
        check_faq_examples(faqs, data_dir)
    return kb


# Facts the dialogue relies on, by entity type: every value needs its fact.
REQUIRED_FACT_FOR_ENTITY = {
    "joint_action": "joint_action.{}",
    "deadline": "deadline.{}",
    "contact": "contact.{}",
    "requirement": "requirement.{}",
    "content_item": "content.{}",
}


def _check_links(kb: KnowledgeSet) -> None:
    for type_, pattern in REQUIRED_FACT_FOR_ENTITY.items():
        for value in kb.entities.get(type_, {}):
            if pattern.format(value) not in kb.facts:
                raise KnowledgeError("entities.yml", f"{type_}.{value}", f"没有对应的事实 {pattern.format(value)}")
    units = kb.entities.get("unit", {})
    for fact in kb.facts.values():
        lead = fact.data.get("lead")
        if lead is not None and lead not in units:
            raise KnowledgeError(fact.origin, fact.id, f"牵头单位 {lead!r} 不在 entities.yml 的 unit 中")
    for q in kb.questions:
        for type_, value in q.entities.items():
            if value not in kb.entities.get(type_, {}):
                raise KnowledgeError("questions.yml", q.intent, f"实体 {type_}={value} 未定义")
