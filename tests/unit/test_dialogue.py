"""Replies for every question type, follow-ups, and time-aware phrasing with a fixed clock."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from bot.dialogue import HANDLERS, Turn, respond
from bot.knowledge.answers import fmt_date, status
from bot.knowledge.gazetteer import Gazetteer

LATE = dt.date(2026, 11, 29)


@pytest.fixture(scope="module")
def gazetteer(kb):
    return Gazetteer.from_knowledge(kb)


@pytest.fixture()
def ask(kb, gazetteer):
    """ask(intent, text, context=None, today=LATE) -> Reply, with entities found as the NLU would."""
    def run(intent, text, context=None, today=LATE, ranking=None):
        entities = [(m.type, m.value) for m in gazetteer.find(text)]
        return respond(kb, Turn(intent=intent, text=text, entities=entities, context=context or {},
                                ranking=ranking or []), today)
    return run


@pytest.mark.parametrize(
    ("intent", "text", "must"),
    [
        ("ask_notice_overview", "这个通知讲啥", ["关于举办2021年中卫沙坡头区全国科普日活动的通知"]),
        ("ask_doc_number", "文号", ["卫沙全科组办发〔2021〕5号", "640502030/2021-00042"]),
        ("ask_issuer", "谁发的", ["沙坡头区科学技术局", "中卫市沙坡头区全民科学素质工作领导小组办公室"]),
        ("ask_issue_date", "啥时候发的", ["2021年9月8日"]),
        ("ask_basis", "依据什么文件", ["《关于举办2021年宁夏全国科普日活动的通知》", "宁科协发普字〔2021〕41号"]),
        ("ask_audience", "发给哪些单位", ["企业科协", "科技型中小企业", "科普基地"]),
        ("ask_attachment", "附件", ["2021年沙坡头区全国科普日重点活动计划表"]),
        ("ask_theme", "主题是什么", ["百年再出发，迈向高水平科技自立自强"]),
        ("ask_time", "科普日什么时候", ["2021年9月13日至17日", "2021年9月17日下午", "已结束"]),
        ("ask_time", "代表大会哪天开", ["2021年9月14日至15日", "星期二、三"]),
        ("ask_venue", "主场活动在哪", ["中卫市沙坡头区第十一小学"]),
        ("ask_venue", "代表大会在哪个酒店", ["中卫市黄河金岸花园大酒店"]),
        ("ask_venue", "地点", ["第十一小学", "黄河金岸花园大酒店"]),
        ("ask_event_content", "主场活动有啥节目", ["航模表演", "科普大篷车进校园", "碳达峰", "第六届青少年科学节"]),
        ("ask_event_content", "云上科普日是啥", ["打卡", "直播", "短视频"]),
        ("ask_organizer", "主场活动谁负责", ["市科协", "沙坡头区科协"]),
        ("ask_organizer", "水利那个行动谁牵头", ["沙坡头区水务局"]),
        ("ask_organizer", "科技局牵头哪些行动", ["科技资源科普化联合行动", "企业科普联合行动"]),
        ("ask_organizer", "卫健局负责什么", ["卫生健康科普联合行动"]),
        ("ask_participants", "代表大会谁参加", ["28名科协代表"]),
        ("ask_agenda", "会上干什么", ["工作报告", "〈中国科协章程〉", "第一届领导机构", "指导讲话"]),
        ("ask_main_content", "主要内容", ["回望百年征程", "宣传科学素质纲要"]),
        ("ask_main_content", "智惠行动是啥", ["智惠行动", "科技志愿服务"]),
        ("ask_main_content", "网络知识竞赛", ["《全民科学素质行动规划纲要（2021-2035年）》", "网络知识竞赛"]),
        ("ask_main_activities", "有哪些活动", ["主场活动", "十项", "云上科普日"]),
        ("ask_joint_actions", "联合行动有哪些", ["碳达峰碳中和科普联合行动", "科普阵地联合行动", "沙坡头区卫健"]),
        ("ask_joint_actions", "应急科普联合行动做什么", ["沙坡头区应急管理局", "自救互救"]),
        ("ask_requirements", "有什么要求", ["疫情防控", "精心组织"]),
        ("ask_requirements", "能不能铺张", ["严禁铺张浪费", "八项规定"]),
        ("ask_registration", "怎么报名", ["www.kepuri.cn", "科普中国客户端", "http://mtw.so/5Mzxml", "提前"]),
        ("ask_app_download", "app怎么下", ["http://mtw.so/5Mzxml"]),
        ("ask_deadline", "截止日期是什么时候", ["2021年9月24日", "现已截止", "2021年10月10日", "2021年10月22日"]),
        ("ask_deadline", "总结材料什么时候交", ["2021年10月10日", "全国科普日网站"]),
        ("ask_deadline", "照片视频什么时候补充", ["2021年10月22日", "新闻报道链接"]),
        ("ask_commendation", "怎么评优", ["重视程度", "数量规模", "效果亮点", "宣传报道"]),
        ("ask_contact", "联系方式", ["沙坡头区科技创新促进中心", "孙浩", "王晶晶", "0955-8812005",
                                    "15109558601", "17752356599", "0955-8812012", "sptqkxjsj@163.com"]),
        ("ask_contact", "传真", ["0955-8812012"]),
        ("ask_contact", "邮箱", ["sptqkxjsj@163.com"]),
        ("ask_contact", "电话", ["0955-8812005", "15109558601"]),
    ],
)
def test_answers(ask, intent, text, must):
    reply = ask(intent, text)
    assert reply.kind == "answer"
    for item in must:
        assert item in reply.text, (item, reply.text)
    assert "依据：" in reply.text


def test_every_handler_answers_without_entities(kb):
    for intent in HANDLERS:
        reply = respond(kb, Turn(intent=intent, text="问题"), LATE)
        assert reply.kind == "answer" and reply.text and "依据：" in reply.text, intent


def test_every_single_fact_answer_is_short(ask):
    for intent, text in [("ask_contact", "传真"), ("ask_venue", "主场活动在哪"), ("ask_theme", "主题"),
                         ("ask_deadline", "总结材料截止"), ("ask_issue_date", "发布日期")]:
        body = ask(intent, text).text.split("（依据：")[0]
        assert len(body) <= 120, body


def test_dates_always_have_the_year(kb):
    for intent in HANDLERS:
        text = respond(kb, Turn(intent=intent, text="x"), LATE).text
        for match in re.finditer(r"(\d{1,2})月(\d{1,2})日", text):
            assert text[max(0, match.start() - 5):match.start()].endswith("年") or "至" in text[match.start() - 1:match.start()], text


def test_main_event_hour_is_never_invented(ask):
    reply = ask("ask_time", "主场活动几点开始")
    assert "下午" in reply.text and "没有写具体几点" in reply.text and "0955-8812005" in reply.text
    assert not re.search(r"\d{1,2}[:：点]\d{0,2}", reply.text.replace("0955-8812005", ""))


def test_mobiles_are_not_paired_with_persons(ask):
    reply = ask("ask_contact", "孙浩的手机号")
    assert "没有注明" in reply.text


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (dt.date(2021, 9, 1), "尚未开始"),
        (dt.date(2021, 9, 20), "距截止还有4天"),
        (dt.date(2021, 9, 24), "最后一天"),
        (dt.date(2021, 9, 25), "现已截止"),
    ],
)
def test_deadline_status_follows_the_clock(kb, today, expected):
    assert expected in status(kb.facts["deadline.register"], today)


@pytest.mark.parametrize(
    ("today", "expected"),
    [(dt.date(2021, 9, 10), "距开始还有3天"), (dt.date(2021, 9, 15), "正在进行"), (dt.date(2021, 9, 18), "已结束")],
)
def test_period_status_follows_the_clock(kb, today, expected):
    assert expected in status(kb.facts["event.kepu_day.time"], today)


@pytest.mark.parametrize(
    ("today", "expected", "absent"),
    [(dt.date(2021, 9, 20), "还有4天", "已截止"), (dt.date(2022, 1, 1), "已于2021年9月24日截止", "还有"),
     (dt.date(2021, 9, 1), "还没开始", "已截止")],
)
def test_registration_status(ask, today, expected, absent):
    reply = ask("ask_registration_status", "报名现在还开放吗", today=today)
    assert expected in reply.text and absent not in reply.text


def test_fmt_date():
    assert fmt_date(dt.date(2021, 9, 8)) == "2021年9月8日"


@pytest.mark.parametrize(
    ("first", "second", "must", "must_not"),
    [
        (("ask_deadline", "截止日期是什么时候"), ("follow_up", "提交总结材料呢？"), ["2021年10月10日"], ["2021年9月24日"]),
        (("ask_time", "主场活动什么时候"), ("ask_venue", "在哪里？"), ["第十一小学"], ["黄河金岸"]),
        (("ask_contact", "有传真吗"), ("follow_up", "手机号呢？"), ["15109558601", "17752356599"], ["0955-8812012"]),
        (("ask_organizer", "教育局牵头哪个行动"), ("follow_up", "卫健呢？"), ["卫生健康科普联合行动"], ["青少年"]),
        (("ask_time", "主场活动什么时候"), ("follow_up", "代表大会呢"), ["2021年9月14日至15日"], ["第十一小学"]),
        (("ask_organizer", "碳达峰行动谁牵头"), ("follow_up", "水利呢"), ["沙坡头区水务局"], ["生态环境"]),
        (("ask_venue", "代表大会在哪开"), ("ask_time", "什么时候"), ["2021年9月14日至15日"], []),
        (("ask_deadline", "截止日期"), ("ask_venue", "在哪交"), ["www.kepuri.cn"], []),
    ],
)
def test_follow_ups(ask, first, second, must, must_not):
    reply = ask(*first)
    reply = ask(*second, context=reply.context)
    for item in must:
        assert item in reply.text, (item, reply.text)
    for item in must_not:
        assert item not in reply.text, (item, reply.text)


def test_out_of_scope_is_refused_politely(ask):
    reply = ask("out_of_scope", "社保怎么交")
    assert reply.kind == "refusal" and reply.text.startswith("抱歉") and "0955-8812005" in reply.text
    assert "9月24日" not in reply.text


@pytest.mark.parametrize("text", ["😀😀😀", "。。。", "???"])
def test_noise_is_refused(ask, text):
    assert ask("ask_deadline", text).kind == "refusal"


def test_other_years_say_the_notice_covers_2021(ask):
    reply = ask("ask_time", "2023年科普日什么时候")
    assert reply.kind == "unstated" and "2023" in reply.text and "2021" in reply.text


def test_low_confidence_offers_buttons(ask):
    reply = ask("nlu_fallback", "那个东西怎么弄",
                ranking=[("nlu_fallback", 0.45), ("ask_deadline", 0.3), ("ask_time", 0.25), ("greet", 0.1)])
    assert reply.kind == "clarify" and "您是想问" in reply.text
    assert [b[1].split("{")[0] for b in reply.buttons] == ["/ask_deadline", "/ask_time"]
    follow = ask("affirm", "是的", context=reply.context)
    assert "2021年9月24日" in follow.text


def test_low_confidence_out_of_scope_is_refused(ask):
    reply = ask("nlu_fallback", "今天吃什么", ranking=[("nlu_fallback", 0.45), ("out_of_scope", 0.4), ("ask_time", 0.2)])
    assert reply.kind == "refusal"


@pytest.mark.parametrize(("intent", "must"), [
    ("greet", "您好"), ("thank", "不客气"), ("goodbye", "再见"), ("bot_identity", "智能助手"),
    ("bot_capabilities", "截止日期"), ("request_human", "0955-8812005"),
])
def test_smalltalk(ask, intent, must):
    assert must in ask(intent, "x").text


def test_greeting_offers_hot_questions(ask):
    buttons = ask("greet", "你好").buttons
    assert buttons and buttons[0][1].startswith("/ask_")


def test_smalltalk_keeps_the_topic(ask):
    first = ask("ask_time", "主场活动什么时候")
    thanks = ask("thank", "谢谢", context=first.context)
    again = ask("ask_venue", "在哪", context=thanks.context)
    assert "第十一小学" in again.text


@pytest.mark.parametrize(
    ("intent", "confidence", "text", "must"),
    [
        # Question words win over an unsure classifier.
        ("ask_organizer", 0.6, "开代表大会那两天是周几", ["星期二"]),
        ("nlu_fallback", 0.3, "主场活动在哪", ["第十一小学"]),
        ("out_of_scope", 0.5, "主题是啥来着", ["百年再出发"]),
        # A sure classifier is not overruled.
        ("ask_issue_date", 0.95, "通知哪天发的", ["2021年9月8日"]),
    ],
)
def test_question_words(kb, gazetteer, intent, confidence, text, must):
    entities = [(m.type, m.value) for m in gazetteer.find(text)]
    reply = respond(kb, Turn(intent=intent, text=text, confidence=confidence, entities=entities,
                             ranking=[(intent, confidence)]), LATE)
    for item in must:
        assert item in reply.text, reply.text


@pytest.mark.parametrize(
    ("text", "must"),
    [("第三个联合行动是什么", "科技资源科普化联合行动"), ("第五条要求", "疫情防控")],
)
def test_ordinals(ask, text, must):
    assert must in ask("ask_joint_actions", text).text


def test_ordinal_after_a_list(ask):
    agenda = ask("ask_agenda", "议程有哪些")
    assert "第一届领导机构" in ask("follow_up", "第三项是啥", context=agenda.context).text


def test_dates_name_their_facts(ask):
    assert "总结材料" in ask("follow_up", "10月10号呢").text


@pytest.mark.parametrize("text", ["帮我订一间黄河金岸花园大酒店的房", "你直接帮我把活动信息填报了吧"])
def test_errands_are_refused(ask, text):
    reply = ask("ask_registration", text)
    assert reply.kind == "refusal" and "不能替您办理" in reply.text


def test_asking_for_information_is_not_an_errand(ask):
    assert ask("ask_registration", "帮我看看怎么报名").kind == "answer"


@pytest.mark.parametrize(("text", "detail"), [("第十一小学有停车位吗", "停车"), ("王晶晶是什么职务", "职务")])
def test_details_the_notice_lacks(ask, text, detail):
    intent = "ask_venue" if "小学" in text else "ask_contact"
    reply = ask(intent, text)
    assert reply.kind == "unstated" and detail in reply.text and "0955-8812005" in reply.text


@pytest.mark.parametrize("intent", ["out_of_scope", "nlu_fallback"])
@pytest.mark.parametrize("text", ["现在开完了吧", "已经开过了吧", "结束没"])
def test_status_follow_up_the_classifier_does_not_understand(ask, intent, text):
    # After "代表大会哪天开", a status question is about the congress, whatever the classifier says.
    context = {"intent": "ask_time", "entities": {"event": ["congress"]}}
    reply = ask(intent, text, context=context, today=dt.date(2021, 9, 20))
    assert "已结束" in reply.text and "9月14日" in reply.text


def test_status_question_without_context_is_still_refused_when_out_of_scope(ask):
    assert ask("out_of_scope", "现在开完了吧").text.startswith("抱歉")


def test_unsure_reading_of_an_unstated_detail_says_the_notice_lacks_it(ask):
    # Measured: "有没有微信群或者QQ群" was read as ask_contact at 0.38.
    reply = ask("ask_contact", "有没有微信群或者QQ群", ranking=[("ask_contact", 0.38), ("thank", 0.14)])
    assert "没有说明" in reply.text and "0955-8812005" in reply.text and "您是想问" not in reply.text


@pytest.mark.parametrize(
    ("intent", "text", "context", "must"),
    [
        ("ask_organizer", "中卫市科协开的是第几次代表大会", None, "第一次代表大会"),
        ("out_of_scope", "中卫青少年科学节那年是第几届", None, "第六届青少年科学节"),
        ("follow_up", "那是第几次", {"intent": "ask_venue", "entities": {"event": ["congress"]}}, "第一次代表大会"),
    ],
)
def test_the_number_of_an_event(ask, intent, text, context, must):
    reply = ask(intent, text, context=context)
    assert must in reply.text and "依据：通知第三部分" in reply.text


def test_the_number_of_the_leadership_is_not_the_number_of_the_congress(ask):
    reply = ask("ask_agenda", "代表大会选出的是第几届领导机构")
    assert "第一届领导机构" in reply.text


def test_the_national_congress_in_the_basis_is_not_the_city_congress(ask):
    reply = ask("ask_basis", "通知里说贯彻中国科协第几次全国代表大会的讲话精神")
    assert "第一次代表大会" not in reply.text
