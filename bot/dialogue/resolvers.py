"""The resolvers: each decides one kind of reply, or passes (returns None).

`RESOLVERS` is the order in which they are asked; `bot.dialogue.respond` is the
loop. Each is `(frame) -> Reply | None` and says in its docstring what it decides.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable

from bot.dialogue.lexicon import lexicon
from bot.dialogue.phrasing import SMALLTALK, hot_buttons, refusal, say, smalltalk
from bot.dialogue.reading import next_steps_entities, read, remembered
from bot.dialogue.retrieval import Hit, index_for
from bot.dialogue.topics import HANDLERS, RELEVANT, answer, facts_reply, first, others_hint
from bot.dialogue.types import Frame, Reply
from bot.dialogue.understand import LONG_MESSAGE, _gazetteer, per_kb, unstated_details
from bot.dialogue.understand import PROTECTED as PROTECTED_CHARS
from bot.faq import MIN_CONFIDENCE, is_expired, matcher_for
from bot.knowledge.answers import citation, fill, fmt_date, joint_action_facts, render, short
from bot.text import is_meaningful

Resolver = Callable[[Frame], "Reply | None"]
CLARIFY_MIN_CONFIDENCE = 0.12
# Retrieval is trusted when the best document covers this share of the question's
# term weight and scores this many times the runner-up (measured on dev).
RETRIEVAL_COVERAGE = 0.45
RETRIEVAL_MARGIN = 1.25
RETRIEVAL_SCORE = 12.0
RETRIEVAL_CLEAR_MARGIN = 1.4
FAQ_SCORE = 15.0
RETRIEVAL_UNSURE = 0.6
FAQ_MARGIN = 1.3
# An overview answer is replaced by the one item retrieval points at on less evidence.
DETAIL_COVERAGE = 0.35
DETAIL_CLEAR_MARGIN = 1.8
# A reading of the notice this sure is not overruled by a staff FAQ the model knows.
FAQ_OUTRANKED_BY = 0.8
OVERVIEWS = {"joint.overview", "content.overview", "requirement.overview", "main_activities",
             "event.kepu_day.venue", "event.kepu_day.time", "notice.audience", "contact.all",
             "event.kepu_day.organizer"}
# Named things that, alone, do not make a question with foreign words about the notice
# ("科技局局长是谁", "163邮箱怎么注册"): a unit, a platform, a contact word, an action's keyword.
WEAK_THINGS = {"unit", "platform", "contact"}
WEAK_ALIAS = 2
# A role question's best retrieval hit this far ahead of the next is what the notice asks of that role.
ROLE_MARGIN = 1.3
# "在通知里" / "这份通知": the question is about what the notice says, whatever year the asker is in.
NOTICE_CONTENT = re.compile(r"通知(里|中|上|里面|当中)|(这个|这份|那份|那个)通知|按通知|根据通知")  # an alias this short is a weak anchor whatever it names ("农技", "邮箱")


def gazetteer_matches(frame: Frame) -> list:
    """The named things of the (corrected) text with their spans."""
    from bot.dialogue.understand import _gazetteer

    return _gazetteer(frame.kb).find(frame.text)


def strongly_anchored(frame: Frame) -> bool:
    """A topic word of the notice or a notice-specific question word ("截止", "文号") in the question."""
    lex = lexicon()
    lowered = frame.text.lower()
    asked = [m.group(0) for n in frame.cues for m in lex.cue(n).pattern.finditer(lowered)]
    # A shared topic word anchors a question with foreign words only when it is what is asked for
    # ("电话老是占线，联系电话是多少"), not an errand elsewhere ("医师执业证书变更注册怎么弄").
    anchors = [a for a in lex.anchors if a not in lex.weak_anchors
               or any(a in q for q in asked) and not owned_by_foreign(frame, a)] if frame.foreign else lex.anchors
    if any(a in lowered for a in anchors) or any(_anchoring_cue(frame, n) for n in frame.cues):
        return True
    whole = frame.full_text or frame.text  # "我家孩子是小学生，能参加什么": who asks, and may they take part
    return bool(lex.role_question.search(whole)) and any(r.pattern.search(whole) for r in lex.roles)


# Words that may stand between a thing and the topic word it owns ("马拉松怎么报名", "医院的电话").
OWNER_GLUE = re.compile(r"(的|之|活动|怎么|如何|咋|在哪|去哪|要|能|可以|是|什么时候|啥时候|什么时间|啥时间|何时|哪天|几号|几月几号"
                        r"|在哪里|哪里|哪儿|从哪|找谁|向谁|现在|还能|能不能|可不可以|可以不|开始|一般)*$")


def owned_by_foreign(frame: Frame, anchor: str) -> bool:
    """The shared topic word belongs to a foreign thing right before it in its clause ("考研报名截止",
    "出租车投诉电话"), not to the notice ("电话老是占线，联系电话是多少")."""
    at = frame.text.find(anchor)
    if at <= 0:
        return False
    clause = re.split(r"[，,。；;！!？?\s]", frame.text[:at])[-1]
    head = OWNER_GLUE.sub("", clause)
    # "读书月活动的主题": the foreign word, or it and one character of its name ("读书" + "月").
    return any(head.endswith(word) or head[:-1].endswith(word) for word in frame.foreign)


def _anchoring_cue(frame: Frame, name: str) -> bool:
    """A question word of the notice's own ("文号"); one other services share ("截止") only when
    nothing foreign is asked about."""
    lex = lexicon()
    cue = lex.cue(name)
    if not cue.anchors:
        return False
    found = cue.pattern.search(frame.text.lower())
    return not (frame.foreign and found and found.group(0) in lex.weak_anchors)


def _keep(frame: Frame, reply: Reply) -> Reply:
    reply.context = remembered(frame)
    return reply


def _reading(frame: Frame) -> str | None:
    if not hasattr(frame, "_reading"):
        object.__setattr__(frame, "_reading", read(frame))
    return frame._reading


def _search(frame: Frame, among: str = "") -> list[Hit]:
    """Retrieval hits for the frame's text (computed once per frame and document kind)."""
    cache = frame.__dict__.setdefault("_hits", {})
    if among not in cache:
        lex = lexicon()
        stop = frozenset(w for w in lex.generic_words if len(w) >= 2)
        cache[among] = index_for(frame.kb, stop).search(frame.text, among)
    return cache[among]


def _trusted(hits: list[Hit], coverage: float = RETRIEVAL_COVERAGE) -> Hit | None:
    if not hits:
        return None
    best = hits[0]
    if best.coverage >= coverage and best.margin >= RETRIEVAL_MARGIN:
        return best
    # A distinctive match: far ahead of the runner-up on rare terms.
    return best if best.score >= RETRIEVAL_SCORE and best.margin >= RETRIEVAL_CLEAR_MARGIN else None


# -- input that is not a question -------------------------------------------

def empty_input(frame: Frame) -> Reply | None:
    """Nothing typed: ask for a question."""
    if frame.turn.text.strip() or frame.intent:
        return None
    return Reply(say(frame.kb, "empty"), kind="empty", context=dict(frame.context))


def acknowledgement(frame: Frame) -> Reply | None:
    """"好的明白了" / "👍": acknowledged as small talk, the topic kept."""
    if not frame.typed or not lexicon().acknowledgement.match(frame.turn.text.strip()):
        return None
    return Reply(say(frame.kb, "affirm_plain"), kind="smalltalk", context=remembered(frame))


