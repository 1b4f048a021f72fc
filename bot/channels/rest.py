"""The REST channel (/webhooks/rest/webhook) with input validation.

Rasa's own RestInput answers 500 for a JSON array or a non-string message;
this one answers 400 with a clear error for malformed requests (read by the
shared bounded JSON reader, bot/json_body.py), a polite prompt for an empty
message, and never lets a bad request reach the model. Senders of other
channels' namespaces (`wx-…`) are refused, and a request without a sender gets
a conversation of its own (bot/channels/senders.py). Every answer carries
`X-Content-Type-Options: nosniff`.
Every bot message keeps the reply's `kind` (answer, refusal, clarify, unstated,
smalltalk, empty) that action_answer sends along, which Rasa's collector drops. A message that
got no answer at all (the action server, a database or Redis down) gets "系统繁忙……" with the
consultation phone, kind `busy`.
"""

from __future__ import annotations

import logging
import re
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels import busy_reply
from bot.channels.senders import RESERVED_PREFIXES, new_rest_sender, reserved
from bot.json_body import MAX_BODY_BYTES, JsonBodyError, read_json_object

logger = logging.getLogger(__name__)

NOSNIFF = {"X-Content-Type-Options": "nosniff"}
SENDER = re.compile(r"^[\w\-.:@]{1,128}$")
EMPTY_REPLY = "您好像还没有输入内容。请直接输入您的问题，例如“截止日期是什么时候”。"


class KindCollectingOutputChannel(CollectingOutputChannel):
    """Rasa's CollectingOutputChannel that keeps the reply's `kind` on every message it collects.

    action_answer utters with `kind=...`; Rasa puts it into the BotUttered metadata and hands it to
    send_response as message["kind"], but the collector's own messages only carry its fixed keys.
    """

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        """Collect the message as Rasa does, then mark what it produced with the message's kind."""
        kind = message.get("kind")
        first = len(self.messages)
        await super().send_response(recipient_id, message)
        if kind is not None:
            for collected in self.messages[first:]:
                collected["kind"] = kind


def _error(status: int, message: str) -> HTTPResponse:
    return response.json({"error": message}, status=status)


def _sender(payload: dict[str, Any]) -> tuple[str, str]:
    """(sender, '') or ('', error): the caller's conversation id, a fresh one when none is given."""
    sender = payload.get("sender")
    if sender is None:
        return new_rest_sender(), ""
    if not isinstance(sender, str) or not SENDER.match(sender):
        return "", "sender 必须是 1-128 位字母、数字或 -_.:@"
    if reserved(sender):
        return "", f"sender 不能以 {'、'.join(RESERVED_PREFIXES)} 开头（该前缀属于其他渠道的用户）"
    return sender, ""


def parse_request(body: bytes) -> tuple[dict[str, Any] | None, str]:
    """Validate a webhook body; return (payload, '') or (None, error message)."""
    try:
        payload = read_json_object(body, MAX_BODY_BYTES)
    except JsonBodyError as exc:
        return None, exc.message
    sender, error = _sender(payload)
    if error:
        return None, error
    message = payload.get("message")
    if not isinstance(message, str):
        return None, "message 必须是字符串"
    metadata = payload.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return None, "metadata 必须是 JSON 对象"
    return {"sender": sender, "message": message, "metadata": metadata}, ""


class SafeRestInput(RestInput):
    """REST channel named 'rest' that validates every request."""

    @classmethod
    def name(cls) -> str:
        """Keeps the public URL /webhooks/rest/webhook."""
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """GET / for health, POST /webhook for messages."""
        webhook = Blueprint("safe_rest_webhook", __name__)

        @webhook.middleware("response")
        async def no_sniffing(request: Request, resp: HTTPResponse) -> None:
            resp.headers.update(NOSNIFF)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            payload, error = parse_request(request.body or b"")
            if payload is None:
                return _error(413 if "过大" in error else 400, error)
            text = payload["message"]
            if not text.strip():
                return response.json([{"recipient_id": payload["sender"], "text": EMPTY_REPLY, "kind": "empty"}])
            collector = KindCollectingOutputChannel()
            try:
                await on_new_message(UserMessage(
                    text, collector, payload["sender"],
                    input_channel=self.name(), metadata=payload["metadata"],
                ))
            except CancelledError:
                logger.error("rest: message processing timed out")
            except Exception:  # the user still gets an answer, never a 500
                logger.exception("rest: failed to process a message")
            if not collector.messages:
                collector.messages.append({"recipient_id": payload["sender"], "text": busy_reply(), "kind": "busy"})
            return response.json(collector.messages)

        return webhook
