"""The WeChat Official Account (公众号) channel: /webhooks/wechat/webhook.

WeChat calls the server URL configured in the account's admin console:
- GET  ?signature&timestamp&nonce&echostr: the URL check, answered with echostr;
- POST ?signature&timestamp&nonce[&encrypt_type=aes&msg_signature]: one user
  message or event as XML, plaintext or AES-encrypted (safe mode). Compatible
  mode sends both forms and encrypt_type=aes; it is handled as safe mode.

A POST is checked in this order, so nothing untrusted is parsed early:
size (Content-Length, then the bytes actually read) -> URL signature ->
timestamp (plain digits) within `timestamp_window` of the clock -> encrypt_type
(only "aes" when `encrypted_only`) -> UTF-8 and no DOCTYPE/ENTITY -> (safe mode)
msg_signature and decryption, both by wechatpy -> wechatpy.parse_message ->
the URL signature not seen before with another body (a nonce store, in-process
or in Redis: replay.py). A GET URL check claims its signature too, so a captured
URL check cannot be reused for a message. Each refusal is logged with its reason
(`wechat_refusal` on the log record: one of REFUSALS).

WeChat waits 5 s for an answer and retries up to three times. The channel
answers passively (an XML reply) when Rasa is done within `passive_timeout`;
otherwise it answers "success" and sends the reply later through the
customer-service message API. What the API does not deliver waits for the
user's next message and goes out with its passive reply. Retries are
deduplicated by MsgId (events by FromUserName + CreateTime + event), so Rasa
sees each message once. Menu CLICK events are answered like the question their
key maps to (`menu` in credentials.yml).

The layers: codec.py (wechatpy: signatures, crypto, XML), client.py (the WeChat
API), state.py (dedupe, buttons, access token, pending deliveries: in memory or
in Redis), this module (the Rasa InputChannel). Secrets come only from
environment variables (WECHAT_TOKEN, WECHAT_APP_ID, WECHAT_APP_SECRET,
WECHAT_AES_KEY); without WECHAT_TOKEN the channel still loads and answers 503.
See docs/wechat.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels import busy_reply
from bot.channels.senders import wechat_sender
from bot.channels.wechat.client import WeChatApi
from bot.channels.wechat.codec import (
    BUTTON_LINE,
    WRONG_SIGNATURE_TEXT,
    BadMessage,
    Incoming,
    button_number,
    make_crypto,
    mask,
    open_body,
    read_message,
    render_bot_messages,
    render_text_reply,
    signed,
    split_reply,
)
from bot.channels.wechat.replay import NonceStore, NonceStoreUnavailable, fresh, make_nonce_store
from bot.channels.wechat.settings import WeChatSettings, settings_from
from bot.channels.wechat.state import API, PASSIVE, Seen, StateUnavailable, Ttls, WeChatState, make_state

logger = logging.getLogger(__name__)

T = TypeVar("T")
OnNewMessage = Callable[[UserMessage], Awaitable[Any]]

MAX_BODY_BYTES = 64 * 1024
NOSNIFF = {"X-Content-Type-Options": "nosniff"}

NOT_CONFIGURED = "未配置微信公众号接入（缺少 WECHAT_TOKEN），暂不能处理微信请求。"
WELCOME = ("您好，欢迎关注！我是沙坡头区全国科普日智能助手，可以解答《关于举办2021年中卫沙坡头区全国科普日活动的通知》"
           "里的问题，比如活动时间地点、怎么登记填报、截止日期和联系人。请直接输入您的问题。")
HOT_INTRO = "大家常问的问题："
EMPTY_REPLY = "您好像还没有输入内容。请直接输入您的问题，例如“截止日期是什么时候”。"
VOICE_UNRECOGNIZED = "抱歉，没能识别这条语音。请发送文字提问，例如“截止日期是什么时候”。"
TEXT_ONLY = "抱歉，目前只能处理文字消息。请直接输入文字提问，例如“截止日期是什么时候”。"
MENU_UNKNOWN = "抱歉，这个菜单暂时没有内容。请直接输入您的问题，例如“截止日期是什么时候”。"
WITH_PENDING = "（上次未能送达的回复）\n{earlier}\n\n（本次回复）\n{answer}"
STALE = "请求已过期或重复"
ENCRYPTED_ONLY = "仅接受加密消息（安全模式）"
NONCES_UNAVAILABLE = "暂时无法校验请求，请稍后再试"
STATE_UNAVAILABLE = "暂时无法处理请求，请稍后再试"
URL_CHECK = "url-check"  # the nonce store's owner of a GET URL check

# Why a request was refused, for the log (the caller sees only the status and a short text).
WRONG_SIGNATURE, STALE_TIMESTAMP, REPLAYED = "wrong signature", "stale timestamp", "replayed signature"
REFUSALS = (WRONG_SIGNATURE, STALE_TIMESTAMP, REPLAYED)


def default_hot_questions() -> list[tuple[str, str]]:
    """The knowledge base's hot questions as (label, payload)."""
    from bot.dialogue import hot_buttons
    from bot.knowledge.store import shared_repository

    return hot_buttons(shared_repository().get())


