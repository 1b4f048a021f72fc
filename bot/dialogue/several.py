"""Several questions in one message: "文号和索引号是什么，还有是哪个单位发布的".

People ask two or three things at once, most of all in long voice-input messages
without punctuation. The question words (knowledge/cues.yml) and the names of
question types (knowledge/questions.yml keywords) mark where each question is;
two marks ask different questions when neither's question type is in the other's
family ("几号" and "在哪" do, "截止" and "什么时候" do not). The message is cut
between such marks, at the last separator (punctuation, 另外, 还有 ...) between
them when there is one, and each part is answered on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.dialogue.lexicon import Lexicon
from bot.knowledge.model import KnowledgeSet

# Where one question ends and the next begins, when it is written.
SEPARATOR = re.compile(r"[，,。？?！!；;、\s]|另外|还有|以及|顺便|再问|此外|同时|并且|然后|又是|一起")
MIN_PART = 3


@dataclass(frozen=True)
class Mark:
    """A question word or question-type name found in the message."""

    start: int
    end: int
    target: str
    family: frozenset[str]


def _marks(text: str, lex: Lexicon, kb: KnowledgeSet) -> list[Mark]:
    found = [Mark(m.start(), m.end(), c.target, frozenset(c.family) | {c.target})
             for c in lex.cues for m in c.pattern.finditer(text)]
    lowered = text.lower()
    for q in kb.questions:
        for k in q.keywords:
            at = lowered.find(k.lower()) if len(k) >= 2 else -1
            if at >= 0:
                found.append(Mark(at, at + len(k), q.intent, frozenset({q.intent})))
    found.sort(key=lambda m: (m.start, -m.end))
    kept: list[Mark] = []
    for mark in found:  # overlapping marks: the first, longest one
        if not kept or mark.start >= kept[-1].end:
            kept.append(mark)
    return kept


def _related(a: list[Mark], b: Mark) -> bool:
    return any(b.target in m.family or m.target in b.family for m in a)


def _groups(marks: list[Mark]) -> list[list[Mark]]:
    groups: list[list[Mark]] = []
    for mark in marks:
        if groups and _related(groups[-1], mark):
            groups[-1].append(mark)
        else:
            groups.append([mark])
    return groups


def _cut(text: str, after: int, before: int) -> int:
    """Where to cut between two questions: after the last separator between them, else right
    before the second question's mark ("在哪个酒店开的从|几号开到几号")."""
    cuts = [m.end() for m in SEPARATOR.finditer(text, after, before)]
    return cuts[-1] if cuts else before


def question_parts(text: str, lex: Lexicon, kb: KnowledgeSet) -> list[str]:
    """The message's questions, in order, when it asks more than one; [] otherwise."""
    groups = _groups(_marks(text, lex, kb))
    if len(groups) < 2:
        return []
    cuts = [0] + [_cut(text, g[-1].end, nxt[0].start) for g, nxt in zip(groups, groups[1:], strict=False)] + [len(text)]
    parts = [text[a:b].strip("，,。？?！!；; ") for a, b in zip(cuts, cuts[1:], strict=False)]
    parts = [p for p in parts if len(p) >= MIN_PART]
    return parts if len(parts) >= 2 else []
