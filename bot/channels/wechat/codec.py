"""What goes over the wire to and from WeChat: signatures, decryption, parsing and replies.

wechatpy does the protocol work: the URL signature (`check_signature`), safe mode's msg_signature
and AES (`WeChatCrypto`), the message XML (`parse_message`) and the passive reply (`TextReply`).
This module adds only what wechatpy leaves to its callers: screening the XML before any parser
sees it, checking the parsed ids, and cutting a reply into messages WeChat accepts.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import BaseEvent
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from bot.knowledge.store import consultation_phone

logger = logging.getLogger(__name__)

REPLY_LIMIT_BYTES = 2048  # WeChat's limit for one text message (UTF-8 bytes)
MAX_PARTS = 5  # at most this many messages for one answer
SENTENCE_END = "。！？；\n"

_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")  # OpenID and the account's original ID (gh_...)
_FORBIDDEN_XML = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SENTENCES = re.compile(f"(?<=[{SENTENCE_END}])")

BUTTON_LINE = "回复 {number} 查看：{title}"
TRUNCATED = "内容较长，其余部分未能发送。如需完整信息，请拨打{phone}咨询。"
WRONG_SIGNATURE_TEXT = "签名错误"
NOT_UTF8 = "请求体必须是 UTF-8 编码的 XML"
FORBIDDEN_XML = "不接受含 DOCTYPE 或 ENTITY 的 XML"
UNDECRYPTABLE = "无法解密消息"
AES_NOT_CONFIGURED = "未配置安全模式（缺少 WECHAT_AES_KEY 或 WECHAT_APP_ID），暂不能处理加密消息。"


# -- signatures and safe mode -------------------------------------------------

def make_crypto(token: str, aes_key: str, app_id: str) -> WeChatCrypto | None:
    """wechatpy's safe-mode crypto, or None when safe mode is not (validly) configured."""
    if not (token and aes_key and app_id):
        return None
    try:
        return WeChatCrypto(token, aes_key, app_id)
    except (AssertionError, ValueError):  # not 43 base64 characters
        logger.error("wechat: WECHAT_AES_KEY is not a valid EncodingAESKey (43 characters); safe mode disabled")
        return None


def signed(token: str, signature: str | None, timestamp: str | None, nonce: str | None) -> bool:
    """Whether the URL's signature is WeChat's over (token, timestamp, nonce)."""
    if not (signature and timestamp and nonce):
        return False
    try:
        check_signature(token, signature, timestamp, nonce)
    except InvalidSignatureException:
        return False
    return True


def open_body(crypto: WeChatCrypto | None, body: bytes, encrypt_type: str, msg_signature: str | None,
              timestamp: str, nonce: str) -> tuple[str, int, str]:
    """The message XML, screened (and decrypted in safe mode), or ('', status, error)."""
    try:
        xml = body.decode("utf-8")
    except UnicodeDecodeError:
        return "", 400, NOT_UTF8
    if _FORBIDDEN_XML.search(xml):
        return "", 400, FORBIDDEN_XML
    if encrypt_type != "aes":
        return xml, 0, ""
    if crypto is None:
        return "", 503, AES_NOT_CONFIGURED
    if not msg_signature:
        return "", 403, WRONG_SIGNATURE_TEXT
    try:  # wechatpy checks msg_signature over the Encrypt element before decrypting
        xml = crypto.decrypt_message(xml, msg_signature, timestamp, nonce)
    except (InvalidSignatureException, InvalidAppIdException):
        return "", 403, WRONG_SIGNATURE_TEXT
    except Exception as exc:  # malformed envelope or ciphertext (expat, base64, padding, struct)
        logger.warning("wechat: undecryptable message: %s", type(exc).__name__)
        return "", 400, UNDECRYPTABLE
    if _FORBIDDEN_XML.search(xml):
        return "", 400, FORBIDDEN_XML
    return xml, 0, ""


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


def _fields(message: Any) -> tuple[str, str, str, Any, str]:
    """(kind, event, event key, text, account) of a parsed wechatpy message."""
    kind = str(message.type)
    event = str(message.event).lower() if isinstance(message, BaseEvent) else ""
    if kind == "unknown" and str(message._data.get("MsgType", "")).lower() == "event":
        kind = "event"  # an event wechatpy does not know; wechatpy has no public accessor
    attribute = {"text": "content", "voice": "recognition"}.get(kind)
    text = getattr(message, attribute) if attribute else ""
    event_key = str(message.key or "") if event == "click" else ""
    return kind, event, event_key, text, message.target


def read_message(xml: str) -> Incoming:
    """Parse a (decrypted, screened) WeChat XML message with wechatpy; BadMessage if unusable."""
    try:
        message = parse_message(xml)
        if message is None:
            raise BadMessage("empty message")
        openid, msg_id, create_time = message.source, int(message.id or 0), int(message.time or 0)
        kind, event, event_key, text, account = _fields(message)
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


def mask(openid: str) -> str:
    """An OpenID shortened for the log."""
    return openid[:6] + "…"


# -- replies ------------------------------------------------------------------

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


def _pack(pieces: list[str], limit: int) -> list[str]:
    """Sentences packed greedily into messages of at most `limit` bytes."""
    parts: list[str] = []
    current = ""
    for piece in pieces:
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
    return [*parts, current] if current else parts


def split_reply(text: str, limit: int = REPLY_LIMIT_BYTES, max_parts: int = MAX_PARTS) -> list[str]:
    """Split a reply into messages of at most `limit` UTF-8 bytes, on sentence ends (。！？；newline)."""
    parts = _pack(_SENTENCES.split(clean_text(text).strip()), limit)
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
            title = button.get("title") if isinstance(button, dict) else None
            if not isinstance(title, str) or not title.strip():
                continue
            payload = button.get("payload")
            payloads.append(payload if isinstance(payload, str) and payload.strip() else title.strip())
            lines.append(BUTTON_LINE.format(number=len(payloads), title=title.strip()))
    return "\n".join(lines), payloads


def cdata_safe(text: str) -> str:
    """Text that can sit inside wechatpy's <![CDATA[...]]> (it does not escape "]]>" itself)."""
    return text.replace("]]>", "]]]]><![CDATA[>")


def render_text_reply(message: Any, content: str, crypto: WeChatCrypto | None = None, nonce: str = "") -> str:
    """A passive text reply (wechatpy TextReply) to a parsed wechatpy message, encrypted by
    wechatpy when `crypto` is given (safe and compatible mode)."""
    reply = TextReply(message=message, content=cdata_safe(clean_text(content))).render()
    return crypto.encrypt_message(reply, nonce) if crypto is not None else reply


def button_number(text: str) -> int | None:
    """1 for "1", "１" or " 1 "; None for anything else."""
    normalized = unicodedata.normalize("NFKC", text).strip()
    if normalized.isascii() and normalized.isdigit() and len(normalized) <= 2:
        return int(normalized)
    return None
