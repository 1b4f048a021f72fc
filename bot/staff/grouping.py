"""Unanswered questions grouped by meaning, not by exact text.

Each distinct question (already in bot.staff.reports.question_form: normalised by bot.text, so
traditional characters and full-width forms are folded) becomes a bag of the terms the knowledge
base's own retrieval uses (bot.dialogue.retrieval.terms: character bigrams, values and
toneless-pinyin bigrams, so a homophone typo from a pinyin keyboard shares the pinyin of the word it
stands for) plus its single characters (午饭 / 午餐, 证书 / 证明 share one), all taken from the
question without the generic question words and particles of cues.yml ("什么", "怎么", "吗").
Terms are weighted by how rare they are (TF-IDF) among the questions being grouped together with
the example questions of the training data (KEPU_DATA_DIR, default data/): words every question
about the notice uses ("活动", "参加") weigh little even when only a handful of questions are
grouped, and a word only one topic's questions share ("停车") weighs much. Questions are
taken most asked first; each joins the group whose centroid is most similar (cosine) when the
similarity reaches THRESHOLD, else starts a group of its own. Comparing with the centroid rather
than with the nearest single question keeps one shared word from chaining two topics together.

THRESHOLD was measured on the labelled set tests/data/grouping_labelled.yml: the highest coverage
of its `tune` groups at a purity of at least 0.95; its `check` groups (other topics) only measure
it. `python -m tests.bench.grouping_threshold` prints the sweep.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.dialogue.lexicon import lexicon
from bot.dialogue.retrieval import terms
from bot.knowledge.loader import nlu_examples
from bot.knowledge.store import ROOT

# Cosine similarity to a group's centroid at or above which a question joins it (measured, see above).
THRESHOLD = 0.20
EXAMPLES = 3  # typed wordings shown per group
CHARACTER_WEIGHT = 1.0  # a single character counts as much as a bigram (measured with the threshold)
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


@dataclass(frozen=True)
class Asked:
    """One wording of an unanswered question: its grouped form, what was typed, how often, when."""

    question: str  # bot.staff.reports.question_form of the text
    typed: str  # as the user typed it
    count: int
    first: float  # Unix timestamps
    last: float


@dataclass
class Group:
    """Questions that mean the same, the most asked (then the first asked) first."""

    questions: list[str]  # distinct grouped forms, most asked first
    count: int
    first: float
    last: float
    examples: list[str] = field(default_factory=list)  # up to EXAMPLES typed wordings, most frequent (then first) first

    @property
    def question(self) -> str:
        """The group's most asked form."""
        return self.questions[0]


def stop_words() -> frozenset[str]:
    """The generic question words and particles (cues.yml): how something is asked, not what about."""
    return lexicon().generic_words


@functools.lru_cache(maxsize=4)
def _longest_first(stop: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(stop, key=lambda w: (-len(w), w)))


@functools.lru_cache(maxsize=50_000)
def features(question: str, stop: frozenset[str]) -> Counter[str]:
    """The question's terms: retrieval's terms without `stop` words, and its single characters."""
    bag: Counter[str] = Counter()
    content = question
    for word in _longest_first(stop):
        content = content.replace(word, " ")
    for run in _CJK_RUN.findall(content):
        bag.update(terms(run))
        for char in run:
            bag[f"u:{char}"] += CHARACTER_WEIGHT
    bag.update(t for t in terms(content) if t.startswith("v:"))
    return bag


@dataclass(frozen=True)
class Background:
    """How many of a set of questions have each term (document frequencies), and how many there are."""

    df: Counter[str]
    size: int


def background_of(texts: Iterable[str], stop: frozenset[str] | None = None) -> Background:
    """The document frequencies of `texts`."""
    stop = stop_words() if stop is None else stop
    df: Counter[str] = Counter()
    size = 0
    for text in texts:
        df.update(features(text, stop).keys())
        size += 1
    return Background(df, size)


def _data_dir() -> Path:
    return Path(os.environ.get("KEPU_DATA_DIR") or ROOT / "data")


def _stamp(folder: Path) -> float:
    try:
        return max((p.stat().st_mtime for p in folder.rglob("*.yml")), default=0.0)
    except OSError:
        return 0.0


@functools.lru_cache(maxsize=4)
def _training_background(folder: str, stamp: float, stop: frozenset[str]) -> Background:
    return background_of((text for _, text, _ in nlu_examples(folder).values()), stop)


def training_background() -> Background:
    """The example questions of the training data (KEPU_DATA_DIR), re-read when a file changes."""
    folder = _data_dir()
    return _training_background(str(folder), _stamp(folder), stop_words())


def _vectors(bags: Sequence[Counter[str]], background: Background) -> list[dict[str, float]]:
    """Unit-length TF-IDF vectors of the bags, IDF over these bags and the background's."""
    df: Counter[str] = Counter()
    for bag in bags:
        df.update(bag.keys())
    for term in df:
        df[term] += background.df.get(term, 0)
    n = len(bags) + background.size
    idf = {t: math.log((n + 1) / (d + 0.5)) for t, d in df.items()}
    vectors = []
    for bag in bags:
        weights = {t: c * idf[t] for t, c in bag.items() if idf[t] > 0}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vectors.append({t: w / norm for t, w in weights.items()})
    return vectors


