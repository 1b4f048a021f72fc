"""The REST channel keeps each reply's `kind`.

action_answer utters with `kind=...` (rasa_sdk's CollectingDispatcher); Rasa turns
that into a BotUttered event (RemoteAction._utter_responses) whose message() goes to
the output channel's send_response -- the exact path used here, without a model.
The output channel is tested directly, and the channel mounted by Rasa's own
`register` in a real Sanic server with a fake agent, over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.core.channels.channel import UserMessage, register
from rasa_sdk.executor import CollectingDispatcher

from bot.channels.rest import EMPTY_REPLY, KindCollectingOutputChannel, SafeRestInput
from tests.servers import SanicServer, new_app

BUTTONS = [{"title": "截止日期是什么时候", "payload": "/ask_deadline"}]


async def utter(channel: KindCollectingOutputChannel, sender: str, **message: Any) -> None:
    """What Rasa does with one dispatcher.utter_message(**message) of the action server."""
    dispatcher = CollectingDispatcher()
    dispatcher.utter_message(**message)
    for event in await RemoteAction._utter_responses(dispatcher.messages, channel, None, None):  # type: ignore[arg-type]
        await channel.send_response(sender, event.message())


async def test_kind_is_kept_with_text_and_buttons() -> None:
    channel = KindCollectingOutputChannel()
    await utter(channel, "u1", text="报名截止到2021年9月24日。", buttons=BUTTONS, kind="answer")
    assert channel.messages == [{"recipient_id": "u1", "text": "报名截止到2021年9月24日。", "buttons": BUTTONS,
                                 "kind": "answer"}]


async def test_every_part_of_a_split_text_keeps_the_kind() -> None:
    channel = KindCollectingOutputChannel()
    await utter(channel, "u1", text="抱歉，这个问题不在通知范围内。\n\n请拨打0955-8812005。", kind="refusal")
    assert [m["text"] for m in channel.messages] == ["抱歉，这个问题不在通知范围内。", "请拨打0955-8812005。"]
    assert [m["kind"] for m in channel.messages] == ["refusal", "refusal"]


async def test_messages_keep_their_own_kinds_and_a_message_without_one_gets_none() -> None:
    channel = KindCollectingOutputChannel()
    await utter(channel, "u1", text="您是想问截止日期吗？", buttons=BUTTONS, kind="clarify")
    await utter(channel, "u1", text="没有种类的消息")
    assert [m.get("kind") for m in channel.messages] == ["clarify", None]
    assert "kind" not in channel.messages[1]


class FakeAgent:
    """Stands in for Rasa's agent: each message is answered through Rasa's utterance path."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = [{"text": "联系电话是0955-8812005。", "kind": "answer"}]

    async def handle_message(self, message: UserMessage) -> None:
        for reply in self.replies:
            await utter(message.output_channel, message.sender_id, **reply)  # type: ignore[arg-type]


@pytest.fixture()
async def rest() -> AsyncIterator[tuple[str, FakeAgent]]:
    """SafeRestInput mounted by Rasa's `register` in a real Sanic server; (webhook URL, agent)."""
    app = new_app("rest_test")
    agent = FakeAgent()
    app.ctx.agent = agent
    register([SafeRestInput()], app, "/webhooks/")
    server = await SanicServer(app).start()
    yield f"{server.base}/webhooks/rest/webhook", agent
    await server.stop()


async def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def test_the_json_reply_carries_the_kind(rest: tuple[str, FakeAgent]) -> None:
    url, agent = rest
    agent.replies = [{"text": "抱歉，这个问题不在通知范围内，请拨打0955-8812005。", "buttons": BUTTONS,
                      "kind": "refusal"}]
    status, messages = await post(url, {"sender": "u-2", "message": "社保怎么交"})
    assert status == 200
    assert messages == [{"recipient_id": "u-2", "text": "抱歉，这个问题不在通知范围内，请拨打0955-8812005。",
                         "buttons": BUTTONS, "kind": "refusal"}]


async def test_an_empty_message_is_answered_with_kind_empty(rest: tuple[str, FakeAgent]) -> None:
    url, _ = rest
    status, messages = await post(url, {"sender": "u-3", "message": "   "})
    assert status == 200 and messages == [{"recipient_id": "u-3", "text": EMPTY_REPLY, "kind": "empty"}]
