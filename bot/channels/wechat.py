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
or in Redis: bot/channels/wechat_replay.py). A GET URL check claims its
signature too, so a captured URL check cannot be reused for a message. Each
refusal is logged with its reason (`wechat_refusal` on the log record: one of
REFUSALS).

WeChat waits 5 s for an answer and retries up to three times. The channel
answers passively (an XML reply) when Rasa is done within `passive_timeout`;
otherwise it answers "success" and sends the reply later through the
customer-service message API. Retries are deduplicated by MsgId (events by
FromUserName + CreateTime + event), so Rasa sees each message once. Menu
CLICK events are answered like the question their key maps to (`menu` in
credentials.yml).

Secrets come only from environment variables (WECHAT_TOKEN, WECHAT_APP_ID,
WECHAT_APP_SECRET, WECHAT_AES_KEY); without WECHAT_TOKEN the channel still
loads and answers 503. See docs/wechat.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import BaseEvent
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from bot.channels.senders import wechat_sender
from bot.channels.wechat_replay import NonceStore, NonceStoreUnavailable, fresh, make_nonce_store
from bot.knowledge.store import consultation_phone

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com"
MAX_BODY_BYTES = 64 * 1024
REPLY_LIMIT_BYTES = 2048  # WeChat's limit for one text message (UTF-8 bytes)
MAX_PARTS = 5  # at most this many messages for one answer
SENTENCE_END = "。！？；\n"
TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid / malformed / expired access token
NOT_INTERACTED = 45015  # the user has not written to the account for 48 hours
ENV = {"token": "WECHAT_TOKEN", "app_id": "WECHAT_APP_ID", "app_secret": "WECHAT_APP_SECRET",
       "aes_key": "WECHAT_AES_KEY"}
NONCE_STORES = ("memory", "redis")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_REDIS_PREFIX = "kepu:wechat:nonce:"
NOSNIFF = {"X-Content-Type-Options": "nosniff"}

_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")  # OpenID and the account's original ID (gh_...)
_FORBIDDEN_XML = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SENTENCES = re.compile(f"(?<=[{SENTENCE_END}])")

NOT_CONFIGURED = "未配置微信公众号接入（缺少 WECHAT_TOKEN），暂不能处理微信请求。"
AES_NOT_CONFIGURED = "未配置安全模式（缺少 WECHAT_AES_KEY 或 WECHAT_APP_ID），暂不能处理加密消息。"
WELCOME = ("您好，欢迎关注！我是沙坡头区全国科普日智能助手，可以解答《关于举办2021年中卫沙坡头区全国科普日活动的通知》"
           "里的问题，比如活动时间地点、怎么登记填报、截止日期和联系人。请直接输入您的问题。")
HOT_INTRO = "大家常问的问题："
BUTTON_LINE = "回复 {number} 查看：{title}"
EMPTY_REPLY = "您好像还没有输入内容。请直接输入您的问题，例如“截止日期是什么时候”。"
VOICE_UNRECOGNIZED = "抱歉，没能识别这条语音。请发送文字提问，例如“截止日期是什么时候”。"
TEXT_ONLY = "抱歉，目前只能处理文字消息。请直接输入文字提问，例如“截止日期是什么时候”。"
FAILED = "抱歉，系统暂时没能处理您的消息，请稍后再试，或拨打{phone}咨询。"
TRUNCATED = "内容较长，其余部分未能发送。如需完整信息，请拨打{phone}咨询。"
MENU_UNKNOWN = "抱歉，这个菜单暂时没有内容。请直接输入您的问题，例如“截止日期是什么时候”。"
STALE = "请求已过期或重复"
ENCRYPTED_ONLY = "仅接受加密消息（安全模式）"
NONCES_UNAVAILABLE = "暂时无法校验请求，请稍后再试"
URL_CHECK = "url-check"  # the nonce store's owner of a GET URL check

# Why a request was refused, for the log (the caller sees only the status and a short text).
WRONG_SIGNATURE, STALE_TIMESTAMP, REPLAYED = "wrong signature", "stale timestamp", "replayed signature"
REFUSALS = (WRONG_SIGNATURE, STALE_TIMESTAMP, REPLAYED)


# -- settings -----------------------------------------------------------------