def unreadable(frame: Frame) -> Reply | None:
    """Only symbols or emoji: say it was not understood."""
    if not frame.typed or is_meaningful(frame.turn.text):
        return None
    return _keep(frame, refusal(frame.kb, "reason_unreadable"))


def correction_only(frame: Frame) -> Reply | None:
    """"不对" with nothing after it: ask what was meant."""
    if not frame.corrected or re.sub(r"[\W_]+", "", frame.text):
        return None
    return _keep(frame, Reply(say(frame.kb, "correction_empty"), kind="clarify"))


def errand(frame: Frame) -> Reply | None:
    """"帮我报个名": the assistant informs, it does not do errands."""
    lex = lexicon()
    if not frame.typed or not lex.errand.search(frame.text) or lex.asking_for_info.search(frame.text):
        return None
    if len(frame.full_text or frame.text) > LONG_MESSAGE and frame.cues:
        return None  # "让孙子帮我用语音问的……主题是什么": a long message asks its questions
    return _keep(frame, refusal(frame.kb, "reason_errand"))


def small_talk(frame: Frame) -> Reply | None:
    """Greetings, thanks, goodbye, who/what the bot is, asking for a person."""
    if frame.intent not in SMALLTALK or frame.corrected or asker(frame) and _duty_question(frame):
        return None  # "我们是科技工作者，能干点啥" asks what the notice asks of them
    if frame.intent in ("thank", "greet") and frame.topical:
        return None  # "联系方式发我一下，谢谢" is a question
    if frame.intent in ("thank", "greet") and len(frame.text) > 10 and frame.cues:
        return None  # "麻烦告诉我文件的全称，谢谢" is a question
    if frame.intent not in ("thank", "greet") and len(frame.text) > 10 and frame.foreign and not frame.anchored:
        return None  # "量子计算机是怎么算东西的，给我讲讲" asks about something else: refused later
    return _keep(frame, smalltalk(frame.kb, frame.intent))


def confirmation(frame: Frame) -> Reply | None:
    """"是的" / "不是" to the options offered with "您是想问……吗？"."""
    if frame.intent not in ("affirm", "deny") or frame.corrected:
        return None
    offered = frame.context.get("offered") or []
    if frame.intent == "affirm" and offered:
        chosen = offered[0]
        return answer(frame.kb, chosen["intent"], dict(chosen.get("entities") or {}), frame.context, frame.today)
    if frame.intent == "deny" and offered:
        return Reply(say(frame.kb, "deny_offered"), kind="smalltalk")
    if frame.entities or frame.cues:
        return None  # "对，那截止日期呢" goes on as a question
    return Reply(say(frame.kb, "affirm_plain"), kind="smalltalk", context=dict(frame.context))


# -- staff FAQs ---------------------------------------------------------------

def faq_reply(frame: Frame, faq_id: str) -> Reply | None:
    """The reply for a staff FAQ: its answer and source, or "expired" with the phone."""
    faq = next((f for f in frame.kb.faqs if f.id == faq_id), None)
    if faq is None:
        return None
    if is_expired(faq, frame.today):
        assert faq.valid_until is not None
        text = say(frame.kb, "faq_expired", question=faq.questions[0], date=fmt_date(faq.valid_until))
    else:
        text = faq.answer + (say(frame.kb, "faq_source", source=faq.source) if faq.source else "")
    return Reply(text, kind="answer", context={}, faq=faq.id)


def _weak_reading(frame: Frame, below: float = 0.0) -> bool:
    return (frame.intent in ("nlu_fallback", "out_of_scope", "ask_unstated", "faq")
            or frame.confidence < (below or FAQ_OUTRANKED_BY) or bool(frame.details) or not frame.anchored)


def _faq_match(frame: Frame) -> str | None:
    """The FAQ a message matches: by its example questions (bigrams), by the gap of the notice both
    are about ("停车", "午饭"), or by retrieval clearly ahead of every fact."""
    found = matcher_for(frame.kb.faqs).match(frame.text)
    if found:
        return found.faq_id
    gap = _faq_for_gap(frame)
    if gap:
        return gap
    # Retrieval alone is weaker evidence: only against a weak reading of the notice.
    return _faq_by_retrieval(frame) if _weak_reading(frame, RETRIEVAL_UNSURE) else None


def _faq_for_gap(frame: Frame) -> str | None:
    """An FAQ exists to fill a gap of the notice: one whose questions ask for the same detail."""
    if not frame.details:
        return None
    lex, named = lexicon(), set(frame.entities)
    for faq in frame.kb.faqs:
        questions = " ".join(faq.questions)
        if not set(frame.details) & set(unstated_details(questions, lex, frame.kb)):
            continue
        things = {(m.type, m.value) for m in _gazetteer(frame.kb).find(questions)}
        asked = {(t, v) for t, values in frame.entities.items() for v in values}
        if not named or not things or things & asked:
            return faq.id
    return None


def _faq_by_retrieval(frame: Frame) -> str | None:
    hits = _search(frame)
    best = hits[0] if hits else None
    if not best or best.kind != "faq" or best.score < FAQ_SCORE:
        return None
    facts = _search(frame, "fact:")
    # Clearly ahead of the nearest fact: sharing "活动现场" does not answer a parking question.
    if facts and best.score < FAQ_MARGIN * facts[0].score:
        return None
    index = index_for(frame.kb, frozenset(w for w in lexicon().generic_words if len(w) >= 2))
    rarest = index.rarest(frame.text)
    if rarest and not index.has(best.doc, rarest):
        return None  # the question's most specific word ("发给") points elsewhere
    faq = next((f for f in frame.kb.faqs if f.id == best.id), None)
    if faq and frame.details and not set(frame.details) & set(
            unstated_details(" ".join(faq.questions), lexicon(), frame.kb)):
        return None  # the question asks for a gap (停车) this FAQ does not fill
    return best.id


def staff_faq(frame: Frame) -> Reply | None:
    """A staff FAQ outranks what it exists to fill: "the notice does not say", out of scope,
    clarification and a weak reading of the notice. The ResponseSelector's pick is taken when sure;
    otherwise the FAQ's questions and answer are matched like the facts."""
    if not frame.typed or not frame.kb.faqs:
        return None
    selected = frame.turn.faq
    lex = lexicon()
    if frame.intent == "faq" and selected and selected[1] >= MIN_CONFIDENCE:
        faq = next((f for f in frame.kb.faqs if f.id == selected[0]), None)
        off_topic = faq is not None and bool(lex.status.search(frame.text)) and not any(
            lex.status.search(q) for q in faq.questions)
        if faq is not None and not off_topic:
            return faq_reply(frame, faq.id)
    faq_id = _faq_match(frame)
    if not faq_id:
        return None
    known = frame.turn.known_faqs
    unknown_to_model = known is not None and faq_id not in known
    return faq_reply(frame, faq_id) if (_weak_reading(frame) or unknown_to_model) else None


# -- time and grounding -------------------------------------------------------

