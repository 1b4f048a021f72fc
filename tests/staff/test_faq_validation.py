"""Validation of knowledge/faq.yml: every broken case is reported with the entry named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from bot.knowledge.loader import KnowledgeError, load_knowledge, question_key

ROOT = Path(__file__).resolve().parents[2]

GOOD = {
    "id": "kids",
    "questions": ["小朋友能参加科普日吗", "孩子可以去科普日活动吗", "科普日适合带小孩去吗"],
    "answer": "可以，科普日面向社会公众。",
}


def write_faqs(knowledge: Path, entries: list[dict]) -> None:
    (knowledge / "faq.yml").write_text(
        yaml.safe_dump({"faqs": entries}, allow_unicode=True, sort_keys=False), encoding="utf-8")


def load(knowledge: Path):
    return load_knowledge(knowledge, data_dir=ROOT / "data")


def test_shipped_faqs_are_valid_and_cite_the_notice(kb):
    faqs = {f.id: f for f in kb.faqs}
    assert set(faqs) == {"purpose", "validity", "public"}
    assert "弘扬科学精神" in faqs["purpose"].answer and faqs["purpose"].source == "通知开头"
    assert "有效" in faqs["validity"].answer and "2021年9月24日" in faqs["validity"].answer
    assert "此件公开发布" in faqs["public"].answer
    assert all(len(f.questions) >= 3 for f in faqs.values())
    load_knowledge(ROOT / "knowledge", data_dir=ROOT / "data")  # no clash with data/nlu.yml


def test_a_good_entry_loads(knowledge_copy):
    write_faqs(knowledge_copy, [GOOD | {"source": "测试", "valid_until": "2030-01-01"}])
    faq = load(knowledge_copy).faqs[0]
    assert faq.questions == tuple(GOOD["questions"]) and faq.valid_until == dt.date(2030, 1, 1)


@pytest.mark.parametrize(("entries", "entry", "message"), [
    pytest.param([GOOD, GOOD | {"questions": ["别的问题一", "别的问题二", "别的问题三"]}], "kids", "id 重复",
                 id="duplicate-id"),
    pytest.param([GOOD | {"answer": "  "}], "kids", "answer", id="empty-answer"),
    pytest.param([{k: v for k, v in GOOD.items() if k != "answer"}], "kids", "answer", id="missing-answer"),
    pytest.param([GOOD | {"questions": GOOD["questions"][:2]}], "kids", "至少需要3个示例问题", id="two-questions"),
    pytest.param([GOOD | {"questions": "小朋友能参加吗"}], "kids", "questions 必须是列表", id="questions-not-a-list"),
    pytest.param([GOOD | {"questions": [*GOOD["questions"], ""]}], "kids", "为空", id="empty-question"),
    pytest.param([GOOD | {"questions": [*GOOD["questions"], "小朋友能参加科普日吗？"]}], "kids", "重复",
                 id="question-repeated-in-entry"),
    pytest.param([GOOD | {"questions": [*GOOD["questions"], "截止日期是什么时候"]}], "kids", "意图 ask_deadline",
                 id="question-equals-nlu-example"),
    pytest.param([GOOD, {"id": "kids2", "questions": ["孩子可以去科普日活动吗", "问题二二", "问题三三"], "answer": "x"}],
                 "kids2", "常见问题 kids", id="question-equals-other-faq"),
    pytest.param([GOOD | {"id": "Kids-1"}], "Kids-1", "id 只能", id="bad-id"),
    pytest.param([GOOD | {"valid_until": "2030-13-01"}], "kids", "valid_until", id="bad-date"),
    pytest.param([GOOD | {"title": "x"}], "kids", "未知字段", id="unknown-field"),
])
def test_broken_entries_are_named(knowledge_copy, entries, entry, message):
    write_faqs(knowledge_copy, entries)
    with pytest.raises(KnowledgeError) as err:
        load(knowledge_copy)
    assert err.value.file == "faq.yml" and err.value.entry == entry
    assert message in str(err.value)


def test_nlu_clash_is_reported_with_intent_and_file(knowledge_copy):
    write_faqs(knowledge_copy, [GOOD | {"questions": [*GOOD["questions"], "你好！"]}])
    with pytest.raises(KnowledgeError, match=r"data/nlu\.yml 中意图 greet 的示例“你好”"):
        load(knowledge_copy)


def test_without_a_data_folder_the_nlu_check_is_skipped(knowledge_copy):
    write_faqs(knowledge_copy, [GOOD | {"questions": [*GOOD["questions"], "你好"]}])
    assert load_knowledge(knowledge_copy).faqs[0].id == "kids"  # tmp copy: no data/ next to it


def test_question_key_ignores_width_script_and_punctuation():
    assert question_key("聯繫電話？") == question_key("联系电话") == question_key(" 联系 电话!")
