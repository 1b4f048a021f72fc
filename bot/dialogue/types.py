"""The dialogue's data types: a user turn in, a reply out, and what was understood."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from bot.knowledge.model import KnowledgeSet

Entities = dict[str, list[str]]


@dataclass
class Turn:
    """One user message as the NLU read it, and the remembered context."""

    intent: str
    text: str = ""
    confidence: float = 1.0
    ranking: list[tuple[str, float]] = field(default_factory=list)
    entities: list[tuple[str, str]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    # The staff FAQ the ResponseSelector picked (id, confidence), if any.
    faq: tuple[str, float] | None = None
    # FAQ ids the running model was trained on (None: unknown).
    known_faqs: set[str] | None = None
    # For one question of a message that asks several: the whole message (bot.dialogue.several).
    whole: str = ""


@dataclass
class Reply:
    """What to send back, and the context to remember."""

    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    kind: str = "answer"  # answer | refusal | clarify | unstated | smalltalk | empty
    facts: list[str] = field(default_factory=list)
    faq: str = ""  # the staff FAQ answered, if any (for the staff dashboard's topics)


@dataclass
class Found:
    """Facts chosen for a question, plus what the question was about."""

    facts: list[str]
    about: Entities = field(default_factory=dict)
    hint: str = ""
    lead_in: str = ""
    cite_only: bool = False  # the lead-in already says it all; facts are only cited
    others: list[str] = field(default_factory=list)  # related deadlines, listed with today's status
    unstated: bool = False  # the answer says the notice does not give what was asked
    asked: str = ""  # the question type actually answered, when a handler hands over to another


@dataclass
class Frame:
    """Everything understood about one turn, computed once and read by every resolver."""

    kb: KnowledgeSet
    turn: Turn
    today: dt.date
    text: str  # normalised, homophones corrected, English glossed, correction prefix removed
    typed: bool  # False for button payloads ("/ask_deadline{...}")
    intent: str
    confidence: float
    entities: Entities
    context: dict[str, Any]
    cues: list[str] = field(default_factory=list)  # question-word cue names
    details: list[str] = field(default_factory=list)  # unstated details asked for
    years: set[int] = field(default_factory=set)  # years named or implied (今年 -> today's year)
    corrected: bool = False  # "不对，我是问……"
    english: bool = False
    anchored: bool = False  # the question names something of the notice
    foreign: list[str] = field(default_factory=list)  # content words (and verbs) the notice never uses
    foreign_topics: list[str] = field(default_factory=list)  # foreign words saying what is asked about ("工厂", "入会")
    foreign_places: list[str] = field(default_factory=list)  # foreign place names ("银川")
    strong_thing: bool = False  # a named thing by a specific name (3+ characters, not a unit or platform)
    full_text: str = ""  # the whole message (`text` is its question part in a long message)

    @property
    def topical(self) -> list[str]:
        """Entity types found that say on their own what the question is about."""
        from bot.dialogue.topics import TOPICAL

        return [t for t in TOPICAL if t in self.entities]
