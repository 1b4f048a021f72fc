"""Staff-written FAQs in the conversation: which one the ResponseSelector chose,
and how its answer is phrased.

Pure functions (no Rasa, no database): the action in actions/ passes in the
parsed message, the FAQ read from the knowledge database and today's date.
The answer text always comes from the knowledge database, never from the
response texts Rasa keeps in its domain.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.knowledge.answers import fmt_date
from bot.knowledge.model import Faq
from bot.knowledge.store import ROOT
from bot.text import normalize

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


# -- matching without the model ----------------------------------------------
#
# A new FAQ answers as soon as the knowledge database has it, before a retrain
# teaches the model its wording: when the model is unsure about a message (or
# reads it as out of scope), the message is compared with the FAQs' example
# questions by character bigrams, weighted by how rare each bigram is in the
# whole training data. A match must cover most of the message and share at
# least one bigram that no other intent's example uses -- so questions about
# the notice itself and unrelated questions never land on an FAQ by accident.

MATCH_MIN_SCORE = 0.5
# The model is "unsure" below this intent confidence.
UNSURE_CONFIDENCE = 0.6
_NOT_TEXT = re.compile(r"[^\u3400-\u4dbf\u4e00-\u9fffA-Za-z0-9]+")


def bigrams(text: str) -> set[str]:
    """Character bigrams of the normalised text, without punctuation or spaces."""
    compact = _NOT_TEXT.sub("", normalize(text)).lower()
    if len(compact) < 2:
        return {compact} if compact else set()
    return {compact[i:i + 2] for i in range(len(compact) - 1)}


@dataclass(frozen=True)
class FaqMatch:
    """The best FAQ for a message and how well it matched (0..1)."""

    faq_id: str
    score: float


class FaqMatcher:
    """Bigram matching of messages against the FAQs' example questions."""

    def __init__(self, faqs: Iterable[Faq], background: Iterable[str]) -> None:
        self._grams: dict[str, set[str]] = {}
        documents: list[set[str]] = []
        for faq in faqs:
            per_question = [bigrams(q) for q in faq.questions]
            self._grams[faq.id] = set().union(*per_question) if per_question else set()
            documents.extend(per_question)
        self._others: set[str] = set()
        for text in background:
            grams = bigrams(text)
            self._others |= grams
            documents.append(grams)
        df: dict[str, int] = {}
        for grams in documents:
            for g in grams:
                df[g] = df.get(g, 0) + 1
        self._n = len(documents)
        self._df = df

    def weight(self, gram: str) -> float:
        """Inverse document frequency: rare bigrams say more."""
        return math.log((self._n + 1) / (self._df.get(gram, 0) + 1)) + 1.0

    def match(self, text: str, among: Iterable[str] | None = None) -> FaqMatch | None:
        """The best FAQ (of `among`, default all) at or above MATCH_MIN_SCORE, or None."""
        grams = bigrams(text)
        total = sum(self.weight(g) for g in grams)
        if not grams or total <= 0:
            return None
        allowed = None if among is None else set(among)
        best: FaqMatch | None = None
        for faq_id, known in self._grams.items():
            if allowed is not None and faq_id not in allowed:
                continue
            shared = grams & known
            if not shared or not (shared - self._others):
                continue
            score = sum(self.weight(g) for g in shared) / total
            if score >= MATCH_MIN_SCORE and (best is None or score > best.score):
                best = FaqMatch(faq_id, round(score, 3))
        return best


def _data_dir() -> Path:
    return Path(os.environ.get("KEPU_DATA_DIR") or ROOT / "data")


def _stamp(data_dir: Path) -> float:
    try:
        return max((p.stat().st_mtime for p in data_dir.rglob("*.yml")), default=0.0)
    except OSError:
        return 0.0


@functools.lru_cache(maxsize=8)
def _matcher(faqs: tuple[Faq, ...], data_dir: str, stamp: float) -> FaqMatcher:
    from bot.knowledge.loader import nlu_examples

    return FaqMatcher(faqs, (text for _, text, _ in nlu_examples(data_dir).values()))


def matcher_for(faqs: Iterable[Faq]) -> FaqMatcher:
    """A matcher for these FAQs against the training data in KEPU_DATA_DIR (default data/), cached
    until the FAQs or the training files change."""
    data_dir = _data_dir()
    return _matcher(tuple(faqs), str(data_dir), _stamp(data_dir))


def model_faqs(domain: dict[str, Any] | None) -> set[str] | None:
    """The FAQ ids the running model was trained on, from the domain Rasa sends with each action call
    (its responses utter_faq/<id>); None when the domain does not say."""
    responses = (domain or {}).get("responses")
    if not isinstance(responses, dict):
        return None
    prefix = f"utter_{RETRIEVAL_INTENT}/"
    return {key[len(prefix):] for key in responses if isinstance(key, str) and key.startswith(prefix)}


def unsure(intent: str, confidence: float) -> bool:
    """True when the model's reading of a message should not be trusted over an FAQ match."""
    return intent in ("nlu_fallback", "out_of_scope", RETRIEVAL_INTENT) or confidence < UNSURE_CONFIDENCE


@functools.lru_cache(maxsize=4)
def _in_scope(data_dir: str, stamp: float) -> tuple[str, ...]:
    from bot.knowledge.loader import nlu_examples

    # Questions about details the notice lacks are in scope, but their words (停车, 补贴) are no
    # topic of the notice.
    return tuple(text for intent, text, _ in nlu_examples(data_dir).values()
                 if intent not in ("out_of_scope", "ask_unstated"))


def in_scope_examples() -> tuple[str, ...]:
    """The training examples of every intent but out_of_scope (KEPU_DATA_DIR, default data/)."""
    data_dir = _data_dir()
    return _in_scope(str(data_dir), _stamp(data_dir))