@dataclass(frozen=True)
class WeChatSettings:
    """Everything the channel needs; secrets are read from the environment."""

    token: str = ""
    app_id: str = ""
    app_secret: str = ""
    aes_key: str = ""
    api_base: str = DEFAULT_API_BASE
    passive_timeout: float = 4.0  # WeChat gives up after 5 s
    followup_delay: float = 0.5  # before sending the rest of a split passive answer
    dedupe_ttl: float = 300.0  # WeChat retries within about 15 s
    buttons_ttl: float = 1800.0  # how long "回复 1" keeps its meaning
    http_timeout: float = 10.0
    token_margin: float = 300.0  # refresh the access token this long before it expires
    timestamp_window: float = 300.0  # a signed timestamp further than this from now is refused
    encrypted_only: bool = False  # refuse plaintext messages (recommended once safe mode works)
    nonce_store: str = "memory"  # or "redis", shared by several replicas
    redis_url: str = DEFAULT_REDIS_URL
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    menu: dict[str, str] = field(default_factory=dict)  # menu CLICK key -> question

    @property
    def configured(self) -> bool:
        """Whether WeChat requests can be verified at all."""
        return bool(self.token)


def _positive(value: Any, default: float, name: str) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0:
        logger.warning("wechat: ignoring invalid %s=%r, using %s", name, value, default)
        return default
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def _menu(value: Any) -> dict[str, str]:
    """Menu CLICK keys -> questions from credentials.yml; invalid entries are logged and left out."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        logger.warning("wechat: 'menu' in credentials.yml must map menu keys to questions; ignored")
        return {}
    menu: dict[str, str] = {}
    for key, question in value.items():
        name = str(key).strip()
        if name and len(name.encode("utf-8")) <= 128 and isinstance(question, str) and question.strip():
            menu[name] = question.strip()
        else:
            logger.warning("wechat: ignoring menu entry %r (a key of at most 128 bytes and a question)", key)
    return menu


def _replay_settings(creds: dict[str, Any], env: Any) -> dict[str, Any]:
    """Timestamp window, nonce store and encrypted-only: a WECHAT_* variable wins over credentials.yml,
    so one replica's environment can switch to Redis without editing the shared file."""
    def option(key: str, variable: str) -> Any:
        value = env.get(variable)
        return value if value not in (None, "") else creds.get(key)

    store = str(option("nonce_store", "WECHAT_NONCE_STORE") or "memory").strip().lower()
    if store not in NONCE_STORES:
        logger.warning("wechat: unknown nonce_store=%r, using memory", store)
        store = "memory"
    return {
        "timestamp_window": _positive(option("timestamp_window", "WECHAT_TIMESTAMP_WINDOW"),
                                      WeChatSettings.timestamp_window, "timestamp_window"),
        "encrypted_only": _flag(option("encrypted_only", "WECHAT_ENCRYPTED_ONLY")),
        "nonce_store": store,
        "redis_url": str(option("redis_url", "WECHAT_REDIS_URL") or DEFAULT_REDIS_URL).strip(),
        "redis_prefix": str(option("redis_prefix", "WECHAT_REDIS_PREFIX") or DEFAULT_REDIS_PREFIX),
    }


def settings_from(credentials: dict[str, Any] | None, environ: dict[str, str] | None = None) -> WeChatSettings:
    """Settings from credentials.yml (non-secret options) and the environment (secrets)."""
    creds = dict(credentials or {})
    env = os.environ if environ is None else environ
    for key, variable in ENV.items():
        if key in creds:
            logger.warning("wechat: '%s' in credentials.yml is ignored; set the %s environment variable", key, variable)
    secrets = {key: (env.get(variable) or "").strip() for key, variable in ENV.items()}
    api_base = str(creds.get("api_base") or env.get("WECHAT_API_BASE") or DEFAULT_API_BASE).strip().rstrip("/")
    defaults = WeChatSettings()
    return WeChatSettings(
        **secrets,
        api_base=api_base,
        passive_timeout=_positive(creds.get("passive_timeout"), defaults.passive_timeout, "passive_timeout"),
        followup_delay=_positive(creds.get("followup_delay"), defaults.followup_delay, "followup_delay"),
        dedupe_ttl=_positive(creds.get("dedupe_ttl"), defaults.dedupe_ttl, "dedupe_ttl"),
        buttons_ttl=_positive(creds.get("buttons_ttl"), defaults.buttons_ttl, "buttons_ttl"),
        http_timeout=_positive(creds.get("http_timeout"), defaults.http_timeout, "http_timeout"),
        menu=_menu(creds.get("menu")),
        **_replay_settings(creds, env),
    )


