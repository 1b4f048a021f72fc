"""The holdout set is honest: none of its user turns is a training example.

A holdout turn leaks when, after normalisation (bot.text.normalize, then case,
punctuation and spaces ignored -- bot.knowledge.loader.question_key), it equals
an NLU example of data/**/*.yml (data/generated/ included) or an FAQ question of
knowledge/faq.yml, or is one edit (insertion, deletion, substitution) away from
one. An empty holdout folder fails too: without a holdout there is no honest figure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import evaluation as ev
from bot.knowledge.loader import question_key

ROOT = Path(__file__).resolve().parents[2]


def holdout_turns() -> list[tuple[str, str]]:
    return [(f"{c.file} {c.id}#{i}", t.user) for c in ev.load_set("holdout") for i, t in enumerate(c.turns)]


def test_no_holdout_turn_is_a_training_example() -> None:
    turns = holdout_turns()
    assert turns, "tests/conversations/holdout/ has no conversations: without a holdout set no figure is honest"
    examples = ev.training_examples(ROOT)
    assert len(examples) > 500, "training examples not found (data/, knowledge/faq.yml)"
    leaks = ev.find_leaks(turns, examples)
    listing = "\n".join(f"  {leak.where}: “{leak.text}” {'=' if leak.distance == 0 else '≈'} "
                        f"“{leak.example}” ({leak.source})" for leak in leaks)
    assert not leaks, (f"{len(leaks)} holdout turn(s) equal a training example or are one edit away "
                       f"(=: identical after normalisation, ≈: one edit):\n{listing}")


def test_the_checker_catches_an_exact_and_a_one_edit_duplicate() -> None:
    example = "截止日期是什么时候"
    examples = {question_key(example): (example, "data/nlu.yml (ask_deadline)")}
    turns = [
        ("exact", "截止日期是什麼時候？"),      # traditional characters and punctuation: same question
        ("spaces", " 截止 日期是什么时候 !!"),
        ("substitution", "截止日期是什么时间"),
        ("insertion", "截止日期是什么时候呀"),
        ("deletion", "截止日期什么时候"),
        ("two edits", "截止日期是啥时候"),
        ("unrelated", "社保怎么交"),
    ]
    found = {leak.where: leak.distance for leak in ev.find_leaks(turns, examples)}
    assert found == {"exact": 0, "spaces": 0, "substitution": 1, "insertion": 1, "deletion": 1}


def test_training_examples_include_data_and_faq_questions() -> None:
    examples = ev.training_examples(ROOT)
    sources = {source.split(" ")[0] for _, source in examples.values()}
    assert "data/nlu.yml" in sources and "knowledge/faq.yml" in sources


@pytest.mark.parametrize(
    ("a", "b", "close"),
    [("", "", True), ("", "a", True), ("ab", "ab", True), ("abc", "abd", True), ("abc", "ac", True),
     ("abc", "abcd", True), ("xabc", "abc", True), ("abc", "bca", False), ("ab", "ba", False),
     ("abc", "a", False), ("abcd", "abdc", False)],
)
def test_within_one_edit(a: str, b: str, close: bool) -> None:
    assert ev.within_one_edit(a, b) is close
    assert ev.within_one_edit(b, a) is close
