"""A suggested answer for a group of unanswered questions, from the knowledge base's own retrieval.

The dialogue finds a detail inside one item of the notice with BM25 over the facts
(bot.dialogue.retrieval, the same index and stop words as bot.dialogue.resolvers). Here the
group's wordings are searched the same way; the best fact is suggested when it scores high enough
and covers enough of a wording's terms, with the runner-up too when it scores almost as well (for
"主场活动几点开始" the organiser and the time of the main event score alike). Otherwise the suggestion is "通知未涉及". Staff read and edit it before saving an FAQ:
nothing here is published by itself.

SUGGEST_SCORE and SUGGEST_COVERAGE were measured on the labelled groups of
tests/data/grouping_labelled.yml (`suggest`: the fact a staff member would start from, or none);
`python -m tests.bench.grouping_threshold` prints how often the suggestion is the labelled one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.dialogue.lexicon import lexicon
from bot.dialogue.retrieval import Hit, index_for
from bot.knowledge.answers import citation, fill
from bot.knowledge.model import KnowledgeSet

SUGGEST_SCORE = 12.0
SUGGEST_COVERAGE = 0.25
RUNNER_UP = 0.9  # a second fact scoring this share of the best is suggested with it
WORDINGS = 3  # the group's most asked wordings that are searched
NOT_COVERED = "通知未涉及"


@dataclass(frozen=True)
class Suggestion:
    """The facts found for a group, their text and source; no facts: the notice does not cover it."""

    facts: list[str] = field(default_factory=list)
    answer: str = ""
    source: str = ""

    @property
    def covered(self) -> bool:
        """Whether the notice has something to say about the group's question."""
        return bool(self.facts)


def _retrieval_stop() -> frozenset[str]:
    """The stop words the dialogue's retrieval is built with (bot.dialogue.resolvers._search)."""
    return frozenset(w for w in lexicon().generic_words if len(w) >= 2)


def _best(kb: KnowledgeSet, wordings: Sequence[str]) -> tuple[Hit, list[Hit]] | None:
    """The most convincing trusted hit over the wordings, with the other hits of its search."""
    index = index_for(kb, _retrieval_stop())
    found: tuple[Hit, list[Hit]] | None = None
    for wording in list(wordings)[:WORDINGS]:
        hits = index.search(wording, "fact:")
        if not hits:
            continue
        best = hits[0]
        if best.score < SUGGEST_SCORE or best.coverage < SUGGEST_COVERAGE:
            continue
        if found is None or best.score > found[0].score:
            found = (best, hits[1:])
    return found


def suggest(kb: KnowledgeSet, wordings: Sequence[str]) -> Suggestion:
    """The suggested answer for a group whose wordings are `wordings` (most asked first)."""
    found = _best(kb, wordings)
    if found is None:
        return Suggestion()
    best, others = found
    ids = [best.id] + [h.id for h in others[:1] if h.score >= RUNNER_UP * best.score]
    facts = [kb.facts[i] for i in ids if i in kb.facts]
    if not facts:
        return Suggestion()
    answer = "\n".join(fill(f.answer, f, kb) for f in facts)
    source = citation(kb, facts).removeprefix("（依据：").removesuffix("）")
    return Suggestion(facts=[f.id for f in facts], answer=answer, source=source)