def _make_crypto(settings: WeChatSettings) -> WeChatCrypto | None:
    if not (settings.token and settings.aes_key and settings.app_id):
        return None
    try:
        return WeChatCrypto(settings.token, settings.aes_key, settings.app_id)
    except (AssertionError, ValueError):  # not 43 base64 characters
        logger.error("wechat: WECHAT_AES_KEY is not a valid EncodingAESKey (43 characters); safe mode disabled")
        return None


# -- reply text ---------------------------------------------------------------

def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def clean_text(text: str) -> str:
    """Drop characters that XML 1.0 or UTF-8 cannot carry."""
    text = text.encode("utf-8", "ignore").decode("utf-8")  # lone surrogates
    return _XML_INVALID.sub("", text)


def _hard_split(piece: str, limit: int) -> list[str]:
    parts, current = [], ""
    for char in piece:
        if _utf8_len(current + char) > limit:
            parts.append(current)
            current = ""
        current += char
    return [*parts, current] if current else parts


def split_reply(text: str, limit: int = REPLY_LIMIT_BYTES, max_parts: int = MAX_PARTS) -> list[str]:
    """Split a reply into messages of at most `limit` UTF-8 bytes, on sentence ends (。！？；newline)."""
    text = clean_text(text).strip()
    parts: list[str] = []
    current = ""
    for piece in _SENTENCES.split(text):
        if not piece:
            continue
        if _utf8_len(current + piece) <= limit:
            current += piece
            continue
        if current:
            parts.append(current)
        if _utf8_len(piece) <= limit:
            current = piece
        else:  # one "sentence" longer than a message: cut between characters
            *full, current = _hard_split(piece, limit)
            parts.extend(full)
    if current:
        parts.append(current)
    parts = [p.strip("\n") for p in parts if p.strip()]
    if len(parts) > max_parts:
        logger.warning("wechat: reply of %d parts truncated to %d", len(parts), max_parts)
        parts = [*parts[: max_parts - 1], TRUNCATED.format(phone=consultation_phone())]
    return parts


