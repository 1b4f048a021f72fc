"""The conversation suites (dev and holdout), run against a live server over REST.

    python -m bot.evaluation [--set dev|holdout|all] [--url http://localhost:5005] [--start] [--strict]

tests/conversations/dev/ holds the development conversations (failures there may
be studied and fixed); tests/conversations/holdout/ the held-out ones, written
from the notice alone and never trained on. Every conversation is played in its
own session; a turn is correct when the reply's kind is the expected one, it
contains every `must` item and no `must_not` item, and, for a refusal, recites
none of the notice's key facts. Prints per set: answered correctly, out-of-scope
refused, follow-up conversations fully correct, small talk, a per-class
breakdown and whether each target is met; writes results/eval-<set>.json.

Two file formats are read. Holdout: `class` per conversation and `expect` per
turn. Dev (older): `kind` per conversation (fact|oos|followup|silent|smalltalk)
and no `expect`, which is then derived from the kind (EXPECT_BY_GROUP).

Also here, for the tests and the retraining gate: the leakage check of holdout
turns against the training examples, and the exact McNemar test that pairs two
runs of the same suite turn by turn.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from bot.knowledge.loader import load_knowledge, nlu_examples, question_key, read_faqs
from bot.knowledge.model import KnowledgeSet
from bot.staff.live import is_ready

ROOT = Path(__file__).resolve().parents[1]
CONVERSATIONS = ROOT / "tests" / "conversations"
SETS = ("dev", "holdout")
# Bump when the judging of a turn changes: scores measured before are then not comparable.
JUDGE_VERSION = "3-relative-year"

# What a turn may expect, and the reply kind (sent by action_answer) that satisfies it.
REPLY_KIND = {"answer": "answer", "refusal": "refusal", "clarification": "clarify",
              "unstated": "unstated", "smalltalk": "smalltalk"}
# A dev conversation's kind -> what its turns expect when they do not say.
EXPECT_BY_GROUP = {"oos": "refusal", "silent": "unstated", "smalltalk": "smalltalk", "unstated": "unstated"}
ANSWERED = ("answer", "unstated", "clarification")
# Classes where either of two kinds is right. A question about another year's event ("今年科普日是哪天")
# is rightly answered with the notice's 2021 figure labelled as 2021 (answer) or with the statement that
# the notice has no such year (unstated); two independent holdout writers chose one each. The turn's
# `must` items (e.g. "2021") still have to be in the reply.
EITHER_KIND = {"relative_year": ("answer", "unstated")}
TARGETS = {"answered": 0.97, "oos_refused": 0.98, "followup": 0.95}
TARGET_LABELS = {"answered": "回答正确 answered", "oos_refused": "拒答正确 OOS refused",
                 "followup": "追问全对 follow-up"}


class SuiteError(ValueError):
    """A conversation file is malformed; the message names the file and conversation."""


# -- the conversations -------------------------------------------------------

@dataclass(frozen=True)
class Turn:
    """One user message and what its reply must be."""

    user: str
    expect: str
    must: tuple[Any, ...] = ()
    must_not: tuple[Any, ...] = ()
    # Further kinds that are also right (EITHER_KIND of the conversation's class).
    accept: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversation:
    """A conversation of a set; `group` is its holdout class or dev kind."""

    id: str
    group: str
    file: str
    turns: tuple[Turn, ...]

    @property
    def is_followup(self) -> bool:
        return self.group == "followup"


def _expect(raw: dict[str, Any], default: str, where: str) -> str:
    expect = str(raw.get("expect") or default)
    if expect not in REPLY_KIND:
        raise SuiteError(f"{where}: expect 必须是 {'|'.join(REPLY_KIND)} 之一，而不是 {expect!r}")
    return expect


def _conversation(raw: Any, file: str, position: int) -> Conversation:
    if not isinstance(raw, dict) or not raw.get("id") or not isinstance(raw.get("turns"), list):
        raise SuiteError(f"{file} 第{position + 1}个对话：需要 id 和 turns 列表")
    conv_id = str(raw["id"])
    group = str(raw.get("class") or raw.get("kind") or "fact")
    default = _expect(raw, EXPECT_BY_GROUP.get(group, "answer"), f"{file} {conv_id}")
    turns = []
    for i, t in enumerate(raw["turns"]):
        where = f"{file} {conv_id} 第{i + 1}轮"
        if not isinstance(t, dict) or not isinstance(t.get("user"), str):
            raise SuiteError(f"{where}：需要 user 文本")
        expect = _expect(t, default, where)
        accept = tuple(REPLY_KIND[k] for k in EITHER_KIND.get(group, ()) if expect in EITHER_KIND[group])
        turns.append(Turn(str(t["user"]), expect, tuple(t.get("must") or ()), tuple(t.get("must_not") or ()),
                          accept))
    return Conversation(conv_id, group, file, tuple(turns))


def load_conversations(directory: Path) -> list[Conversation]:
    """Every conversation of the *.yml files of `directory`, in file order; ids must be unique."""
    out: list[Conversation] = []
    seen: dict[str, str] = {}
    for path in sorted(Path(directory).glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for i, raw in enumerate(doc.get("conversations") or []):
            conv = _conversation(raw, path.name, i)
            if conv.id in seen:
                raise SuiteError(f"{path.name}: 对话 id {conv.id} 与 {seen[conv.id]} 中的重复")
            seen[conv.id] = path.name
            out.append(conv)
    return out


def sample(conversations: list[Conversation], turns: int) -> list[Conversation]:
    """A fixed subset of about `turns` user turns, drawn from every (file, group) stratum in proportion.

    Whole conversations are kept (a follow-up needs its earlier turns); within a stratum they are
    ranked by a hash of their id, so the subset is the same on every run and machine and only
    changes where the suite does. `turns` <= 0 or at least the suite's size: all of them.
    """
    total = sum(len(c.turns) for c in conversations)
    if turns <= 0 or turns >= total:
        return list(conversations)
    strata: dict[tuple[str, str], list[Conversation]] = {}
    for conv in conversations:
        strata.setdefault((conv.file, conv.group), []).append(conv)
    chosen: set[str] = set()
    for members in strata.values():
        quota = max(1, round(turns * sum(len(c.turns) for c in members) / total))
        taken = 0
        for conv in sorted(members, key=lambda c: hashlib.sha1(c.id.encode("utf-8")).hexdigest()):
            if taken >= quota:
                break
            chosen.add(conv.id)
            taken += len(conv.turns)
    return [c for c in conversations if c.id in chosen]


def load_set(name: str, root: Path = CONVERSATIONS) -> list[Conversation]:
    """The conversations of one set (dev or holdout)."""
    if name not in SETS:
        raise SuiteError(f"未知的评测集 {name!r}（dev 或 holdout）")
    return load_conversations(root / name)


# -- the notice's key facts (a refusal recites none of them) ---------------------

_ADMIN_PREFIX = re.compile(r"^(?:[^市区县]{1,4}[市区县])+")
_URL = re.compile(r"(?:https?://)?([A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,}(?:/[A-Za-z0-9]+)*)")
_SPLIT = re.compile(r"[、，,；;]")


def _md(date: Any) -> str:
    return f"{date.month}月{date.day}日"


def _venues(kb: KnowledgeSet) -> set[str]:
    """Venue names, and the same without 中卫市/沙坡头区 (people and replies shorten them)."""
    out: set[str] = set()
    for fact in kb.facts.values():
        if fact.id.endswith(".venue") and fact.short:
            out.add(fact.short)
            core = _ADMIN_PREFIX.sub("", fact.short)
            if len(core) >= 3:
                out.add(core)
    return out


def _names(kb: KnowledgeSet) -> set[str]:
    """Lead units and the named things of the facts' data (joint actions, title, document number)."""
    out: set[str] = set()
    for fact in kb.facts.values():
        lead = fact.data.get("lead")
        if lead:
            out.add(kb.entity_name("unit", str(lead)))
        out.update(str(fact.data[k]) for k in ("name", "title", "doc_number") if fact.data.get(k))
    return out