def other_year(frame: Frame) -> Reply | None:
    """A question about another year's event (明年 / 2026年): the notice covers 2021 only."""
    lex = lexicon()
    years = frame.years - {lex.notice_year}
    if not years or lex.notice_year in frame.years or frame.intent in SMALLTALK:
        return None
    if NOTICE_CONTENT.search(frame.full_text or frame.text):
        return None  # "今年想在村里搞科普，这个在通知里属于哪个行动": a question about the notice's content
    if frame.foreign and "科普" not in frame.text:
        return None  # "今年公务员考试什么时候报名" is about something else
    if not (strongly_anchored(frame) or frame.anchored or frame.context.get("entities")):
        return None
    year = min(years, key=lambda y: abs(y - frame.today.year))
    reference = _notice_year_reading(frame)
    if reference is None:
        text = say(frame.kb, "other_year", year=year, notice_year=lex.notice_year)
        return _keep(frame, Reply(text, kind="unstated"))
    text = say(frame.kb, "other_year_reference", year=year, notice_year=lex.notice_year, answer=reference.text)
    return Reply(text, context=reference.context, kind="unstated", facts=reference.facts)


def _notice_year_reading(frame: Frame) -> Reply | None:
    """The answer the notice gives for its own year, to be shown labelled as that year's."""
    later = RESOLVERS[RESOLVERS.index(other_year) + 1:]
    plain = dataclasses.replace(frame, years=set())
    for resolver in later:
        reply = resolver(plain)
        if reply is not None:
            return reply if reply.kind == "answer" and reply.facts else None
    return None


def out_of_notice(frame: Frame) -> Reply | None:
    """Grounding: a question whose content words the notice never uses, and that names nothing of
    the notice, is out of scope, whatever its question word ("北京在哪里", "春节是什么时候")."""
    if not frame.typed or notice_values(frame) or not frame.foreign:
        return None
    if asker(frame) and _duty_question(frame):
        return None  # "我们是农民合作社，能参加啥": who asks is foreign, what they ask is the notice
    # A place in a short question is its scope; in a long message often only where the asker lives.
    if frame.foreign_places and len(frame.text) <= LONG_MESSAGE or _owned_errand(frame) or _foreign_subject(frame):
        return _keep(frame, refusal(frame.kb))  # "考研报名截止是哪天", "出租车投诉电话是多少"
    # Named weakly, a question is foreign only for a foreign thing it names ("自来水费"), not for a
    # foreign time or verb phrase ("周二开会", "座机没人接").
    # A long message that asks a question word of a thing it names is about that thing, whatever
    # else it tells ("……通知我弄丢了……几号开在哪个酒店开……我怕记错日子").
    rambling = len(frame.full_text or frame.text) > LONG_MESSAGE and bool(frame.cues)
    weak = bool(frame.entities) and _weakly_named(frame) and bool(frame.foreign_topics) and not rambling
    if frame.anchored and not weak and not (frame.intent == "out_of_scope" and frame.confidence >= 0.5
                                            and not frame.strong_thing):
        return None
    if frame.context.get("entities") and len(re.sub(r"[\W_]+", "", frame.text)) <= 6:
        return None  # a short follow-up leans on the context
    return _keep(frame, refusal(frame.kb))


def unanchored(frame: Frame) -> Reply | None:
    """A question that names nothing of the notice, has no topic word and no context, yet speaks of
    things of its own ("全国两会是什么时候开", "中卫市政府的地址是哪里"): out of scope, whatever the
    classifier guessed; a bare question word ("几号开始") is left to the reading."""
    if not frame.typed or frame.anchored or frame.context.get("entities") or frame.english or notice_values(frame):
        return None
    if frame.details or not _own_nouns(frame) or asker(frame) and _duty_question(frame):
        return None  # "我们是一个工厂，……行吗": what the asker may do is the notice's business
    if shared_span(frame, SPAN_MIN)[1]:
        return None  # "重视程度、数量规模、效果亮点这些是干嘛的" quotes the notice
    return _keep(frame, refusal(frame.kb))


def _own_nouns(frame: Frame) -> list[str]:
    """The nouns of the question that are no question word, no generic word and no word of the
    notice's facts ("两会", "家长会")."""
    import jieba.posseg

    lex = lexicon()
    text = _without_cues(frame.text.lower())
    facts = _all_fact_text(frame.kb)  # "讲话", "绿水青山": the notice's own words
    return [p.word for p in jieba.posseg.cut(text) if p.flag in OWN_NOUN_POS and len(p.word) >= 2
            and _CJK_WORD.fullmatch(p.word) and p.word not in lex.generic_words and p.word not in facts]


def _without_cues(text: str) -> str:
    """`text` with every question word and cue phrase of cues.yml blanked out."""
    for cue in lexicon().cues:
        text = cue.pattern.sub(" ", text)
    return text


def _all_fact_text(kb) -> str:
    """Every fact's text without punctuation, as one string (built once per knowledge set)."""
    return per_kb("all-fact-text", kb, lambda: "".join(_fact_texts(kb).values()))


def _owned_errand(frame: Frame) -> bool:
    """A shared topic word (报名, 电话, 截止 …) that a foreign thing owns, and nothing else of the
    notice named: every named thing is a weak one, lies on an owned topic word, or only qualifies a
    foreign thing ("中卫市科协青少年科技创新大赛什么时候报名")."""
    lex = lexicon()
    owned = [a for a in lex.weak_anchors if a in frame.text and owned_by_foreign(frame, a)]
    if not owned:
        return False
    return all(m.type in WEAK_THINGS or m.type == "deadline" or any(a in m.text for a in owned)
               or _qualifies_foreign(frame, m) for m in gazetteer_matches(frame))


def _foreign_subject(frame: Frame) -> bool:
    """What is asked about is a foreign thing the notice's names only qualify ("科技局的科技型中小企业
    评价入库怎么弄"): every named thing qualifies it or is a weak one."""
    matches = gazetteer_matches(frame)
    qualifying = [m for m in matches if _qualifies_foreign(frame, m)]
    # A weak name before a foreign noun is mostly that noun's owner asked about ("邮箱后缀", "客户端下载
    # 链接最后那串字母"): only a specific name of the notice qualifying a foreign thing tells.
    return any(m.type not in WEAK_THINGS for m in qualifying) and all(
        m in qualifying or m.type in WEAK_THINGS for m in matches)


PHRASE_MAX = 8
COMPOUND_POS = {"n", "nz", "nt", "nr", "ns", "j", "vn", "v", "l", "an"}
HEAD_POS = {"n", "nz", "nt", "j", "vn"}
OWN_NOUN_POS = {"n", "nz", "nt", "ns", "nr", "nrt", "j"}
# Where the noun phrase after a named thing ends: a question word or a verb of the question.
PHRASE_END = re.compile(r"什么|啥|哪|几|怎么|如何|多少|吗|呢|是|有|要|能|可以|在|报名|申报|截止|开始|举办|[，,。？?！!\s]")


def _qualifies_foreign(frame: Frame, match) -> bool:  # noqa: ANN001
    """The named thing only qualifies a foreign thing after it in the same noun phrase ("青少年科技创新
    大赛": the contest is foreign, "青少年" does not name the notice's action)."""
    import jieba.posseg

    tail = PHRASE_END.split(frame.text[match.end:], maxsplit=1)[0]
    if not tail or len(tail) > PHRASE_MAX:
        return False
    # A compound noun: content words only (no "的", "这次", "还"), headed by a foreign noun.
    # "科学素质纲要的年份跨度" asks an attribute; "科普大篷车这次会开进校园" says what the thing does.
    words = list(jieba.posseg.cut(tail))
    return all(w.flag in COMPOUND_POS for w in words) and words[-1].flag in HEAD_POS and \
        words[-1].word in frame.foreign_topics


