"""Staff-written FAQs in the conversation: which one the ResponseSelector chose,
and how its answer is phrased.

Pure functions (no Rasa, no database): the action in actions/ passes in the
parsed message, the FAQ read from the knowledge database and today's date.
The answer text always comes from the knowledge database, never from the
response texts Rasa keeps in its domain.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bot.knowledge.answers import fmt_date
from bot.knowledge.model import Faq

RETRIEVAL_INTENT = "faq"
# Below this selector confidence the FAQ is not trusted; the dialogue treats the
# message as not understood (nlu_fallback) instead.
MIN_CONFIDENCE = 0.3


def selected_faq(message: dict[str, Any]) -> tuple[str | None, float]:
    """The FAQ id the ResponseSelector picked for `message` and its confidence.

    `message` is Rasa's parse result (tracker.latest_message). Reads
    response_selector.faq.response.intent_response_key ("faq/<id>"), or the
    utter_action ("utter_faq/<id>") when the key is missing. (None, 0.0) when
    no FAQ was selected.
    """
    selector = (message.get("response_selector") or {}).get(RETRIEVAL_INTENT) or {}
    response = selector.get("response") or {}
    key = response.get("intent_response_key") or ""
    if not key:
        action = str(response.get("utter_action") or "")
        key = action.removeprefix("utter_") if action.startswith(f"utter_{RETRIEVAL_INTENT}/") else ""
    prefix = f"{RETRIEVAL_INTENT}/"
    if not key.startswith(prefix) or len(key) == len(prefix):
        return None, 0.0
    try:
        confidence = float(response.get("confidence") or 0.0)
    except (TypeError, ValueError):
        confidence = 0.0
    return key[len(prefix):], confidence


def is_expired(faq: Faq, today: dt.date) -> bool:
    """True once `today` is after the FAQ's valid_until day."""
    return faq.valid_until is not None and today > faq.valid_until


def faq_reply(faq: Faq, today: dt.date, phone: str) -> str:
    """The reply for `faq` on `today`.

    A valid entry: its answer plus "（依据：常见问题 <source>）" when it names a
    source. An expired entry: says so (its answer may be out of date) and
    gives the consultation phone instead of the answer.
    """
    if is_expired(faq, today):
        assert faq.valid_until is not None
        return (
            f"抱歉，关于“{faq.questions[0]}”的常见问题答复有效期至{fmt_date(faq.valid_until)}，现已过期，"
            f"内容可能不再准确。请拨打咨询电话{phone}了解最新情况。"
        )
    text = faq.answer
    if faq.source:
        text += f"（依据：常见问题 {faq.source}）"
    return text