def _contacts_and_links(kb: KnowledgeSet, phone: str) -> set[str]:
    """Persons, mobiles, fax, email, the theme and the registration links -- not the phone."""
    out: set[str] = set()
    for fid in ("contact.person", "contact.mobile", "contact.fax", "contact.email", "theme"):
        fact = kb.facts.get(fid)
        if fact and fact.short:
            out.add(fact.short)
            out.update(p.strip() for p in _SPLIT.split(fact.short) if len(p.strip()) >= 2)
    for fact in kb.facts.values():
        if fact.id.startswith("registration."):
            out.update(m.group(1).removeprefix("www.") for m in _URL.finditer(fact.short + fact.answer))
    for platform in kb.entities.get("platform", {}).values():
        out.update(a for a in platform.aliases if a.isascii() and len(a) >= 5)
    return {x for x in out if x and phone not in x and x not in phone}


def refusal_key_facts(kb: KnowledgeSet) -> tuple[str, ...]:
    """Facts of the notice a refusal must not recite, derived from the knowledge base.

    Every fact date as "9月24日", venue names, lead units, joint action names,
    contact persons and numbers, the website and the theme. Not the
    consultation phone: refusals give it on purpose.
    """
    phone_fact = kb.facts.get("contact.phone")
    phone = phone_fact.short if phone_fact else "\x00"
    dates = {_md(d) for f in kb.facts.values() for d in (f.date, f.end_date, f.start_date) if d}
    found = dates | _venues(kb) | _names(kb) | _contacts_and_links(kb, phone)
    return tuple(sorted(found, key=lambda s: (-len(s), s)))


