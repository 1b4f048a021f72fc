"""What the assistant says: from one understood user turn to one reply.

Pure and Rasa-free so it can be tested with a fixed clock and reused by every
channel. The Rasa action in actions/ converts the tracker into a Turn, calls
`respond` once, and converts the Reply into events.

`respond` understands the turn once (bot.dialogue.understand -> Frame) and asks
the resolvers of bot.dialogue.resolvers in order; the first that decides gives
the reply. Words live in knowledge/ (facts, cues.yml, replies.yml).
"""

from __future__ import annotations

import datetime as dt

from bot.dialogue.phrasing import hot_buttons, refusal
from bot.dialogue.resolvers import RESOLVERS, fallback_refusal
from bot.dialogue.topics import HANDLERS
from bot.dialogue.types import Reply, Turn
from bot.dialogue.understand import understand
from bot.knowledge.model import KnowledgeSet

__all__ = ["HANDLERS", "Reply", "Turn", "hot_buttons", "refusal", "respond"]


def respond(kb: KnowledgeSet, turn: Turn, today: dt.date) -> Reply:
    """The reply to one user turn (never raises for any intent or entity)."""
    frame = understand(kb, turn, today)
    for resolver in RESOLVERS:
        reply = resolver(frame)
        if reply is not None:
            return reply
    return fallback_refusal(frame)
