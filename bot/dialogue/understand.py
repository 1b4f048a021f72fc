"""From a Turn to a Frame: everything the resolvers need to know about a message.

Computed once per message:
- English questions are glossed into the Chinese words the resolvers know;
- a correction prefix ("不对，我是问……") is removed and remembered;
- homophone typos of the notice's words ("练系方式", "载止日期") are corrected by
  toneless pinyin against the vocabulary of entity aliases, anchors and cue words;
- the notice's named things are found (the NLU's, plus the gazetteer on the
  corrected text), with question words, unstated details and years;
- whether the question is anchored in the notice, and which of its content words
  the notice and the in-scope training data never use (grounding).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

from pypinyin import lazy_pinyin

from bot.dialogue.lexicon import Lexicon, lexicon
from bot.dialogue.retrieval import fact_documents
from bot.dialogue.types import Entities, Frame, Turn
from bot.knowledge.gazetteer import Gazetteer
from bot.knowledge.model import KnowledgeSet

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_LATIN = re.compile(r"[A-Za-z]")
# Characters that carry the question itself: never "corrected" into a word ("第几次" is not "第一次").
PROTECTED = set("几哪谁啥咋怎么什多少吗呢吧")
# Grammatical words that border a phrase: "我们是科协代表" keeps its "是" (not "市科协").
GRAMMAR = set("是的在有和与了就也都把被给")
_LITERAL = re.compile(r"^[\u4e00-\u9fff]{2,8}$")
# Fuzzy initials and finals people confuse with pinyin input (z/zh, n/l, an/ang ...).
_FUZZY = [("zh", "z"), ("ch", "c"), ("sh", "s"), ("ang", "an"), ("eng", "en"), ("ing", "in"), ("l", "n")]


def fuzzy(syllable: str) -> str:
    """A syllable with easily confused initials and finals folded together."""
    for a, b in _FUZZY:
        if syllable.startswith(a) and a in ("zh", "ch", "sh", "l"):
            syllable = b + syllable[len(a):]
        elif syllable.endswith(a) and a in ("ang", "eng", "ing"):
            syllable = syllable[: -len(a)] + b
    return syllable


_INITIAL = re.compile(r"^(zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?(.*)$")


def sounds_alike(a: str, b: str) -> bool:
    """Two characters an IME confuses: same initial or same final after folding (练/联, 载/在)."""
    pa, pb = (fuzzy(char_pinyin(c)) for c in (a, b))
    ia, fa = _INITIAL.match(pa).groups()  # type: ignore[union-attr]
    ib, fb = _INITIAL.match(pb).groups()  # type: ignore[union-attr]
    return (bool(ia) and ia == ib) or (bool(fa) and fa == fb)


@functools.lru_cache(maxsize=20000)
def char_pinyin(char: str) -> str:
    """The toneless pinyin of one character (per character, so text and word lists agree)."""
    return lazy_pinyin(char)[0]


def syllables(word: str) -> list[str]:
    """The toneless pinyin of each character of `word`."""
    return [char_pinyin(c) for c in word]


@functools.lru_cache(maxsize=20000)
def _key(word: str) -> tuple[str, ...]:
    return tuple(fuzzy(s) for s in syllables(word))


_CUE_WORDS: dict[int, tuple[Lexicon, frozenset[str]]] = {}


def cue_words(lex: Lexicon) -> frozenset[str]:
    """The plain Chinese words inside the cue patterns (for spelling and vocabulary)."""
    cached = _CUE_WORDS.get(id(lex))
    if cached and cached[0] is lex:
        return cached[1]
    words = _cue_words(lex)
    _CUE_WORDS.clear()
    _CUE_WORDS[id(lex)] = (lex, words)
    return words


def _cue_words(lex: Lexicon) -> frozenset[str]:
    words: set[str] = set()
    for pattern in [c.pattern for c in lex.cues] + [lex.status, lex.role_question] + [r.pattern for r in lex.roles]:
        for alt in re.split(r"[|()]", pattern.pattern):
            if _LITERAL.match(alt):
                words.add(alt)
    return frozenset(words)


# A word jieba's dictionary counts at least this often is a word in its own right.
COMMON_WORD = 2000


def _common_word(word: str) -> bool:
    import jieba

    return jieba.dt.FREQ.get(word, 0) >= COMMON_WORD


class Speller:
    """Corrects homophone typos of known words by pinyin (one mechanism for every word list)."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self._words = {w for w in vocabulary if _LITERAL.match(w)}
        self._by_sound: dict[tuple[str, ...], str] = {}
        self._by_mask: dict[str, str] = {}
        for word in sorted(self._words, key=lambda w: (-len(w), w)):
            self._by_sound.setdefault(_key(word), word)
            if len(word) >= 4:
                for i in range(len(word)):
                    self._by_mask.setdefault(word[:i] + "?" + word[i + 1:], word)
        self._lengths = sorted({len(w) for w in self._words}, reverse=True)

    def _candidate(self, window: str) -> str | None:
        if window in self._words:
            return window
        if any(c in PROTECTED for c in window) or _common_word(window):
            return None  # "那个" is a word of its own, not a typo of "哪个"
        same = self._by_sound.get(_key(window))
        if same and len(window) >= 3:
            return same
        if same and syllables(window) == syllables(same) and any(
                a == b for a, b in zip(window, same, strict=False)):
            return same
        if len(window) >= 4:
            for i in range(len(window)):
                masked = self._by_mask.get(window[:i] + "?" + window[i + 1:])
                if masked and sounds_alike(window[i], masked[i]):
                    return masked
        return None

    def correct(self, text: str) -> str:
        """`text` with misspelt known words replaced, longest match first, left to right.

        A window is corrected only along word boundaries: a real word that sticks out of it
        ("办公室" around "公室") is left alone."""
        import jieba

        inside: list[tuple[int, int]] = []  # the dictionary words (not those jieba only guessed, "结是")
        pos = 0
        for word in jieba.lcut(text):
            if jieba.dt.FREQ.get(word, 0) > 0:
                inside.append((pos, pos + len(word)))
            pos += len(word)
        out, i = [], 0
        while i < len(text):
            for length in self._lengths:
                window = text[i:i + length]
                if len(window) < length or len(window) < 2 or not all(_CJK.match(c) for c in window):
                    continue
                if window not in self._words and any(
                        s < i + length and e > i and e - s > 1 and (s < i or e > i + length) for s, e in inside):
                    continue
                found = self._candidate(window)
                if found and found != window and (window[0] in GRAMMAR and found[0] != window[0]
                                                  or window[-1] in GRAMMAR and found[-1] != window[-1]):
                    found = None
                if found:
                    out.append(found)
                    i += length
                    break
            else:
                out.append(text[i])
                i += 1
        return "".join(out)


