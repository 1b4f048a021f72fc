"""Retrieval over the knowledge base: the general fallback for details and values.

Each fact (its title, one-line form, answer and the aliases of the thing it is
about) and each staff FAQ (its questions and answer) is a document. Documents
and questions are bags of terms: character bigrams, whole numbers, Latin words,
and toneless-pinyin syllable bigrams (so a homophone typo still shares terms).
BM25 ranks the documents. A hit is trusted only when it is clearly ahead of the
next document and covers enough of the question's weight: that is how a detail
inside one item ("节水知识那个是哪个行动", "八项规定"), a value ("0955-8812012是什么")
or an unseen paraphrase of an FAQ finds its document, without a rule per wording.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import dataclass

from pypinyin import lazy_pinyin

from bot.knowledge.answers import fill
from bot.knowledge.model import Faq, KnowledgeSet

K1 = 1.2
B = 0.75
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_VALUE = re.compile(r"[A-Za-z0-9@._\-/:]+")
# Entity types whose aliases describe one fact (entity value -> fact id prefix).
ALIAS_FACT = {"joint_action": "joint_action.{}", "requirement": "requirement.{}", "content_item": "content.{}",
              "contact": "contact.{}", "deadline": "deadline.{}"}


def terms(text: str, stop: frozenset[str] = frozenset()) -> list[str]:
    """Character bigrams, values and pinyin bigrams of `text`."""
    out: list[str] = []
    lowered = text.lower()
    for value in _VALUE.findall(lowered):
        value = value.strip("._-/:")
        if len(value) >= 2:
            out.append(f"v:{value}")
            out.extend(f"v:{part}" for part in re.split(r"[@._\-/:]+", value) if len(part) >= 3 and part != value)
    for run in _CJK_RUN.findall(lowered):
        for word in stop:
            run = run.replace(word, " ")
        for chunk in run.split():
            out.extend(_chunk_terms(chunk))
    return out


@functools.lru_cache(maxsize=20000)
def _pinyin(char: str) -> str:
    return lazy_pinyin(char)[0]


def _chunk_terms(chunk: str) -> list[str]:
    if len(chunk) == 1:
        return [f"c:{chunk}"]
    grams = [f"c:{chunk[i:i + 2]}" for i in range(len(chunk) - 1)]
    syllables = [_pinyin(c) for c in chunk]
    grams += [f"p:{syllables[i]}{syllables[i + 1]}" for i in range(len(syllables) - 1)]
    return grams


@dataclass(frozen=True)
class Hit:
    """A document found for a question."""

    doc: str  # "fact:<id>" or "faq:<id>"
    score: float
    coverage: float  # share of the question's term weight that the document contains
    margin: float  # score over the runner-up's score (>= 1)

    @property
    def kind(self) -> str:
        """"fact" or "faq"."""
        return self.doc.split(":", 1)[0]

    @property
    def id(self) -> str:
        """The fact or FAQ id."""
        return self.doc.split(":", 1)[1]


class Index:
    """BM25 index of the facts and FAQs."""

    def __init__(self, documents: dict[str, str], stop: frozenset[str] = frozenset()) -> None:
        self._stop = stop
        self._docs = {key: Counter(terms(text, stop)) for key, text in documents.items()}
        self._len = {key: sum(c.values()) for key, c in self._docs.items()}
        self._avg = (sum(self._len.values()) / len(self._len)) if self._len else 1.0
        df: Counter[str] = Counter()
        for counts in self._docs.values():
            df.update(counts.keys())
        n = len(self._docs)
        self._idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def _score(self, query: set[str], key: str) -> float:
        counts, length = self._docs[key], self._len[key]
        total = 0.0
        for term in query:
            tf = counts.get(term, 0)
            if tf:
                total += self._idf[term] * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / self._avg))
        return total

    def rarest(self, text: str) -> str | None:
        """The question's term that the fewest documents have (None if no document has any)."""
        seen = [t for t in set(terms(text, self._stop)) if t in self._idf and t.startswith(("c:", "v:"))]
        return max(seen, key=lambda t: (self._idf[t], t)) if seen else None

    def distinct(self, text: str, key: str, others: list[str]) -> bool:
        """True when document `key` has a term of `text` that none of the `others` documents has."""
        query = {t for t in terms(text, self._stop) if t.startswith(("c:", "v:"))}
        mine = query & set(self._docs.get(key, {}))
        return any(all(t not in self._docs.get(o, {}) for o in others) for t in mine)

    def has(self, key: str, term: str) -> bool:
        """True when document `key` contains `term`."""
        return term in self._docs.get(key, {})

    def search(self, text: str, among: str = "") -> list[Hit]:
        """Documents sharing terms with `text`, best first (only keys starting with `among`)."""
        query = set(terms(text, self._stop))
        # A term no document has weighs like the rarest: the question asks for something unknown.
        unseen = math.log(1 + (len(self._docs) + 0.5) / 0.5)
        weight = sum(self._idf.get(t, unseen) for t in query)
        if not query or weight <= 0:
            return []
        scored = sorted(((self._score(query, k), k) for k in self._docs if k.startswith(among)), reverse=True)
        scored = [(s, k) for s, k in scored if s > 0]
        hits = []
        for i, (score, key) in enumerate(scored[:5]):
            runner = scored[i + 1][0] if i + 1 < len(scored) else 0.0
            covered = sum(self._idf[t] for t in query if t in self._docs[key])
            hits.append(Hit(key, round(score, 3), round(covered / weight, 3), round(score / runner, 3)
                            if runner else 99.0))
        return hits


def fact_documents(kb: KnowledgeSet) -> dict[str, str]:
    """The text each fact is found by: title, short form, answer, and its thing's aliases."""
    aliases: dict[str, list[str]] = {}
    for type_, pattern in ALIAS_FACT.items():
        for value, ev in kb.entities.get(type_, {}).items():
            aliases.setdefault(pattern.format(value), []).extend([ev.name, *ev.aliases])
    docs = {}
    for fact in kb.facts.values():
        parts = [fact.title, fill(fact.short, fact, kb), fill(fact.answer, fact, kb), *aliases.get(fact.id, [])]
        docs[f"fact:{fact.id}"] = " ".join(p for p in parts if p)
    return docs


def faq_documents(faqs: tuple[Faq, ...]) -> dict[str, str]:
    """The text each staff FAQ is found by: its example questions (its answer would match questions
    about whatever the answer mentions)."""
    return {f"faq:{f.id}": " ".join(f.questions) for f in faqs}


@functools.lru_cache(maxsize=8)
def _index(key: tuple[str, ...], documents: tuple[tuple[str, str], ...], stop: frozenset[str]) -> Index:
    return Index(dict(documents), stop)


_BY_KB: dict[int, tuple[KnowledgeSet, frozenset[str], Index]] = {}


def index_for(kb: KnowledgeSet, stop: frozenset[str]) -> Index:
    """The index of this knowledge set (built once per knowledge set and stop list)."""
    cached = _BY_KB.get(id(kb))
    if cached and cached[0] is kb and cached[1] == stop:
        return cached[2]
    docs = {**fact_documents(kb), **faq_documents(tuple(kb.faqs))}
    items = tuple(sorted(docs.items()))
    index = _index(tuple(k for k, _ in items), items, stop)
    if len(_BY_KB) > 8:
        _BY_KB.clear()
    _BY_KB[id(kb)] = (kb, stop, index)
    return index
