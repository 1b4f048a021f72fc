"""The mechanisms added after holdout sets C and F were studied, each on its own, with a fixed clock.

Classifier readings are given by hand (a Turn): each test shows what the mechanism decides
whatever the model says. The wordings are illustrative, not copied from any conversation set.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.dialogue import Turn, respond
from bot.dialogue.lexicon import lexicon
from bot.dialogue.several import question_parts
from bot.dialogue.understand import speller
from bot.nlu import augment

TODAY = dt.date(2026, 12, 2)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def ask(kb):
    def run(text, intent="nlu_fallback", confidence=0.2, context=None, ranking=None):
        return respond(kb, Turn(intent=intent, text=text, confidence=confidence, context=context or {},
                                ranking=ranking or []), TODAY)
    return run


# -- several questions in one message ------------------------------------------------

def test_a_run_on_with_two_questions_is_cut_between_them(kb):
    parts = question_parts("我是代表想确认下那个大会在哪个酒店开的从几号开到几号", lexicon(kb.facts), kb)
    assert len(parts) == 2 and "酒店" in parts[0] and "几号" in parts[1]


@pytest.mark.parametrize("text", ["截止日期是什么时候", "联系电话是多少", "科普日是哪天"])
def test_one_question_with_related_question_words_is_not_cut(kb, text):
    assert question_parts(text, lexicon(kb.facts), kb) == []


def test_each_question_of_a_message_is_answered(ask):
    reply = ask("领导让我登记收文，通知的文号是多少，还有是哪天发布的，活动主题是什么", "ask_doc_number", 0.9)
    assert reply.kind == "answer"
    for fact in ("卫沙全科组办发", "2021年9月8日", "百年再出发"):
        assert fact in reply.text


def test_a_detail_the_notice_lacks_is_not_split_into_answers(ask):
    reply = ask("联系电话几点到几点有人接", "ask_unstated", 0.8)
    assert reply.kind == "unstated"


# -- values and phrases of the notice ground a question ------------------------------

def test_a_date_of_the_notice_is_looked_up_whatever_else_is_said(ask):
    reply = ask("10月10日这个日子是让大家干嘛的")
    assert reply.kind == "answer" and "总结" in reply.text


def test_a_short_link_is_looked_up(ask):
    reply = ask("mtw.so/5Mzxml这个短链接打开是什么", "out_of_scope", 0.99)
    assert reply.kind == "answer" and "客户端" in reply.text


def test_an_address_given_says_whose_it_is(ask):
    reply = ask("sptqkxjsj@163.com 是哪个单位的邮箱")
    assert "科技创新促进中心" in reply.text


def test_a_name_is_looked_up_but_does_not_ground_another_question(ask):
    assert "科技创新促进中心" in ask("孙浩是哪个单位的", "ask_contact", 0.8).text
    assert ask("歌手王晶晶唱过什么歌", "out_of_scope", 0.9).kind == "refusal"


def test_a_quoted_phrase_finds_the_item_that_contains_it(ask):
    reply = ask("“航模表演”是哪个活动里的", "ask_event_content", 0.5)
    assert "主场活动" in reply.text


def test_a_long_stretch_of_the_notice_finds_its_item(ask):
    reply = ask("重视程度、数量规模、效果亮点这些是拿来干嘛的", "ask_main_activities", 0.5)
    assert "表扬" in reply.text


# -- weak anchors --------------------------------------------------------------------

@pytest.mark.parametrize("text", ["医师执业证书变更注册怎么弄", "小学一年级什么时候开始报名入学"])
def test_a_shared_topic_word_does_not_ground_another_service(ask, text):
    assert ask(text, "ask_registration", 0.5).kind == "refusal"


def test_a_shared_topic_word_asked_for_still_grounds(ask):
    reply = ask("电话老是占线打不通，联系电话到底是多少", "ask_contact", 0.6)
    assert reply.kind == "answer" and "0955-8812005" in reply.text


def test_a_compound_of_known_words_is_not_foreign(ask):
    reply = ask("防疫知识讲座有吗", "ask_joint_actions", 0.4)
    assert reply.kind == "answer" and "卫生健康" in reply.text


def test_a_date_of_the_notice_overrides_an_out_of_scope_reading(ask):
    reply = ask("9月14日到15日有什么安排", "out_of_scope", 0.4)
    assert reply.kind == "answer" and "代表大会" in reply.text


# -- readings ------------------------------------------------------------------------

def test_a_correction_keeps_the_classifiers_new_reading(ask):
    reply = ask("我是说联合行动有几个", "ask_joint_actions", 0.95, context={"intent": "ask_theme", "entities": {}})
    assert reply.kind == "answer" and "十项" in reply.text


def test_a_correction_reads_the_name_of_the_question_type(ask):
    reply = ask("不是主题，我想问活动时间", "ask_theme", 0.85, context={"intent": "ask_theme", "entities": {}})
    assert "9月13日" in reply.text


def test_small_talk_misreading_of_a_question(ask):
    reply = ask("市科协代表大会选出来的主席是谁", "bot_identity", 0.34,
                ranking=[("bot_identity", 0.34), ("ask_organizer", 0.18)])
    assert reply.kind == "unstated"


def test_a_lead_unit_asking_its_duties_gets_its_actions(ask):
    reply = ask("我是水务局的，这次分给我们啥任务", "ask_issuer", 0.6)
    assert "水利科普联合行动" in reply.text and "节水" in reply.text


def test_a_role_gets_what_the_notice_says_of_it(ask):
    reply = ask("我们是科普基地，科普日期间应该干点啥")
    assert "科普阵地联合行动" in reply.text


def test_one_joint_actions_place_is_not_given(ask):
    reply = ask("水利科普联合行动具体在哪里办", "ask_venue", 0.9)
    assert reply.kind == "unstated" and "新时代文明实践中心" in reply.text


def test_the_year_a_user_plans_in_is_no_question_about_another_year(ask):
    reply = ask("今年想在村里给农民讲种植技术，这在通知里属于哪个行动", "ask_joint_actions", 0.6)
    assert reply.kind == "answer" and "乡村振兴" in reply.text


def test_a_common_word_is_no_typo(kb):
    assert speller(kb, lexicon(kb.facts)).correct("那个通知上的邮箱") == "那个通知上的邮箱"


# -- generated training variants -------------------------------------------------------

@pytest.fixture(scope="module")
def words():
    return augment.load_variants(ROOT / "knowledge" / "variants.yml")


def test_variants_are_deterministic_and_new(words):
    taken = {augment.key("截止日期是什么时候")}
    first = augment.example_variants([("ask_deadline", "截止日期是什么时候")] * 1, words, frozenset(), set(taken))
    second = augment.example_variants([("ask_deadline", "截止日期是什么时候")] * 1, words, frozenset(), set(taken))
    assert first == second
    assert all(augment.key(v) not in taken for v in first.get("ask_deadline", []))


def test_a_homophone_variant_keeps_the_sound(words):
    from pypinyin import lazy_pinyin

    typo = augment.homophone("联系方式是什么", frozenset({"什么"}))
    assert typo and typo != "联系方式是什么" and lazy_pinyin(typo) == lazy_pinyin("联系方式是什么")


def test_out_of_scope_questions_use_question_words(words):
    questions = augment.oos_questions(words, set())
    assert len(questions) >= len(words.oos_things) * 2
    assert any("在哪" in q for q in questions) and any("什么时候" in q for q in questions)


def test_small_talk_gets_only_phone_style_variants(words):
    made = augment.example_variants([("thank", "谢谢你的解答")], words, frozenset(), set())
    assert all("老师" not in v and "你好" not in v for v in made.get("thank", []))


def test_a_broken_word_list_is_refused(tmp_path):
    bad = tmp_path / "variants.yml"
    bad.write_text("preambles: []\n", encoding="utf-8")
    with pytest.raises(augment.VariantsError):
        augment.load_variants(bad)


# -- round 3: other years, foreign verbs -------------------------------------------------

def test_another_years_question_shows_2021s_answer_labelled_as_2021(ask):
    reply = ask("今年报名截止日期是多少", "ask_deadline", 0.9)
    assert reply.kind == "unstated" and "没有2026年的安排" in reply.text
    assert "2021年9月24日" in reply.text and "仅供参考" in reply.text


@pytest.mark.parametrize("text", ["怎么申请高新技术企业认定", "沙坡头区第十一小学怎么招生", "中卫市人民医院几点上班"])
def test_an_errand_the_notice_never_speaks_of_is_refused(ask, text):
    assert ask(text, "out_of_scope", 1.0).kind == "refusal"


def test_a_foreign_verb_mid_conversation_is_left_to_the_context(ask):
    first = ask("主要内容第六项是什么", "ask_main_content", 0.9)
    reply = ask("纲要覆盖哪些年", "out_of_scope", 1.0, context=first.context)
    assert reply.kind == "answer" and "2035" in reply.text


def test_the_question_after_who_asks_is_answered_on_its_own(ask):
    reply = ask("我们是科普基地，活动信息在哪报，截止哪天", "ask_deadline", 0.8)
    assert "2021年9月24日" in reply.text and "通知发给四类对象" not in reply.text


def test_who_asks_stays_the_subject_of_a_role_question(ask):
    reply = ask("我们是水务局的，这次分给我们啥任务", "follow_up", 0.3)
    assert "水利科普联合行动" in reply.text


@pytest.mark.parametrize(("text", "must"), [("我们是社区居委会，能组织点啥", "乡村振兴"),
                                            ("我们是一所中学，可以开展啥", "青少年科技教育")])
def test_general_role_questions_get_what_the_notice_asks_of_the_role(ask, text, must):
    assert must in ask(text).text


def test_a_long_run_on_gets_the_item_retrieval_finds_besides_its_reading(ask):
    text = "你好我是在外地的一个记者最近在做中卫科协的相关报道想问一下这次中卫市科协第一次代表大会上要审议通过的那个办法草案全称到底叫什么"
    reply = ask(text, "ask_notice_overview", 0.6)
    assert reply.kind == "answer" and "中国科协章程" in reply.text


@pytest.mark.parametrize("text", ["考研报名截止是哪天", "马拉松怎么报名", "石嘴山的科普活动什么时候"])
def test_a_shared_topic_word_owned_by_another_thing_or_place_is_refused(ask, text):
    assert ask(text, "ask_deadline", 0.9).kind == "refusal"


def test_the_notices_own_phone_is_still_answered_after_a_complaint(ask):
    reply = ask("电话老是占线打不通，联系电话到底是多少", "ask_contact", 0.9)
    assert reply.kind == "answer" and "0955-8812005" in reply.text


def test_a_short_follow_up_naming_a_word_of_the_remembered_item_stays_with_it(ask):
    first = ask("乡村振兴行动谁牵头", "ask_organizer", 0.9)
    reply = ask("有竞赛吗", "ask_main_content", 0.4, context=first.context)
    assert "乡村振兴科普联合行动" in reply.text and "网络竞赛" in reply.text