def _aliases(kb: KnowledgeSet) -> set[str]:
    return {a for values in kb.entities.values() for ev in values.values() for a in (ev.name, *ev.aliases)}


@functools.lru_cache(maxsize=4)
def _speller(words: frozenset[str]) -> Speller:
    return Speller(words)


def speller(kb: KnowledgeSet, lex: Lexicon) -> Speller:
    """The speller for this knowledge set's aliases, anchors, cue words and question keywords."""
    def build() -> Speller:
        keywords = {k for q in kb.questions for k in q.keywords}
        return _speller(frozenset(_aliases(kb) | set(lex.anchors) | cue_words(lex) | keywords))
    return per_kb(f"speller-{id(lex)}", kb, build)


_PER_KB: dict[tuple[str, int], tuple[KnowledgeSet, object]] = {}


def per_kb(name: str, kb: KnowledgeSet, build: Callable[[], object]) -> Any:
    """A value derived from one knowledge set, built once while that set is in use."""
    key = (name, id(kb))
    cached = _PER_KB.get(key)
    if cached is None or cached[0] is not kb:
        if len(_PER_KB) > 16:
            _PER_KB.clear()
        cached = _PER_KB[key] = (kb, build())
    return cached[1]


def _gazetteer(kb: KnowledgeSet) -> Gazetteer:
    return per_kb("gazetteer", kb, lambda: Gazetteer.from_knowledge(kb))


def gloss_english(text: str, lex: Lexicon) -> tuple[str, bool]:
    """Chinese words for an English question (unchanged when the text is mostly Chinese)."""
    letters = len(_LATIN.findall(text))
    if letters < 4 or letters < 2 * len(_CJK.findall(text)):
        return text, False
    glossed = " " + text.lower() + " "
    for phrase, chinese in lex.english:
        glossed = re.sub(rf"(?<![a-z]){re.escape(phrase)}s?(?![a-z])", chinese, glossed)
    return glossed.strip(), True


