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
from bot.dialogue.understand import PROTECTED, understand
from bot.knowledge.model import KnowledgeSet

__all__ = ["HANDLERS", "Reply", "Turn", "hot_buttons", "refusal", "respond"]


ANSWERS = ("answer", "unstated")


def respond(kb: KnowledgeSet, turn: Turn, today: dt.date) -> Reply:
    """The reply to one user turn (never raises for any intent or entity)."""
    reply = _respond_one(kb, turn, today)
    typed = not (turn.text or "").startswith("/")
    parts = question_parts(turn.text or "", lexicon(kb.facts), kb) if typed else []
    if len(parts) < 2:
        return reply
    replies = [_respond_one(kb, _part(turn, p), today) for p in parts]
    asking = [r for p, r in zip(parts, replies, strict=True) if any(c in PROTECTED for c in p)]
    if reply.kind == "unstated" and (len(asking) < 2 or not any(
            r.kind == "answer" and not set(r.facts) <= set(reply.facts) for r in asking)):
        # "联系电话几点到几点有人接": one question with a detail the notice lacks (one question word);
        # "……谁牵头的 我们要去哪里报备" asks a second question, which the notice answers.
        return reply
    return _several(reply, replies)


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
    distinct, seen = [], set()
    for reply in (r for r in parts if r.kind in ANSWERS and r.facts):
        if not set(reply.facts) <= seen:
            distinct.append(reply)
            seen |= set(reply.facts)
    # Two questions or more answered one by one: each was read on its own, which the reading of
    # the whole message, with both questions' words mixed, cannot beat. One question's answer
    # completes the reading of the whole message when it adds to it.
    if len(distinct) < 2:
        if whole.kind not in ANSWERS or not distinct or set(distinct[0].facts) <= set(whole.facts):
            return whole
        distinct = [whole, *distinct]
    kind = "answer" if any(r.kind == "answer" for r in distinct) else "unstated"
    return Reply("\n".join(r.text for r in distinct), context=distinct[-1].context, kind=kind,
                 facts=[f for r in distinct for f in r.facts])