# -- things the question names directly ----------------------------------------

def numbered_event(frame: Frame) -> Reply | None:
    """"科协开的是第几次代表大会" / "青少年科学节是第几届": the fact naming the event with its number."""
    lex = lexicon()
    if not frame.typed or not lex.ordinal_question.search(frame.text) or lex.ordinal_question_not.search(frame.text):
        return None
    event = first(frame.entities, "event")
    if event is None and len(frame.text) <= 12:
        event = first(dict(frame.context.get("entities") or {}), "event")
    fact_id = lex.ordinal_event_fact.get(event or "")
    if not fact_id:
        return None
    return facts_reply(frame.kb, [fact_id], frame.today,
                       {"intent": "ask_event_content", "entities": {"event": [event]}})


def still_open(frame: Frame) -> Reply | None:
    """"还能报名吗 / 开完了没 / 总结还来得及吗": where today stands for the thing asked about."""
    lex = lexicon()
    reading = _reading(frame)
    worded = frame.typed and bool(lex.status.search(frame.text))
    about_status = not frame.topical or {"deadline", "event"} & set(frame.entities)
    asks = worded or (reading == "ask_registration_status" and about_status)
    if not asks:
        return None
    ents = frame.entities or dict(frame.context.get("entities") or {})
    if reading not in HANDLERS and reading != "ask_registration_status" and not (
            ents or re.search(r"报|填|交|登记|提交", frame.text)):
        return None
    return status_reply(frame, ents)


def status_reply(frame: Frame, ents: dict[str, list[str]]) -> Reply:
    """Open, not yet open, or closed, for an event or a deadline, from today's date."""
    kb, today = frame.kb, frame.today
    event, deadline = first(ents, "event"), first(ents, "deadline")
    if event and not deadline:
        fact_id = "event.kepu_day.time" if event in ("kepu_day", "cloud") else f"event.{event}.time"
        return facts_reply(kb, [fact_id], today, {"intent": "ask_time", "entities": {"event": [event]}})
    fact = kb.facts[f"deadline.{deadline or 'register'}"]
    end = fact.date
    assert end is not None
    name = kb.entity_name("deadline", deadline or "register")
    if today > end:
        text = say(kb, "status_closed", name=name, date=fmt_date(end))
        if not deadline or deadline == "register":
            text += others_hint(kb, ["deadline.complete_info", "deadline.summary"], today).replace(
                say(kb, "other_deadlines"), say(kb, "status_later"))
        text += say(kb, "status_phone")
    elif fact.start_date and today < fact.start_date:
        text = say(kb, "status_not_started", name=name, start=fmt_date(fact.start_date), date=fmt_date(end))
    else:
        text = say(kb, "status_open", name=name, date=fmt_date(end), days=(end - today).days) + fill(
            fact.answer, fact, kb)
    return Reply(text + citation(kb, [fact]), facts=[fact.id],
                 context={"intent": "ask_deadline", "entities": {"deadline": [deadline or "register"]}})


def notice_part(frame: Frame) -> Reply | None:
    """"第二部分讲了什么": the facts that sum up that part of the notice."""
    lex = lexicon()
    match = lex.part.search(frame.text) if frame.typed else None
    if not match:
        return None
    part = next(g for g in match.groups() if g)
    return facts_reply(frame.kb, list(lex.parts[part]), frame.today,
                       {"intent": _reading(frame) or "ask_main_content", "entities": {}})


CHINESE_NUMBERS = {c: i + 1 for i, c in enumerate("一二三四五六七八九十")}


def ordinal_item(frame: Frame) -> Reply | None:
    """"第三个行动" / "第三项" right after a list: the Nth item of the list the notice numbers."""
    lex = lexicon()
    match = lex.ordinal.search(frame.text) if frame.typed else None
    if not match or lex.part.search(frame.text):
        return None
    raw = match.group(1) or match.group(3) or ""
    number = int(raw) if raw.isdigit() else CHINESE_NUMBERS.get(raw, -1 if raw == "最后" else 0)
    # The list named closest before the ordinal ("主要内容的最后一条，要求……" counts in the contents).
    before = frame.text[:match.start()]
    named = sorted(((before.rfind(word), k) for word, k in lex.list_words.items() if word in before), reverse=True)
    after = [k for word, k in lex.list_words.items() if word in frame.text]
    kind = named[0][1] if named else after[0] if after else frame.context.get("list")
    return _nth(frame, kind, number) if kind else None


def _nth(frame: Frame, kind: str, number: int) -> Reply | None:
    kb = frame.kb
    if kind == "agenda":
        fact = kb.facts["event.congress.agenda"]
        items = fact.data.get("items") or []
        number = len(items) if number == -1 else number
        if not 1 <= number <= len(items):
            return None
        return Reply(say(kb, "agenda_item", number=number, item=items[number - 1]) + citation(kb, [fact]),
                     facts=[fact.id], context={"intent": "ask_agenda", "entities": {"event": ["congress"]},
                                               "list": "agenda"})
    if kind == "joint":
        type_, intent = "joint_action", "ask_joint_actions"
        values = list(frame.context.get("items") or []) or [f.id.split(".", 1)[1] for f in joint_action_facts(kb)]
    else:
        type_, intent = {"content": ("content_item", "ask_main_content"),
                         "requirement": ("requirement", "ask_requirements")}[kind]
        values = list(kb.entities.get(type_, {}))
    number = len(values) if number == -1 else number
    if not 1 <= number <= len(values):
        return None
    reply = answer(kb, intent, {type_: [values[number - 1]]}, frame.context, frame.today)
    reply.context["list"] = kind
    return reply


def _led_actions(kb, units: list[str]) -> list[str]:
    """The joint actions led by the units named."""
    return [f.id.split(".", 1)[1] for f in joint_action_facts(kb) if f.data.get("lead") in set(units)]


def asker(frame: Frame, described: bool = False) -> str:
    """Who the asker says they are ("我们是科协代表，要干啥" -> "科协代表"), or ""; `described`: with what
    follows the name ("我是搞科研的科技工作者" -> "搞科研的科技工作者")."""
    match = lexicon().asker.search(frame.full_text or frame.text)
    if not match:
        return ""
    return match.group(0)[match.start("who") - match.start():] if described else match.group("who")


def _duty_question(frame: Frame) -> bool:
    """A question about what the asker may or should do: a role question, or with the asker named, a
    wider one ("我们是科协代表，要干啥")."""
    lex = lexicon()
    whole = frame.full_text or frame.text
    return bool(lex.role_question.search(frame.text)) or bool(asker(frame) and lex.duty_question.search(whole))


