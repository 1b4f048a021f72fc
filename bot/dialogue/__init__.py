"""What the assistant says: from one understood user turn to one reply.

Pure and Rasa-free so it can be tested with a fixed clock and reused by every
channel. The Rasa action in actions/ converts the tracker into a Turn, calls
`respond` once, and converts the Reply into events.

`respond` understands the turn once (bot.dialogue.understand -> Frame) and asks
the resolvers of bot.dialogue.resolvers in order; the first that decides gives
the reply. Words live in knowledge/ (facts, cues.yml, replies.yml).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from bot.dialogue.lexicon import lexicon
from bot.dialogue.phrasing import hot_buttons, refusal
from bot.dialogue.resolvers import RESOLVERS, completed_long_message, fallback_refusal
from bot.dialogue.several import question_parts
from bot.dialogue.topics import HANDLERS
from bot.dialogue.types import Reply, Turn
from bot.dialogue.understand import understand
from bot.knowledge.model import KnowledgeSet

__all__ = ["HANDLERS", "Reply", "Turn", "hot_buttons", "refusal", "respond"]


ANSWERS = ("answer", "unstated")


def respond(kb: KnowledgeSet, turn: Turn, today: dt.date) -> Reply:
    """The reply to one user turn (never raises for any intent or entity)."""
    reply = _respond_one(kb, turn, today)
    typed = not (turn.text or "").startswith("/")
    parts = question_parts(turn.text or "", lexicon(kb.facts), kb) if typed else []
    if len(parts) < 2 or reply.kind == "unstated":
        return reply  # "联系电话几点到几点有人接": one question with a detail the notice lacks
    return _several(reply, [_respond_one(kb, _part(turn, p), today) for p in parts])


def _respond_one(kb: KnowledgeSet, turn: Turn, today: dt.date) -> Reply:
    frame = understand(kb, turn, today)
    for resolver in RESOLVERS:
        reply = resolver(frame)
        if reply is not None:
            return completed_long_message(frame, reply)
    return fallback_refusal(frame)


def _part(turn: Turn, text: str) -> Turn:
    """One question of several: the classifier read the whole message, so its reading is left out."""
    return dataclasses.replace(turn, intent="nlu_fallback", text=text, confidence=0.0, ranking=[], faq=None,
                               whole=turn.text)


def _several(whole: Reply, parts: list[Reply]) -> Reply:
    """The reply to the whole message, completed with what each of its questions adds."""
    answered = [r for r in parts if r.kind in ANSWERS and r.facts]
    # Two questions or more answered one by one: each was read on its own, which the reading of
    # the whole message, with both questions' words mixed, cannot beat.
    base = [whole] if whole.kind in ANSWERS and len(answered) < 2 else []
    if not base and len(answered) < 2:
        return whole
    replies, seen = list(base), set(base[0].facts if base else ())
    for reply in answered:
        if not set(reply.facts) <= seen:
            replies.append(reply)
            seen |= set(reply.facts)
    if len(replies) < 2:
        return whole
    kind = "answer" if any(r.kind == "answer" for r in replies) else "unstated"
    return Reply("\n".join(r.text for r in replies), context=replies[-1].context, kind=kind,
                 facts=[f for r in replies for f in r.facts])