def _group(entities: Iterable[tuple[str, str]]) -> Entities:
    grouped: Entities = {}
    for type_, value in entities:
        values = grouped.setdefault(type_, [])
        if value not in values:
            values.append(value)
    return grouped


def find_entities(kb: KnowledgeSet, text: str) -> Entities:
    """The notice's named things in the (spelling-corrected) text, known values only. The NLU's own
    entities are not used: it saw the text before correction, the preamble, and the rejected part
    of a correction ("不是报名，我说的是总结材料")."""
    found = [(m.type, m.value) for m in _gazetteer(kb).find(text)]
    grouped = _group(found)
    return {t: v for t, v in grouped.items() if all(x in kb.entities.get(t, {}) for x in v)}


def unstated_details(text: str, lex: Lexicon, kb: KnowledgeSet | None = None) -> list[str]:
    """The details asked for in `text` that the notice does not give (a named thing's own words,
    like 节约花钱 of the frugality requirement, are not a detail)."""
    original = text
    if kb is not None:
        for m in sorted(_gazetteer(kb).find(text), key=lambda m: -m.start):
            if m.end - m.start >= 3 and _CJK_RUN.fullmatch(m.text):
                text = text[:m.start] + " " + text[m.end:]
    details = [label for pattern, label in lex.unstated if pattern.search(text)]
    if lex.web_address.search(original):  # the website and the app link are in the notice
        details = [d for d in details if d != "具体地址和路线"]
    return details


def _details(text: str, lex: Lexicon, kb: KnowledgeSet, entities: Entities) -> list[str]:
    return unstated_details(text, lex, kb)


WEAK_THINGS = {"unit", "platform", "contact"}


def _strong_thing(kb: KnowledgeSet, text: str, lex: Lexicon) -> bool:
    """A thing of the notice named by a specific name ("信息完善", "八项规定"), not a unit, a platform
    or a place."""
    return any(len(m.text) >= 3 and m.type not in WEAK_THINGS and m.text not in lex.places
               for m in _gazetteer(kb).find(text))


LONG_MESSAGE = 40


_FIRST_PERSON = re.compile("我|咱|俺")


def _after_speaker(kb: KnowledgeSet, text: str, lex: Lexicon) -> str:
    """"我们是科普基地，活动信息在哪报": the question after the clause that says who asks, when it
    asks or names something itself ("我们是水务局的，分给我们啥任务" keeps the unit: nothing else is named)."""
    match = lex.speaker.match(text)
    rest = text[match.end():] if match else ""
    if len(rest) < 3 or not (lex.cues_in(rest) or find_entities(kb, rest)):
        return text
    if lex.role_question.search(rest) or _FIRST_PERSON.search(rest):
        return text  # "我们是学会，科普日有啥任务": what the notice asks of the asker, who stays the subject
    return rest


# The things a question is about: named in a long message's preamble, they stay its subject even when
# the question part names a lesser thing ("……碳达峰那个科普行动 请问牵头单位是哪个 要倡导啥样的生态文明理念").
SUBJECTS = ("joint_action", "event")


def _with_preamble(entities: Entities, whole: Entities) -> Entities:
    """The question part's entities, or the whole message's when it names none; a subject the
    preamble names and the question part lacks is added."""
    if not entities:
        return whole
    merged = dict(entities)
    for kind in SUBJECTS:
        if kind in whole and not any(k in entities for k in SUBJECTS):
            merged[kind] = whole[kind]
    return merged


def question_focus(text: str, lex: Lexicon) -> str:
    """In a long message, the part from the first question marker on ("……我想知道主场活动在哪");
    the whole text otherwise."""
    match = lex.question_markers.search(text) if len(text) > LONG_MESSAGE else None
    if not match or len(text) - match.end() < 4:
        return text
    if lex.cues_in(text[:match.start()]):
        return text  # "……邮箱地址是多少……顺便问一下传真号码": a question before the marker too
    return text[match.end():]


def _specific_event(entities: Entities) -> Entities:
    """"科普日17号下午在11小吗": a named event is more specific than the whole 科普日."""
    events = entities.get("event") or []
    if "kepu_day" in events and len(events) > 1:
        entities = {**entities, "event": [e for e in events if e != "kepu_day"]}
    return entities


def years_in(text: str, lex: Lexicon, today: dt.date) -> set[int]:
    """Years named ("2026年") or said relative to today ("明年")."""
    years = {int(y) for y in lex.explicit_year.findall(text)}
    lowered = text.lower()
    years |= {today.year + offset for word, offset in lex.relative_years.items() if word in lowered}
    return years


