"""bot.faq (pure phrasing) and action_answer on the retrieval intent `faq`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet

from actions.actions import ActionAnswer
from bot.faq import MIN_CONFIDENCE, faq_reply, is_expired, selected_faq
from bot.knowledge import store
from bot.knowledge.model import Faq

FAQ = Faq(id="kids", questions=("小朋友能参加科普日吗", "孩子能去吗", "能带小孩吗"), answer="可以，科普日面向社会公众。",
          source="通知第三部分", valid_until=dt.date(2021, 9, 17))
PHONE = "0955-8812005"


def test_valid_entry_with_source():
    text = faq_reply(FAQ, dt.date(2021, 9, 17), PHONE)
    assert text == "可以，科普日面向社会公众。（依据：常见问题 通知第三部分）"


def test_valid_entry_without_source_has_no_citation():
    text = faq_reply(dataclasses.replace(FAQ, source="", valid_until=None), dt.date(2030, 1, 1), PHONE)
    assert text == "可以，科普日面向社会公众。"


def test_expired_entry_says_so_and_gives_the_phone():
    day_after = dt.date(2021, 9, 18)
    assert is_expired(FAQ, day_after) and not is_expired(FAQ, dt.date(2021, 9, 17))
    text = faq_reply(FAQ, day_after, PHONE)
    assert "已过期" in text and "2021年9月17日" in text and PHONE in text
    assert FAQ.answer not in text and "小朋友能参加科普日吗" in text


@pytest.mark.parametrize(("message", "expected"), [
    ({"response_selector": {"faq": {"response": {"intent_response_key": "faq/kids", "confidence": 0.9,
                                                 "utter_action": "utter_faq/kids"}}}}, ("kids", 0.9)),
    ({"response_selector": {"faq": {"response": {"utter_action": "utter_faq/kids", "confidence": 0.5}}}},
     ("kids", 0.5)),
    ({"response_selector": {"faq": {"response": {"intent_response_key": None, "confidence": 0.0}}}}, (None, 0.0)),
    ({"response_selector": {"default": {"response": {"intent_response_key": "faq/kids"}}}}, (None, 0.0)),
    ({}, (None, 0.0)),
])
def test_selected_faq(message, expected):
    assert selected_faq(message) == expected


# -- the action --------------------------------------------------------------

@pytest.fixture()
def faq_db(kb, db_url, monkeypatch):
    kb = dataclasses.replace(kb, faqs=[*kb.faqs, FAQ])
    store.build_database(kb, db_url)
    monkeypatch.setattr(store, "_shared", store.KnowledgeRepository(db_url))
    monkeypatch.setenv("KEPU_TODAY", "2021-09-10")
    return kb


def faq_tracker(tracker_state, text: str, faq_id: str, confidence: float = 0.95,
                intent_confidence: float = 0.9) -> Tracker:
    state = json.loads(json.dumps(tracker_state))
    state["latest_message"] = {
        "text": text,
        "intent": {"name": "faq", "confidence": intent_confidence},
        "intent_ranking": [{"name": "faq", "confidence": intent_confidence},
                           {"name": "ask_deadline", "confidence": 0.05}],
        "entities": [],
        "response_selector": {"all_retrieval_intents": ["faq"], "faq": {
            "response": {"responses": [{"text": "（常见问题 marker）"}], "confidence": confidence,
                         "intent_response_key": f"faq/{faq_id}", "utter_action": f"utter_faq/{faq_id}"},
            "ranking": []}},
    }
    return Tracker.from_dict(state)


async def test_action_answers_from_the_database(faq_db, tracker_state, dispatcher, domain):
    events = await ActionAnswer().run(dispatcher, faq_tracker(tracker_state, "小孩能去吗", "kids"), domain)
    assert dispatcher.messages[0]["text"] == "可以，科普日面向社会公众。（依据：常见问题 通知第三部分）"
    assert SlotSet("reply_kind", "answer") in events
    assert SlotSet("reply_facts", ["faq:kids"]) in events  # the staff dashboard counts it as an FAQ answer


async def test_action_answers_a_shipped_faq(faq_db, tracker_state, dispatcher, domain):
    await ActionAnswer().run(dispatcher, faq_tracker(tracker_state, "这个文件公开吗", "public"), domain)
    assert "此件公开发布" in dispatcher.messages[0]["text"] and "（依据：常见问题 " in dispatcher.messages[0]["text"]


async def test_expired_entry_in_the_action(faq_db, tracker_state, dispatcher, domain, monkeypatch):
    monkeypatch.setenv("KEPU_TODAY", "2021-09-20")
    await ActionAnswer().run(dispatcher, faq_tracker(tracker_state, "小孩能去吗", "kids"), domain)
    text = dispatcher.messages[0]["text"]
    assert "已过期" in text and PHONE in text


async def test_low_selector_confidence_falls_back(faq_db, tracker_state, dispatcher, domain):
    tracker = faq_tracker(tracker_state, "嗯那个呢", "kids", confidence=MIN_CONFIDENCE - 0.01)
    events = await ActionAnswer().run(dispatcher, tracker, domain)
    text = dispatcher.messages[0]["text"]
    assert FAQ.answer not in text and text.startswith("抱歉")
    assert any(e["name"] == "reply_kind" and e["value"] in ("refusal", "clarify") for e in events)


async def test_unknown_faq_id_falls_back(faq_db, tracker_state, dispatcher, domain):
    """A model trained before an FAQ was removed may still pick it."""
    await ActionAnswer().run(dispatcher, faq_tracker(tracker_state, "被删掉的问题", "removed_one"), domain)
    assert dispatcher.messages[0]["text"].startswith("抱歉")


async def test_status_question_is_not_answered_by_an_unrelated_faq(faq_db, tracker_state, dispatcher, domain,
                                                                   monkeypatch):
    # Measured: a retrained model put "科普日活动现在还在搞吗，我想带娃去看看" on faq/purpose.
    monkeypatch.setenv("KEPU_TODAY", "2021-09-20")
    tracker = faq_tracker(tracker_state, "科普日活动现在还在搞吗，我想带娃去看看", "purpose")
    tracker.latest_message["entities"] = [{"entity": "event", "value": "kepu_day"}]
    await ActionAnswer().run(dispatcher, tracker, domain)
    text = dispatcher.messages[0]["text"]
    assert "已结束" in text and "2021年9月13日" in text and "弘扬科学精神" not in text


async def test_a_status_faq_still_answers_its_own_status_question(faq_db, tracker_state, dispatcher, domain):
    await ActionAnswer().run(dispatcher, faq_tracker(tracker_state, "这个通知现在还有效吗", "validity"), domain)
    assert "有效性" in dispatcher.messages[0]["text"]