def key_facts_of(knowledge_dir: Path) -> tuple[str, ...]:
    """refusal_key_facts of the knowledge files in `knowledge_dir`."""
    return refusal_key_facts(load_knowledge(knowledge_dir, data_dir=None))


# -- judging a turn --------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """What the server answered to one message: HTTP status, the texts joined, each message's kind."""

    status: int
    text: str
    kinds: tuple[str | None, ...] = ()

    @property
    def kind(self) -> str | None:
        """The reply's kind when its messages agree on one; None when missing, 'mixed' otherwise."""
        distinct = set(self.kinds)
        if not distinct:
            return None
        return self.kinds[0] if len(distinct) == 1 else "mixed"


@dataclass(frozen=True)
class Judgement:
    """Why a turn is right or wrong."""

    expected_kind: str
    kind: str | None
    missing: tuple[Any, ...] = ()
    forbidden: tuple[str, ...] = ()
    recited: tuple[str, ...] = ()
    accepted: tuple[str, ...] = ()  # other kinds that are right too

    @property
    def ok(self) -> bool:
        return (self.kind == self.expected_kind or self.kind in self.accepted) and not (self.missing or self.forbidden or self.recited)


def _options(item: Any) -> list[str]:
    return [str(o) for o in item] if isinstance(item, list | tuple) else [str(item)]


@functools.lru_cache(maxsize=1)
def _consultation_phone() -> str:
    from bot.knowledge.loader import load_knowledge

    fact = load_knowledge(ROOT / "knowledge").facts.get("contact.phone")
    return fact.short if fact else ""


_DASHES = str.maketrans({"—": "-", "–": "-", "－": "-", "~": "-", "～": "-", "至": "-"})


def _same_text(text: str) -> str:
    """How a reply and an expected item are compared: a span of years or days written with any
    dash ("2021—2035", "2021-2035", "2021至2035") is the same fact."""
    return text.translate(_DASHES)


def judge(turn: Turn, reply: Reply, key_facts: Iterable[str] = ()) -> Judgement:
    """Judge one reply: kind, required and forbidden items, and (refusals) recited key facts."""
    text = reply.text
    same = _same_text(text)
    missing = tuple(item for item in turn.must
                    if not any(o in text or _same_text(o) in same for o in _options(item)))
    forbidden = tuple(o for item in turn.must_not for o in _options(item) if o in text)
    if turn.expect in ("refusal", "smalltalk"):
        # A refusal or a goodbye gives the consultation phone on purpose; it is not a recited fact.
        forbidden = tuple(o for o in forbidden if o not in _consultation_phone())
    recited = tuple(f for f in key_facts if f in text) if turn.expect == "refusal" else ()
    return Judgement(REPLY_KIND[turn.expect], reply.kind, missing, forbidden, recited, turn.accept)