def _known_words(kb: KnowledgeSet, examples: tuple[str, ...], lex_words: frozenset[str]) -> frozenset[str]:
    """Every word of the notice's facts, aliases, FAQs and in-scope training examples."""
    return per_kb(f"known-{hash(examples)}-{hash(lex_words)}", kb, lambda: _words_of(kb, examples, lex_words))


def _tokens(text: str) -> list[str]:
    import jieba

    return [w for w in jieba.lcut(text) if len(w) >= 2 and _CJK_RUN.fullmatch(w)]


def _words_of(kb: KnowledgeSet, examples: tuple[str, ...], lex_words: frozenset[str]) -> frozenset[str]:
    texts = [*fact_documents(kb).values(), *examples,
             *(q for f in kb.faqs for q in f.questions), *(f.answer for f in kb.faqs)]
    words = set(_aliases(kb)) | set(lex_words)
    for text in texts:
        words.update(_tokens(text))
    return frozenset(words)


# Parts of speech of content words (nouns, places, organisations, times): what a question is about.
CONTENT_POS = {"n", "ns", "nt", "nz", "nr", "nrt", "t", "vn", "j", "l", "i"}
# Verbs: what the asker wants done ("申请", "入会", "招生"); weaker evidence than a foreign noun.
VERB_POS = {"v"}


def foreign_words(text: str, known: frozenset[str], lex: Lexicon, pos: frozenset[str] | set[str] = CONTENT_POS
                  ) -> list[str]:
    """The content words of `text` (words of the parts of speech `pos`) that the notice's vocabulary
    never uses ("北京", "春节"; with VERB_POS "申请", "招生")."""
    return [word for word, _ in tagged_foreign_words(text, known, lex, pos)]


def tagged_foreign_words(text: str, known: frozenset[str], lex: Lexicon,
                         pos: frozenset[str] | set[str] = CONTENT_POS) -> list[tuple[str, str]]:
    """foreign_words with each word's part of speech (one segmentation serves every use)."""
    import jieba
    import jieba.posseg

    for pattern, _ in lex.unstated:
        text = pattern.sub(" ", text)
    # A two-character stretch jieba only guessed ("能报") is no word of anything.
    return [(p.word, p.flag) for p in jieba.posseg.cut(text)
            if len(p.word) >= 2 and p.flag in pos and _CJK_RUN.fullmatch(p.word)
            and (len(p.word) >= 3 or jieba.dt.FREQ.get(p.word, 0) > 0)
            and p.word not in known and p.word not in lex.generic_words
            and not _known_compound(p.word, known | lex.generic_words)]


# Foreign words that say what a question is about: a thing (a noun, a place, an organisation) or an
# errand (a verb, "入会"). A foreign time or set phrase ("周二", "近几年") rarely is.
TOPIC_POS = {"n", "ns", "nt", "nz", "nr", "nrt", "vn", "j", "v"}


def _foreign(text: str, known: frozenset[str], lex: Lexicon, context: dict) -> list[tuple[str, str]]:
    """Foreign nouns, and foreign verbs ("申请", "招生") unless a topic is remembered: mid-conversation
    a verb alone is left to the context ("纲要覆盖哪些年" after the outline's item)."""
    mid_conversation = any(context.get(key) for key in ("entities", "intent", "items"))
    return tagged_foreign_words(text, known, lex, CONTENT_POS if mid_conversation else CONTENT_POS | VERB_POS)


def _known_compound(word: str, known: frozenset[str]) -> bool:
    """"知识讲座", "要从严": a longer word jieba glued together from known words (and at most one
    single character)."""
    if len(word) < 3:
        return False
    # best[i]: fewest single characters needed to spell word[:i] from known words of 2+ characters.
    best = [0] + [len(word) + 1] * len(word)
    for end in range(1, len(word) + 1):
        best[end] = best[end - 1] + 1
        for start in range(end - 1):
            if end - start < len(word) and word[start:end] in known:
                best[end] = min(best[end], best[start])
    return best[-1] <= 1


def _in_scope_examples() -> tuple[str, ...]:
    from bot.faq import in_scope_examples

    return in_scope_examples()


