"""Which question type a message asks: the classifier's reading, checked against the evidence.

`read(frame)` returns a question type of topics.HANDLERS, "out_of_scope",
"ask_unstated", "ask_registration_status", "lost" (a follow-up with nothing to
follow), or None when nothing is sure enough to answer (the later resolvers then
try retrieval, "the notice does not say" or "您是想问……"). Each step is one
small function with the rule it applies in its docstring.
"""

from __future__ import annotations

import re
from typing import Any

from bot.dialogue.lexicon import lexicon
from bot.dialogue.phrasing import SMALLTALK
from bot.dialogue.topics import FOLLOW_UP_DEFAULT, HANDLERS, RELEVANT, TOPICAL, UNIVERSAL
from bot.dialogue.types import Entities, Frame

# A guess below this, with nothing of the notice named, is not answered outright.
WEAK_CONFIDENCE = 0.3
# A guess below this with no named thing, no question word and no context is not answered.
NO_EVIDENCE_CONFIDENCE = 0.5
# Below these the classifier is "unsure" and a question word that disagrees wins.
UNSURE = 0.8
UNSURE_OUT_OF_SCOPE = 0.6
# A reading at least this sure is not overridden by a unit the question names in passing.
UNIT_OVERRIDE = 0.5
SHORT_FOLLOW_UP = 8
# Question types about the same subject: a short follow-up stays on its subject.
TOPIC_GROUPS = [
    {"ask_notice_overview", "ask_doc_number", "ask_issuer", "ask_issue_date", "ask_basis", "ask_attachment",
     "ask_audience"},
    {"ask_registration", "ask_deadline", "ask_registration_status", "ask_app_download", "ask_commendation"},
]


def cue_intent(frame: Frame, intent: str) -> str | None:
    """The question type the question words ask for, when the classifier disagrees and is not sure."""
    lex = lexicon()
    cues = [lex.cue(name) for name in frame.cues]
    if not cues:
        return None
    family = set().union(*(c.family for c in cues))
    strong = next((c for c in cues if c.overrides), None)
    if strong and intent not in strong.family:
        return strong.target
    if intent not in family and _has_own_cue(intent) and frame.anchored:
        # The classifier's attribute has question words of its own, none of which was said, and
        # another attribute's was: the question word says what is asked ("……代表大会什么时候开").
        return cues[0].target
    unsure = intent == "nlu_fallback" or frame.confidence < (UNSURE_OUT_OF_SCOPE if intent == "out_of_scope"
                                                              else UNSURE)
    # In a long message the classifier also read the preamble: its out-of-scope share says little.
    out_of_scope = dict(frame.turn.ranking).get("out_of_scope", 0.0) if frame.full_text == frame.text else 0.0
    if intent in family or not unsure or (intent != "out_of_scope" and out_of_scope >= 0.3):
        return None
    target = cues[0].target
    # The named things outrank a question word that does not fit them ("在哪个大会上的讲话").
    if frame.topical and not any(t in RELEVANT.get(target, ()) for t in frame.topical):
        return None
    return target


def _has_own_cue(intent: str) -> bool:
    return any(c.target == intent for c in lexicon().cues)


def _from_fallback(frame: Frame) -> str | None:
    """A low-confidence candidate that fits the named things (or the context)."""
    candidates = [(n, c) for n, c in frame.turn.ranking if n not in ("nlu_fallback", "out_of_scope")][:3]
    ctx_types = set(frame.context.get("entities") or {}) if not frame.entities else set()
    for types, floor in ((set(frame.entities), 0.08), (ctx_types, 0.05)):
        for name, confidence in candidates:
            if confidence >= floor and types & set(RELEVANT.get(name, ())):
                return name
    kinds = frame.topical or [t for t in ("event", "platform") if t in frame.entities]
    return FOLLOW_UP_DEFAULT[kinds[0]] if kinds else None  # "网站地址": what the named thing implies


def _follow_up(frame: Frame) -> str | None:
    """A bare follow-up ("卫健呢？") keeps the last question type when the new thing fits it."""
    ents, ctx = frame.entities, frame.context
    last = None if frame.corrected else ctx.get("intent")
    if not ents:
        return last
    if last in RELEVANT and any(t in RELEVANT[last] for t in ents):
        return last
    for type_ in TOPICAL + ("event",):
        if type_ in ents:
            return FOLLOW_UP_DEFAULT[type_]
    return last