def role_duties(frame: Frame) -> Reply | None:
    """"我们是科普基地，这次要做些什么" / "一般群众可以去看吗": what the notice asks of who asks."""
    if not frame.typed or not _duty_question(frame):
        return None
    who = asker(frame)
    if set(frame.cues) - (ASKER_CUES if who else {"content"}) or frame.details or "contact" in frame.entities or (
            "deadline" in frame.entities and not who):
        return None
    facts = _asker_facts(frame, who) if who else []
    if not facts and "joint_action" in frame.entities:
        return answer(frame.kb, "ask_joint_actions", frame.entities, frame.context, frame.today)
    led = [] if facts else _led_actions(frame.kb, frame.entities.get("unit", []))
    if led:  # "我们是水务局的，通知里分给我们啥任务": the actions that unit leads, in full
        return answer(frame.kb, "ask_joint_actions", {"joint_action": led}, frame.context, frame.today)
    # Else the role the message names; for an asker the notice names nothing of, what any body may
    # do: the joint actions and how to register them.
    facts = facts or _role_facts(frame.full_text or frame.text) or (list(ANY_ASKER) if who else [])
    if not facts:
        return None
    hits = _search(frame, "fact:")
    # What the notice says of exactly who asks ("科普基地" in the 科普阵地 action, "老年人" in the health
    # action) comes first: an item of the notice's lists, not an event the question's verb recalls ("参加").
    if hits and hits[0].margin >= ROLE_MARGIN and hits[0].id not in facts and hits[0].id.startswith(ROLE_ITEMS):
        facts.insert(0, hits[0].id)
    return facts_reply(frame.kb, facts, frame.today, {"intent": "ask_registration", "entities": {}})


def _role_facts(text: str) -> list[str]:
    """The facts of the first role (knowledge/cues.yml roles) the text names."""
    role = next((r for r in lexicon().roles if r.pattern.search(text)), None)
    return list(role.facts) if role else []


EVENT_DUTIES = ("venue", "content", "agenda")
ANY_ASKER = ("joint.overview", "registration.how")
ROLE_ITEMS = ("joint_action.", "content.", "requirement.")
# With the asker named, these question words ask what the notice gives them ("我们是学校，能参加哪些活动",
# "我们是生态环境分局，要牵头什么"), not the notice's list or lead units in general.
ASKER_CUES = {"content", "main_activities", "organizer"}


def _asker_facts(frame: Frame, who: str) -> list[str]:
    """What the notice gives the asker to do, from what their name names: the actions a unit leads
    and the events it is responsible for, the event a delegate or a host school takes part in, the
    joint action of a kind of body ("学会", "农民合作社"), else the facts of their role."""
    from bot.dialogue.understand import find_entities

    kb, named = frame.kb, find_entities(frame.kb, who)
    units = named.get("unit", [])
    facts = [f"joint_action.{key}" for key in _led_actions(kb, units)]
    facts += [f.id for f in kb.facts.values() if f.id.endswith(".organizer") and f.id != "event.kepu_day.organizer"
              and set(units) & set(find_entities(kb, f.short or "").get("unit", []))]
    for event in named.get("event", []):
        facts += [f"event.{event}.{part}" for part in EVENT_DUTIES if f"event.{event}.{part}" in kb.facts]
    if not facts:  # a kind of body: its joint action, then what its role is asked
        facts = [f"joint_action.{key}" for key in named.get("joint_action", [])] + _role_facts(
            asker(frame, described=True))
    return list(dict.fromkeys(f for f in facts if f in kb.facts))


# Literal values of the notice: e-mail, URLs, phone numbers, the 文号 and the index number (ASCII
# only, so the Chinese around a value is not part of it).
_VALUE = re.compile(r"[\w.\-]+@[\w.\-]+|https?://[\w./\-]+|www\.[\w.]+|[a-z0-9\-]+\.(?:cn|com|so|net|org)(?:/[\w\-]+)?"
                    r"|\d[\d\-]{5,}\d|\d{9}/\d{4}-\d{5}", re.ASCII)
_DOC_NUMBER = re.compile(r"[\u4e00-\u9fff]{2,8}〔\d{4}〕\d+号")


def _names(frame: Frame) -> list[str]:
    """The people the notice names (the parts of its contact facts' short forms that are names)."""
    person = frame.kb.facts.get("contact.person")
    return [n for n in re.split(r"[、，,和]", person.short)] if person else []


def notice_values(frame: Frame) -> list[str]:
    """The notice's own literal values in the message: a phone, e-mail, URL, 文号 or a date the
    notice gives (not a name: "歌手王晶晶唱过什么歌" is about someone else). A question quoting one is about the notice, whatever else it says."""
    if not frame.typed:
        return []
    lowered = frame.text.lower()
    values = [v.rstrip(".") for v in _VALUE.findall(lowered)] + _DOC_NUMBER.findall(frame.text)
    found = [v for v in values if any(v in fill(f.answer, f, frame.kb).lower() for f in frame.kb.facts.values())]
    lex = lexicon()
    found += [m.group(0) for m in lex.date_mention.finditer(frame.text) if _dated_facts(frame, lex, m)]
    return found


def value_lookup(frame: Frame) -> Reply | None:
    """Reverse look-up: a phone number, e-mail, address or contact's name given, what it belongs to."""
    values = [v.rstrip(".") for v in _VALUE.findall(frame.text.lower())] + _DOC_NUMBER.findall(frame.text) \
        if frame.typed else []
    if frame.typed and "contact" not in frame.cues and not frame.details and not frame.foreign:
        # "孙浩是哪个单位的"; not "孙浩的电话", "王晶晶是什么职务" or "歌手王晶晶唱过什么歌"
        values += [n for n in _names(frame) if n and n in frame.text]
    if not values:
        return None
    kb = frame.kb
    owners = [f.id for f in kb.facts.values() if any(v in fill(f.short, f, kb).lower() for v in values)]
    if not owners:
        owners = [f.id for f in kb.facts.values() if any(v in fill(f.answer, f, kb).lower() for v in values)][:2]
    if not owners:
        return None
    owners = owners[:2]
    if owners[0].startswith("contact.") and not {"contact.unit", "contact.person"} & set(owners):
        owners.append("contact.unit")  # whose number or address it is
    entities = {"contact": [i.split(".", 1)[1] for i in owners if i.startswith("contact.")]}
    return facts_reply(kb, owners, frame.today, {"intent": "ask_contact", "entities": entities})


def dated(frame: Frame) -> Reply | None:
    """A date mentioned alone ("10月10号呢" / "10月22日要干嘛"): the facts dated that day."""
    lex = lexicon()
    matches = list(lex.date_mention.finditer(frame.text)) if frame.typed else []
    match = matches[0] if matches else None
    if not match or frame.entities or _reading(frame) not in (None, "lost", "follow_up", "nlu_fallback", "out_of_scope",
                                                            "ask_deadline", "ask_time", "ask_event_content",
                                                            "ask_issue_date", "ask_main_activities"):
        return None
    chosen = [f for m in matches for f in _dated_facts(frame, lex, m) if f]
    if not chosen:
        return None
    return facts_reply(frame.kb, list(dict.fromkeys(chosen)), frame.today,
                       {"intent": _reading(frame) or "ask_time", "entities": {}})


def _dated_facts(frame: Frame, lex, match: re.Match[str]) -> list[str]:
    """The facts dated on the day `match` names, of the likeliest kind ("10月10日" -> the summary)."""
    try:
        day = dt.date(lex.notice_year, int(match.group(1)), int(match.group(2)))
    except ValueError:
        return []
    facts = [f for f in frame.kb.facts.values()
             if f.date and (f.date == day or (f.end_date and f.date <= day <= f.end_date))]
    for prefix in lex.date_preference:
        chosen = [f.id for f in facts if f.id.startswith(prefix)]
        if chosen:
            return chosen
    return []


# -- the notice does not say ----------------------------------------------------

