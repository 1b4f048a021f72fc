"""The fixed replies, phrased from knowledge/replies.yml with values from the facts.

Every placeholder is filled here: the phone, contact unit and persons from the
contact facts, the notice title, the activity period. No sentence is written in
code.
"""

from __future__ import annotations

from typing import Any

from bot.dialogue.lexicon import replies
from bot.dialogue.types import Reply
from bot.knowledge.answers import short
from bot.knowledge.model import KnowledgeSet

PHONE_FACT = "contact.phone"


def _fact_short(kb: KnowledgeSet, fact_id: str, default: str = "") -> str:
    fact = kb.facts.get(fact_id)
    return short(fact, kb) if fact else default


def standard_values(kb: KnowledgeSet) -> dict[str, str]:
    """The placeholders every template may use."""
    return {
        "phone": _fact_short(kb, PHONE_FACT, "咨询电话"),
        "unit": _fact_short(kb, "contact.unit"),
        "person": _fact_short(kb, "contact.person"),
        "mobile": _fact_short(kb, "contact.mobile"),
        "title": _fact_short(kb, "notice.title"),
        "period": _fact_short(kb, "event.kepu_day.time"),
    }


def say(kb: KnowledgeSet, key: str, **values: Any) -> str:
    """The template `key` with its placeholders filled."""
    filled = standard_values(kb)
    filled.update({k: str(v) for k, v in values.items()})
    return replies()[key].format_map(_Blank(filled))


class _Blank(dict):
    """Missing placeholders become empty rather than raising (validated at build time)."""

    def __missing__(self, key: str) -> str:
        return ""


def hot_buttons(kb: KnowledgeSet, limit: int = 6) -> list[tuple[str, str]]:
    """The hot questions as (label, payload) buttons, most asked first."""
    hot = sorted((q for q in kb.questions if q.hot), key=lambda q: q.hot)
    return [(q.label, q.payload()) for q in hot[:limit]]


def refusal(kb: KnowledgeSet, reason_key: str = "reason_out_of_scope", reason: str = "") -> Reply:
    """Polite refusal: what the assistant can answer and the phone number."""
    text = say(kb, "refusal", reason=reason or say(kb, reason_key))
    return Reply(text, buttons=hot_buttons(kb, 3), kind="refusal")


SMALLTALK = ("greet", "goodbye", "thank", "bot_identity", "bot_capabilities", "request_human")


def smalltalk(kb: KnowledgeSet, intent: str) -> Reply:
    """Greeting, thanks, goodbye, who the bot is, what it can do, asking for a person."""
    buttons = hot_buttons(kb) if intent in ("greet", "bot_capabilities") else []
    return Reply(say(kb, intent), buttons=buttons, kind="smalltalk")
