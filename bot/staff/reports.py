"""Reports for staff: questions the assistant could not answer, and down-voted answers.

unanswered() reads Rasa's SQL tracker store (table `events`; TRACKER_URL, an
SQLAlchemy URL, or build/conversations.db as in endpoints.yml). action_answer
sets the slot `reply_kind` right after each user message; a message counts as
unanswered when that reply was a refusal, a clarification ("您是想问……吗？")
or "通知里没有说明" (unstated). When a message has no reply_kind (older
conversations), its intent decides: nlu_fallback or out_of_scope.
Messages are grouped by their normalised text; each row also keeps what the
users actually typed (`originals`). Days are days in bot.clock's zone
(KEPU_TIMEZONE, Asia/Shanghai by default), whatever the server's clock says.

feedback() reads the widget's `feedback` table (bot/web/feedback.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine, inspect, select

from bot import clock
from bot.knowledge.store import ROOT, make_engine
from bot.text import normalize

UNANSWERED_KINDS = ("refusal", "clarify", "unstated")
UNANSWERED_INTENTS = ("nlu_fallback", "out_of_scope")
# Conversations the tools themselves hold with the live server (smoke checks, evaluation, benchmarks).
INTERNAL_SENDERS = ("staff-check-", "eval-", "bench-")
_TRAILING = "?？!！。.,，~～ "
MAX_ORIGINALS = 5  # distinct typed forms kept per row, most frequent first

_events_meta = MetaData()
events_table = Table(
    "events", _events_meta,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
)


def tracker_url() -> str:
    """The tracker store database: TRACKER_URL or build/conversations.db."""
    return os.environ.get("TRACKER_URL") or f"sqlite:///{ROOT / 'build' / 'conversations.db'}"


def question_form(text: str) -> str:
    """The form questions are grouped and compared by: normalised, without trailing punctuation."""
    return normalize(text).rstrip(_TRAILING)


def _day(timestamp: float) -> str:
    return clock.day_of(timestamp).isoformat()


def unanswered(since: dt.date | None = None) -> list[dict[str, Any]]:
    """User questions the assistant did not answer, grouped by normalised text, most frequent first.

    Each row: question (the normalised text the rows are grouped by), originals
    (what users typed, most frequent first, at most MAX_ORIGINALS), count, first,
    last (days in bot.clock's zone, YYYY-MM-DD) and kinds (how they were handled,
    e.g. "refusal"). `since` is a day in that zone too.
    """
    url = tracker_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return []
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("events"):
                return []
            query = (select(events_table.c.sender_id, events_table.c.type_name, events_table.c.timestamp,
                            events_table.c.intent_name, events_table.c.action_name, events_table.c.data)
                     .where(events_table.c.type_name.in_(("user", "slot")))
                     .order_by(events_table.c.id))
            if since is not None:
                query = query.where(events_table.c.timestamp >= clock.start_of(since))
            rows = conn.execute(query).all()
    finally:
        engine.dispose()
    return _group(_unanswered_messages(rows))


def _unanswered_messages(rows: Iterable[Any]) -> list[tuple[str, float, str]]:
    """(text, timestamp, kind) of every unanswered user message, from `events` rows in order."""
    pending: dict[str, tuple[str, float, str]] = {}  # sender -> (text, timestamp, intent)
    found: list[tuple[str, float, str]] = []

    def settle(sender: str, kind: str | None) -> None:
        text, timestamp, intent = pending.pop(sender)
        if kind in UNANSWERED_KINDS:
            found.append((text, timestamp, kind))
        elif kind is None and intent in UNANSWERED_INTENTS:
            found.append((text, timestamp, intent))

    for sender, type_name, timestamp, intent, action, data in rows:
        if sender.startswith(INTERNAL_SENDERS):
            continue
        if type_name == "user":
            if sender in pending:
                settle(sender, None)
            try:
                text = str(json.loads(data or "{}").get("text") or "")
            except json.JSONDecodeError:
                text = ""
            if text and not text.startswith("/"):  # "/intent{...}" payloads are button clicks
                pending[sender] = (text, float(timestamp or 0.0), intent or "")
        elif type_name == "slot" and action == "reply_kind" and sender in pending:
            try:
                value = json.loads(data or "{}").get("value")
            except json.JSONDecodeError:
                value = None
            settle(sender, str(value) if value is not None else None)
    for sender in list(pending):
        settle(sender, None)
    return found


def _group(messages: list[tuple[str, float, str]]) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for text, timestamp, kind in messages:
        question = question_form(text)
        if not question:
            continue
        row = groups.setdefault(question, {"question": question, "count": 0, "first": timestamp,
                                           "last": timestamp, "kinds": {}, "originals": {}})
        row["count"] += 1
        row["first"] = min(row["first"], timestamp)
        row["last"] = max(row["last"], timestamp)
        row["kinds"][kind] = row["kinds"].get(kind, 0) + 1
        typed = text.strip()
        row["originals"][typed] = row["originals"].get(typed, 0) + 1
    ranked = sorted(groups.values(), key=lambda r: (-r["count"], -r["last"], r["question"]))
    return [
        {"question": r["question"], "originals": _most_frequent(r["originals"])[:MAX_ORIGINALS],
         "count": r["count"], "first": _day(r["first"]), "last": _day(r["last"]),
         "kinds": ",".join(_most_frequent(r["kinds"]))}
        for r in ranked
    ]


def _most_frequent(counts: dict[str, int]) -> list[str]:
    """The keys by count, highest first (ties keep their first-seen order)."""
    return sorted(counts, key=lambda k: -counts[k])


def feedback(vote: str | None = "down") -> list[dict[str, Any]]:
    """Answers rated in the widget, newest first: question, answer, at (ISO time in bot.clock's zone).
    vote=None: all votes."""
    from bot.web.feedback import FeedbackStore, feedback_table

    store = FeedbackStore(make_engine())
    try:
        store.ensure_table()
        query = select(feedback_table.c.question, feedback_table.c.answer, feedback_table.c.created_at,
                       feedback_table.c.vote).order_by(feedback_table.c.id.desc())
        if vote:
            query = query.where(feedback_table.c.vote == vote)
        with store.engine.connect() as conn:
            rows = conn.execute(query).all()
    finally:
        store.engine.dispose()
    out = []
    for question, answer, created_at, row_vote in rows:
        at = (clock.local(created_at).isoformat(timespec="seconds") if isinstance(created_at, dt.datetime)
              else str(created_at))
        row = {"question": question, "answer": answer, "at": at}
        if vote is None:
            row["vote"] = row_vote
        out.append(row)
    return out


def to_csv(rows: Sequence[dict[str, Any]], path: str | Path, fields: Sequence[str] | None = None) -> Path:
    """Write `rows` as CSV (UTF-8 with BOM, so spreadsheet programs read the Chinese); return the path.

    A list value (a row's `originals`) is one cell, one item per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(fields or [])
    if not names:
        for row in rows:
            names += [k for k in row if k not in names]
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names, extrasaction="ignore")
        if names:
            writer.writeheader()
        writer.writerows({k: "\n".join(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows)
    return path
