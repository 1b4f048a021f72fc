"""The one custom action: tracker -> turn -> bot.dialogue.respond -> events.

All facts come from the knowledge database through bot.knowledge; nothing is
phrased here. Staff FAQs are one resolver inside the dialogue: the action only
passes on which FAQ the ResponseSelector picked and which FAQs the running
model knows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot import clock
from bot.dialogue import Reply, Turn, respond
from bot.faq import model_faqs, selected_faq
from bot.knowledge.store import shared_repository
from bot.text import normalize


def today() -> dt.date:
    """Today in the assistant's time zone (bot.clock); KEPU_TODAY=YYYY-MM-DD fixes it (tests, demos)."""
    return clock.today()


def turn_from_tracker(tracker: Tracker, domain: dict[str, Any] | None = None) -> Turn:
    """The understood user message and the remembered context."""
    message: dict[str, Any] = tracker.latest_message or {}
    ranking = [
        (str(r.get("name")), float(r.get("confidence") or 0.0))
        for r in message.get("intent_ranking") or []
        if r.get("name")
    ]
    entities = [
        (str(e.get("entity")), str(e.get("value")))
        for e in message.get("entities") or []
        if e.get("entity") and isinstance(e.get("value"), (str, int))
    ]
    context = tracker.get_slot("context")
    faq_id, faq_confidence = selected_faq(message)
    return Turn(
        intent=(message.get("intent") or {}).get("name") or "",
        text=normalize(message.get("text") or ""),
        confidence=float((message.get("intent") or {}).get("confidence") or 0.0),
        ranking=ranking,
        entities=entities,
        context=context if isinstance(context, dict) else {},
        faq=(faq_id, faq_confidence) if faq_id else None,
        known_faqs=model_faqs(domain),
    )


def answered_from(reply: Reply) -> list[str]:
    """What the reply answered from, for the staff dashboard's topics: the fact ids, or "faq:<id>"."""
    return [f"faq:{reply.faq}"] if reply.faq else list(reply.facts)


class ActionAnswer(Action):
    """Answers every question from the knowledge base."""

    def name(self) -> str:
        """The action name used in domain.yml and rules."""
        return "action_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Send the reply and remember the conversation's topic."""
        reply = respond(shared_repository().get(), turn_from_tracker(tracker, domain), today())
        buttons = [{"title": title, "payload": payload} for title, payload in reply.buttons]
        dispatcher.utter_message(text=reply.text, buttons=buttons or None, kind=reply.kind)
        return [SlotSet("context", reply.context), SlotSet("reply_kind", reply.kind),
                SlotSet("reply_facts", answered_from(reply))]