def anchored(text: str, entities: Entities, lex: Lexicon) -> bool:
    """True when the question names a thing or a topic word of the notice."""
    lowered = text.lower()
    if entities or any(a in lowered for a in lex.anchors) or any(c.anchors for c in lex.cues_in(text)):
        return True
    # "一般群众可以去看吗": who asks, and whether they may take part, is about the notice.
    return bool(lex.role_question.search(text)) and any(r.pattern.search(text) for r in lex.roles)


# A small-talk reading of a message this long that names the notice's things is a misreading.
SMALLTALK_MAX = 10


def _not_small_talk(turn: Turn, text: str, entities: Entities, lex: Lexicon) -> tuple[str, float] | None:
    """The classifier's best other reading when it took a question for small talk.

    "市科协代表大会选出来的主席是谁" read as "who are you", or "0955-8812005这个号码是哪里的"
    as goodbye: a message naming a thing of the notice, or a long one with a question word
    and a topic word, is a question whatever the small-talk intent says.
    """
    from bot.dialogue.phrasing import SMALLTALK

    if turn.intent not in SMALLTALK or turn.intent in ("greet", "thank"):
        return None  # greetings and thanks around a question are handled by the small-talk resolver
    questioning = len(text) > SMALLTALK_MAX and lex.cues_in(text) and anchored(text, {}, lex)
    if not questioning and (not entities or turn.intent == "request_human"):
        return None  # "我要找工作人员" names the contact person and still asks for a person
    other = next(((n, c) for n, c in turn.ranking if n not in SMALLTALK), ("nlu_fallback", 0.0))
    return other[0], min(other[1], 0.5)


def understand(kb: KnowledgeSet, turn: Turn, today: dt.date) -> Frame:
    """Everything the resolvers need about this turn."""
    lex = lexicon(kb.facts)
    raw = turn.text or ""
    typed = not raw.startswith("/")
    text, english = gloss_english(raw, lex) if typed else (raw, False)
    match = lex.correction.match(text) if typed else None
    corrected = bool(match and match.end() > 0)
    if corrected and match is not None:
        text = text[match.end():].lstrip("，,。 ")
        target = lex.correction_target.match(text)
        if target:  # "不是报名，我说的是总结材料": only what it should have been
            text = text[target.end():]
    if typed:
        text = speller(kb, lex).correct(text)
    full_text, text = text, _after_speaker(kb, question_focus(text, lex), lex) if typed else text
    entities = find_entities(kb, lex.self_intro.sub("，", text)) if typed else _group(turn.entities)
    if typed and full_text != text:  # "……碳达峰那个行动……请问牵头单位是谁"
        preamble = lex.self_intro.sub("，", lex.speaker.sub("，", full_text))
        # Who asks ("我是环保志愿者协会的") is not what is asked about, when anything else is named.
        entities = _with_preamble(entities, find_entities(kb, lex.asker.sub("，", preamble))
                                  or find_entities(kb, preamble))
    if typed and not entities and turn.whole:  # "代表大会在哪开，几号开": the thing is named once
        entities = find_entities(kb, lex.self_intro.sub("，", turn.whole))
    entities = _specific_event(entities)
    known = _known_words(kb, _in_scope_examples(), cue_words(lex) | frozenset(lex.anchors))
    intent, confidence = (_not_small_talk(turn, text, entities, lex) if typed else None) or (
        turn.intent, turn.confidence)
    if full_text != text:  # the classifier read the preamble too: its reading is a weaker guess
        confidence = min(confidence, 0.6)
    if (english and intent not in ("greet", "thank", "goodbye")) or corrected:
        # The classifier was trained on Chinese, and it read the whole correction, rejected part too.
        intent, confidence = "nlu_fallback", 0.0
    tagged = _foreign(text, known, lex, turn.context or {}) if typed else []
    return Frame(
        kb=kb, turn=turn, today=today, text=text, typed=typed, intent=intent, confidence=confidence,
        entities=entities, context=dict(turn.context or {}),
        cues=[c.name for c in lex.cues_in(text)] if typed else [],
        details=_details(text, lex, kb, entities) if typed else [],
        years=years_in(text, lex, today) if typed else set(),
        corrected=corrected, english=english,
        anchored=anchored(text, entities, lex) or (corrected and bool((turn.context or {}).get("entities"))),
        full_text=full_text, strong_thing=typed and _strong_thing(kb, text, lex),
        foreign=[word for word, _ in tagged],
        foreign_topics=[word for word, flag in tagged if flag in TOPIC_POS],
        foreign_places=[word for word, flag in tagged if flag == "ns"],
    )