def _cued_follow_up(frame: Frame) -> str | None:
    """"市科协第一次代表大会什么时候开" read as a follow-up: its question word fits the named event."""
    for name in frame.cues:
        target = lexicon().cue(name).target
        if target in HANDLERS and (not frame.entities or set(frame.entities) & set(RELEVANT.get(target, ()))):
            return target
    return None


def _short_follow_up(frame: Frame, intent: str) -> str:
    """"哪天？" / "在哪里" right after a question: the question word decides."""
    bare = re.sub(r"[\W_]+", "", frame.text)
    if len(bare) > SHORT_FOLLOW_UP or not frame.context.get("intent") or frame.entities:
        return intent
    lex = lexicon()
    cue = next((lex.cue(n) for n in frame.cues), None)
    if cue is None:
        return intent
    # "哪天发的" after "文号是多少": the member of the question word's family on the same topic.
    remembered_types = set(frame.context.get("entities") or {})
    fits = remembered_types & set(RELEVANT.get(cue.target, ()))
    if remembered_types and not fits:  # "主要搞哪些活动" after a joint action: about that action
        about = sorted(n for n in cue.family if n in HANDLERS and remembered_types & set(RELEVANT.get(n, ())))
        if about:
            return about[0]
    group = set() if fits else next((g for g in TOPIC_GROUPS if frame.context.get("intent") in g), set())
    same_topic = sorted(cue.family & group)
    target = cue.target if cue.target in group or not same_topic else same_topic[0]
    return target if target in HANDLERS else intent


def _fits_context(frame: Frame, intent: str) -> str:
    """A follow-up naming nothing ("通过什么提交" after a deadline): an unsure reading that is not
    about the remembered thing gives way to a candidate that is."""
    remembered_types = set(frame.context.get("entities") or {})
    if frame.entities or not remembered_types or intent not in HANDLERS or intent in UNIVERSAL:
        return intent
    if remembered_types & set(RELEVANT.get(intent, ())) or frame.confidence >= UNSURE_OUT_OF_SCOPE:
        return intent
    for name, confidence in frame.turn.ranking[:4]:
        if name in HANDLERS and confidence >= 0.05 and remembered_types & set(RELEVANT.get(name, ())):
            return name
    # "主要普及啥" after a joint action: a short question naming nothing, and no word of the guessed
    # type's own, asks about the remembered thing.
    short = len(re.sub(r"[\W_]+", "", frame.text)) <= SHORT_FOLLOW_UP
    own = keyword_intent(frame) == intent or any(lexicon().cue(n).target == intent for n in frame.cues)
    kinds = [t for t in TOPICAL if t in remembered_types]
    if short and not own and kinds and "content" in frame.cues + _content_like(frame):
        return FOLLOW_UP_DEFAULT[kinds[0]]
    return intent


def _content_like(frame: Frame) -> list[str]:
    """"普及啥" / "讲啥": asks what something is about."""
    return ["content"] if re.search(r"(啥|什么)$|讲|普及|内容", re.sub(r"[\W_]+", "", frame.text)) else []


def _polite_question(frame: Frame, intent: str) -> str:
    """"联系方式发我一下，谢谢" is a question, not thanks."""
    if intent not in ("thank", "greet"):
        return intent
    if frame.topical:
        return FOLLOW_UP_DEFAULT[frame.topical[0]]
    if len(frame.text) > 10:
        return cue_intent(frame, "nlu_fallback") or intent
    return intent


def _unsure(frame: Frame, intent: str) -> bool:
    """True when a guessed question type has nothing to lean on: no named thing, no question word,
    no context, and a low confidence."""
    if intent not in HANDLERS or frame.entities:
        return False
    if (frame.english or frame.corrected or frame.turn.whole) and frame.anchored:
        return False  # no classifier confidence to speak of: the question words decided
    if frame.confidence < WEAK_CONFIDENCE:
        return True
    return not frame.cues and not frame.context.get("entities") and frame.confidence < NO_EVIDENCE_CONFIDENCE


