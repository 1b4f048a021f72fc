"""What the assistant says: from (intent, entities, context) to a reply.

Pure and Rasa-free so it can be tested with a fixed clock and reused by every
channel. The Rasa action in actions/ is a thin wrapper around `respond`.

Context (kept in the `context` slot between turns) remembers the last question
type and the things it was about, so elliptical follow-ups work:
"主场活动什么时候" -> "在哪里？", "教育局牵头哪个行动" -> "卫健呢？".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.knowledge.answers import citation, fill, fmt_date, joint_action_facts, lead_name, render, short
from bot.knowledge.model import Fact, KnowledgeSet
from bot.text import is_meaningful

PHONE_FACT = "contact.phone"
SMALLTALK = {"greet", "goodbye", "thank", "bot_identity", "bot_capabilities", "request_human"}
# Below this, the best guess is not worth offering as "您是想问……吗？".
CLARIFY_MIN_CONFIDENCE = 0.12
# A guess below this, with nothing of the notice named in the question, is not
# answered outright: the user gets "您是想问……吗？" instead.
WEAK_CONFIDENCE = 0.3
# A guess below this with no named thing, no question word and no context to
# lean on is offered as "您是想问……吗？" rather than answered.
NO_EVIDENCE_CONFIDENCE = 0.5
OTHER_YEAR = re.compile(r"(?<!\d)(20[0-9]{2})(?!\d)")

Entities = dict[str, list[str]]


@dataclass
class Turn:
    """One understood user message."""

    intent: str
    text: str = ""
    confidence: float = 1.0
    ranking: list[tuple[str, float]] = field(default_factory=list)
    entities: list[tuple[str, str]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    """What to send back, and the context to remember."""

    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    kind: str = "answer"  # answer | refusal | clarify | smalltalk | empty
    facts: list[str] = field(default_factory=list)


@dataclass
class Found:
    """Facts chosen for a question, plus what the question was about."""

    facts: list[str]
    about: Entities = field(default_factory=dict)
    hint: str = ""
    lead_in: str = ""
    cite_only: bool = False  # the lead-in already says it all; facts are only cited


# -- helpers -----------------------------------------------------------------

def _phone(kb: KnowledgeSet) -> str:
    return short(kb.facts[PHONE_FACT], kb)


def _first(ents: Entities, type_: str) -> str | None:
    values = ents.get(type_)
    return values[0] if values else None


def _ids(prefix: str, values: list[str]) -> list[str]:
    return [f"{prefix}.{v}" for v in values]


def _others_hint(kb: KnowledgeSet, ids: list[str], label: str) -> str:
    parts = [short(kb.facts[i], kb) for i in ids if i in kb.facts]
    return f"{label}{'；'.join(parts)}。" if parts else ""


# -- one function per question type ------------------------------------------

def _time(kb: KnowledgeSet, ents: Entities) -> Found:
    if "deadline" in ents:
        return Found(_ids("deadline", ents["deadline"]), {"deadline": ents["deadline"]})
    event = _first(ents, "event")
    if event in ("main_event", "congress"):
        return Found([f"event.{event}.time"], {"event": [event]})
    if event == "cloud":
        return Found(["event.kepu_day.time", "event.cloud.content"], {"event": [event]})
    if "joint_action" in ents:
        names = "、".join(kb.facts[f"joint_action.{v}"].data["name"] for v in ents["joint_action"])
        return Found(["event.kepu_day.time"], {"joint_action": ents["joint_action"]},
                     lead_in=f"{names}在科普日期间开展，通知没有给出单项行动的具体日期。")
    return Found(
        ["event.kepu_day.time"], {"event": ["kepu_day"]},
        hint=f"其中主场活动在{short(kb.facts['event.main_event.time'], kb)}，"
        f"中卫市科协第一次代表大会在{short(kb.facts['event.congress.time'], kb)}。",
    )


def _venue(kb: KnowledgeSet, ents: Entities) -> Found:
    if "deadline" in ents:
        return Found(_ids("deadline", ents["deadline"]), {"deadline": ents["deadline"]})
    event = _first(ents, "event")
    if event in ("main_event", "congress"):
        return Found([f"event.{event}.venue"], {"event": [event]})
    if event == "cloud":
        return Found(["event.cloud.content"], {"event": [event]})
    if "joint_action" in ents:
        return Found(["joint.overview"], {"joint_action": ents["joint_action"]})
    return Found(["event.kepu_day.venue"], {"event": ["kepu_day"]})


def _event_content(kb: KnowledgeSet, ents: Entities) -> Found:
    event = _first(ents, "event")
    if event == "main_event":
        return Found(["event.main_event.content"], {"event": [event]})
    if event == "congress":
        return Found(["event.congress.agenda"], {"event": [event]})
    if event == "cloud":
        return Found(["event.cloud.content"], {"event": [event]})
    if "joint_action" in ents:
        return _joint_actions(kb, ents)
    if "content_item" in ents:
        return _main_content(kb, ents)
    if "requirement" in ents:
        return _requirements(kb, ents)
    if "document" in ents:
        return Found(["notice.basis"], {"document": ents["document"]})
    if "deadline" in ents:
        return _deadline(kb, ents)
    return Found(["main_activities"], {"event": ["kepu_day"]})


def _organizer(kb: KnowledgeSet, ents: Entities) -> Found:
    if "joint_action" in ents:
        facts = [kb.facts[i] for i in _ids("joint_action", ents["joint_action"])]
        lines = [f"{f.data['name']}由{lead_name(kb, f)}牵头。" for f in facts]
        return Found([f.id for f in facts], {"joint_action": ents["joint_action"]}, lead_in="".join(lines))
    if "unit" in ents:
        lines, ids = [], []
        for unit in ents["unit"]:
            led = [f for f in joint_action_facts(kb) if f.data.get("lead") == unit]
            name = kb.entity_name("unit", unit)
            if led:
                names = "、".join(f.data["name"] for f in led)
                count = f"{len(led)}项" if len(led) > 1 else ""
                lines.append(f"{name}牵头{count}联合行动：{names}。")
                ids += [f.id for f in led]
            if unit in ("kexie", "city_kexie"):
                lines.append(f"主场活动的责任单位是{short(kb.facts['event.main_event.organizer'], kb)}。")
                ids.append("event.main_event.organizer")
            if not led and unit not in ("kexie", "city_kexie"):
                lines.append(f"通知里没有安排{name}牵头的活动。")
        return Found(ids, {"unit": ents["unit"]}, lead_in="".join(lines), cite_only=True)
    event = _first(ents, "event")
    if event == "main_event":
        return Found(["event.main_event.organizer"], {"event": [event]})
    return Found(["event.kepu_day.organizer"], {"event": ["kepu_day"]})


def _participants(kb: KnowledgeSet, ents: Entities) -> Found:
    if _first(ents, "event") == "congress":
        return Found(["event.congress.participants"], {"event": ["congress"]})
    if "joint_action" in ents:
        return Found(["joint.overview"], {})
    return Found(["notice.audience"], {})


def _main_content(kb: KnowledgeSet, ents: Entities) -> Found:
    if "content_item" in ents:
        return Found(_ids("content", ents["content_item"]), {"content_item": ents["content_item"]})
    return Found(["content.overview"], {})


def _joint_actions(kb: KnowledgeSet, ents: Entities) -> Found:
    if "joint_action" in ents:
        facts = [kb.facts[i] for i in _ids("joint_action", ents["joint_action"])]
        lines = [f"{f.data['name']}（{lead_name(kb, f)}牵头）：{fill(f.answer, f, kb)}" for f in facts]
        return Found([f.id for f in facts], {"joint_action": ents["joint_action"]}, lead_in="".join(lines),
                     cite_only=True)
    if "unit" in ents:
        return _organizer(kb, ents)
    return Found(["joint.overview"], {})


def _requirements(kb: KnowledgeSet, ents: Entities) -> Found:
    if "requirement" in ents:
        return Found(_ids("requirement", ents["requirement"]), {"requirement": ents["requirement"]})
    return Found(["requirement.overview"], {})


def _registration(kb: KnowledgeSet, ents: Entities) -> Found:
    other = [d for d in ents.get("deadline", []) if d != "register"]
    if other:
        return Found(_ids("deadline", other), {"deadline": other})
    if ents.get("platform") == ["app"]:
        return Found(["registration.app"], {"platform": ["app"]})
    return Found(["registration.how"], {"deadline": ["register"]})


def _deadline(kb: KnowledgeSet, ents: Entities) -> Found:
    if "event" in ents and "deadline" not in ents:
        return _time(kb, ents)  # "主场活动到哪天" asks for the event's dates
    if "deadline" in ents:
        return Found(_ids("deadline", ents["deadline"]), {"deadline": ents["deadline"]})
    return Found(
        ["deadline.register"], {"deadline": ["register"]},
        hint=_others_hint(kb, ["deadline.summary", "deadline.complete_info"], "另外还有两个期限（均已过）："),
    )


def _contact(kb: KnowledgeSet, ents: Entities) -> Found:
    kinds = ents.get("contact")
    if not kinds:
        return Found(["contact.all"], {})
    hint = ""
    if kinds == ["phone"]:
        hint = _others_hint(kb, ["contact.mobile"], "另有手机：")
    return Found(_ids("contact", kinds), {"contact": kinds}, hint=hint)


def _fixed(fact_id: str) -> Callable[[KnowledgeSet, Entities], Found]:
    return lambda kb, ents: Found([fact_id], {})


def _about_notice(fact_id: str) -> Callable[[KnowledgeSet, Entities], Found]:
    """This notice's fact, or the higher-level notice's when that one is named."""
    def handler(kb: KnowledgeSet, ents: Entities) -> Found:
        if "document" in ents:
            return Found(["notice.basis"], {"document": ents["document"]})
        return Found([fact_id], {})
    return handler


def _app(kb: KnowledgeSet, ents: Entities) -> Found:
    return Found(["registration.app"], {"platform": ["app"]})


HANDLERS: dict[str, Callable[[KnowledgeSet, Entities], Found]] = {
    "ask_notice_overview": _about_notice("notice.title"),
    "ask_doc_number": _about_notice("notice.doc_number"),
    "ask_issuer": _fixed("notice.issuer"),
    "ask_issue_date": _fixed("notice.date"),
    "ask_basis": lambda kb, ents: Found(["notice.basis"], {"document": ["basis"]}),
    "ask_audience": _fixed("notice.audience"),
    "ask_attachment": _fixed("notice.attachment"),
    "ask_theme": _fixed("theme"),
    "ask_time": _time,
    "ask_venue": _venue,
    "ask_event_content": _event_content,
    "ask_organizer": _organizer,
    "ask_participants": _participants,
    "ask_agenda": _fixed("event.congress.agenda"),
    "ask_main_content": _main_content,
    "ask_main_activities": _fixed("main_activities"),
    "ask_joint_actions": _joint_actions,
    "ask_requirements": _requirements,
    "ask_registration": _registration,
    "ask_app_download": _app,
    "ask_deadline": _deadline,
    "ask_commendation": _fixed("commendation"),
    "ask_contact": _contact,
}

# Entity types a question type is about: missing ones are taken from context.
RELEVANT: dict[str, tuple[str, ...]] = {
    "ask_time": ("event", "deadline", "joint_action"),
    "ask_venue": ("event", "deadline", "joint_action"),
    "ask_event_content": ("event", "joint_action", "content_item", "requirement", "document", "deadline"),
    "ask_organizer": ("joint_action", "unit", "event"),
    "ask_participants": ("event",),
    "ask_main_content": ("content_item",),
    "ask_joint_actions": ("joint_action",),
    "ask_requirements": ("requirement",),
    "ask_deadline": ("deadline", "event"),
    "ask_contact": ("contact",),
    "ask_registration": ("deadline", "platform"),
    "ask_app_download": ("platform",),
    "ask_notice_overview": ("document",),
    "ask_doc_number": ("document",),
    "ask_basis": ("document",),
    "ask_audience": ("audience",),
}

# Question types whose answer holds for every part of the notice (one contact,
# one registration channel): an entity of another type never changes them.
UNIVERSAL = {"ask_contact", "ask_registration", "ask_app_download", "ask_deadline", "ask_requirements",
             "ask_commendation", "ask_audience", "ask_registration_status"}

# Entity types that say on their own what the question is about.
TOPICAL = ("document", "audience", "requirement", "content_item", "joint_action", "contact", "deadline", "unit")

# For a bare follow-up ("卫健呢？"), the question type an entity type implies
# when the previous question type does not fit it.
FOLLOW_UP_DEFAULT = {
    "document": "ask_basis",
    "audience": "ask_audience",
    "platform": "ask_registration",
    "deadline": "ask_deadline",
    "contact": "ask_contact",
    "unit": "ask_organizer",
    "joint_action": "ask_joint_actions",
    "event": "ask_event_content",
    "requirement": "ask_requirements",
    "content_item": "ask_main_content",
}


# -- the fixed replies -------------------------------------------------------

def refusal(kb: KnowledgeSet, reason: str = "") -> Reply:
    """Polite refusal: what the assistant can answer and the phone number."""
    lead = reason or "这个问题不在这份通知的范围内，通知里也没有相关说明，我无法回答。"
    return Reply(
        f"抱歉，{lead}我可以解答2021年沙坡头区全国科普日的时间地点、登记填报、截止日期、"
        f"联合行动、工作要求和联系人等问题；其他事项请拨打咨询电话{_phone(kb)}。",
        buttons=hot_buttons(kb, 3), kind="refusal",
    )


def hot_buttons(kb: KnowledgeSet, limit: int = 6) -> list[tuple[str, str]]:
    """The hot questions as (label, payload) buttons, most asked first."""
    hot = sorted((q for q in kb.questions if q.hot), key=lambda q: q.hot)
    return [(q.label, q.payload()) for q in hot[:limit]]


def _smalltalk(kb: KnowledgeSet, intent: str) -> Reply:
    phone = _phone(kb)
    texts = {
        "greet": "您好！我是沙坡头区全国科普日智能助手，可以解答《关于举办2021年中卫沙坡头区全国科普日活动的通知》"
        "里的问题，比如活动时间地点、怎么登记填报、截止日期和联系人。请问您想了解什么？",
        "thank": "不客气！还有关于科普日通知的问题，随时问我。",
        "goodbye": f"再见！如需进一步咨询，可拨打{phone}。",
        "bot_identity": "我是沙坡头区全国科普日智能助手，是自动回答的程序，不是真人。我的回答都来自区里发布的科普日通知，"
        f"需要人工帮助请拨打{phone}。",
        "bot_capabilities": "我能回答2021年沙坡头区全国科普日通知里的问题：活动主题和时间、主场活动和代表大会的时间地点、"
        "十项联合行动及牵头单位、登记填报方法、截止日期、工作要求、表扬办法、联系人和电话等。",
        "request_human": "抱歉，我是智能助手，暂时不能直接转接人工。您可以联系"
        f"{short(kb.facts['contact.unit'], kb)}的{short(kb.facts['contact.person'], kb)}，"
        f"电话{phone}，手机{short(kb.facts['contact.mobile'], kb)}。",
    }
    buttons = hot_buttons(kb) if intent in ("greet", "bot_capabilities") else []
    return Reply(texts[intent], buttons=buttons, kind="smalltalk")


def _clarify(kb: KnowledgeSet, turn: Turn, ents: Entities) -> Reply:
    labels = {q.intent: q for q in kb.questions}
    options = [
        (name, conf) for name, conf in turn.ranking
        if name in HANDLERS and name in labels and conf >= CLARIFY_MIN_CONFIDENCE
    ][:3]
    top = next((name for name, _ in turn.ranking if name != "nlu_fallback"), None)
    if not options or top == "out_of_scope":
        return refusal(kb)
    buttons = []
    for name, _ in options:
        q = labels[name]
        chosen = {t: v[0] for t, v in ents.items() if t in RELEVANT.get(name, ())}
        payload_q = q if not chosen else type(q)(q.intent, q.label, q.hot, chosen)
        buttons.append((q.label, payload_q.payload()))
    text = "抱歉，我不太确定您的意思。您是想问下面哪个问题吗？如果都不是，可以换个说法，或拨打" + _phone(kb) + "咨询。"
    offered = [{"intent": name, "entities": {t: v for t, v in ents.items() if t in RELEVANT.get(name, ())}}
               for name, _ in options]
    return Reply(text, buttons=buttons, kind="clarify", context={"offered": offered})


def _status(kb: KnowledgeSet, ents: Entities, today: dt.date) -> Reply:
    """"还能报名吗 / 开完了没 / 总结还来得及吗": where today stands for the thing asked about."""
    event = _first(ents, "event")
    deadline = _first(ents, "deadline")
    if event and not deadline:
        fact = kb.facts["event.kepu_day.time" if event in ("kepu_day", "cloud") else f"event.{event}.time"]
        return Reply(render(fact, kb, today) + citation(kb, [fact]), facts=[fact.id],
                     context={"intent": "ask_time", "entities": {"event": [event]}})
    fact = kb.facts[f"deadline.{deadline or 'register'}"]
    end = fact.date
    assert end is not None
    name = kb.entity_name("deadline", deadline or "register")
    if today > end:
        text = f"{name}已于{fmt_date(end)}截止（已截止），现在不能再按这份通知办理了。"
        if not deadline or deadline == "register":
            text += _others_hint(kb, ["deadline.complete_info", "deadline.summary"], "之后的两项期限是：")
        text += f"如有疑问请拨打{_phone(kb)}。"
    elif fact.start_date and today < fact.start_date:
        text = f"{name}还没开始：{fmt_date(fact.start_date)}起至{fmt_date(end)}开放。"
    else:
        text = f"{name}正在进行，截止到{fmt_date(end)}（还有{(end - today).days}天）。" + fill(fact.answer, fact, kb)
    return Reply(text + citation(kb, [fact]), facts=[fact.id],
                 context={"intent": "ask_deadline", "entities": {"deadline": [deadline or "register"]}})


def _unstated(kb: KnowledgeSet, ents: Entities, details: list[str] | None = None) -> Reply:
    """A detail the notice does not give: say so, add what it does say, give the phone."""
    what = "、".join(details) if details else "这方面的内容"
    text = (f"抱歉，通知里没有说明{what}，我不能替通知作答。建议拨打{_phone(kb)}"
            f"（{short(kb.facts['contact.unit'], kb)}）咨询。")
    event = _first(ents, "event")
    facts: list[Fact] = []
    if event in ("main_event", "congress"):
        facts = [kb.facts[f"event.{event}.time"], kb.facts[f"event.{event}.venue"]]
        name = kb.entity_name("event", event)
        text += f"通知中关于{name}只写了：{short(facts[0], kb)}，地点在{short(facts[1], kb)}。"
    context = {"intent": "ask_time", "entities": {"event": [event]}} if event else {}
    return Reply(text + citation(kb, facts), kind="unstated", facts=[f.id for f in facts], context=context)


# -- understanding beyond the classifier ------------------------------------------

# Details people ask for that the notice never gives: (pattern, what to call it).
UNSTATED_DETAILS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"几点|几时|点钟|散会|报到时间|几点到几点"), "具体几点"),
    (re.compile(r"地址|哪条街|什么路|哪条路|门牌|怎么走|路线|导航|办公地点|办公室在哪"), "具体地址和路线"),
    (re.compile(r"停车|车位"), "停车安排"),
    (re.compile(r"收费|费用|门票|多少钱|免费|交钱|花钱"), "费用或门票"),
    (re.compile(r"职务|职位|职称|什么官"), "人员职务"),
    (re.compile(r"微信群|QQ群|qq群|群号|公众号"), "交流群或公众号"),
    (re.compile(r"营业执照|带什么|携带|要带|上传什么|证明材料"), "需要携带或上传的材料"),
    (re.compile(r"哪些村|哪个村|哪些学校|哪个社区|哪些社区|日程表|具体日程"), "具体日程安排"),
    (re.compile(r"入口|在哪答题|怎么答题|答题"), "参与入口"),
    (re.compile(r"哪个平台看|在哪看直播|直播平台|回放"), "观看平台"),
    (re.compile(r"住宿|吃饭|午饭|晚饭|管饭|餐"), "食宿安排"),
    (re.compile(r"计划表里|附件里|表里具体|计划表的内容|计划表内容"), "附件计划表的具体内容"),
    (re.compile(r"下雨|改期|延期|取消|天气"), "天气或改期安排"),
]
# Question words that say what kind of answer is wanted, and the question types
# ("family") that already give that kind of answer. Used when the classifier is
# unsure, or sure of a type that contradicts the question word.
NEXT_STEPS = re.compile(r"(以后|之后|完了|然后)(还)?(要|需要|得)?(干嘛|做什么|干啥|怎么办|做啥)")
CUES: list[tuple[re.Pattern[str], str]] = [
    (NEXT_STEPS, "next_steps"),
    (re.compile(r"在哪|哪里|哪儿|什么地方|地点|哪个学校|哪个酒店|哪所学校"), "ask_venue"),
    (re.compile(r"什么时候|哪天|几号|几月几|日期|周几|星期几|礼拜几|哪两天|啥时候|几点|几天"), "ask_time"),
    (re.compile(r"谁牵头|牵头单位|哪个单位牵头|谁负责|责任单位|主办"), "ask_organizer"),
    (re.compile(r"电话|手机|传真|邮箱|联系人|联系方式|怎么联系"), "ask_contact"),
    (re.compile(r"截止|最晚|期限|deadline|时间节点"), "ask_deadline"),
    (re.compile(r"文号|索引|几号文|发文字号"), "ask_doc_number"),
    (re.compile(r"主题|口号|slogan"), "ask_theme"),
    (re.compile(r"主要内容"), "ask_main_content"),
    (re.compile(r"主要活动|重点活动|哪几项活动|哪些活动"), "ask_main_activities"),
    (re.compile(r"标题|题目|全称|文件名|通知名"), "ask_notice_overview"),
    (re.compile(r"发给|主送|通知对象|面向哪些|哪些单位"), "ask_audience"),
    (re.compile(r"搞啥|干啥|做啥|做什么|干什么|干嘛|讲了啥|说了啥|讲的啥|说的啥|讲了什么|说了什么|具体内容"),
     "ask_event_content"),
]
WHERE = CUES[1][0]
WHEN = CUES[2][0]
# A cue names a family; the family's first member is the question type it leads to.
CUE_TARGET = {"next_steps": "ask_deadline"}
CUE_FAMILY: dict[str, set[str]] = {
    "ask_venue": {"ask_venue", "ask_registration", "ask_app_download", "ask_attachment", "ask_unstated"},
    "ask_time": {"ask_time", "ask_issue_date", "ask_deadline", "ask_registration_status", "ask_event_content",
                 "ask_unstated"},
    "ask_organizer": {"ask_organizer", "ask_issuer", "ask_joint_actions"},
    "ask_contact": {"ask_contact", "request_human", "ask_app_download", "ask_registration", "ask_unstated"},
    "ask_deadline": {"ask_deadline", "ask_registration_status", "ask_registration"},
    "next_steps": {"ask_deadline"},
    "ask_doc_number": {"ask_doc_number", "ask_basis"},
    "ask_theme": {"ask_theme"},
    "ask_main_content": {"ask_main_content"},
    "ask_main_activities": {"ask_main_activities", "ask_event_content", "ask_joint_actions"},
    "ask_notice_overview": {"ask_notice_overview", "ask_basis", "ask_attachment", "ask_theme"},
    "ask_audience": {"ask_audience", "ask_participants", "ask_organizer"},
    "ask_event_content": {"ask_event_content", "ask_joint_actions", "ask_main_content", "ask_requirements",
                          "ask_main_activities", "ask_agenda", "ask_commendation", "ask_notice_overview",
                          "ask_registration", "ask_deadline", "ask_unstated", "ask_participants", "ask_basis"},
}
WEB_ADDRESS = re.compile(r"网站|网址|网页|链接|下载|app|客户端", re.IGNORECASE)
# "第二部分讲了什么": the parts of the notice and the fact that sums each up.
PART = re.compile(r"第\s*([一二三四五])\s*部分")
PART_OVERVIEW = {"一": ["theme", "event.kepu_day.time"], "二": ["content.overview"], "三": ["main_activities"],
                 "四": ["requirement.overview"], "五": ["registration.how", "deadline.summary", "commendation"]}
STATUS_QUESTION = re.compile(
    r"现在还|还在(搞|办|进行|开|举办)|开完|(开|办|搞|举办)过了|结束了|结束没|完事了|过了没|还能(去|报|参加|交|填|登记|提交)|还来得及|"
    r"还可以(报|填|交|参加|登记|提交)|截止了(吗|没)|过期|晚了吗|来不及"
)
ACTION_REQUEST = re.compile(
    r"(帮|替)我[^，。,!?]{0,10}?(订|买|填|报名|报上|登记|办理|提交|预约|预定|申请|写|交|转账|充值|"
    r"打(个|一个|一下)?电话|发(个)?(短信|邮件))"
)
# "帮我看看/查查/问问……" asks for information, not for an errand.
ASKING_FOR_INFO = re.compile(r"(帮|替)我(看|查|问|说|讲|介绍|解释|告诉|找找|找一下|搜)")
ORDINAL = re.compile(r"第\s*([一二三四五六七八九十]|10|[1-9])\s*(项|个|条|点|部分)?")
DATE_MENTION = re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?")
CHINESE_NUMBERS = {c: i + 1 for i, c in enumerate("一二三四五六七八九十")}
LIST_OF_FACT = {"joint.overview": "joint", "content.overview": "content",
                "requirement.overview": "requirement", "event.congress.agenda": "agenda"}
LIST_WORDS = [("行动", "joint"), ("要求", "requirement"), ("议程", "agenda"), ("内容", "content")]
# When a date is mentioned alone, the facts it most likely means, best first.
DATE_PREFERENCE = ["deadline.", "event.main_event.content", "event.congress.time", "event.kepu_day.time",
                   "notice.date"]


def cue_intent(turn: Turn, intent: str, topical: list[str]) -> str | None:
    """The question type the question words ask for, when the classifier disagrees and is not sure."""
    cues = [name for pattern, name in CUES if pattern.search(turn.text)]
    if not cues:
        return None
    family = set().union(*(CUE_FAMILY[c] for c in cues))
    unsure = intent == "nlu_fallback" or turn.confidence < (0.6 if intent == "out_of_scope" else 0.8)
    out_of_scope = dict(turn.ranking).get("out_of_scope", 0.0)
    if intent in family or not unsure or (intent != "out_of_scope" and out_of_scope >= 0.3):
        return None
    target = CUE_TARGET.get(cues[0], cues[0])
    # The named things outrank a question word that does not fit them ("在哪个大会上的讲话").
    if topical and not any(t in RELEVANT.get(target, ()) for t in topical):
        return None
    return target


def unstated_details(text: str) -> list[str]:
    """The details asked for in `text` that the notice does not give."""
    details = [label for pattern, label in UNSTATED_DETAILS if pattern.search(text)]
    if WEB_ADDRESS.search(text):  # the website and the app link are in the notice
        details = [d for d in details if d != "具体地址和路线"]
    return details


def _from_fallback(turn: Turn, ents: Entities, ctx: dict[str, Any]) -> str | None:
    """Pick a low-confidence candidate that fits the named things (or the context)."""
    candidates = [(n, c) for n, c in turn.ranking if n != "nlu_fallback"][:3]
    for types, floor in ((set(ents), 0.08), (set(ctx.get("entities") or {}) if not ents else set(), 0.15)):
        for name, confidence in candidates:
            if confidence >= floor and types & set(RELEVANT.get(name, ())):
                return name
    topical = [t for t in TOPICAL if t in ents]
    return FOLLOW_UP_DEFAULT[topical[0]] if topical else None


def _ordinal(text: str, ctx: dict[str, Any]) -> tuple[str, int] | None:
    """("joint", 3) for "第三个行动" or "第三项" right after the list of joint actions."""
    match = ORDINAL.search(text)
    if not match:
        return None
    raw = match.group(1)
    number = int(raw) if raw.isdigit() else CHINESE_NUMBERS[raw]
    for word, kind in LIST_WORDS:
        if word in text:
            return kind, number
    return (ctx["list"], number) if ctx.get("list") else None


def _ordinal_reply(kb: KnowledgeSet, kind: str, number: int, ctx: dict[str, Any], today: dt.date) -> Reply | None:
    """The Nth item of a list the notice numbers (joint actions, contents, requirements, agenda)."""
    if kind == "agenda":
        fact = kb.facts["event.congress.agenda"]
        items = fact.data.get("items") or []
        if not 1 <= number <= len(items):
            return None
        return Reply(f"代表大会第{number}项议程：{items[number - 1]}。{citation(kb, [fact])}", facts=[fact.id],
                     context={"intent": "ask_agenda", "entities": {"event": ["congress"]}, "list": "agenda"})
    if kind == "joint":
        type_, intent = "joint_action", "ask_joint_actions"
        values = [f.id.split(".", 1)[1] for f in joint_action_facts(kb)]
    else:
        type_, intent = {"content": ("content_item", "ask_main_content"),
                         "requirement": ("requirement", "ask_requirements")}[kind]
        values = list(kb.entities.get(type_, {}))
    if not 1 <= number <= len(values):
        return None
    reply = _answer(kb, intent, {type_: [values[number - 1]]}, ctx, today)
    reply.context["list"] = kind
    return reply


def _facts_on(kb: KnowledgeSet, text: str) -> list[str]:
    """Facts dated on the day mentioned in `text` ("10月10号呢"), most likely first."""
    match = DATE_MENTION.search(text)
    if not match:
        return []
    try:
        day = dt.date(2021, int(match.group(1)), int(match.group(2)))
    except ValueError:
        return []
    dated = [f for f in kb.facts.values() if f.date and (f.date == day or (f.end_date and f.date <= day <= f.end_date))]
    for prefix in DATE_PREFERENCE:
        chosen = [f.id for f in dated if f.id.startswith(prefix)]
        if chosen:
            return chosen
    return []


# -- entry point ---------------------------------------------------------------

def _group(entities: list[tuple[str, str]]) -> Entities:
    grouped: Entities = {}
    for type_, value in entities:
        values = grouped.setdefault(type_, [])
        if value not in values:
            values.append(value)
    return grouped


def _resolve_follow_up(ents: Entities, ctx: dict[str, Any]) -> str | None:
    last = ctx.get("intent")
    if not ents:
        return last
    if last in RELEVANT and any(t in RELEVANT[last] for t in ents):
        return last
    for type_ in TOPICAL + ("event",):
        if type_ in ents:
            return FOLLOW_UP_DEFAULT[type_]
    return last


def _answer(kb: KnowledgeSet, intent: str, ents: Entities, ctx: dict[str, Any], today: dt.date) -> Reply:
    """Answer a question type, filling missing entities from the context."""
    relevant = RELEVANT.get(intent, ())
    remembered: Entities = ctx.get("entities") or {}
    if relevant and not any(t in ents for t in relevant):
        for type_ in relevant:
            if type_ in remembered:
                ents[type_] = list(remembered[type_])
                break
    found = HANDLERS[intent](kb, ents)
    facts = [kb.facts[i] for i in found.facts if i in kb.facts]
    body = "" if found.cite_only else "".join(render(f, kb, today) for f in facts)
    text = f"{found.lead_in}{body}{found.hint}{citation(kb, facts)}"
    context: dict[str, Any] = {"intent": intent, "entities": found.about}
    lists = [LIST_OF_FACT[f.id] for f in facts if f.id in LIST_OF_FACT]
    if lists:
        context["list"] = lists[0]
    return Reply(text, kind="answer", facts=[f.id for f in facts], context=context)


ORDINAL_QUESTION = re.compile(r"第几(次|届)|哪一?届|第多少(次|届)|是几届|几届")
# Events whose number ("第一次代表大会", "第六届青少年科学节") people ask for, and the fact that says it.
ORDINAL_EVENT_FACT = {"congress": "event.congress.name", "main_event": "event.main_event.content"}


def _ordinal_event(ents: Entities, ctx: dict[str, Any], text: str) -> str | None:
    """The event whose number a question asks for, named in it or (in a short follow-up) just before."""
    if not ORDINAL_QUESTION.search(text) or re.search(r"领导|机构|理事|委员|全国代表大会|中国科协|讲话|总书记", text):
        return None  # "选出的是第几届领导机构" is about the agenda; "中国科协第几次全国代表大会" the basis
    event = _first(ents, "event")
    if event is None and len(text) <= 12:
        event = _first(dict(ctx.get("entities") or {}), "event")
    return event if event in ORDINAL_EVENT_FACT else None


def respond(kb: KnowledgeSet, turn: Turn, today: dt.date) -> Reply:
    """The reply to one user turn (never raises for any intent or entity)."""
    ctx = dict(turn.context or {})
    ents = {t: v for t, v in _group(turn.entities).items() if all(x in kb.entities.get(t, {}) for x in v)}
    intent = turn.intent
    text = turn.text or ""
    typed = not text.startswith("/")  # button payloads skip the text heuristics

    if not text.strip() and not intent:
        return Reply("您好像还没有输入内容。请直接输入您的问题，例如“截止日期是什么时候”。", kind="empty", context=ctx)
    if typed and not is_meaningful(text):
        return _keep(refusal(kb, "我没能看懂您发的内容。"), ctx)
    years = {int(y) for y in OTHER_YEAR.findall(text)}
    if typed and years and 2021 not in years and intent not in SMALLTALK:
        return _keep(refusal(kb, f"我只掌握2021年沙坡头区全国科普日的通知，没有{min(years)}年的相关信息。"), ctx)
    if typed and ACTION_REQUEST.search(text) and not ASKING_FOR_INFO.search(text):
        return _keep(refusal(kb, "我只能解答通知里的问题，不能替您办理或代填任何事项。"), ctx)

    ordinal_event = _ordinal_event(ents, ctx, text) if typed else None
    if ordinal_event and ORDINAL_EVENT_FACT[ordinal_event] in kb.facts:
        # "科协开的是第几次代表大会" / "青少年科学节是第几届": the fact that names the event with its number.
        fact = kb.facts[ORDINAL_EVENT_FACT[ordinal_event]]
        return Reply(render(fact, kb, today) + citation(kb, [fact]), facts=[fact.id],
                     context={"intent": "ask_event_content", "entities": {"event": [ordinal_event]}})

    if intent in ("affirm", "deny"):
        offered = ctx.get("offered") or []
        if intent == "affirm" and offered:
            chosen = offered[0]
            intent, ents = chosen["intent"], dict(chosen.get("entities") or {})
        elif intent == "deny" and offered:
            return Reply(f"好的。请换个说法再问一次，或拨打{_phone(kb)}咨询。", kind="smalltalk")
        else:
            return Reply("好的。还有什么关于科普日通知的问题吗？", kind="smalltalk", context=ctx)
    topical = [t for t in TOPICAL if t in ents]
    if intent in ("thank", "greet") and topical:
        intent = FOLLOW_UP_DEFAULT[topical[0]]  # "联系方式发我一下，谢谢" is a question
    elif intent in ("thank", "greet") and typed and len(text) > 10:
        cued = cue_intent(turn, "nlu_fallback", topical)  # "麻烦告诉我文件的全称，谢谢"
        intent = cued or intent
    if intent in SMALLTALK:
        return _keep(_smalltalk(kb, intent), ctx)
    if intent in ("out_of_scope", "nlu_fallback") and typed and STATUS_QUESTION.search(text) and (
            ents or ctx.get("entities") or re.search(r"报|填|交|登记|提交", text)):
        return _status(kb, ents or dict(ctx.get("entities") or {}), today)
    bare = re.sub(r"[\W_]+", "", text)
    if typed and len(bare) <= 4 and ctx.get("entities") and not ents and intent not in SMALLTALK:
        # "哪天？" / "在哪里" right after a question: the question word decides, whatever the classifier says.
        short_cue = next((CUE_TARGET.get(name, name) for pattern, name in CUES if pattern.search(text)), None)
        if short_cue in HANDLERS:
            intent = short_cue
    if typed and intent not in SMALLTALK:
        cued = cue_intent(turn, intent, topical)
        if cued and NEXT_STEPS.search(text):
            ents, topical = {}, []  # "填报完了以后还要干嘛": every later deadline, not the registration one
        intent = cued or intent
        has_cue = any(pattern.search(text) for pattern, _ in CUES)
        if (intent in HANDLERS and not ents and not has_cue and not ctx.get("entities")
                and turn.confidence < NO_EVIDENCE_CONFIDENCE):
            # An unsure reading of a question about a detail the notice lacks ("有没有微信群"):
            # say the notice does not give it, rather than offer unrelated questions.
            details = unstated_details(text)
            return _unstated(kb, ents, details) if details else _clarify(kb, turn, ents)
    if intent == "out_of_scope" and topical and turn.confidence < 0.6:
        intent = FOLLOW_UP_DEFAULT[topical[0]]  # "疫情防控那条说了啥" names the notice's own item
    if intent == "out_of_scope":
        return _keep(refusal(kb), ctx)
    if intent in HANDLERS and turn.confidence < WEAK_CONFIDENCE and not ents and typed:
        details = unstated_details(text)
        return _unstated(kb, ents, details) if details else _clarify(kb, turn, ents)

    # Ordinals ("第三项") and dates ("10月10号呢") name the answer directly.
    if typed and (intent in HANDLERS or intent in ("follow_up", "nlu_fallback")):
        part = PART.search(text)
        if part:
            facts = [kb.facts[i] for i in PART_OVERVIEW[part.group(1)] if i in kb.facts]
            return Reply("".join(render(f, kb, today) for f in facts) + citation(kb, facts),
                         facts=[f.id for f in facts], context={"intent": intent, "entities": {}})
        ordinal = _ordinal(text, ctx)
        numbered = _ordinal_reply(kb, *ordinal, ctx, today) if ordinal else None
        if numbered:
            return numbered
        if not ents and intent in ("follow_up", "nlu_fallback", "ask_deadline", "ask_time", "ask_event_content"):
            dated = _facts_on(kb, text)
            if dated:
                facts = [kb.facts[i] for i in dated]
                body = "".join(render(f, kb, today) for f in facts)
                return Reply(body + citation(kb, facts), facts=dated, context={"intent": intent, "entities": {}})

    details = unstated_details(text) if typed else []
    if intent == "nlu_fallback" and details:
        return _unstated(kb, ents, details)
    if intent == "nlu_fallback":
        picked = _from_fallback(turn, ents, ctx)
        if not picked:
            return _clarify(kb, turn, ents)
        intent = picked
    if intent == "follow_up":
        resolved_intent = _resolve_follow_up(ents, ctx)
        if not resolved_intent:
            return refusal(kb, "我没弄清您接着想问哪方面。")
        intent = resolved_intent

    if intent == "ask_unstated" and not details and topical:
        intent = FOLLOW_UP_DEFAULT[topical[0]]  # "疫情防控有什么要求吗" is answerable
    if intent == "ask_unstated":
        return _unstated(kb, ents, details)
    if intent == "ask_registration_status" or (typed and intent in HANDLERS and STATUS_QUESTION.search(text)):
        return _status(kb, ents, today)
    if intent not in HANDLERS:
        return refusal(kb)
    if topical and not any(t in RELEVANT.get(intent, ()) for t in ents) and (
            intent not in UNIVERSAL or topical[0] in ("document", "audience")):
        intent = FOLLOW_UP_DEFAULT[topical[0]]

    event = _first(ents, "event")
    if typed and intent in ("ask_time", "ask_venue") and event in ("main_event", "congress", "kepu_day") and \
            WHERE.search(text) and WHEN.search(text):
        # "哪天、在哪" in one question: both facts of the event.
        if event == "main_event":
            return _answer(kb, "ask_event_content", ents, ctx, today)
        facts = [kb.facts[f"event.{event}.time"], kb.facts[f"event.{event}.venue"]]
        return Reply("".join(render(f, kb, today) for f in facts) + citation(kb, facts), facts=[f.id for f in facts],
                     context={"intent": "ask_time", "entities": {"event": [event]}})
    reply = _answer(kb, intent, ents, ctx, today)
    details = [d for d in details if not (d == "具体几点" and "没有写具体几点" in reply.text)]
    if details:
        reply.text = (f"抱歉，通知里没有说明{'、'.join(details)}，建议拨打{_phone(kb)}咨询。"
                      f"通知中相关的内容是：{reply.text}")
        reply.kind = "unstated"
    return reply


def _keep(reply: Reply, ctx: dict[str, Any]) -> Reply:
    """Small talk and refusals leave the conversation's topic as it was."""
    reply.context = {k: v for k, v in ctx.items() if k != "offered"}
    return reply