def unstated_reply(frame: Frame) -> Reply:
    """Say the notice does not give the detail, add what it does say, give the phone. A detail of a
    thing named only weakly ("农业补贴什么时候发") is about that thing's own business: refused."""
    kb = frame.kb
    if frame.entities and _weakly_named(frame) and not frame.context.get("entities"):
        return _keep(frame, refusal(kb))
    what = "、".join(frame.details) if frame.details else say(kb, "unstated_default_what")
    text = say(kb, "unstated", what=what)
    event = first(frame.entities, "event") or first(dict(frame.context.get("entities") or {}), "event")
    facts = []
    related = [lexicon().unstated_related[d] for d in frame.details if d in lexicon().unstated_related]
    if event in ("main_event", "congress"):
        facts = [kb.facts[f"event.{event}.time"], kb.facts[f"event.{event}.venue"]]
        text += say(kb, "unstated_about", name=kb.entity_name("event", event),
                    facts=f"{short(facts[0], kb)}，地点在{short(facts[1], kb)}")
        facts += [kb.facts[f"event.{event}.content" if event == "main_event" else "event.congress.agenda"]]
        text += say(kb, "unstated_more", facts=short(facts[-1], kb))
    elif related and related[0] in kb.facts:
        facts = [kb.facts[related[0]]]
        text += say(kb, "unstated_related", facts=render(facts[0], kb, frame.today))
    context = {"intent": "ask_time", "entities": {"event": [event]}} if event else {}
    return Reply(text + citation(kb, facts), kind="unstated", facts=[f.id for f in facts], context=context)


def unstated_detail(frame: Frame) -> Reply | None:
    """A detail the notice lacks ("几点开始", "停车", "名单"): say so, never the nearest fact."""
    reading = _reading(frame)
    if not (reading == "ask_unstated" or (reading in (None, "lost") and frame.details)):
        return None
    return unstated_reply(frame)


def _weakly_named(frame: Frame) -> bool:
    """Only units, platforms, contact words, places or two-character aliases name the notice here."""
    places = lexicon().places
    return not strongly_anchored(frame) and all(
        m.type in WEAK_THINGS or len(m.text) <= WEAK_ALIAS or m.text in places for m in gazetteer_matches(frame))


def refused(frame: Frame) -> Reply | None:
    """Read as out of scope: refuse, unless retrieval finds the notice item it is about."""
    if _reading(frame) != "out_of_scope":
        return None
    if frame.anchored and not frame.foreign:
        hit = _trusted(_search(frame, "fact:"), coverage=0.6)
        if hit:
            return facts_reply(frame.kb, [hit.id], frame.today, {"intent": "ask_event_content", "entities": {}})
    return _keep(frame, refusal(frame.kb))


# -- the question type ----------------------------------------------------------

def _both_time_and_place(frame: Frame, intent: str) -> Reply | None:
    event = first(frame.entities, "event")
    lex = lexicon()
    if intent not in ("ask_time", "ask_venue") or event not in ("main_event", "congress", "kepu_day"):
        return None
    if not {"venue", "time"} <= set(frame.cues):
        return None
    if event == "main_event":
        return answer(frame.kb, "ask_event_content", frame.entities, frame.context, frame.today)
    del lex
    return facts_reply(frame.kb, [f"event.{event}.time", f"event.{event}.venue"], frame.today,
                       {"intent": "ask_time", "entities": {"event": [event]}})


# The thing a fact is about, by fact id prefix: retrieval names it when the question does not.
FACT_THING = [("joint_action.", "joint_action"), ("requirement.", "requirement"), ("content.", "content_item"),
              ("contact.", "contact"), ("deadline.", "deadline"), ("event.main_event.", "event:main_event"),
              ("event.congress.", "event:congress"), ("event.cloud.", "event:cloud")]


def thing_of(fact_id: str) -> tuple[str, str] | None:
    """("joint_action", "water") for joint_action.water; ("event", "congress") for event.congress.venue."""
    for prefix, thing in FACT_THING:
        if fact_id.startswith(prefix):
            type_, _, value = thing.partition(":")
            return type_, value or fact_id[len(prefix):]
    return None


_QUOTED = re.compile(r"[“\"「『‘']([^”\"」』’']{2,40})[”\"」』’']")
_BARE = re.compile(r"[\W_]+")
_CJK_WORD = re.compile(r"[\u4e00-\u9fff]+")
QUOTED_MIN = 2
SPAN_MIN = 8
SPAN_SHORT = 6
SPAN_OWN = 4
SPAN_MAX_FACTS = 2


def _fact_texts(kb) -> dict[str, str]:
    """Every fact's filled answer without punctuation, built once per knowledge set."""
    return per_kb("bare-fact-texts", kb,
                  lambda: {f.id: _BARE.sub("", fill(f.answer, f, kb)) for f in kb.facts.values()})


def _containing(frame: Frame, span: str) -> list[str]:
    """The facts whose text contains `span` (punctuation ignored), items before overviews."""
    bare = _BARE.sub("", span)
    ids = [i for i, text in _fact_texts(frame.kb).items() if bare and bare in text]
    items = [i for i in ids if i not in OVERVIEWS]
    return items or ids


def spanned_facts(frame: Frame, minimum: int = SPAN_MIN) -> list[str]:
    """The few facts sharing the longest stretch of text (at least `minimum` characters) with the
    question: "重视程度、数量规模、效果亮点这几个指标是干什么的" quotes the commendation."""
    return shared_span(frame, minimum)[1]


def shared_span(frame: Frame, minimum: int = SPAN_SHORT) -> tuple[str, list[str]]:
    """The longest stretch of the question (punctuation ignored) that one or two facts contain, and
    those facts. A stretch that is mostly a named thing is no detail ("应急科普联合行动具体是哪天"):
    at least SPAN_OWN characters of it lie outside every named thing. Computed once per frame and
    minimum (several resolvers ask)."""
    cache = frame.__dict__.setdefault("_spans", {})
    if minimum not in cache:
        cache[minimum] = _shared_span(frame, minimum)
    return cache[minimum]


def _shared_span(frame: Frame, minimum: int) -> tuple[str, list[str]]:
    bare = _BARE.sub("", frame.text)
    named, spans = [False] * len(bare), []
    words = [(_BARE.sub("", m.text), True) for m in gazetteer_matches(frame)]
    for word, is_thing in words + [(w, False) for w in lexicon().common_stretch]:
        at = bare.find(word)
        while word and at >= 0:
            named[at:at + len(word)] = [True] * len(word)
            if is_thing:
                spans.append((at, at + len(word)))
            at = bare.find(word, at + 1)
    for size in range(min(len(bare), 40), minimum - 1, -1):
        for start in range(len(bare) - size + 1):
            end = start + size
            if size - sum(named[start:end]) < SPAN_OWN or any(
                    s < start < e or s < end < e for s, e in spans):
                continue  # mostly a named thing, or cutting through one ("全国科普日|在沙坡头区")
            ids = _containing(frame, bare[start:start + size])
            if 0 < len(ids) <= SPAN_MAX_FACTS:
                return bare[start:start + size], ids
    return "", []