# -- playing the conversations ---------------------------------------------------

@dataclass
class TurnResult:
    """One played and judged turn."""

    conversation: str
    group: str
    index: int
    turn: Turn
    reply: Reply
    judgement: Judgement

    @property
    def ok(self) -> bool:
        return self.judgement.ok

    @property
    def key(self) -> str:
        return outcome_key(self.conversation, self.index)


def outcome_key(conversation: str, index: int) -> str:
    """How a turn is named in per-turn outcomes: (conversation id, turn index) as 'id#index'."""
    return f"{conversation}#{index}"


async def send(session: aiohttp.ClientSession, url: str, sender: str, text: str) -> Reply:
    """Send one message over REST; the reply (status 0 when the server could not be reached)."""
    try:
        async with session.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}) as resp:
            if resp.status != 200:
                return Reply(resp.status, f"<HTTP {resp.status}>")
            messages = await resp.json()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return Reply(0, f"<{type(exc).__name__}>")
    messages = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    return Reply(200, "\n".join(str(m.get("text") or "") for m in messages), tuple(m.get("kind") for m in messages))


async def run_conversation(session: aiohttp.ClientSession, url: str, conv: Conversation,
                           key_facts: tuple[str, ...]) -> list[TurnResult]:
    """Play one conversation in a fresh session."""
    sender = f"eval-{uuid.uuid4().hex[:12]}"  # bot.staff.reports leaves eval-* sessions out
    results = []
    for i, turn in enumerate(conv.turns):
        reply = await send(session, url, sender, turn.user)
        results.append(TurnResult(conv.id, conv.group, i, turn, reply, judge(turn, reply, key_facts)))
    return results


async def run_suite(url: str, conversations: list[Conversation], key_facts: tuple[str, ...] | None = None,
                    concurrency: int = 4) -> list[list[TurnResult]]:
    """Play all conversations, a few at a time; key facts default to those of knowledge/."""
    facts = key_facts if key_facts is not None else key_facts_of(ROOT / "knowledge")
    limit = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one(conv: Conversation) -> list[TurnResult]:
            async with limit:
                return await run_conversation(session, url, conv, facts)
        return list(await asyncio.gather(*(one(c) for c in conversations)))


# -- the figures -----------------------------------------------------------------

def _rate(items: list[Any], ok: Any) -> float | None:
    """Share of `items` that are ok; None when there are none (no figure, not a perfect one)."""
    return sum(1 for x in items if ok(x)) / len(items) if items else None


def _failure(t: TurnResult) -> dict[str, Any]:
    j = t.judgement
    return {"id": t.conversation, "turn": t.index, "class": t.group, "user": t.turn.user,
            "expect": t.turn.expect, "kind": j.kind, "status": t.reply.status, "reply": t.reply.text,
            "missing": list(j.missing), "forbidden": list(j.forbidden), "recited": list(j.recited)}


def summarize(results: list[list[TurnResult]], name: str = "dev") -> dict[str, Any]:
    """The figures of one run of a set, its failures and every turn's outcome."""
    turns = [t for conv in results for t in conv]
    answered = [t for t in turns if t.turn.expect in ANSWERED]
    oos = [t for t in turns if t.turn.expect == "refusal"]
    smalltalk = [t for t in turns if t.turn.expect == "smalltalk"]
    followups = [conv for conv in results if conv and conv[0].group == "followup"]
    by_class: dict[str, list[int]] = {}
    for t in turns:
        counts = by_class.setdefault(t.group, [0, 0])
        counts[0] += t.ok
        counts[1] += 1
    return {
        "set": name,
        "conversations": len(results),
        "turns": len(turns),
        "accuracy": _rate(turns, lambda t: t.ok),
        "answered": _rate(answered, lambda t: t.ok), "answered_turns": len(answered),
        "oos_refused": _rate(oos, lambda t: t.ok), "oos_turns": len(oos),
        "followup": _rate(followups, lambda conv: all(t.ok for t in conv)),
        "followup_conversations": len(followups),
        "smalltalk": _rate(smalltalk, lambda t: t.ok), "smalltalk_turns": len(smalltalk),
        "by_class": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_class.items())},
        "http_errors": sum(1 for t in turns if t.reply.status != 200),
        "failures": [_failure(t) for t in turns if not t.ok],
        "outcomes": {t.key: t.ok for t in turns},
    }


