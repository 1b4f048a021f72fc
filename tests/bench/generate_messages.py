"""Write N stored messages into a Rasa SQL tracker store, for the dashboard's benchmark.

    python -m tests.bench.generate_messages --messages 100000 --out results/bench_dashboard/conversations.db

The `events` table is created by Rasa's own SQLTrackerStore and filled with the rows its save()
writes (tests/dashboard_data.turn's events, as_dict() and all), in bulk: saving 100 000 messages
one tracker at a time through Rasa would take longer than the measurement. Deterministic (seeded):
conversations of one to eight messages over the last DAYS days before --today, a fifth of them
on WeChat, most in office hours; about 70% answered from a fact or a staff FAQ, the rest refused,
clarified or "通知未说明" -- wordings of the labelled groups of tests/data/grouping_labelled.yml,
spoken-style, traditional or with a typo, and a long tail of one-off questions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import time
from pathlib import Path

import yaml
from sqlalchemy import create_engine, insert

from bot.knowledge.loader import load_knowledge
from bot.staff.reports import events_table
from tests.dashboard_data import turn

ROOT = Path(__file__).resolve().parents[2]
DAYS = 60
SEED = 20261203
BATCH = 20_000
PREFIXES = ["", "", "", "请问", "你好，", "问一下", "麻烦问下"]
SUFFIXES = ["", "", "？", "?", "啊", "呢", "。", "！！"]
HOURS = [1, 1, 1, 1, 1, 2, 4, 8, 14, 16, 15, 12, 8, 10, 14, 15, 13, 10, 8, 9, 10, 7, 4, 2]  # weights
THINGS = ["社保卡", "医保", "公积金", "驾照", "身份证", "户口", "护照", "营业执照", "低保", "退休金", "养老保险",
          "居住证", "结婚证", "出生证明", "不动产证", "残疾证", "老年证", "核酸检测", "疫苗", "电费", "水费", "燃气"]
ASKS = ["在哪里办", "怎么办理", "要带什么材料", "多久能办好", "网上能办吗", "丢了怎么补", "怎么查询", "过期了怎么办"]


def _wordings() -> list[str]:
    groups = yaml.safe_load((ROOT / "tests" / "data" / "grouping_labelled.yml").read_text(encoding="utf-8"))["groups"]
    return [q for g in groups for q in g["questions"]]


def _unanswered(rng: random.Random, wordings: list[str]) -> str:
    if rng.random() < 0.25:  # the long tail: other services' errands, each rarely asked
        return f"{rng.choice(THINGS)}{rng.choice(ASKS)}"
    return f"{rng.choice(PREFIXES)}{rng.choice(wordings)}{rng.choice(SUFFIXES)}"


def _message(rng: random.Random, topics: list[tuple[str, str]], wordings: list[str]) -> tuple[str, str | None, str,
                                                                                              list[str]]:
    """(text, reply_kind, intent, reply_facts) of one message."""
    roll = rng.random()
    if roll < 0.62:
        fact, title = rng.choice(topics)
        return f"{rng.choice(PREFIXES)}{title}是什么{rng.choice(SUFFIXES)}", "answer", "ask_event_content", [fact]
    if roll < 0.68:
        return "小朋友能参加吗", "answer", "faq", [rng.choice(["faq:purpose", "faq:validity", "faq:public"])]
    if roll < 0.72:
        return "你好", "smalltalk", "greet", []
    kind, intent = rng.choice([("refusal", "out_of_scope"), ("unstated", "ask_unstated"), ("clarify", "nlu_fallback")])
    return _unanswered(rng, wordings), kind, intent, []


def _rows(sender: str, events: list) -> list[dict]:
    """The `events` rows Rasa's SQLTrackerStore.save writes for these events."""
    rows = []
    for event in events:
        data = event.as_dict()
        rows.append({"sender_id": sender, "type_name": event.type_name, "timestamp": data.get("timestamp"),
                     "intent_name": data.get("parse_data", {}).get("intent", {}).get("name"),
                     "action_name": data.get("name"), "data": json.dumps(data)})
    return rows


def generate(path: Path, messages: int, today: dt.date, seed: int = SEED) -> int:
    """Write `messages` messages into the tracker store at `path` (a new SQLite file); the events written."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain

    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    SQLTrackerStore(Domain.load(str(ROOT / "domain.yml")), dialect="sqlite", db=str(path)).engine.dispose()
    rng = random.Random(seed)
    topics = sorted((f.id, f.title) for f in load_knowledge(ROOT / "knowledge").facts.values())
    wordings = _wordings()
    zone = dt.timezone(dt.timedelta(hours=8))
    engine = create_engine(f"sqlite:///{path}", future=True)
    pending: list[dict] = []
    written = made = conversation = 0
    with engine.begin() as conn:
        while made < messages:
            conversation += 1
            channel = "wx-" if rng.random() < 0.2 else "w-"
            day = today - dt.timedelta(days=rng.randrange(DAYS))
            hour = rng.choices(range(24), HOURS)[0]
            at = dt.datetime(day.year, day.month, day.day, hour, rng.randrange(60), tzinfo=zone).timestamp()
            sender = f"{channel}{conversation:07d}"
            for _ in range(min(rng.randint(1, 8), messages - made)):
                text, kind, intent, facts = _message(rng, topics, wordings)
                pending += _rows(sender, turn(text, kind, at, intent, facts))
                at += rng.randint(5, 90)
                made += 1
            if len(pending) >= BATCH:
                conn.execute(insert(events_table), pending)
                written += len(pending)
                pending = []
        if pending:
            conn.execute(insert(events_table), pending)
            written += len(pending)
    engine.dispose()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_dashboard" / "conversations.db")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.date(2026, 12, 3))
    args = parser.parse_args()
    started = time.perf_counter()
    events = generate(args.out, args.messages, args.today)
    print(f"{args.messages} messages ({events} events) written to {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
