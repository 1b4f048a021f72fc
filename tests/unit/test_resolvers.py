"""The dialogue's general mechanisms, each on its own, with a fixed clock.

Classifier readings are given by hand (a Turn), so each test shows what the
mechanism decides whatever the model says.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from bot.dialogue import Turn, respond
from bot.dialogue.lexicon import LexiconError, lexicon, parse_lexicon, parse_replies, replies
from bot.dialogue.retrieval import index_for, terms
from bot.dialogue.understand import gloss_english, sounds_alike, speller, understand

TODAY = dt.date(2026, 12, 2)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def ask(kb):
    """ask(text, intent="nlu_fallback", confidence=0.2, context=None, today=TODAY) -> Reply."""
    def run(text, intent="nlu_fallback", confidence=0.2, context=None, today=TODAY, ranking=None):
        return respond(kb, Turn(intent=intent, text=text, confidence=confidence, context=context or {},
                                ranking=ranking or []), today)
    return run


# -- spelling by pinyin ---------------------------------------------------------

@pytest.mark.parametrize(("typed", "meant"), [
    ("练系方式", "联系方式"), ("报明截止", "报名截止"), ("主提是啥", "主题是啥"),
    ("科学素质纲腰是哪一年", "科学素质纲要是哪一年"), ("通知的附建是什么", "通知的附件是什么"),
])
def test_homophone_typos_are_corrected(kb, typed, meant):
    assert speller(kb, lexicon(kb.facts)).correct(typed) == meant


@pytest.mark.parametrize("text", ["我是办公室的档案员", "中卫市科协开的是第几次代表大会", "传真号"])
def test_real_words_and_question_words_are_left_alone(kb, text):
    assert speller(kb, lexicon(kb.facts)).correct(text) == text


def test_sounds_alike():
    assert sounds_alike("练", "联") and sounds_alike("报", "抱") and not sounds_alike("景", "区")


def test_a_typo_gets_the_answer(ask):
    reply = ask("练系方式发我一下")
    assert reply.kind == "answer" and "0955-8812005" in reply.text


# -- grounding -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "intent"), [
    ("北京在哪里", "ask_venue"), ("春节是什么时候", "ask_time"), ("中卫到银川的火车几点", "ask_time"),
])
def test_a_question_word_alone_does_not_make_a_question_in_scope(ask, text, intent):
    reply = ask(text, intent=intent, confidence=0.95)
    assert reply.kind == "refusal" and "第十一小学" not in reply.text and "9月13日" not in reply.text


def test_the_notice_own_words_keep_a_question_in_scope(ask):
    reply = ask("主场活动在哪里", intent="ask_venue", confidence=0.95)
    assert reply.kind == "answer" and "第十一小学" in reply.text


# -- time ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "year"), [("明年的科普日什么时候", "2027"), ("今年科普日在哪办", "2026"),
                                            ("去年的科普日主题是啥", "2025")])
def test_relative_years_are_read_against_today(ask, text, year):
    reply = ask(text, intent="ask_time", confidence=0.9)
    assert reply.kind == "unstated" and year in reply.text and "2021" in reply.text
    # 2021's dates are not given as this year's: only after the notice says it has no such year, labelled.
    assert f"没有{year}年的安排" in reply.text
    assert "9月13日" not in reply.text or reply.text.index("仅供参考") < reply.text.index("9月13日")


def test_a_year_equal_to_the_notice_year_is_answered(ask):
    reply = ask("2021年的科普日是什么时候", intent="ask_time", confidence=0.9)
    assert reply.kind == "answer" and "9月13日" in reply.text


@pytest.mark.parametrize(("today", "must", "must_not"), [
    (dt.date(2021, 9, 20), ["还有20天", "还有32天"], ["已截止（"]),
    (dt.date(2026, 12, 2), ["已截止"], ["天）"]),
])
def test_the_later_deadlines_say_where_today_stands(ask, today, must, must_not):
    reply = ask("截止日期是什么时候", intent="ask_deadline", confidence=0.95, today=today)
    assert all(m in reply.text for m in must) and not any(m in reply.text for m in must_not), reply.text


# -- corrections and switches ------------------------------------------------------

def test_a_new_attribute_overrides_the_remembered_one(ask):
    first = ask("科普日活动是什么时间", intent="ask_time", confidence=0.95)
    second = ask("截止日期是什么时候", intent="ask_deadline", confidence=0.95, context=first.context)
    assert "9月24日" in second.text and "9月13日" not in second.text


def test_a_correction_keeps_only_what_was_meant(ask):
    context = {"intent": "ask_deadline", "entities": {"deadline": ["register"]}}
    reply = ask("不是报名，我说的是总结材料", intent="deny", confidence=0.9, context=context)
    assert "10月10日" in reply.text and "9月24日" not in reply.text


def test_a_correction_naming_only_the_attribute_keeps_the_topic(ask):
    context = {"intent": "ask_agenda", "entities": {"event": ["congress"]}}
    reply = ask("不对，我是问什么时候开", intent="deny", confidence=0.9, context=context)
    assert "9月14日" in reply.text


# -- details, values, roles ------------------------------------------------------------

def test_a_detail_inside_one_item_gets_that_item(ask):
    reply = ask("“网上课堂”是哪个联合行动提到的？谁牵头？", intent="ask_organizer", confidence=0.98)
    assert "科普阵地联合行动" in reply.text and "沙坡头区科协" in reply.text


@pytest.mark.parametrize(("text", "must"), [
    ("0955-8812012是什么号码", "传真"), ("sptqkxjsj@163.com是啥", "邮箱"), ("卫沙全科组办发〔2021〕5号是什么文件", "文号"),
    ("mtw.so/5Mzxml 这个链接是干什么的", "科普中国客户端"),
])
def test_reverse_look_up_of_a_value(ask, text, must):
    reply = ask(text, intent="out_of_scope", confidence=0.9)
    assert reply.kind == "answer" and must in reply.text


@pytest.mark.parametrize(("text", "must"), [
    ("我们是科普基地，这次要做些什么", "kepuri"), ("一般群众可以去看吗", "第十一小学"),
    ("我们是自来水公司，可以配合哪个行动？", "水利科普联合行动"),
])
def test_who_should_do_what(ask, text, must):
    reply = ask(text, intent="nlu_fallback", confidence=0.2)
    assert reply.kind == "answer" and must in reply.text


@pytest.mark.parametrize(("text", "detail"), [("云上科普日的直播在哪个APP看", "观看平台"),
                                              ("代表大会的28名代表都有谁", "人员名单")])
def test_a_detail_the_notice_lacks_about_a_named_thing(ask, text, detail):
    reply = ask(text, intent="ask_event_content", confidence=0.9)
    assert reply.kind == "unstated" and detail in reply.text


def test_an_english_question(ask):
    reply = ask("Where is the main event held?", intent="out_of_scope", confidence=0.9)
    assert reply.kind == "answer" and "第十一小学" in reply.text


def test_english_glossing_leaves_chinese_alone(kb):
    assert gloss_english("主场活动在哪", lexicon(kb.facts)) == ("主场活动在哪", False)


def test_an_acknowledgement_is_small_talk(ask):
    assert ask("好的明白了", intent="out_of_scope", confidence=0.9).kind == "smalltalk"


def test_a_long_message_is_read_from_its_question(ask):
    text = ("你好我是在外地上大学的学生放假回中卫了老师布置了社会实践报告我想写写家乡的科普活动"
            "想知道那年全国科普日在沙坡头区一共搞了几天是从哪天到哪天")
    reply = ask(text, intent="ask_notice_overview", confidence=0.9)
    assert "9月13日" in reply.text and "17日" in reply.text


# -- retrieval ---------------------------------------------------------------------

def test_terms_carry_pinyin_and_values():
    found = terms("电话0955-8812005")
    assert "v:0955-8812005" in found and "c:电话" in found and "p:dianhua" in found


def test_retrieval_finds_the_item_of_a_phrase(kb):
    hits = index_for(kb, frozenset()).search("八项规定")
    assert hits and hits[0].id == "requirement.frugal"


# -- the words as data -----------------------------------------------------------------

def test_understanding_is_computed_once_per_turn(kb):
    frame = understand(kb, Turn(intent="ask_time", text="明年主场活动在哪里"), TODAY)
    assert frame.years == {2027} and frame.entities == {"event": ["main_event"]} and "venue" in frame.cues


def test_a_broken_cue_file_is_named(kb):
    doc = yaml.safe_load((ROOT / "knowledge" / "cues.yml").read_text(encoding="utf-8"))
    doc["question_words"][1]["target"] = "ask_nothing"
    with pytest.raises(LexiconError, match="ask_nothing"):
        parse_lexicon(doc, "cues.yml", kb.facts)
    doc = yaml.safe_load((ROOT / "knowledge" / "cues.yml").read_text(encoding="utf-8"))
    doc["roles"][0]["facts"] = ["no.such.fact"]
    with pytest.raises(LexiconError, match="no.such.fact"):
        parse_lexicon(doc, "cues.yml", kb.facts)


def test_a_reply_template_with_an_unknown_placeholder_is_named():
    doc = yaml.safe_load((ROOT / "knowledge" / "replies.yml").read_text(encoding="utf-8"))
    doc["replies"]["goodbye"] = "再见，{nobody}"
    with pytest.raises(LexiconError, match="nobody"):
        parse_replies(doc)


def test_every_fixed_sentence_comes_from_the_templates(ask):
    assert ask("", intent="").text == replies()["empty"]


# -- staff FAQs generalise -------------------------------------------------------------

NEW_FAQS = (
    ("parking", ("主场活动现场有停车位吗", "开车去十一小学能停车吗", "活动当天车停哪里"), "第十一小学周边可以停车。"),
    ("lunch", ("代表大会期间管午饭吗", "参会代表中午在哪吃饭", "开会那两天有工作餐吗"), "代表大会期间提供工作餐。"),
    ("volunteer", ("我想报名当科普志愿者怎么报", "怎么成为科普日的志愿者", "志愿者在哪里报名"), "志愿者请联系区科协。"),
)


@pytest.fixture()
def with_new_faqs(kb):
    import dataclasses

    from bot.knowledge.model import Faq

    faqs = [Faq(i, q, a) for i, q, a in NEW_FAQS]
    return dataclasses.replace(kb, faqs=[*kb.faqs, *faqs])


@pytest.mark.parametrize(("faq", "text", "intent", "confidence"), [
    # The readings a model trained before the FAQ existed gives: "the notice does not say", out of scope,
    # or an unsure notice question. None of these wordings is an example question of the FAQ.
    ("parking", "去主场活动的话车可以停在哪", "ask_venue", 0.9),
    ("parking", "开私家车过去有地方停吗", "out_of_scope", 0.9),
    ("lunch", "开代表大会的时候中午管饭不", "ask_unstated", 0.9),
    ("lunch", "参加大会午餐怎么解决", "ask_participants", 0.5),
    ("volunteer", "科普志愿者怎么申请", "ask_main_content", 0.5),
    ("volunteer", "我能当志愿者吗", "nlu_fallback", 0.3),
])
def test_a_new_staff_faq_answers_unseen_wordings(with_new_faqs, faq, text, intent, confidence):
    reply = respond(with_new_faqs, Turn(intent=intent, text=text, confidence=confidence,
                                        known_faqs={"purpose", "validity", "public"}), TODAY)
    assert reply.text == dict((i, a) for i, _, a in NEW_FAQS)[faq]


@pytest.mark.parametrize(("text", "intent"), [("代表大会在哪开", "ask_venue"), ("主场活动在哪里", "ask_venue"),
                                              ("参会代表有多少人", "ask_participants")])
def test_a_staff_faq_does_not_take_the_notice_questions(with_new_faqs, text, intent):
    reply = respond(with_new_faqs, Turn(intent=intent, text=text, confidence=0.9,
                                        known_faqs={"purpose", "validity", "public"}), TODAY)
    assert not any(a in reply.text for _, _, a in NEW_FAQS)