def targets_met(summary: dict[str, Any]) -> dict[str, bool]:
    """Each target: met or not (a figure without any turns is not met)."""
    return {name: summary.get(name) is not None and summary[name] >= target - 1e-9
            for name, target in TARGETS.items()}


def write_report(summary: dict[str, Any], out_dir: Path) -> Path:
    """results/eval-<set>.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"eval-{summary['set']}.json"
    path.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def _pct(value: float | None) -> str:
    return "无数据" if value is None else f"{value:.1%}"


def report_lines(summary: dict[str, Any], show_failures: bool = True) -> list[str]:
    """The printed report of one set, labelled with its name."""
    lines = [f"== {summary['set']} ==  {summary['conversations']} 个对话，{summary['turns']} 轮"]
    if show_failures:
        for f in summary["failures"]:
            lines.append(f"FAIL {f['id']}#{f['turn']} [{f['class']}] {f['user']!r} expect={f['expect']} "
                         f"kind={f['kind']}\n     missing={f['missing']} forbidden={f['forbidden']} "
                         f"recited={f['recited']}\n     reply={f['reply'][:160]!r}")
    met = targets_met(summary)
    counts = {"answered": f"{summary['answered_turns']} 轮", "oos_refused": f"{summary['oos_turns']} 轮",
              "followup": f"{summary['followup_conversations']} 个对话"}
    for name, target in TARGETS.items():
        verdict = "达标 met" if met[name] else "未达标 MISSED"
        lines.append(f"  {TARGET_LABELS[name]}: {_pct(summary[name])}（共 {counts[name]}，"
                     f"目标 ≥{target:.0%}）{verdict}")
    lines.append(f"  闲聊 small talk: {_pct(summary['smalltalk'])}（共 {summary['smalltalk_turns']} 轮）")
    lines.append(f"  按类别 by class: {summary['by_class']}")
    if summary["http_errors"]:
        lines.append(f"  非 200 回复 non-200 replies: {summary['http_errors']}")
    return lines


# -- holdout honesty: leakage into the training data -----------------------------

@dataclass(frozen=True)
class Leak:
    """A holdout turn that equals (distance 0) or nearly equals (1) a training example."""

    where: str
    text: str
    example: str
    source: str
    distance: int


def training_examples(root: Path = ROOT) -> dict[str, tuple[str, str]]:
    """Every training example by question key -> (text, source): the NLU examples of
    data/**/*.yml (bot.knowledge.loader.nlu_examples, data/generated/ included) and
    the FAQ questions of knowledge/faq.yml."""
    found = {key: (text, f"{file} ({intent})") for key, (intent, text, file) in nlu_examples(root / "data").items()}
    for faq in read_faqs(root / "knowledge" / "faq.yml"):
        for q in faq.questions:
            found.setdefault(question_key(q), (q, f"knowledge/faq.yml ({faq.id})"))
    return found


def within_one_edit(a: str, b: str) -> bool:
    """True when the edit distance of a and b is at most 1 (one insertion, deletion or substitution)."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:]
    return a[i:] == b[i + 1:]


def _deletions(key: str) -> set[str]:
    """The key and every string one deletion away from it."""
    return {key} | {key[:i] + key[i + 1:] for i in range(len(key))}


