"""Plain data types of the knowledge base (no Rasa, no database)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

DATE_KINDS = ("issued", "deadline", "event", "period")


@dataclass(frozen=True)
class Source:
    """Where in the notice a fact comes from."""

    part: str
    item: str = ""


@dataclass(frozen=True)
class Fact:
    """One answerable fact of the notice, phrased in our own words."""

    id: str
    title: str
    answer: str
    source: Source
    short: str = ""
    date: dt.date | None = None
    end_date: dt.date | None = None
    start_date: dt.date | None = None
    date_kind: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # file the fact was read from, for error messages


@dataclass(frozen=True)
class EntityValue:
    """A canonical entity value (e.g. joint_action/water) and what people call it."""

    type: str
    value: str
    name: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    """A readable question for an intent (buttons, hot questions)."""

    intent: str
    label: str
    hot: int = 0
    entities: dict[str, str] = field(default_factory=dict)
    keywords: tuple[str, ...] = ()

    def payload(self) -> str:
        """Rasa payload that answers this question without NLU."""
        import json

        if self.entities:
            return f"/{self.intent}{json.dumps(self.entities, ensure_ascii=False, separators=(',', ':'))}"
        return f"/{self.intent}"


@dataclass(frozen=True)
class Faq:
    """A staff-written question and answer (knowledge/faq.yml)."""

    id: str
    questions: tuple[str, ...]
    answer: str
    source: str = ""
    valid_until: dt.date | None = None


@dataclass
class KnowledgeSet:
    """Everything read from knowledge/: the single source of facts."""

    sources: dict[str, str]
    facts: dict[str, Fact]
    entities: dict[str, dict[str, EntityValue]]
    questions: list[Question]
    faqs: list[Faq] = field(default_factory=list)

    def entity_name(self, type_: str, value: str) -> str:
        """Display name of an entity value, or the value itself if unknown."""
        ev = self.entities.get(type_, {}).get(value)
        return ev.name if ev else value
