"""bot.server's check of action server responses agrees with Rasa's jsonschema validation."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa_sdk.events import ActionExecuted, BotUttered, FollowupAction, Restarted, SessionStarted, SlotSet

from bot.server import action_result_checker

VALID: list[Any] = [
    {"events": [SlotSet("context", {"topic": "deadline"}), SlotSet("reply_kind", "answer")],
     "responses": [{"text": "截止到2021年9月24日。", "buttons": [], "kind": "answer"}]},
    {"events": [], "responses": []},
    {},
    {"events": [ActionExecuted("action_listen"), BotUttered("好的"), FollowupAction("action_answer"),
                Restarted(), SessionStarted(), SlotSet("context", None)]},
]
INVALID: list[Any] = [
    {"events": [{"event": "slot"}]},  # a slot event without its name
    {"events": [{"event": "no_such_event"}]},
    {"events": [{"name": "context"}]},  # no event type
    {"events": [{"event": "slot", "name": 5, "value": 1}]},  # the slot name is no string
    {"events": {"event": "slot", "name": "context"}},  # not a list
    {"events": ["slot"]},
    {"responses": ["text"]},
    {"responses": {"text": "x"}},
    [],
    "events",
]


def rasa_says(result: Any) -> bool:
    try:
        jsonschema.validate(result, RemoteAction.action_response_format_spec())
    except jsonschema.ValidationError:
        return False
    return True


@pytest.mark.parametrize("result", VALID + INVALID)
def test_the_fast_check_agrees_with_rasa(result: Any) -> None:
    assert action_result_checker()(result) is rasa_says(result)


def test_the_samples_cover_both_verdicts() -> None:
    assert all(rasa_says(r) for r in VALID) and not any(rasa_says(r) for r in INVALID)