def _named_thing(frame: Frame, intent: str) -> str:
    """A named thing outranks a question type that is not about it ("疫情防控那条说了啥")."""
    topical = frame.topical
    anchoring_cue = any(lexicon().cue(n).anchors for n in frame.cues)
    if intent == "out_of_scope" and (frame.entities or anchoring_cue) and (not frame.foreign or frame.strong_thing):
        # Read as out of scope, yet it names the notice's things and nothing foreign to it:
        # the question word, or else the named thing, says what it asks.
        cued = [lexicon().cue(n).target for n in frame.cues]
        if cued:
            return cued[0]
        kinds = topical or [t for t in ("event", "platform") if t in frame.entities]
        return FOLLOW_UP_DEFAULT[kinds[0]] if kinds else intent
    if intent == "ask_issue_date" and "event" in frame.entities and "issue_date" not in frame.cues:
        return "ask_time"  # "科普日活动是几号开始几号结束的": the event's dates, not the notice's
    events = [e for e in frame.entities.get("event", []) if e != "kepu_day"]
    if not topical and events and intent in ("ask_main_content", "ask_main_activities"):
        return "ask_event_content"  # "主场活动主要安排了哪些内容" is about the main event's content
    if not topical:
        return intent
    if intent == frame.intent and frame.confidence >= UNSURE and any(lexicon().cue(n).target == intent
                                                                      for n in frame.cues):
        return intent  # the classifier and the question word agree ("……这份通知的文号是啥")
    if set(topical) == {"unit"} and intent in HANDLERS and intent not in ("ask_unstated", "ask_registration_status") \
            and (frame.confidence >= UNIT_OVERRIDE or any(lexicon().cue(n).target == intent for n in frame.cues)):
        # A unit named on the side ("我是市科协的……主题原话", "中卫市科协近五年的工作报告") does not
        # turn a reading the classifier or the question word supports into "what that unit leads".
        return intent
    if intent in ("ask_unstated", "ask_registration_status") and not frame.details and (
            intent == "ask_unstated" or "deadline" not in frame.entities):
        return FOLLOW_UP_DEFAULT[topical[0]]
    if intent in HANDLERS and not any(t in RELEVANT.get(intent, ()) for t in frame.entities) and (
            intent not in UNIVERSAL or topical[0] in ("document", "audience")):
        return FOLLOW_UP_DEFAULT[topical[0]]
    return intent


def keyword_intent(frame: Frame) -> str | None:
    """The question type whose name people use (knowledge/questions.yml keywords, longest first)
    is in the message: "活动时间" asks ask_time, "联合行动有几个" ask_joint_actions."""
    lowered = frame.text.lower()
    found = [(len(k), q.intent) for q in frame.kb.questions for k in q.keywords
             if len(k) >= 2 and k.lower() in lowered and q.intent in HANDLERS]
    return max(found)[1] if found else None


def _corrected_intent(frame: Frame) -> str:
    """After "不是……，我是问……" the classifier read both parts: its reading counts only when it is
    not the question being corrected."""
    raw = frame.turn.intent
    if raw in HANDLERS and raw != frame.context.get("intent") and frame.turn.confidence >= UNSURE:
        return raw
    return keyword_intent(frame) or "nlu_fallback"


def _classifier_intent(frame: Frame) -> str:
    """The classifier's intent, or "nlu_fallback" where it cannot be trusted (English, corrections)."""
    intent = frame.intent
    if frame.english and intent not in SMALLTALK:
        return "nlu_fallback"
    if frame.corrected:
        return _corrected_intent(frame)
    return intent


def read(frame: Frame) -> str | None:
    """The question type to answer, or None when unsure."""
    intent = _polite_question(frame, _classifier_intent(frame))
    intent = _short_follow_up(frame, intent)
    intent = cue_intent(frame, intent) or intent
    intent = _fits_context(frame, intent)
    intent = _named_thing(frame, intent)
    if intent == "out_of_scope":
        return intent
    if _unsure(frame, intent):
        return None
    if intent == "nlu_fallback":
        cued = [lexicon().cue(n).target for n in frame.cues] if frame.anchored else []
        if frame.english or frame.corrected or frame.turn.whole:  # the classifier's ranking says little here
            kinds = frame.topical or [t for t in ("event", "platform") if t in frame.entities]
            if cued:
                return cued[0]
            return keyword_intent(frame) or (FOLLOW_UP_DEFAULT[kinds[0]] if kinds else None)
        return _from_fallback(frame) or (cued[0] if cued else None)
    if intent == "follow_up":
        return _cued_follow_up(frame) or _follow_up(frame) or "lost"
    if intent in ("faq", "affirm", "deny"):
        return _from_fallback(frame)
    return intent


def next_steps_entities(frame: Frame) -> tuple[Entities, dict[str, Any]]:
    """"填报完了以后还要干嘛" asks for every later deadline, not the registration one: neither the
    named step nor the remembered one is the answer."""
    return ({}, {}) if "next_steps" in frame.cues else (frame.entities, frame.context)


def remembered(frame: Frame) -> dict[str, Any]:
    """The context without the offered options (small talk and refusals keep the topic)."""
    return {k: v for k, v in frame.context.items() if k != "offered"}