def state_for(settings: WeChatSettings) -> WeChatState:
    """The per-user state the settings select (WECHAT_STATE), with their TTLs."""
    ttls = Ttls(dedupe=settings.dedupe_ttl, buttons=settings.buttons_ttl, pending=settings.pending_ttl,
                lease=settings.http_timeout + 5.0)
    return make_state(settings.state, settings.redis_url, settings.state_prefix, ttls)


def chosen_payload(payloads: list[str], text: str) -> str | None:
    """The payload of the button whose number the user typed, or None."""
    number = button_number(text)
    return payloads[number - 1] if number is not None and 1 <= number <= len(payloads) else None


class WeChatInput(InputChannel):
    """Rasa input channel for a WeChat Official Account (plaintext, compatible and safe mode)."""

    @classmethod
    def name(cls) -> str:
        """The URL is /webhooks/wechat/webhook."""
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WeChatInput:
        """Non-secret options from credentials.yml, secrets from WECHAT_* environment variables."""
        settings = settings_from(credentials)
        if not settings.configured:
            logger.info("wechat: WECHAT_TOKEN not set; the WeChat channel answers 503")
        return cls(settings)

    def __init__(self, settings: WeChatSettings | None = None,
                 hot_questions: Callable[[], list[tuple[str, str]]] | None = None,
                 clock: Callable[[], float] = time.time, state: WeChatState | None = None) -> None:
        self.settings = settings or WeChatSettings()
        self._clock = clock  # Unix seconds, compared with the signed timestamps
        self.crypto = make_crypto(self.settings.token, self.settings.aes_key, self.settings.app_id)
        self.state = state or state_for(self.settings)
        self.api = WeChatApi(self.settings, self.state)
        self._hot_questions = hot_questions or default_hot_questions
        self._nonces: NonceStore | None = None
        self._background: set[asyncio.Future[Any]] = set()
        if self.settings.encrypted_only and self.crypto is None and self.settings.configured:
            logger.warning("wechat: encrypted_only is set but safe mode is not configured; every message is refused")

    @property
    def nonces(self) -> NonceStore:
        """Where the signatures of accepted requests are remembered (created on first use)."""
        if self._nonces is None:
            self._nonces = make_nonce_store(self.settings.nonce_store, self.settings.redis_url,
                                            self.settings.redis_prefix)
        return self._nonces

    def __repr__(self) -> str:
        mode = ("safe" if self.settings.encrypted_only else "safe+plaintext") if self.crypto else "plaintext"
        return (f"WeChatInput(configured={self.settings.configured}, modes={mode}, state={self.settings.state}, "
                f"api={self.settings.api_base}, passive_timeout={self.settings.passive_timeout})")

    async def settled(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the deliveries under way (slow answers, follow-up parts)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)

    async def close(self) -> None:
        """Wait briefly for deliveries under way, then close the HTTP client and the stores."""
        await self.settled(self.settings.http_timeout)
        await self.api.close()
        if self._nonces is not None:
            await self._nonces.close()
        await self.state.close()

    # -- request checks --

    def _check_query(self, args: Any) -> tuple[int, str, str]:
        """(0, '', '') for a signed, fresh request, else (status, error, reason)."""
        timestamp = args.get("timestamp") or ""
        if not signed(self.settings.token, args.get("signature"), timestamp, args.get("nonce")):
            return 403, WRONG_SIGNATURE_TEXT, WRONG_SIGNATURE
        if not fresh(timestamp, self.settings.timestamp_window, now=self._clock()):
            return 403, STALE, STALE_TIMESTAMP
        return 0, "", ""

    async def _claim(self, signature: str, owner: str,
                     retry: Callable[[str], Awaitable[bool]]) -> tuple[int, str, str]:
        """(0, '', '') when the signature is new or `retry(first owner)`, else (status, error, reason).

        The key is the signature, not "timestamp:nonce" (see replay.py)."""
        try:
            known = await self.nonces.claim(signature, owner, 2 * self.settings.timestamp_window)
        except NonceStoreUnavailable as exc:
            logger.error("wechat: nonce store unavailable (%s); request refused", exc)
            return 503, NONCES_UNAVAILABLE, ""
        if known is None or await retry(known):
            return 0, "", ""
        return 403, STALE, REPLAYED

    async def _check_nonce(self, signature: str, incoming: Incoming, body: bytes) -> tuple[int, str, str]:
        """A new signature, or a retry WeChat sent with the very same body while it is being answered."""
        owner = f"{incoming.key()}|{hashlib.sha256(body).hexdigest()}"

        async def same_request(known: str) -> bool:
            return known == owner and await self.state.seen_message(incoming.key()) is not None

        return await self._claim(signature, owner, same_request)

    @staticmethod
    def _refused(what: str, reason: str) -> None:
        if reason:
            logger.warning("wechat: %s refused: %s", what, reason, extra={"wechat_refusal": reason})

    # -- state, tolerated when it fails --

    @staticmethod
    async def _quietly(what: str, step: Awaitable[T], default: T) -> T:
        """`step`'s result, or `default` (logged) when the state cannot be reached: the user still
        gets an answer, only without what the state would have added."""
        try:
            return await step
        except StateUnavailable as exc:
            logger.error("wechat: state unavailable (%s); %s skipped", exc, what)
            return default

    # -- delivery --

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_parts(self, openid: str, parts: list[str], delay: float = 0.0) -> None:
        """Send through the customer-service API; what it refuses waits for the user's next message."""
        if delay:
            await asyncio.sleep(delay)
        for index, part in enumerate(parts):
            if not await self.api.send_text(openid, part):
                await self._quietly("keeping an undelivered reply",
                                    self.state.defer(openid, parts[index:], first=True), None)
                return

    async def _deliver_later(self, openid: str, parts: list[str]) -> None:
        """An answer too slow for a passive reply: kept as pending first (so that the user's next
        message can carry it whichever replica gets it), then whatever is pending goes out."""
        try:
            await self.state.defer(openid, parts)
            parts = await self.state.take_pending(openid)
        except StateUnavailable as exc:
            logger.error("wechat: state unavailable (%s); sending the delayed reply directly", exc)
        if parts:
            await self._send_parts(openid, parts)

    async def _hand_over(self, key: str, openid: str, answer: asyncio.Future[list[str]]) -> None:
        """Too slow for a passive reply: retries get "success", the answer goes out when done."""
        await self._quietly("recording an API delivery", self.state.settle_message(key, Seen(API)), None)
        parts = await answer  # _answer never raises but when cancelled
        if parts:
            await self._deliver_later(openid, parts)

    async def _with_pending(self, openid: str, parts: list[str]) -> list[str]:
        """The passive reply's parts, with the user's undelivered earlier reply in front."""
        if not parts:
            return parts
        pending = await self._quietly("taking pending replies", self.state.take_pending(openid), [])
        if not pending:
            return parts
        logger.info("wechat: %d undelivered message(s) go out with the reply to %s", len(pending), mask(openid))
        return split_reply(WITH_PENDING.format(earlier="\n".join(pending), answer="\n".join(parts)))

    @staticmethod
    def _repeat(key: str, seen: Seen) -> list[str]:
        """What a retry of `key` gets: the same passive reply, or [] ("success")."""
        if seen.delivery == PASSIVE:
            logger.info("wechat: retry of %s, sending the same reply", key)
            return [seen.reply] if seen.reply else []
        logger.info("wechat: retry of %s, already being answered", key)
        return []

    async def _respond(self, incoming: Incoming, on_new_message: OnNewMessage) -> list[str]:
        """The passive reply's parts ([] = answer "success"); the rest goes through the API.
        StateUnavailable when the message cannot be claimed."""
        key = incoming.key()
        seen = await self.state.claim_message(key)
        if seen is not None:
            return self._repeat(key, seen)
        answer = asyncio.ensure_future(self._answer(incoming, on_new_message))
        try:
            await asyncio.wait({answer}, timeout=self.settings.passive_timeout)
        except asyncio.CancelledError:
            self._spawn(self._hand_over(key, incoming.openid, answer))
            raise
        if not answer.done():
            logger.info("wechat: %s slower than %.1f s, replying through the API", key, self.settings.passive_timeout)
            self._spawn(self._hand_over(key, incoming.openid, answer))
            return []
        parts = await self._with_pending(incoming.openid, answer.result())
        await self._quietly("recording a passive reply",
                            self.state.settle_message(key, Seen(PASSIVE, parts[0] if parts else "")), None)
        if len(parts) > 1:
            self._spawn(self._send_parts(incoming.openid, parts[1:], self.settings.followup_delay))
        return parts[:1]

    # -- answering --

    async def _answer(self, incoming: Incoming, on_new_message: OnNewMessage) -> list[str]:
        try:
            if incoming.kind == "text":
                return await self._ask(incoming, incoming.text, on_new_message)
            if incoming.kind == "voice":
                if incoming.text.strip():
                    return await self._ask(incoming, incoming.text, on_new_message)
                return [VOICE_UNRECOGNIZED]
            if incoming.kind == "event":
                return await self._answer_event(incoming, on_new_message)
            return [TEXT_ONLY]
        except Exception:
            logger.exception("wechat: failed to answer %s", incoming.key())
            return [busy_reply()]

    async def _answer_event(self, incoming: Incoming, on_new_message: OnNewMessage) -> list[str]:
        """Subscribe: welcome; menu click: the key's question, answered as if typed; others: nothing."""
        if incoming.event in ("subscribe", "subscribe_scan"):
            return await self._welcome(incoming.openid)
        if incoming.event == "click":
            question = self.settings.menu.get(incoming.event_key)
            if question is None:
                logger.info("wechat: unknown menu key %r", incoming.event_key[:64])
                return [MENU_UNKNOWN]
            return await self._ask(incoming, question, on_new_message)
        if incoming.event == "unsubscribe":
            logger.info("wechat: %s unsubscribed", mask(incoming.openid))
            await self._quietly("forgetting buttons", self.state.remember_buttons(incoming.openid, []), None)
            await self._quietly("dropping pending replies", self.state.take_pending(incoming.openid), [])
        return []

    async def _welcome(self, openid: str) -> list[str]:
        try:
            questions = self._hot_questions()
        except Exception:  # the knowledge base may be unavailable; the welcome still goes out
            logger.exception("wechat: hot questions unavailable")
            questions = []
        lines = [WELCOME]
        if questions:
            lines.append(HOT_INTRO)
            lines += [BUTTON_LINE.format(number=i, title=label) for i, (label, _) in enumerate(questions, 1)]
        await self._quietly("remembering buttons",
                            self.state.remember_buttons(openid, [payload for _, payload in questions]), None)
        return split_reply("\n".join(lines))

    async def _chosen(self, openid: str, text: str) -> str | None:
        """The payload behind a button number the user typed (the state is asked only for numbers)."""
        if button_number(text) is None:
            return None
        return chosen_payload(await self._quietly("reading buttons", self.state.buttons(openid), []), text)

    async def _ask(self, incoming: Incoming, text: str, on_new_message: OnNewMessage) -> list[str]:
        if not text.strip():
            return [EMPTY_REPLY]
        payload = await self._chosen(incoming.openid, text)
        collector = CollectingOutputChannel()
        metadata = {"wechat": {"msg_id": incoming.msg_id, "msg_type": incoming.kind, "button": payload is not None,
                               "menu_key": incoming.event_key}}
        try:
            await on_new_message(UserMessage(
                payload or text, collector, wechat_sender(incoming.openid),
                input_channel=self.name(), metadata=metadata,
            ))
        except asyncio.CancelledError:
            logger.error("wechat: message processing timed out")
        except Exception:  # the user still gets an answer
            logger.exception("wechat: failed to process a message")
        reply, payloads = render_bot_messages(collector.messages)
        await self._quietly("remembering buttons", self.state.remember_buttons(incoming.openid, payloads), None)
        if not reply:
            return [busy_reply()]
        return split_reply(reply)

    # -- HTTP --

    async def _accept(self, request: Request) -> tuple[Incoming | None, int, str]:
        """Check a POST in order (see the module docstring): (message, 0, '') or (None, status, error)."""
        body, status = await _read_body(request)
        if status:
            return None, status, "请求体过大（最多 64 KB）" if status == 413 else "请求格式错误"
        args = request.args
        status, error, reason = self._check_query(args)
        if status:
            self._refused("message", reason)
            return None, status, error
        encrypt_type = (args.get("encrypt_type") or "raw").lower()
        if encrypt_type not in ("raw", "aes"):
            return None, 400, "不支持的 encrypt_type"
        if encrypt_type == "raw" and self.settings.encrypted_only:
            return None, 403, ENCRYPTED_ONLY
        xml, status, error = open_body(self.crypto, body, encrypt_type, args.get("msg_signature"),
                                       args.get("timestamp") or "", args.get("nonce") or "")
        if status:
            return None, status, error
        try:
            incoming = read_message(xml)
        except BadMessage as exc:
            logger.warning("wechat: rejected message: %s", exc)
            return None, 400, "无法解析的消息"
        status, error, reason = await self._check_nonce(args.get("signature") or "", incoming, body)
        if status:
            self._refused(f"message {incoming.key()}", reason)
            return None, status, error
        return incoming, 0, ""

    async def _receive(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        """POST /webhook: a checked message answered passively, or "success"."""
        if not self.settings.configured:
            return response.text(NOT_CONFIGURED, status=503)
        try:
            incoming, status, error = await self._accept(request)
            if incoming is None:
                return response.text(error, status=status)
            parts = await self._respond(incoming, on_new_message)
        except StateUnavailable as exc:  # WeChat retries; better than answering a message twice
            logger.error("wechat: state unavailable (%s); message refused", exc)
            return response.text(STATE_UNAVAILABLE, status=503)
        if not parts:
            return response.text("success")
        encrypted = request.args.get("encrypt_type", "").lower() == "aes"
        reply = render_text_reply(incoming.message, parts[0], self.crypto if encrypted else None,
                                  request.args.get("nonce") or "")
        return response.text(reply, content_type="application/xml; charset=utf-8")

    async def _verify(self, request: Request) -> HTTPResponse:
        """GET /webhook: the URL check, answered with echostr; its signature is claimed like a message's,
        so the same triple cannot carry a POST later (a repeated URL check is harmless and answered)."""
        if not self.settings.configured:
            return response.text(NOT_CONFIGURED, status=503)
        status, error, reason = self._check_query(request.args)
        if status:
            self._refused("URL check", reason)
            return response.text(error, status=status)
        echostr = request.args.get("echostr") or ""
        if not echostr or len(echostr) > 256:
            return response.text("缺少 echostr", status=400)

        async def repeated_check(known: str) -> bool:
            return known == URL_CHECK

        status, error, reason = await self._claim(request.args.get("signature") or "", URL_CHECK, repeated_check)
        if status:
            self._refused("URL check", reason)
            return response.text(error, status=status)
        return response.text(echostr)

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """GET / health, GET /webhook URL check, POST /webhook messages; every answer `nosniff`."""
        webhook = Blueprint("wechat_webhook", __name__)

        @webhook.listener("after_server_stop")
        async def close_client(app: Any, loop: Any) -> None:
            await self.close()

        @webhook.middleware("response")
        async def no_sniffing(request: Request, resp: HTTPResponse) -> None:
            resp.headers.update(NOSNIFF)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.settings.configured else "not configured"})

        @webhook.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            return await self._verify(request)

        @webhook.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            return await self._receive(request, on_new_message)

        return webhook


async def _read_body(request: Request) -> tuple[bytes, int]:
    """The request body, or (b'', 413) past MAX_BODY_BYTES, (b'', 400) for a bad Content-Length."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > MAX_BODY_BYTES:
                return b"", 413
        except ValueError:
            return b"", 400
    if request.body or request.stream is None:  # not a streaming route: Sanic has read it already
        body = request.body or b""
        return (b"", 413) if len(body) > MAX_BODY_BYTES else (body, 0)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.stream.read()
        if chunk is None:
            break
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", 413
        chunks.append(chunk)
    return b"".join(chunks), 0
