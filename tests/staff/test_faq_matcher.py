"""FAQs answer before a retrain: bigram matching when the model is unsure."""

from __future__ import annotations

import dataclasses

import pytest

from actions.actions import ActionAnswer
from bot.faq import FaqMatcher, bigrams, matcher_for, model_faqs, unsure
from bot.knowledge import store
from bot.knowledge.model import Faq

PHOTOS = Faq("photos", ("科普日活动现场可以拍照吗", "活动时能不能录像", "参加科普日活动可以拍视频吗",
                        "在活动现场拍照留念可以吗", "科普日现场允许摄影吗", "活动当天让不让摄像",
                        "能在科普日活动上拍照片分享吗"),
             "可以在活动现场拍照和录像，请不要影响活动秩序。")
BACKGROUND = ("科普日活动在哪里举行", "主场活动在哪", "截止日期是什么时候", "联系电话多少", "活动照片什么时候交",
              "今天天气怎么样", "社保怎么交")


def test_bigrams_ignore_punctuation_spaces_and_script() -> None:
    assert bigrams("拍 照！") == {"拍照"} == bigrams("拍照?")
    assert bigrams("錄像") == {"录像"}
    assert bigrams("吗") == {"吗"} and bigrams("？！") == set()


@pytest.mark.parametrize("text", ["活动现场能拍照片吗", "在科普日现场录像可以吗", "現場可以攝影嗎"])
def test_unseen_paraphrases_match(text: str) -> None:
    found = FaqMatcher([PHOTOS], BACKGROUND).match(text)
    assert found is not None and found.faq_id == "photos" and 0.5 <= found.score <= 1.0


@pytest.mark.parametrize("text", [
    "主场活动在哪里举行",          # the notice's own question, shares only common bigrams
    "活动现场有停车位吗",          # shares 活动/现场 but nothing only the FAQ has
    "社保怎么交", "", "？？？", "拍",
])
def test_other_questions_do_not_match(text: str) -> None:
    assert FaqMatcher([PHOTOS], BACKGROUND).match(text) is None


def test_a_bigram_other_intents_use_is_not_enough() -> None:
    # "照片" is in the background ("活动照片什么时候交"): alone it cannot pick the FAQ.
    assert FaqMatcher([PHOTOS], BACKGROUND).match("照片") is None


def test_shipped_faqs_and_training_data(kb) -> None:
    matcher = matcher_for(kb.faqs)
    assert matcher.match("这个文件对外公开吗").faq_id == "public"
    for text in ("截止日期是什么时候", "主场活动在哪", "残疾证在哪办", "中卫最近有什么招聘信息"):
        assert matcher.match(text) is None, text


def test_unsure() -> None:
    assert unsure("nlu_fallback", 0.3) and unsure("out_of_scope", 1.0) and unsure("faq", 0.9)
    assert unsure("ask_theme", 0.39) and not unsure("ask_theme", 0.9)


@pytest.fixture()
def with_photos(kb, db_url, monkeypatch):
    store.build_database(dataclasses.replace(kb, faqs=[*kb.faqs, PHOTOS]), db_url)
    monkeypatch.setattr(store, "_shared", store.KnowledgeRepository(db_url))
    monkeypatch.setenv("KEPU_TODAY", "2021-09-20")


async def test_action_answers_a_new_faq_the_model_does_not_know(with_photos, make_tracker, dispatcher, domain):
    # What the live model said about this paraphrase before any retrain (measured): ask_theme 0.39.
    tracker = make_tracker("活动现场能拍照片吗", "ask_theme", ranking=[("ask_theme", 0.39), ("ask_event_content", 0.21)],
                           confidence=0.39)
    await ActionAnswer().run(dispatcher, tracker, domain)
    assert dispatcher.messages[0]["text"] == PHOTOS.answer


def _trained_on(domain, *faq_ids):
    """The domain Rasa would send with a model trained on these FAQs."""
    responses = {k: v for k, v in (domain.get("responses") or {}).items() if not k.startswith("utter_faq/")}
    responses.update({f"utter_faq/{i}": [{"text": "（见知识库）"}] for i in faq_ids})
    return {**domain, "responses": responses}


async def test_a_confident_reading_wins_over_a_match_of_a_trained_faq(with_photos, make_tracker, dispatcher, domain):
    tracker = make_tracker("活动现场能拍照片吗", "ask_theme", confidence=0.95)
    await ActionAnswer().run(dispatcher, tracker, _trained_on(domain, "purpose", "validity", "public", "photos"))
    assert dispatcher.messages[0]["text"] != PHOTOS.answer


async def test_a_new_faq_wins_over_a_confident_reading(with_photos, make_tracker, dispatcher, domain):
    # The model was trained before the FAQ existed, so it cannot pick it: the match decides.
    # (Measured: after more training data, the live model read this as ask_unstated, confidently.)
    tracker = make_tracker("拍照录像在现场允许不", "ask_unstated", confidence=0.9)
    await ActionAnswer().run(dispatcher, tracker, _trained_on(domain, "purpose", "validity", "public"))
    assert dispatcher.messages[0]["text"] == PHOTOS.answer


async def test_a_staff_faq_outranks_the_notice_does_not_say(with_photos, make_tracker, dispatcher, domain):
    # Whatever the domain says the model knows: an FAQ exists to fill a gap of the notice.
    tracker = make_tracker("拍照录像在现场允许不", "ask_unstated", confidence=0.9)
    await ActionAnswer().run(dispatcher, tracker, {k: v for k, v in domain.items() if k != "responses"})
    assert dispatcher.messages[0]["text"] == PHOTOS.answer


def test_model_faqs():
    assert model_faqs({"responses": {"utter_faq/a": [], "utter_greet": [], "utter_faq/b": []}}) == {"a", "b"}
    assert model_faqs({"responses": {}}) == set() and model_faqs({}) is None and model_faqs(None) is None


async def test_out_of_scope_stays_a_refusal(with_photos, make_tracker, dispatcher, domain):
    tracker = make_tracker("活动现场有停车位吗", "out_of_scope", confidence=1.0)
    await ActionAnswer().run(dispatcher, tracker, domain)
    assert dispatcher.messages[0]["text"] != PHOTOS.answer
