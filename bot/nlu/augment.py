"""Generated training variants: how people really type a question.

From the hand-written training examples and the word lists of
knowledge/variants.yml this derives, deterministically:
- phone style: punctuation dropped, short spoken forms (什么 -> 啥), a particle;
- padded: a greeting or who-is-asking before, a thank-you after;
- run-ons: the padded form without any punctuation, as voice input writes it;
- homophones: one character of the question's main word replaced by a common
  character with the same pinyin, as a pinyin keyboard mistypes it;
- out-of-scope questions built from other things with the question words the
  notice's own questions use (哪里, 什么时候, 多少, 怎么, 谁).

Nothing here is copied from evaluation conversations: the inputs are data/
and knowledge/ only. Pure functions; `python -m bot.generate` writes the result.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

# Small talk and bare follow-ups ("那电话呢") get only the phone-style variant (a particle,
# no punctuation): a preamble or a typo would change what they are.
PHONE_ONLY = frozenset({"greet", "goodbye", "thank", "affirm", "deny", "follow_up", "bot_identity",
                        "bot_capabilities", "request_human"})
SKIP_INTENTS = frozenset({"nlu_fallback"})
KINDS = ("phone", "padded", "homophone", "runon")
# Shorter examples ("你是谁", "在吗") get no variant: one changed character makes them another question.
MIN_CHARS = 5
_PUNCT = re.compile(r"[，,。.？?！!、；;：:“”\"'‘’（）()\s]+")
_CJK = re.compile(r"^[\u4e00-\u9fff]+$")
# How many distinct common characters are considered homophone candidates.
COMMON_CHARS = 3500
OOS_PER_THING = 4


class VariantsError(ValueError):
    """knowledge/variants.yml is malformed."""


@dataclass(frozen=True)
class WordLists:
    """The word lists of knowledge/variants.yml."""

    preambles: tuple[str, ...]
    closings: tuple[str, ...]
    colloquial: tuple[tuple[str, tuple[str, ...]], ...]
    oos_things: tuple[str, ...]
    oos_questions: tuple[str, ...]


def _strings(doc: dict, key: str) -> tuple[str, ...]:
    value = doc.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise VariantsError(f"variants.yml: {key} 必须是非空的文字列表")
    return tuple(value)


def _colloquial(doc: dict) -> tuple[tuple[str, tuple[str, ...]], ...]:
    value = doc.get("colloquial")
    if not isinstance(value, dict) or not value:
        raise VariantsError("variants.yml: colloquial 必须是 词: [替换词] 的映射")
    out = []
    for word, forms in value.items():
        if not isinstance(forms, list) or not forms or not all(isinstance(f, str) and f for f in forms):
            raise VariantsError(f"variants.yml: colloquial.{word} 必须是非空的文字列表")
        out.append((str(word), tuple(forms)))
    # Longest first, so 怎么样 is replaced before 怎么.
    return tuple(sorted(out, key=lambda item: -len(item[0])))


def load_variants(path: str | Path) -> WordLists:
    """Read and validate knowledge/variants.yml."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise VariantsError(f"variants.yml 无法读取：{exc}") from exc
    if not isinstance(doc, dict):
        raise VariantsError("variants.yml 必须是映射")
    questions = _strings(doc, "oos_questions")
    if not all(q.count("{}") == 1 for q in questions):
        raise VariantsError("variants.yml: oos_questions 每一项必须恰好包含一个 {}")
    return WordLists(
        preambles=_strings(doc, "preambles"),
        closings=_strings(doc, "closings"),
        colloquial=_colloquial(doc),
        oos_things=_strings(doc, "oos_things"),
        oos_questions=questions,
    )


