"""The mechanisms added after holdout set H was studied, each on its own, with a fixed clock.

Classifier readings are given by hand (a Turn): each test shows what the mechanism decides
whatever the model says. The wordings are illustrative, not copied from any conversation set.
"""

from __future__ import annotations

import datetime as dt

import pytest

from bot.dialogue import Turn, respond
from bot.dialogue.lexicon import lexicon
from bot.dialogue.understand import speller

TODAY = dt.date(2026, 12, 2)


@pytest.fixture()
def ask(kb):
    def run(text, intent="nlu_fallback", confidence=0.2, context=None):
        return respond(kb, Turn(intent=intent, text=text, confidence=confidence, context=context or {}), TODAY)
    return run


# -- who asks: what their name names -------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("我们这边是科协代表，到时候要干点啥", "黄河金岸花园大酒店"),  # an event's participant: the event
    ("咱们是第十一小学，需要做哪些准备", "主场"),  # the host of an event
    ("我们是区科协的，要负责什么", "主场活动的责任单位"),  # a unit: what it leads and is responsible for
    ("我们是一家农民专业合作社，能参加啥", "乡村振兴"),  # a foreign body of a kind the notice names
    ("我们是一家养殖合作社，能参加啥", "十项科普联合行动"),  # nothing named: the actions and how to join
])
def test_what_the_asker_is_to_do_comes_from_what_their_name_names(ask, text, expected):
    reply = ask(text, "bot_capabilities", 0.7)
    assert reply.kind == "answer" and expected in reply.text, reply.text


def test_a_foreign_asker_does_not_make_the_question_out_of_scope(ask):
    reply = ask("我们是一个工厂，开放车间给市民参观行吗", "out_of_scope", 0.4)
    assert reply.kind == "answer" and "企业科普" in reply.text


# -- grounding: only a foreign thing makes a weakly named question foreign ----------------

def test_a_foreign_time_or_verb_phrase_does_not_refuse(ask):
    assert ask("礼拜二礼拜三开的是什么会", "ask_time", 0.4).kind == "answer"
    assert ask("座机老是没人接，有手机号吗", "ask_contact", 0.9).kind == "answer"


def test_a_named_thing_that_only_qualifies_a_foreign_one_is_refused(ask):
    reply = ask("中卫市科协的青少年机器人大赛什么时候报名", "ask_deadline", 0.8)
    assert reply.kind == "refusal" and "9月24日" not in reply.text


def test_a_long_message_asking_a_question_word_of_a_named_thing_is_answered(ask):
    text = "你好我是新来的科协代表上次的材料找不到了麻烦查一下第一次代表大会是在哪个酒店开我怕走错了地方耽误事情"
    reply = ask(text, "ask_venue", 0.5)
    assert reply.kind == "answer" and "黄河金岸花园大酒店" in reply.text


def test_a_long_message_with_a_favour_still_gets_its_questions_answered(ask):
    text = "我年纪大了看不清手机让外孙帮我打字问一下这次科普日的主题是什么我想抄下来给老伙计们看看"
    reply = ask(text, "ask_theme", 0.5)
    assert reply.kind == "answer" and "百年再出发" in reply.text


# -- a stretch of one item's text ----------------------------------------------------------

def test_a_question_quoting_part_of_a_list_gets_the_item_with_the_rest(ask):
    reply = ask("带动树立科学生产健康生活还有什么理念", "ask_joint_actions", 0.5)
    assert "协调发展" in reply.text


def test_a_stretch_of_a_requirement_without_a_reading_finds_it(ask):
    reply = ask("彰显科普服务的价值是哪几方面", "nlu_fallback", 0.1)
    assert reply.kind == "answer" and "生态文明的价值" in reply.text


def test_a_named_thing_alone_is_no_stretch(ask):
    reply = ask("应急科普联合行动具体是哪天", "ask_time", 0.8)
    assert reply.kind == "unstated"


# -- the speller ----------------------------------------------------------------------------

def test_the_speller_keeps_grammatical_words_and_mends_words_jieba_only_guessed(kb):
    spell = speller(kb, lexicon(kb.facts))
    assert spell.correct("我们是科协代表") == "我们是科协代表"
    assert "科学节" in spell.correct("青少年科学结是第几届")


# -- a short follow-up inside the remembered item --------------------------------------------

def _then(ask, first, second):
    before = ask(first, "nlu_fallback", 0.1)
    return ask(second, "nlu_fallback", 0.1, context=before.context)


def test_a_short_follow_up_is_answered_from_the_remembered_items_text(ask):
    reply = _then(ask, "代表大会的议程是什么", "最后谁作讲话")
    assert reply.kind == "answer" and "自治区科协" in reply.text


def test_a_follow_up_asking_what_the_item_does_gets_its_description(ask):
    reply = _then(ask, "水利科普联合行动谁牵头", "具体干啥")
    assert reply.kind == "answer" and "节水" in reply.text


def test_a_follow_up_naming_another_thing_is_left_to_the_question_type(ask):
    reply = _then(ask, "代表大会的议程是什么", "那主场活动在哪")
    assert "第十一小学" in reply.text


def test_a_named_asker_with_a_list_question_gets_their_part(ask):
    reply = ask("我们是一所中学，科普日适合开展哪些活动", "ask_main_activities", 0.8)
    assert "青少年科技教育" in reply.text


def test_a_unit_asking_what_it_leads_gets_the_actions_in_full(ask):
    reply = ask("我们是水务局，这次要牵头什么", "ask_organizer", 0.8)
    assert "水资源保护" in reply.text


def test_which_unit_after_the_contacts_is_their_unit(ask):
    reply = _then(ask, "通知上的联系人是哪两位", "他们在什么单位")
    assert reply.kind == "answer" and "科技创新促进中心" in reply.text


def test_which_department_after_a_joint_action_is_its_lead(ask):
    reply = _then(ask, "应急科普联合行动主要做什么", "这个归哪个部门")
    assert reply.kind == "answer" and "应急管理局" in reply.text


def test_a_word_of_one_of_the_named_things_facts_picks_that_fact(ask):
    reply = ask("主场活动是和什么节结合办的", "ask_time", 0.6)
    assert "科学节" in reply.text


# -- grounding without a named thing ----------------------------------------------------------

@pytest.mark.parametrize("text", ["市图书馆的开放时间是几点到几点", "中卫市第二中学什么时候开家长会"])
def test_a_question_about_things_of_its_own_with_nothing_of_the_notice_is_refused(ask, text):
    reply = ask(text, "ask_time", 0.8)
    assert reply.kind == "refusal"


def test_a_bare_question_word_is_left_to_the_reading(ask):
    assert ask("几号开始呀", "ask_time", 0.9).kind == "answer"


def test_a_foreign_word_and_one_character_of_its_name_own_a_shared_topic_word(ask):
    assert ask("读书节活动的主题是什么", "ask_theme", 0.9).kind == "refusal"