def _span_instead(frame: Frame, reply: Reply) -> Reply | None:
    """A question that quotes a stretch of one item ("节约意识、环保意识，还有一个是什么意识"), answered
    with something that does not show it: that item instead."""
    if reply.kind == "unstated" or frame.details:
        return None
    span, ids = shared_span(frame)
    if not ids or span in _BARE.sub("", reply.text):
        return None
    if not set(ids) & set(reply.facts):  # the reply shows a part of the item quoted: the item in full
        things = {thing_of(f) for f in reply.facts} - {None}
        if set(reply.facts) <= OVERVIEWS or any(thing_of(i) in things for i in ids):
            return None  # another attribute of the same thing ("……开展的时间") / an overview (_detail_instead)
    return facts_reply(frame.kb, ids, frame.today, reply.context)


def quoted(frame: Frame) -> Reply | None:
    """A phrase quoted from the notice ("“28名”指的是什么人"): the fact that contains it."""
    spans = _QUOTED.findall(frame.full_text or frame.text) if frame.typed else []
    for span in spans:
        ids = _containing(frame, span) if len(_BARE.sub("", span)) >= QUOTED_MIN else []
        if 0 < len(ids) <= SPAN_MAX_FACTS:
            return facts_reply(frame.kb, ids, frame.today, {"intent": "ask_event_content", "entities": {}})
    return None


def _item_hit(hits: list[Hit]) -> Hit | None:
    """The best item (not an overview) when it is clearly ahead of the next item: overviews list
    every item, so they are no competitor for the one a detail belongs to."""
    items = [h for h in hits if h.id not in OVERVIEWS]
    if not items or hits[0].id in OVERVIEWS:
        return None  # the question is about the list itself ("主要内容有哪些")
    best = items[0]
    margin = best.score / items[1].score if len(items) > 1 and items[1].score else 99.0
    if (best.coverage >= DETAIL_COVERAGE and margin >= RETRIEVAL_MARGIN) or (
            best.score >= RETRIEVAL_SCORE and margin >= DETAIL_CLEAR_MARGIN):
        return best
    return None


def _detail_instead(frame: Frame, intent: str, reply: Reply) -> Reply | None:
    """An overview answer to a question about one item: the same question about the item that
    contains the detail ("倡导绿水青山理念的是哪个行动？谁牵头？" -> that action's lead unit)."""
    if not set(reply.facts) <= OVERVIEWS or reply.kind == "unstated":
        return None  # "应急科普联合行动哪天办": the overview says the item's date is not given
    spanned = [i for i in spanned_facts(frame) if i not in reply.facts and i not in OVERVIEWS]
    if spanned:
        return facts_reply(frame.kb, spanned, frame.today, reply.context)
    hit = _item_hit(_search(frame, "fact:"))
    thing = thing_of(hit.id) if hit else None
    if not hit or not thing or hit.id in reply.facts or hit.id in OVERVIEWS:
        return None  # only an item of the notice (an action, a content, a deadline ...) is more specific
    named = {(t, v) for t, values in frame.entities.items() if t not in WEAK_THINGS for v in values}
    if named and thing not in named:
        return None  # "科普日期间是几号到几号" names the 科普日: another item's words are no detail of it
    index = index_for(frame.kb, frozenset(w for w in lexicon().generic_words if len(w) >= 2))
    if not index.distinct(frame.text, hit.doc, [f"fact:{f}" for f in reply.facts]):
        return None  # nothing the question says is particular to that item ("地点")
    if thing[1] in frame.kb.entities.get(thing[0], {}):
        entities = {**frame.entities, thing[0]: [thing[1]]}
        again = answer(frame.kb, intent, entities, frame.context, frame.today)
        if hit.id in again.facts or not set(again.facts) <= OVERVIEWS:
            return again
    return facts_reply(frame.kb, [hit.id], frame.today, reply.context)


def question_type(frame: Frame) -> Reply | None:
    """Answer the question type read from the message, from the knowledge base."""
    intent = _reading(frame)
    if intent not in HANDLERS:
        return None
    both = _both_time_and_place(frame, intent) if frame.typed else None
    if both:
        return both
    entities, context = next_steps_entities(frame)
    reply = answer(frame.kb, intent, entities, context, frame.today)
    if frame.typed:
        reply = _span_instead(frame, reply) or _detail_instead(frame, intent, reply) or _word_instead(
            frame, reply) or reply
    details = [d for d in frame.details if not (d == "具体几点" and "没有写具体几点" in reply.text)]
    if details and not _about_named_thing(frame, reply):
        return unstated_reply(frame)  # the reading answered something else than the thing named
    if frame.details:
        reply.kind = "unstated"
    if details:
        reply.text = say(frame.kb, "unstated_lead_in", what="、".join(details)) + reply.text
    return reply


def _about_named_thing(frame: Frame, reply: Reply) -> bool:
    """True when the reply's facts are about a thing the question names (or it names none)."""
    named = {(t, v) for t, values in frame.entities.items() for v in values}
    if not named:
        return True
    return any(thing_of(f) in named for f in reply.facts) or not any(thing_of(f) for f in reply.facts) and \
        "event" not in frame.entities


def retrieval_fallback(frame: Frame) -> Reply | None:
    """Unsure of the question type: the fact the question's distinctive words point into."""
    if _reading(frame) not in (None, "lost") or not frame.typed or frame.foreign and not frame.anchored:
        return None
    hit = _trusted(_search(frame, "fact:"))
    ids = [hit.id] if hit else shared_span(frame)[1]  # "要彰显科普服务哪几个方面的价值": a stretch of one item
    if not ids:
        return None
    return facts_reply(frame.kb, ids, frame.today, {"intent": "ask_event_content", "entities": {}})


def clarification(frame: Frame) -> Reply | None:
    """Still unsure: offer the likeliest questions ("您是想问……吗？"), or refuse if none fits."""
    if _reading(frame) == "lost":
        return _keep(frame, refusal(frame.kb, "reason_lost_follow_up"))
    kb = frame.kb
    labels = {q.intent: q for q in kb.questions}
    options = [(name, conf) for name, conf in frame.turn.ranking
               if name in HANDLERS and name in labels and conf >= CLARIFY_MIN_CONFIDENCE][:3]
    top = next((name for name, _ in frame.turn.ranking if name != "nlu_fallback"), None)
    if not options or top == "out_of_scope" or (frame.foreign and not frame.anchored):
        return _keep(frame, refusal(kb))
    ents = frame.entities
    buttons = []
    for name, _ in options:
        q = labels[name]
        chosen = {t: v[0] for t, v in ents.items() if t in RELEVANT.get(name, ())}
        payload_q = q if not chosen else type(q)(q.intent, q.label, q.hot, chosen)
        buttons.append((q.label, payload_q.payload()))
    offered = [{"intent": name, "entities": {t: v for t, v in ents.items() if t in RELEVANT.get(name, ())}}
               for name, _ in options]
    return Reply(say(kb, "clarify"), buttons=buttons, kind="clarify", context={"offered": offered})


def completed_long_message(frame: Frame, reply: Reply) -> Reply:
    """A long run-on ("……属于哪个行动然后活动信息需要在哪报截止是哪天") read by one question
    type: the notice item retrieval finds for the whole message is added when the reply lacks it."""
    if not frame.typed or reply.kind != "answer" or len(frame.full_text or frame.text) <= LONG_MESSAGE:
        return reply
    hits = _search(frame, "fact:")
    best = hits[0] if hits else None
    if best is None or best.margin < RETRIEVAL_MARGIN or best.coverage < DETAIL_COVERAGE:
        return reply
    fact = best.id
    if fact in reply.facts or fact not in frame.kb.facts:
        return reply
    extra = facts_reply(frame.kb, [fact], frame.today, reply.context)
    return Reply(reply.text + "\n" + extra.text, buttons=reply.buttons, context=reply.context, kind="answer",
                 facts=[*reply.facts, fact])


