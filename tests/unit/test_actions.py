"""action_answer with Tracker/CollectingDispatcher fixtures: events and reply text."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet

from actions.actions import ActionAnswer
from bot.knowledge import store


@pytest.fixture(autouse=True)
def knowledge_db(kb, db_url, monkeypatch):
    store.build_database(kb, db_url)
    monkeypatch.setattr(store, "_shared", store.KnowledgeRepository(db_url))
    monkeypatch.setenv("KEPU_TODAY", "2021-09-20")


async def test_deadline_answer_and_context(make_tracker, dispatcher, domain):
    tracker = make_tracker("截止日期是什么时候", "ask_deadline")
    events = await ActionAnswer().run(dispatcher, tracker, domain)
    text = dispatcher.messages[0]["text"]
    assert "2021年9月24日" in text and "还有4天" in text and "依据：通知第五部分" in text
    assert events == [SlotSet("context", {"intent": "ask_deadline", "entities": {"deadline": ["register"]}}),
                      SlotSet("reply_kind", "answer"), SlotSet("reply_facts", ["deadline.register"])]


async def test_follow_up_uses_the_slot(make_tracker, dispatcher, domain):
    tracker = make_tracker("提交总结材料呢？", "follow_up", entities=[("deadline", "summary")],
                           context={"intent": "ask_deadline", "entities": {"deadline": ["register"]}})
    await ActionAnswer().run(dispatcher, tracker, domain)
    text = dispatcher.messages[0]["text"]
    assert "2021年10月10日" in text and "2021年9月24日" not in text


async def test_traditional_characters_reach_the_dialogue_normalised(make_tracker, dispatcher, domain):
    tracker = make_tracker("聯繫電話", "ask_contact", entities=[("contact", "phone")])
    await ActionAnswer().run(dispatcher, tracker, domain)
    assert "0955-8812005" in dispatcher.messages[0]["text"]


async def test_greeting_sends_buttons(make_tracker, dispatcher, domain):
    await ActionAnswer().run(dispatcher, make_tracker("你好", "greet"), domain)
    message = dispatcher.messages[0]
    assert message["text"].startswith("您好") and message["buttons"][0]["payload"].startswith("/ask_")


async def test_unknown_intent_and_entity_values_are_refused(make_tracker, dispatcher, domain):
    tracker = make_tracker("xx", "no_such_intent", entities=[("unit", "no_such_unit")])
    events = await ActionAnswer().run(dispatcher, tracker, domain)
    assert dispatcher.messages[0]["text"].startswith("抱歉")
    assert SlotSet("reply_kind", "refusal") in events


async def test_fallback_ranking_gives_clarification(make_tracker, dispatcher, domain):
    tracker = make_tracker("那个怎么弄", "nlu_fallback", confidence=0.45,
                           ranking=[("nlu_fallback", 0.45), ("ask_time", 0.4), ("ask_deadline", 0.3)])
    await ActionAnswer().run(dispatcher, tracker, domain)
    message = dispatcher.messages[0]
    assert "您是想问" in message["text"]
    assert [b["payload"].split("{")[0] for b in message["buttons"]] == ["/ask_time", "/ask_deadline"]