class _Centroids:
    """The groups' summed vectors, with an index from term to the groups that have it."""

    def __init__(self) -> None:
        self.sums: list[dict[str, float]] = []
        self.squares: list[float] = []
        self.postings: dict[str, list[int]] = defaultdict(list)

    def nearest(self, vector: dict[str, float]) -> tuple[int, float]:
        """(group, cosine) of the most similar centroid; (-1, 0.0) when none shares a term."""
        dots: dict[int, float] = defaultdict(float)
        for term, weight in vector.items():
            for number in self.postings.get(term, ()):
                dots[number] += weight * self.sums[number][term]
        best, similarity = -1, 0.0
        for number, dot in dots.items():
            cosine = dot / math.sqrt(self.squares[number])
            if cosine > similarity or (cosine == similarity and 0 <= number < best):
                best, similarity = number, cosine
        return best, similarity

    def add(self, vector: dict[str, float], number: int = -1) -> int:
        """Add `vector` to group `number` (a new group when -1); the group's number."""
        if number < 0:
            number = len(self.sums)
            self.sums.append({})
            self.squares.append(0.0)
        total, squares = self.sums[number], self.squares[number]
        for term, weight in vector.items():
            old = total.get(term)
            if old is None:
                self.postings[term].append(number)
                old = 0.0
            total[term] = old + weight
            squares += total[term] ** 2 - old ** 2
        self.squares[number] = squares
        return number


def _clusters(vectors: list[dict[str, float]], threshold: float) -> list[int]:
    """The group of each vector (vectors in priority order)."""
    centroids = _Centroids()
    numbers = []
    for vector in vectors:
        best, similarity = centroids.nearest(vector)
        numbers.append(centroids.add(vector, best if similarity >= threshold else -1))
    return numbers


def cluster(questions: Sequence[str], threshold: float = THRESHOLD,
            background: Background | None = None) -> list[int]:
    """The group number of each question, in the given (priority) order; equal numbers mean the same.
    `background`: default the training data's questions."""
    background = training_background() if background is None else background
    stop = stop_words()
    # Wordings that differ only in question words, particles or punctuation ("请问社保怎么交啊")
    # are one: they are compared, and counted in the IDF, once.
    keys = [tuple(sorted(features(q, stop).items())) for q in questions]
    unique = list(dict.fromkeys(keys))
    numbers = dict(zip(unique, _clusters(_vectors([Counter(dict(k)) for k in unique], background), threshold),
                       strict=True))
    return [numbers[k] for k in keys]


def group(asked: Iterable[Asked], threshold: float = THRESHOLD, background: Background | None = None) -> list[Group]:
    """The wordings grouped by meaning, the most asked group first (then the most recent)."""
    forms: dict[str, list[Asked]] = defaultdict(list)
    for row in asked:
        if row.question:
            forms[row.question].append(row)
    # The most asked first; among equals, the one asked first.
    ranked = sorted(forms, key=lambda q: (-sum(r.count for r in forms[q]), min(r.first for r in forms[q]), q))
    numbers = cluster(ranked, threshold, background)
    members: dict[int, list[str]] = defaultdict(list)
    for question, number in zip(ranked, numbers, strict=True):
        members[number].append(question)
    groups = [_group([row for q in questions for row in forms[q]], questions) for questions in members.values()]
    return sorted(groups, key=lambda g: (-g.count, -g.last, g.question))


def _group(rows: list[Asked], questions: list[str]) -> Group:
    typed: Counter[str] = Counter()
    since: dict[str, float] = {}
    for row in rows:
        text = row.typed.strip()
        typed[text] += row.count
        since[text] = min(since.get(text, row.first), row.first)
    examples = [text for text in sorted(typed, key=lambda t: (-typed[t], since[t], t)) if text][:EXAMPLES]
    return Group(questions=questions, count=sum(r.count for r in rows), first=min(r.first for r in rows),
                 last=max(r.last for r in rows), examples=examples)


def purity_and_coverage(labels: Sequence[str], clusters: Sequence[int]) -> tuple[float, float]:
    """Purity (share of items in the majority label of their group) and coverage (share of items in
    the group holding most of their label) of a grouping against true labels."""
    if not labels:
        return 1.0, 1.0
    pairs = Counter(zip(clusters, labels, strict=True))
    by_cluster: dict[int, int] = defaultdict(int)
    by_label: dict[str, int] = defaultdict(int)
    for (number, label), n in pairs.items():
        by_cluster[number] = max(by_cluster[number], n)
        by_label[label] = max(by_label[label], n)
    return sum(by_cluster.values()) / len(labels), sum(by_label.values()) / len(labels)