SHORT_FOLLOW_UP = 8


def remembered_detail(frame: Frame) -> Reply | None:
    """"乡村振兴行动谁牵头" then "有竞赛吗": a short follow-up that names a word of the remembered
    item's own text is about that item, even when the word also names another item ("竞赛")."""
    remembered = frame.context.get("entities") or {}
    if not frame.typed or not remembered or len(frame.text) > SHORT_FOLLOW_UP or frame.foreign:
        return None
    texts = _fact_texts(frame.kb)
    facts = [f"{kind}.{value}" for kind, values in remembered.items() for value in values
             if f"{kind}.{value}" in texts]
    matches = gazetteer_matches(frame)
    if any(m.type in WEAK_THINGS for m in matches):
        return None  # "客户端呢": a platform, unit or contact word asks for that thing itself
    named = [m.text for m in matches]
    hits = [f for f in facts if named and all(word in texts[f] for word in named)]
    if len(hits) != 1 or set(frame.entities) <= set(remembered) and all(
            v in remembered.get(k, []) for k, vs in frame.entities.items() for v in vs):
        return None  # nothing new named, or no single remembered item has it
    return facts_reply(frame.kb, hits, frame.today, {"intent": frame.context.get("intent", ""),
                                                     "entities": remembered})


REMEMBERED_MAX = 10
# Characters that carry no content of their own in a short follow-up ("要推介啥", "交了会怎样").
FUNCTION_CHARS = set("的了吗呢啊呀吧是有在和与就也都要会能去来那这个么还再又呗嘛哈哦")


def _content_words(frame: Frame) -> list[str]:
    """The words of a short follow-up that say what it asks about: its question words, cue phrases,
    generic words and function characters left out ("结合的是什么节" -> 结合, 节; "第几届" -> 届)."""
    import jieba

    lex = lexicon()
    text = frame.text.lower()
    for match in sorted(gazetteer_matches(frame), key=lambda m: -len(m.text)):
        text = text.replace(match.text.lower(), " ")  # a named thing says which item, not what of it
    text = _without_cues(text)
    words = []
    for token in jieba.lcut(text):
        if token in lex.generic_words or not _CJK_WORD.fullmatch(token):
            continue
        bare = "".join(c for c in token if c not in PROTECTED_CHARS and c not in FUNCTION_CHARS)
        if len(bare) >= 2 or len(bare) == 1 and len(token) >= 2:  # "几届" -> 届, not a lone "干"
            words.append(bare)
    return words


def remembered_item(frame: Frame) -> Reply | None:
    """"主场活动有啥内容" then "结合的是什么节" / "第几届": a short follow-up whose content words are
    in the text of one fact of the remembered thing is answered from that fact; one that only asks
    what the thing is about ("具体干啥") gets the thing's own description."""
    remembered = frame.context.get("entities") or {}
    if not frame.typed or not remembered or len(_BARE.sub("", frame.text)) > REMEMBERED_MAX or frame.foreign:
        return None
    if any((t, v) not in _pairs(remembered) for t, vs in frame.entities.items() for v in vs):
        return None  # something new is named: a topic switch, for the question type to answer
    things = _pairs(remembered)
    if lexicon().unit_question.search(frame.text):
        return _unit_of(frame, remembered)
    texts = _fact_texts(frame.kb)
    facts = [f for f in texts if thing_of(f) in things]
    words = _content_words(frame)
    if words:
        scored = sorted(((sum(w in texts[f] for w in words), f) for f in facts), reverse=True)
        best = [f for n, f in scored if n and n == scored[0][0]] if scored else []
        if not best or len(best) > SPAN_MAX_FACTS:
            return None
        return facts_reply(frame.kb, best, frame.today, {"intent": frame.context.get("intent", ""),
                                                         "entities": remembered})
    if not set(frame.cues) & {"content", "main_activities"}:
        return None
    own = [f for f in facts if f in {f"{t}.{v}" for t, v in things} or f.endswith(".content")]
    if len(own) != 1 or own[0] in (frame.context.get("facts") or []):
        return None
    return facts_reply(frame.kb, own, frame.today, {"intent": frame.context.get("intent", ""),
                                                    "entities": remembered})


WORD_THINGS = ("joint_action", "event", "content_item", "requirement")
WORD_MAX_FACTS = 4  # of the notice's ~60 facts: a word this rare tells which fact


def _word_instead(frame: Frame, reply: Reply) -> Reply | None:
    """A question about one named thing with a word the reply lacks but one of that thing's facts has
    ("主场活动结合的是哪个活动" -> the main event's content, not its time): that fact."""
    if reply.kind == "unstated" or frame.details or frame.cues or len(_BARE.sub("", frame.text)) > LONG_MESSAGE:
        return None  # a question word says what is asked; the words then only say of which thing
    things = {(t, v) for t, vs in frame.entities.items() if t in WORD_THINGS for v in vs}
    if len(things) != 1 or not all(thing_of(f) in things for f in reply.facts):
        return None  # another item answered (a detail found elsewhere): no word of this thing overrides it
    texts = _fact_texts(frame.kb)
    shown = _BARE.sub("", reply.text)
    # Only a word few facts use tells which ("结合"), not one most facts use ("普及").
    missing = [w for w in _content_words(frame) if w not in shown
               and sum(w in t for t in texts.values()) <= WORD_MAX_FACTS]
    if not missing:
        return None
    scored = sorted(((sum(w in texts[f] for w in missing), f) for f in texts if thing_of(f) in things), reverse=True)
    if not scored or not scored[0][0] or len(scored) > 1 and scored[1][0] == scored[0][0]:
        return None
    return facts_reply(frame.kb, [scored[0][1]], frame.today, reply.context)


def _unit_of(frame: Frame, remembered: dict) -> Reply | None:
    """The unit a remembered thing belongs to: the contacts' unit, a joint action's or event's lead."""
    context = {"intent": "ask_organizer", "entities": remembered}
    if "contact" in remembered and "contact.unit" in frame.kb.facts:
        return facts_reply(frame.kb, ["contact.unit"], frame.today, context)
    subjects = {k: v for k, v in remembered.items() if k in ("joint_action", "event")}
    if not subjects:
        return None
    return answer(frame.kb, "ask_organizer", subjects, frame.context, frame.today)


def _pairs(entities: dict) -> set[tuple[str, str]]:
    return {(t, v) for t, values in entities.items() for v in values}


def fallback_refusal(frame: Frame) -> Reply:
    """Nothing else applied: the polite refusal."""
    return _keep(frame, refusal(frame.kb))


RESOLVERS: list[Resolver] = [
    empty_input, acknowledgement, unreadable, correction_only, errand, small_talk, confirmation, other_year, staff_faq,
    quoted, out_of_notice, unanchored, numbered_event, still_open, notice_part, ordinal_item, role_duties, value_lookup, dated,
    unstated_detail, refused, remembered_detail, remembered_item, question_type, retrieval_fallback, clarification,
]
__all__ = ["RESOLVERS", "fallback_refusal", "hot_buttons", "render"]
