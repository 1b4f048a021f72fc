"""Entity finding over the knowledge base's aliases, with exact offsets."""

import pytest

from bot.knowledge.gazetteer import Gazetteer


@pytest.fixture(scope="module")
def gazetteer(kb):
    return Gazetteer.from_knowledge(kb)


def test_longest_match_wins(gazetteer):
    found = gazetteer.find("科协代表大会在哪开")
    assert [(m.type, m.value, m.start, m.end) for m in found] == [("event", "congress", 0, 6)]


def test_offsets_in_mixed_text(gazetteer):
    found = gazetteer.find("请问app上总结材料deadline")
    assert [(m.type, m.value, m.text, m.start, m.end) for m in found] == [
        ("platform", "app", "app", 2, 5), ("deadline", "summary", "总结材料", 6, 10)]


def test_one_alias_two_types(gazetteer):
    found = {(m.type, m.value) for m in gazetteer.find("乡村振兴")}
    assert found == {("joint_action", "rural"), ("content_item", "rural_revival")}


def test_case_insensitive_ascii(gazetteer):
    assert [(m.type, m.value) for m in gazetteer.find("EMAIL多少")] == [("contact", "email")]


def test_several_entities(gazetteer):
    found = [(m.type, m.value) for m in gazetteer.find("教育局和卫健局分别牵头什么")]
    assert found == [("unit", "education"), ("unit", "health_bureau")]


def test_round_trip(gazetteer):
    again = Gazetteer.from_dict(gazetteer.to_dict())
    assert again.find("传真和手机号") == gazetteer.find("传真和手机号")


def test_nothing_found(gazetteer):
    assert gazetteer.find("今天天气怎么样") == []
