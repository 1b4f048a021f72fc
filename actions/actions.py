"""The one custom action: ask bot.dialogue for the reply and send it.

All facts come from the knowledge database through bot.knowledge; nothing is
phrased here. Staff FAQs (retrieval intent `faq`, chosen by the
ResponseSelector) are looked up by id in the same database and phrased by
bot.faq.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.dialogue import STATUS_QUESTION, Reply, Turn, respond
from bot.faq import MIN_CONFIDENCE, RETRIEVAL_INTENT, faq_reply, matcher_for, model_faqs, selected_faq, unsure
from bot.knowledge.answers import short
from bot.knowledge.model import KnowledgeSet
from bot.knowledge.store import shared_repository
from bot.text import normalize


def today() -> dt.date:
    """Today's date; KEPU_TODAY=YYYY-MM-DD fixes it (tests, demos)."""
    fixed = os.environ.get("KEPU_TODAY")
    return dt.date.fromisoformat(fixed) if fixed else dt.date.today()


def turn_from_tracker(tracker: Tracker) -> Turn:
    """The understood user message and the remembered context."""
    message: dict[str, Any] = tracker.latest_message or {}
    intent = (message.get("intent") or {}).get("name") or ""
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
    return Turn(
        intent=intent,
        text=normalize(message.get("text") or ""),
        confidence=float((message.get("intent") or {}).get("confidence") or 0.0),
        ranking=ranking,
        entities=entities,
        context=context if isinstance(context, dict) else {},
    )


def answer_faq(kb: KnowledgeSet, tracker: Tracker, turn: Turn, day: dt.date,
               known: set[str] | None = None) -> Reply:
    """The reply to a message classified as the retrieval intent `faq`.

    The selected FAQ's answer comes from the knowledge database. An unsure
    selection (confidence below MIN_CONFIDENCE) or an id the database does not
    know (an FAQ removed while the previous model still serves) is handled as
    a message that was not understood.
    """
    faq_id, confidence = selected_faq(tracker.latest_message or {})
    faq = next((f for f in kb.faqs if f.id == faq_id), None) if faq_id else None
    # "科普日活动现在还在搞吗" asks whether something is still on: that is the notice's status answer,
    # unless the FAQ itself is about such a question ("这个通知现在还有效吗").
    off_topic = faq is not None and bool(STATUS_QUESTION.search(turn.text)) and not any(
        STATUS_QUESTION.search(q) for q in faq.questions)
    if faq is None or confidence < MIN_CONFIDENCE or off_topic:
        ranking = [(name, conf) for name, conf in turn.ranking if name != RETRIEVAL_INTENT]
        fallback = dataclasses.replace(turn, intent="nlu_fallback", confidence=confidence, ranking=ranking)
        return matched_faq(kb, fallback, day, known) or respond(kb, fallback, day)
    return Reply(faq_reply(faq, day, _phone(kb)), context={}, kind="answer")


def matched_faq(kb: KnowledgeSet, turn: Turn, day: dt.date, known: set[str] | None = None) -> Reply | None:
    """An FAQ's reply when the message closely matches the FAQ's questions (bot.faq.FaqMatcher).

    This is how an FAQ added by staff answers before the retrained model knows
    it. FAQs the model was trained on (`known`, from the domain) are matched
    only when the model is unsure; FAQs it has never seen, whatever it says
    (it cannot pick them). None when nothing matches well enough.
    """
    if not kb.faqs:
        return None
    if unsure(turn.intent, turn.confidence):
        among = None
    elif known is None:
        return None
    else:
        among = {f.id for f in kb.faqs} - known
        if not among:
            return None
    found = matcher_for(kb.faqs).match(turn.text, among)
    faq = next((f for f in kb.faqs if found and f.id == found.faq_id), None)
    if faq is None:
        return None
    return Reply(faq_reply(faq, day, _phone(kb)), context={}, kind="answer")


def _phone(kb: KnowledgeSet) -> str:
    return short(kb.facts["contact.phone"], kb) if "contact.phone" in kb.facts else "咨询电话"


class ActionAnswer(Action):
    """Answers every question from the knowledge base."""

    def name(self) -> str:
        """The action name used in domain.yml and rules."""
        return "action_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Send the reply and remember the conversation's topic."""
        kb = shared_repository().get()
        turn = turn_from_tracker(tracker)
        known = model_faqs(domain)
        if turn.intent == RETRIEVAL_INTENT:
            reply = answer_faq(kb, tracker, turn, today(), known)
        else:
            reply = matched_faq(kb, turn, today(), known) or respond(kb, turn, today())
        buttons = [{"title": title, "payload": payload} for title, payload in reply.buttons]
        dispatcher.utter_message(text=reply.text, buttons=buttons or None)
        return [SlotSet("context", reply.context), SlotSet("reply_kind", reply.kind)]
