"""Normalise what people type before NLU sees it.

Traditional -> simplified characters, full-width -> half-width, no stray
spaces inside Chinese text, no control characters or markup, repeated
punctuation folded, and a length cap so a 10 000-character paste stays cheap.
"""

from __future__ import annotations

import re
import unicodedata

import zhconv

MAX_CHARS = 300

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CONTROL = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]")
_TAG = re.compile(r"<[^<>]{0,200}>")
_SPACE_IN_CJK = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")
_REPEATED_PUNCT = re.compile(r"([!?.,;:~。，、！？…；：\-_=*#])\1+")
_SPACES = re.compile(r"\s+")
_MEANINGFUL = re.compile(rf"[{_CJK}A-Za-z0-9]")


def normalize(text: str | None) -> str:
    """The canonical form of a user message (may be empty)."""
    if not text:
        return ""
    text = text[: MAX_CHARS * 4]
    text = _CONTROL.sub("", text)
    text = _TAG.sub(" ", text)
    text = unicodedata.normalize("NFKC", text)
    text = zhconv.convert(text, "zh-cn")
    text = _SPACES.sub(" ", text).strip()
    text = _SPACE_IN_CJK.sub("", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    return text[:MAX_CHARS].strip()


def is_meaningful(text: str) -> bool:
    """True when the text has at least one Chinese character, letter or digit."""
    return bool(_MEANINGFUL.search(text or ""))