def render_bot_messages(messages: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """Rasa's collected messages as one text (buttons as numbered lines) and the buttons' payloads."""
    lines: list[str] = []
    payloads: list[str] = []
    for message in messages:
        text = message.get("text")
        if isinstance(text, str) and text.strip():
            lines.append(text.strip())
        for button in message.get("buttons") or []:
            if not isinstance(button, dict):
                continue
            title = button.get("title")
            if not isinstance(title, str) or not title.strip():
                continue
            payload = button.get("payload")
            payloads.append(payload if isinstance(payload, str) and payload.strip() else title.strip())
            lines.append(BUTTON_LINE.format(number=len(payloads), title=title.strip()))
    return "\n".join(lines), payloads


def cdata_safe(text: str) -> str:
    """Text that can sit inside wechatpy's <![CDATA[...]]> (it does not escape "]]>" itself)."""
    return text.replace("]]>", "]]]]><![CDATA[>")


def render_text_reply(message: Any, content: str) -> str:
    """A passive text reply (wechatpy TextReply) to a parsed wechatpy message."""
    return TextReply(message=message, content=cdata_safe(clean_text(content))).render()


def button_number(text: str) -> int | None:
    """1 for "1", "１" or " 1 "; None for anything else."""
    normalized = unicodedata.normalize("NFKC", text).strip()
    if normalized.isascii() and normalized.isdigit() and len(normalized) <= 2:
        return int(normalized)
    return None


# -- incoming messages --------------------------------------------------------

class BadMessage(ValueError):
    """The XML is not a usable WeChat message."""


@dataclass(frozen=True)
class Incoming:
    """The parts of a WeChat message the channel uses."""

    message: Any  # the wechatpy message, to address the reply
    openid: str
    kind: str  # wechatpy's type: text, voice, image, event, unknown, ...
    event: str  # lower-case event name for events, '' otherwise
    msg_id: int
    create_time: int
    text: str  # text content or voice recognition, '' if none
    event_key: str = ""  # the menu key of a CLICK event

    def key(self) -> str:
        """What identifies a retry of this message."""
        if self.msg_id:
            return f"msg:{self.msg_id}"
        return f"event:{self.openid}:{self.create_time}:{self.event or self.kind}:{self.event_key}"


def read_message(xml: str) -> Incoming:
    """Parse a (decrypted, screened) WeChat XML message with wechatpy; BadMessage if unusable."""
    try:
        message = parse_message(xml)
        if message is None:
            raise BadMessage("empty message")
        openid, account = message.source, message.target
        msg_id, create_time = int(message.id or 0), int(message.time or 0)
        kind = str(message.type)
        event = str(message.event).lower() if isinstance(message, BaseEvent) else ""
        if kind == "unknown" and str(message._data.get("MsgType", "")).lower() == "event":
            kind = "event"  # an event wechatpy does not know; wechatpy has no public accessor
        text = {"text": "content", "voice": "recognition"}.get(kind)
        text = getattr(message, text) if text else ""
        event_key = str(message.key or "") if event == "click" else ""
    except BadMessage:
        raise
    except Exception as exc:  # expat errors, missing or repeated elements, non-numeric ids
        raise BadMessage(f"unreadable message: {type(exc).__name__}") from exc
    if not all(isinstance(v, str) and _ID.match(v) for v in (openid, account)):
        raise BadMessage("invalid FromUserName or ToUserName")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise BadMessage("invalid Content or Recognition")
    return Incoming(message, openid, kind, event, msg_id, create_time, text, event_key)


def _mask(openid: str) -> str:
    return openid[:6] + "…"


# -- in-memory state ----------------------------------------------------------

class ButtonMemory:
    """The payloads of the buttons last shown to each user, so "回复 1" can be mapped back."""

    def __init__(self, ttl: float, max_users: int = 10000, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_users
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()

    def remember(self, user: str, payloads: list[str]) -> None:
        """Replace the user's buttons (none: forget them)."""
        self._items.pop(user, None)
        if payloads:
            self._items[user] = (self._clock() + self._ttl, list(payloads))
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def resolve(self, user: str, text: str) -> str | None:
        """The payload behind a number the user typed, or None."""
        number = button_number(text)
        entry = self._items.get(user)
        if number is None or entry is None:
            return None
        expires, payloads = entry
        if self._clock() > expires:
            self._items.pop(user, None)
            return None
        return payloads[number - 1] if 1 <= number <= len(payloads) else None


@dataclass
class _Pending:
    task: asyncio.Future[list[str]]
    expires: float
    delivery: str = ""  # "" while undecided, then "passive" or "api"


class _MessageLog:
    """Messages seen recently (same TTL for all, so insertion order is expiry order)."""

    def __init__(self, ttl: float, max_entries: int = 20000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._items: OrderedDict[str, _Pending] = OrderedDict()

    def _prune(self) -> None:
        now = time.monotonic()
        while self._items:
            key, first = next(iter(self._items.items()))
            if first.expires > now and len(self._items) <= self._max:
                break
            self._items.pop(key)

    def get(self, key: str) -> _Pending | None:
        self._prune()
        return self._items.get(key)

    def add(self, key: str, task: asyncio.Future[list[str]]) -> _Pending:
        pending = _Pending(task, time.monotonic() + self._ttl)
        self._items[key] = pending
        self._prune()
        return pending


# -- the WeChat API (access token, customer-service messages) -----------------

class WeChatApiError(Exception):
    """A failed call to the WeChat API (errcode -1 for network errors)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode


class WeChatApi:
    """Access token (cached, refreshed before expiry) and the customer-service message API."""

    def __init__(self, settings: WeChatSettings) -> None:
        self.settings = settings
        self._token = ""
        self._expires = 0.0
        self._lock: asyncio.Lock | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def configured(self) -> bool:
        """Whether the app id and secret are set."""
        return bool(self.settings.app_id and self.settings.app_secret)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.http_timeout))
        return self._session

    async def close(self) -> None:
        """Close the HTTP client session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.settings.api_base}{path}"
        try:
            async with self._client().request(method, url, **kwargs) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise WeChatApiError(-1, f"{path}: {type(exc).__name__}") from exc
        if not isinstance(data, dict):
            raise WeChatApiError(-1, f"{path}: unexpected answer")
        return data

    async def access_token(self, stale: str = "") -> str:
        """A valid access token; `stale` is one WeChat just rejected, so it is not reused."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._token and self._token != stale and time.monotonic() < self._expires:
                return self._token
            data = await self._call("GET", "/cgi-bin/token", params={
                "grant_type": "client_credential", "appid": self.settings.app_id, "secret": self.settings.app_secret,
            })
            token = data.get("access_token")
            if not isinstance(token, str) or not token:
                raise WeChatApiError(_errcode(data) or -1, str(data.get("errmsg", "no access_token")))
            try:
                lifetime = float(data.get("expires_in", 7200))
            except (TypeError, ValueError):
                lifetime = 7200.0
            self._token = token
            self._expires = time.monotonic() + max(60.0, lifetime - self.settings.token_margin)
            logger.info("wechat: fetched a new access token (valid %d s)", int(lifetime))
            return token

    async def send_text(self, openid: str, content: str) -> bool:
        """Send a customer-service text message; True when WeChat accepted it. Never retries forever."""
        if not self.configured:
            logger.error("wechat: cannot send a delayed reply: WECHAT_APP_ID / WECHAT_APP_SECRET not set")
            return False
        body = json.dumps({"touser": openid, "msgtype": "text", "text": {"content": clean_text(content)}},
                          ensure_ascii=False).encode("utf-8")
        stale = ""
        for attempt in (1, 2):
            try:
                token = await self.access_token(stale)
                data = await self._call("POST", "/cgi-bin/message/custom/send", params={"access_token": token},
                                        data=body, headers={"Content-Type": "application/json; charset=utf-8"})
            except WeChatApiError as exc:
                logger.error("wechat: delayed reply to %s not sent: %s", _mask(openid), exc)
                return False
            code = _errcode(data)
            if code == 0:
                return True
            if code in TOKEN_ERRORS and attempt == 1:
                logger.warning("wechat: access token rejected (%s), refreshing once", code)
                stale = token
                continue
            if code == NOT_INTERACTED:
                logger.warning("wechat: %s has not interacted for 48 hours; reply dropped", _mask(openid))
            else:
                logger.error("wechat: delayed reply to %s rejected: %s %s", _mask(openid), code, data.get("errmsg"))
            return False
        return False


def _errcode(data: dict[str, Any]) -> int:
    try:
        return int(data.get("errcode") or 0)
    except (TypeError, ValueError):
        return -1


def default_hot_questions() -> list[tuple[str, str]]:
    """The knowledge base's hot questions as (label, payload)."""
    from bot.dialogue import hot_buttons
    from bot.knowledge.store import shared_repository

    return hot_buttons(shared_repository().get())


# -- the channel --------------------------------------------------------------

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

    @property
    def nonces(self) -> NonceStore:
        """Where the signatures of accepted requests are remembered (created on first use)."""
        if self._nonces is None:
            self._nonces = make_nonce_store(self.settings.nonce_store, self.settings.redis_url,
                                            self.settings.redis_prefix)
        return self._nonces

    def __init__(self, settings: WeChatSettings | None = None,
                 hot_questions: Callable[[], list[tuple[str, str]]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or WeChatSettings()
        self._clock = clock  # Unix seconds, compared with the signed timestamps
        self.crypto = _make_crypto(self.settings)
        self.api = WeChatApi(self.settings)
        self._hot_questions = hot_questions or default_hot_questions
        self._buttons = ButtonMemory(self.settings.buttons_ttl)
        self._log = _MessageLog(self.settings.dedupe_ttl)
        self._nonces: NonceStore | None = None
        self._background: set[asyncio.Future[Any]] = set()
        if self.settings.encrypted_only and self.crypto is None and self.settings.configured:
            logger.warning("wechat: encrypted_only is set but safe mode is not configured; every message is refused")

    def __repr__(self) -> str:
        mode = ("safe" if self.settings.encrypted_only else "safe+plaintext") if self.crypto else "plaintext"
        return (f"WeChatInput(configured={self.settings.configured}, modes={mode}, "
                f"api={self.settings.api_base}, passive_timeout={self.settings.passive_timeout})")

    async def close(self) -> None:
        """Wait briefly for pending deliveries, then close the HTTP client."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=self.settings.http_timeout)
        await self.api.close()
        if self._nonces is not None:
            await self._nonces.close()

    # -- request checks --

    def _signed(self, signature: str | None, timestamp: str | None, nonce: str | None) -> bool:
        if not (signature and timestamp and nonce):
            return False
        try:
            check_signature(self.settings.token, signature, timestamp, nonce)
        except InvalidSignatureException:
            return False
        return True

    def _check_query(self, args: Any) -> tuple[int, str, str]:
        """(0, '', '') for a signed, fresh request, else (status, error, reason)."""
        timestamp = args.get("timestamp") or ""
        if not self._signed(args.get("signature"), timestamp, args.get("nonce")):
            return 403, "签名错误", WRONG_SIGNATURE
        if not fresh(timestamp, self.settings.timestamp_window, now=self._clock()):
            return 403, STALE, STALE_TIMESTAMP
        return 0, "", ""

    async def _claim(self, signature: str, owner: str, retry: Callable[[str], bool]) -> tuple[int, str, str]:
        """(0, '', '') when the signature is new or `retry(first owner)`, else (status, error, reason).

        The key is the signature, not "timestamp:nonce" (see bot/channels/wechat_replay.py)."""
        try:
            known = await self.nonces.claim(signature, owner, 2 * self.settings.timestamp_window)
        except NonceStoreUnavailable as exc:
            logger.error("wechat: nonce store unavailable (%s); request refused", exc)
            return 503, NONCES_UNAVAILABLE, ""
        if known is None or retry(known):
            return 0, "", ""
        return 403, STALE, REPLAYED

    async def _check_nonce(self, signature: str, incoming: Incoming, body: bytes) -> tuple[int, str, str]:
        """A new signature, or a retry WeChat sent with the very same body while it is being answered."""
        owner = f"{incoming.key()}|{hashlib.sha256(body).hexdigest()}"
        return await self._claim(signature, owner,
                                 lambda known: known == owner and self._log.get(incoming.key()) is not None)

    @staticmethod
    def _refused(what: str, reason: str) -> None:
        if reason:
            logger.warning("wechat: %s refused: %s", what, reason, extra={"wechat_refusal": reason})

    def _open(self, body: bytes, encrypt_type: str, msg_signature: str | None,
              timestamp: str, nonce: str) -> tuple[str, int, str]:
        """The message XML, or ('', status, error) for a rejected body."""
        try:
            xml = body.decode("utf-8")
        except UnicodeDecodeError:
            return "", 400, "请求体必须是 UTF-8 编码的 XML"
        if _FORBIDDEN_XML.search(xml):
            return "", 400, "不接受含 DOCTYPE 或 ENTITY 的 XML"
        if encrypt_type != "aes":
            return xml, 0, ""
        if self.crypto is None:
            return "", 503, AES_NOT_CONFIGURED
        if not msg_signature:
            return "", 403, "签名错误"
        try:  # wechatpy checks msg_signature over the Encrypt element before decrypting
            xml = self.crypto.decrypt_message(xml, msg_signature, timestamp, nonce)
        except (InvalidSignatureException, InvalidAppIdException):
            return "", 403, "签名错误"
        except Exception as exc:  # malformed envelope or ciphertext (expat, base64, padding, struct)
            logger.warning("wechat: undecryptable message: %s", type(exc).__name__)
            return "", 400, "无法解密消息"
        if _FORBIDDEN_XML.search(xml):
            return "", 400, "不接受含 DOCTYPE 或 ENTITY 的 XML"
        return xml, 0, ""

    # -- answering --

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_parts(self, openid: str, parts: list[str], delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        for part in parts:
            if not await self.api.send_text(openid, part):
                break

    def _hand_over(self, pending: _Pending, openid: str) -> None:
        """Too slow for a passive reply: deliver through the customer-service API when done."""
        pending.delivery = "api"

        def deliver(task: asyncio.Future[list[str]]) -> None:
            if task.cancelled() or task.exception() is not None:
                return
            if task.result():
                self._spawn(self._send_parts(openid, task.result()))

        pending.task.add_done_callback(deliver)

    async def _respond(self, incoming: Incoming,
                       on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> list[str]:
        """The passive reply's parts ([] = answer "success"); the rest goes through the API."""
        key = incoming.key()
        pending = self._log.get(key)
        if pending is not None:
            if pending.task.done() and pending.delivery == "passive":
                logger.info("wechat: retry of %s, sending the same reply", key)
                return pending.task.result()[:1]
            logger.info("wechat: retry of %s, already being answered", key)
            return []
        pending = self._log.add(key, asyncio.ensure_future(self._answer(incoming, on_new_message)))
        try:
            await asyncio.wait({pending.task}, timeout=self.settings.passive_timeout)
        except asyncio.CancelledError:
            self._hand_over(pending, incoming.openid)
            raise
        if not pending.task.done():
            logger.info("wechat: %s slower than %.1f s, replying through the API", key, self.settings.passive_timeout)
            self._hand_over(pending, incoming.openid)
            return []
        pending.delivery = "passive"
        parts = pending.task.result()
        if len(parts) > 1:
            self._spawn(self._send_parts(incoming.openid, parts[1:], self.settings.followup_delay))
        return parts[:1]

    async def _answer(self, incoming: Incoming,
                      on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> list[str]:
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
            return [FAILED.format(phone=consultation_phone())]

    async def _answer_event(self, incoming: Incoming,
                            on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> list[str]:
        """Subscribe: welcome; menu click: the key's question, answered as if typed; others: nothing."""
        if incoming.event in ("subscribe", "subscribe_scan"):
            return self._welcome(incoming.openid)
        if incoming.event == "click":
            question = self.settings.menu.get(incoming.event_key)
            if question is None:
                logger.info("wechat: unknown menu key %r", incoming.event_key[:64])
                return [MENU_UNKNOWN]
            return await self._ask(incoming, question, on_new_message)
        if incoming.event == "unsubscribe":
            logger.info("wechat: %s unsubscribed", _mask(incoming.openid))
            self._buttons.remember(incoming.openid, [])
        return []

    def _welcome(self, openid: str) -> list[str]:
        try:
            questions = self._hot_questions()
        except Exception:  # the knowledge base may be unavailable; the welcome still goes out
            logger.exception("wechat: hot questions unavailable")
            questions = []
        lines = [WELCOME]
        if questions:
            lines.append(HOT_INTRO)
            lines += [BUTTON_LINE.format(number=i, title=label) for i, (label, _) in enumerate(questions, 1)]
        self._buttons.remember(openid, [payload for _, payload in questions])
        return split_reply("\n".join(lines))

    async def _ask(self, incoming: Incoming, text: str,
                   on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> list[str]:
        if not text.strip():
            return [EMPTY_REPLY]
        payload = self._buttons.resolve(incoming.openid, text)
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
        self._buttons.remember(incoming.openid, payloads)
        if not reply:
            return [FAILED.format(phone=consultation_phone())]
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
        timestamp, nonce = args.get("timestamp") or "", args.get("nonce") or ""
        xml, status, error = self._open(body, encrypt_type, args.get("msg_signature"), timestamp, nonce)
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

    async def _receive(self, request: Request,
                       on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> HTTPResponse:
        """POST /webhook: a checked message answered passively, or "success"."""
        if not self.settings.configured:
            return response.text(NOT_CONFIGURED, status=503)
        incoming, status, error = await self._accept(request)
        if incoming is None:
            return response.text(error, status=status)
        parts = await self._respond(incoming, on_new_message)
        if not parts:
            return response.text("success")
        reply = render_text_reply(incoming.message, parts[0])
        if request.args.get("encrypt_type", "").lower() == "aes" and self.crypto is not None:
            reply = self.crypto.encrypt_message(reply, request.args.get("nonce") or "")
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
        status, error, reason = await self._claim(request.args.get("signature") or "", URL_CHECK,
                                                  lambda known: known == URL_CHECK)
        if status:
            self._refused("URL check", reason)
            return response.text(error, status=status)
        return response.text(echostr)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
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