def find_leaks(turns: Iterable[tuple[str, str]], examples: dict[str, tuple[str, str]]) -> list[Leak]:
    """Holdout turns ((where, text) pairs) within edit distance 1 of a training example (by question key).

    Two strings within one edit share a one-deletion variant, so the candidates
    come from an index of those variants; each is then checked exactly.
    """
    index: dict[str, set[str]] = {}
    for key in examples:
        for variant in _deletions(key):
            index.setdefault(variant, set()).add(key)
    leaks = []
    for where, text in turns:
        key = question_key(text)
        if not key:
            continue
        candidates = set().union(*(index.get(v, set()) for v in _deletions(key)))
        for example in sorted(c for c in candidates if within_one_edit(key, c)):
            shown, source = examples[example]
            leaks.append(Leak(where, text, shown, source, 0 if example == key else 1))
    return leaks


# -- pairing two runs: exact McNemar test ------------------------------------------

def paired_counts(before: dict[str, bool], after: dict[str, bool]) -> tuple[int, int, int]:
    """(b, c, n) over the turns both runs have: b right before and wrong after, c the reverse."""
    shared = before.keys() & after.keys()
    b = sum(1 for k in shared if before[k] and not after[k])
    c = sum(1 for k in shared if not before[k] and after[k])
    return b, c, len(shared)


def mcnemar_worse(b: int, c: int) -> float:
    """One-sided exact McNemar p-value that "after" is worse than "before".

    Under no difference each discordant turn is equally likely to go either way,
    so b ~ Binomial(b + c, 1/2); the p-value is P(X >= b).
    """
    n = b + c
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(b, n + 1)) / 2 ** n


# -- command line ----------------------------------------------------------------

def _serve(command: str, url: str) -> subprocess.CompletedProcess:
    """scripts/serve.sh for the port of `url` (actions on port + 50, as everywhere)."""
    port = urlsplit(url).port or 5005
    env = {**os.environ, "RASA_PORT": str(port), "ACTIONS_PORT": str(port + 50)}
    return subprocess.run([str(ROOT / "scripts" / "serve.sh"), command], cwd=ROOT, env=env, check=False)


def run_set(url: str, name: str, out_dir: Path, key_facts: tuple[str, ...]) -> dict[str, Any]:
    """Play one set against `url`, write its report file, return its summary."""
    conversations = load_set(name)
    t0 = time.perf_counter()
    results = asyncio.run(run_suite(url, conversations, key_facts)) if conversations else []
    summary = summarize(results, name)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["report"] = str(write_report(summary, out_dir))
    return summary


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default="http://localhost:5005")
    parser.add_argument("--set", dest="sets", choices=("dev", "holdout", "all"), default="all")
    parser.add_argument("--start", action="store_true", help="start the servers if none answers")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when the holdout set (with --set dev: the dev set) misses a target")
    parser.add_argument("--out-dir", default=str(ROOT / "results"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sets, print each report; with --strict exit 1 if the judged set misses a target."""
    args = _parser().parse_args(argv)
    names = list(SETS) if args.sets == "all" else [args.sets]
    started = False
    if not is_ready(args.url):
        if not args.start:
            print(f"{args.url}/status 没有响应：请先运行 make serve，或加上 --start", file=sys.stderr)
            return 2
        if _serve("start", args.url).returncode != 0:
            return 2
        started = True
    try:
        facts = key_facts_of(ROOT / "knowledge")
        summaries = {name: run_set(args.url, name, Path(args.out_dir), facts) for name in names}
    finally:
        if started:
            _serve("stop", args.url)
    for name, summary in summaries.items():
        # Holdout failures stay in the report file: a studied holdout turn is no longer held out.
        print("\n".join(report_lines(summary, show_failures=name == "dev")))
        print(f"  失败 failures: {len(summary['failures'])}，详见 {summary['report']}\n")
    judged = summaries["holdout" if "holdout" in summaries else names[0]]
    if judged["turns"] == 0:
        print(f"{judged['set']}：没有对话（tests/conversations/{judged['set']}/ 为空）", file=sys.stderr)
    missed = judged["turns"] == 0 or not all(targets_met(judged).values())
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
