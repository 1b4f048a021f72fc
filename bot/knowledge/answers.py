"""Phrasing of facts: dates with the year, time-aware status, citations.

Pure functions of (fact, knowledge set, today): no I/O, easy to test with a
fixed clock.
"""

from __future__ import annotations

import datetime as dt

from bot.knowledge.model import Fact, KnowledgeSet


def fmt_date(day: dt.date) -> str:
    """2021-09-24 -> 2021年9月24日 (always with the year)."""
    return f"{day.year}年{day.month}月{day.day}日"


def joint_action_facts(kb: KnowledgeSet) -> list[Fact]:
    """The joint actions in the notice's order."""
    items = [f for f in kb.facts.values() if f.id.startswith("joint_action.")]
    return sorted(items, key=lambda f: int(f.data.get("number", 0)))


def lead_name(kb: KnowledgeSet, fact: Fact) -> str:
    """Display name of a joint action's lead unit."""
    return kb.entity_name("unit", str(fact.data.get("lead", "")))


def _placeholders(fact: Fact, kb: KnowledgeSet) -> dict[str, str]:
    values: dict[str, str] = {}
    if fact.date:
        values["date"] = fmt_date(fact.date)
    if fact.start_date:
        values["start_date"] = fmt_date(fact.start_date)
    if fact.end_date:
        values["end_date"] = fmt_date(fact.end_date)
        values["end_day"] = f"{fact.end_date.day}日"
        if fact.date and (fact.date.year, fact.date.month) != (fact.end_date.year, fact.end_date.month):
            values["end_day"] = f"{fact.end_date.month}月{fact.end_date.day}日"
    if "{phone}" in fact.answer and "contact.phone" in kb.facts:
        values["phone"] = kb.facts["contact.phone"].short
    if "{deadlines}" in fact.answer:
        values["deadlines"] = "；".join(
            short(kb.facts[i], kb) for i in ("deadline.register", "deadline.complete_info", "deadline.summary")
            if i in kb.facts)
    if "{joint_actions}" in fact.answer:
        values["joint_actions"] = "；".join(
            f"{f.data['number']}.{f.data['name']}（{lead_name(kb, f)}牵头）" for f in joint_action_facts(kb)
        )
    return values


def fill(text: str, fact: Fact, kb: KnowledgeSet) -> str:
    """Replace {date}-style placeholders in `text` with the fact's values."""
    values = _placeholders(fact, kb)
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def status(fact: Fact, today: dt.date) -> str:
    """Where `today` stands relative to the fact's dates ('' when not dated)."""
    if not fact.date or fact.date_kind == "issued":
        return ""
    if fact.date_kind == "deadline":
        if today > fact.date:
            return "该期限现已截止。"
        if fact.start_date and today < fact.start_date:
            return f"目前尚未开始，{fmt_date(fact.start_date)}起可办理。"
        left = (fact.date - today).days
        return "今天是最后一天。" if left == 0 else f"目前仍在办理期内，距截止还有{left}天。"
    end = fact.end_date or fact.date
    if today > end:
        return "该活动已结束。" if fact.date_kind == "event" else "活动期已结束。"
    if today >= fact.date:
        return "目前正在进行中。"
    return f"距开始还有{(fact.date - today).days}天。"


def citation(kb: KnowledgeSet, facts: list[Fact]) -> str:
    """'依据：…' naming the notice sections of `facts`, each once."""
    parts: list[str] = []
    for fact in facts:
        label = kb.sources.get(fact.source.part, fact.source.part)
        if fact.source.item:
            label += fact.source.item if fact.source.item.startswith("第") else f"中的{fact.source.item}"
        if label not in parts:
            parts.append(label)
    return "（依据：" + "；".join(parts) + "）" if parts else ""


def render(fact: Fact, kb: KnowledgeSet, today: dt.date) -> str:
    """The fact's answer with its status, without the citation."""
    text = fill(fact.answer, fact, kb)
    state = status(fact, today)
    return f"{text}{state}" if state else text


def short(fact: Fact, kb: KnowledgeSet) -> str:
    """The fact's one-line form (falls back to its title)."""
    return fill(fact.short or fact.title, fact, kb)