def _index(text: str, salt: str, n: int) -> int:
    """A deterministic choice in range(n) for this text."""
    digest = hashlib.blake2b(f"{salt}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def _pick(options: Sequence[str], text: str, salt: str) -> str:
    return options[_index(text, salt, len(options))]


def bare(text: str) -> str:
    """The text without punctuation or spaces."""
    return _PUNCT.sub("", text)


def phone_style(text: str, words: WordLists) -> str:
    """Shortened as typed on a phone: no punctuation, spoken forms, maybe a particle."""
    out = bare(text)
    replaced = 0
    for word, forms in words.colloquial:
        if word in out and replaced < 2 and _index(out, word, 3):
            out = out.replace(word, _pick(forms, out, word), 1)
            replaced += 1
    if _index(text, "particle", 2):
        out += _pick(("呀", "啊", "哈", "呢", "嘞"), text, "which-particle")
    return out


def padded(text: str, words: WordLists) -> str:
    """A greeting or who-is-asking before the question and maybe a thank-you after."""
    core = text.rstrip("？?。.！! ")
    out = _pick(words.preambles, text, "pre") + core
    if _index(text, "close", 2):
        out += "，" + _pick(words.closings, text, "closing")
    return out


def runon(text: str, words: WordLists) -> str:
    """Voice input: preamble, question and closing run together without punctuation."""
    return bare(_pick(words.preambles, text, "runon-pre") + text + _pick(words.closings, text, "runon-close"))


@functools.lru_cache(maxsize=1)
def _homophone_table() -> dict[str, tuple[str, ...]]:
    """Toneless pinyin syllable -> the common characters with it, most frequent first."""
    import jieba
    from pypinyin import lazy_pinyin

    counts: dict[str, int] = {}
    dict_path = Path(jieba.__file__).parent / "dict.txt"
    with dict_path.open(encoding="utf-8") as lines:
        for line in lines:
            word, _, rest = line.partition(" ")
            freq = int(rest.split(" ", 1)[0] or 0) if rest else 0
            for char in word:
                if "\u4e00" <= char <= "\u9fff":
                    counts[char] = counts.get(char, 0) + freq
    common = sorted(counts, key=lambda c: -counts[c])[:COMMON_CHARS]
    table: dict[str, list[str]] = {}
    for char in common:
        table.setdefault(lazy_pinyin(char)[0], []).append(char)
    return {syllable: tuple(chars) for syllable, chars in table.items()}


def _main_word(text: str, generic: frozenset[str]) -> str | None:
    """The longest Chinese word of the text that is not a function word."""
    import jieba

    words = [w for w in jieba.lcut(text) if len(w) >= 2 and _CJK.match(w) and w not in generic]
    return max(words, key=len) if words else None


def homophone(text: str, generic: frozenset[str]) -> str | None:
    """One character of the main word swapped for a common same-sounding one; None when none fits."""
    from pypinyin import lazy_pinyin

    word = _main_word(text, generic)
    if not word:
        return None
    pos = _index(text, "pos", len(word))
    char = word[pos]
    others = [c for c in _homophone_table().get(lazy_pinyin(char)[0], ()) if c != char][:4]
    if not others:
        return None
    typo = word[:pos] + _pick(others, text, "typo") + word[pos + 1:]
    return text.replace(word, typo, 1)


def variant(text: str, kind: str, words: WordLists, generic: frozenset[str]) -> str | None:
    """The variant of one kind of `text`, or None when that kind does not apply."""
    if kind == "phone":
        return phone_style(text, words)
    if kind == "padded":
        return padded(text, words)
    if kind == "runon":
        return runon(text, words)
    return homophone(text, generic)


def example_variants(
    examples: Iterable[tuple[str, str]], words: WordLists, generic: frozenset[str], taken: set[str],
) -> dict[str, list[str]]:
    """One variant per hand-written example, the kinds taking turns within each intent.

    `taken` holds the comparison keys (see key()) of every existing example; a
    variant equal to any of them, or to another variant, is dropped.
    """
    by_intent: dict[str, list[str]] = {}
    turn: dict[str, int] = {}
    for intent, text in examples:
        if intent in SKIP_INTENTS or intent.startswith("faq"):
            continue
        phone_only = intent in PHONE_ONLY
        if len(bare(text)) < (2 if phone_only else MIN_CHARS):
            continue
        n = turn.get(intent, 0)
        turn[intent] = n + 1
        kind = "phone" if phone_only else KINDS[n % len(KINDS)]
        if kind == "homophone" and intent == "out_of_scope":
            kind = "phone"  # a mistyped other question stays noise next to the notice's words
        made = variant(text, kind, words, generic)
        if made and _claim(made, taken):
            by_intent.setdefault(intent, []).append(made)
    return by_intent


def oos_questions(words: WordLists, taken: set[str]) -> list[str]:
    """Out-of-scope questions: each thing asked with a few of the question templates."""
    out = []
    for thing in words.oos_things:
        start = _index(thing, "oos", len(words.oos_questions))
        for i in range(OOS_PER_THING):
            text = words.oos_questions[(start + i * 5) % len(words.oos_questions)].format(thing)
            if _claim(text, taken):
                out.append(text)
    return out


def key(text: str) -> str:
    """How variants are compared with existing examples (the loader's question key)."""
    from bot.knowledge.loader import question_key

    return question_key(text)


def _claim(text: str, taken: set[str]) -> bool:
    k = key(text)
    if not k or k in taken:
        return False
    taken.add(k)
    return True
