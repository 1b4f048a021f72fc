"""What each question type answers: from (question type, named things) to facts.

One handler per question type (HANDLERS), the entity types each is about
(RELEVANT), and `answer`, which fills missing things from the conversation's
context and phrases the facts with their status and citation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from bot.dialogue.lexicon import lexicon
from bot.dialogue.phrasing import say
from bot.dialogue.types import Entities, Found, Reply
from bot.knowledge.answers import citation, fill, joint_action_facts, lead_name, render, short
from bot.knowledge.model import KnowledgeSet


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
                     lead_in=say(kb, "joint_action_time", names=names), unstated=True)
    return Found(
        ["event.kepu_day.time"], {"event": ["kepu_day"]},
        hint=say(kb, "time_hint", main=short(kb.facts["event.main_event.time"], kb),
                 congress=short(kb.facts["event.congress.time"], kb)),
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
        names = "、".join(kb.facts[f"joint_action.{v}"].data["name"] for v in ents["joint_action"])
        return Found(["joint.overview"], {"joint_action": ents["joint_action"]}, cite_only=True,
                     lead_in=say(kb, "joint_action_venue", names=names), unstated=True)
    if "platform" in ents:  # "在哪个网站填报": where registering happens
        return _registration(kb, ents)
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
        lines = [say(kb, "action_lead", name=f.data["name"], lead=lead_name(kb, f)) for f in facts]
        return Found([f.id for f in facts], {"joint_action": ents["joint_action"]}, lead_in="".join(lines))
    if "unit" in ents:
        lines, ids = [], []
        for unit in ents["unit"]:
            led = [f for f in joint_action_facts(kb) if f.data.get("lead") == unit]
            name = kb.entity_name("unit", unit)
            if led:
                names = "、".join(f.data["name"] for f in led)
                count = f"{len(led)}项" if len(led) > 1 else ""
                lines.append(say(kb, "unit_leads", name=name, count=count, names=names))
                ids += [f.id for f in led]
            if unit in ("kexie", "city_kexie"):
                lines.append(say(kb, "unit_main_event", organizer=short(kb.facts["event.main_event.organizer"], kb)))
                ids.append("event.main_event.organizer")
            if not led and unit not in ("kexie", "city_kexie"):
                lines.append(say(kb, "unit_leads_nothing", name=name))
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
        lines = [say(kb, "action_detail", name=f.data["name"], lead=lead_name(kb, f), answer=fill(f.answer, f, kb))
                 for f in facts]
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
        found = _time(kb, ents)  # "主场活动到哪天" asks for the event's dates
        found.asked = "ask_time"
        return found
    if "deadline" in ents:
        return Found(_ids("deadline", ents["deadline"]), {"deadline": ents["deadline"]})
    return Found(
        ["deadline.register"], {"deadline": ["register"]},
        others=["deadline.summary", "deadline.complete_info"],
    )


def _contact(kb: KnowledgeSet, ents: Entities) -> Found:
    kinds = ents.get("contact")
    if not kinds:
        return Found(["contact.all"], {})
    hint = ""
    if kinds == ["phone"]:
        hint = _others_hint(kb, ["contact.mobile"], say(kb, "other_mobiles"))
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
    "ask_venue": ("event", "deadline", "joint_action", "platform"),
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
    "ask_issuer": ("unit",),  # "发布机构是科技局吗": a unit named as the issuer
}

# Question types whose answer holds for every part of the notice (one contact,
# one registration channel): an entity of another type never changes them.
UNIVERSAL = {"ask_contact", "ask_registration", "ask_app_download", "ask_deadline",
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


# Entity types a question type takes from the context when the question names none.
# A deadline question never inherits the event of the last answer: "科普日活动是什么时间"
# then "截止日期是什么时候" asks for the deadline, not the activity period again.
CONTEXT_FILL: dict[str, tuple[str, ...]] = {**RELEVANT, "ask_deadline": ("deadline",)}


def _state(kb: KnowledgeSet, fact_id: str, today: dt.date) -> str:
    """"已截止" / "还有N天" for a dated fact, from today's date."""
    fact = kb.facts[fact_id]
    if not fact.date:
        return ""
    days = (fact.date - today).days
    key = "state_closed" if days < 0 else "state_today" if days == 0 else "state_open"
    return say(kb, key, days=days)


def others_hint(kb: KnowledgeSet, ids: list[str], today: dt.date) -> str:
    """The related deadlines, each with where today stands."""
    parts = [f"{short(kb.facts[i], kb)}（{_state(kb, i, today)}）" for i in ids if i in kb.facts]
    return f"{say(kb, 'other_deadlines')}{'；'.join(parts)}。" if parts else ""


def _fill_from_context(intent: str, ents: Entities, ctx: dict[str, Any]) -> Entities:
    relevant = CONTEXT_FILL.get(intent, ())
    remembered: Entities = ctx.get("entities") or {}
    ents = dict(ents)
    if relevant and not any(t in ents for t in RELEVANT.get(intent, ())):
        for type_ in relevant:
            if type_ in remembered:
                ents[type_] = list(remembered[type_])
                break
    return ents


def answer(kb: KnowledgeSet, intent: str, ents: Entities, ctx: dict[str, Any], today: dt.date) -> Reply:
    """Answer a question type, filling missing entities from the context."""
    found = HANDLERS[intent](kb, _fill_from_context(intent, ents, ctx))
    facts = [kb.facts[i] for i in found.facts if i in kb.facts]
    body = "" if found.cite_only else "".join(render(f, kb, today) for f in facts)
    hint = found.hint + (others_hint(kb, found.others, today) if found.others else "")
    text = f"{found.lead_in}{body}{hint}{citation(kb, facts)}"
    context: dict[str, Any] = {"intent": found.asked or intent, "entities": found.about}
    lists = [lexicon().list_of_fact[f.id] for f in facts if f.id in lexicon().list_of_fact]
    if lists:
        context["list"] = lists[0]
    actions = [f.id.split(".", 1)[1] for f in facts if f.id.startswith("joint_action.")]
    if len(actions) > 1:  # "科技局牵头哪几个联合行动" -> "第二个具体干啥" counts in this list
        context.update({"list": "joint", "items": actions})
    return Reply(text, kind="unstated" if found.unstated else "answer", facts=[f.id for f in facts],
                 context=context)


def facts_reply(kb: KnowledgeSet, fact_ids: list[str], today: dt.date, context: dict[str, Any],
                kind: str = "answer") -> Reply:
    """The given facts, rendered with status and cited."""
    facts = [kb.facts[i] for i in fact_ids if i in kb.facts]
    body = "".join(_named_render(f, kb, today) for f in facts)
    return Reply(body + citation(kb, facts), facts=[f.id for f in facts], context=context, kind=kind)


def _named_render(fact, kb: KnowledgeSet, today: dt.date) -> str:
    """A fact found by its detail, with the item it belongs to named first (a joint action's
    text does not say which action it is, nor who leads it)."""
    if fact.id.startswith("joint_action.") and fact.data.get("name"):
        return say(kb, "action_detail", name=fact.data["name"], lead=lead_name(kb, fact), answer=render(fact, kb, today))
    return render(fact, kb, today)


def first(ents: Entities, type_: str) -> str | None:
    """The first value of an entity type, if any."""
    return _first(ents, type_)
