"""Answer feedback (满意 / 不满意) from the portal widget, stored with SQLAlchemy Core.

The `feedback` table lives in the same database as the knowledge base
(`make_engine(database_url())`) but in its own MetaData, so rebuilding the
knowledge tables never drops collected feedback. The table is created on first
use when it is missing.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, func, insert, select
from sqlalchemy.engine import Engine

from bot.json_body import MAX_BODY_BYTES, JsonBodyError, read_json_object
from bot.knowledge.store import database_url, make_engine

MAX_QUESTION_CHARS = 1000
MAX_ANSWER_CHARS = 4000
VOTES = ("up", "down")

feedback_tables = MetaData()

feedback_table = Table(
    "feedback", feedback_tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("session_id", String(64), nullable=False, index=True),
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("vote", String(8), nullable=False),
)


@dataclass(frozen=True)
class Feedback:
    """One validated vote on one bot answer."""

    session_id: str
    question: str
    answer: str
    vote: str


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _text_field(payload: dict[str, Any], name: str, limit: int, required: bool) -> tuple[str, str]:
    """(value, '') or ('', error) for one text field of the body."""
    value = payload.get(name)
    if value is None and not required:
        return "", ""
    if not isinstance(value, str) or (required and not value.strip()):
        return "", f"{name} 必须是非空字符串（被评价的回答）" if required else f"{name} 必须是字符串"
    if len(value) > limit:
        return "", f"{name} 过长（最多 {limit} 字）"
    return value, ""


def parse_feedback(body: bytes) -> tuple[Feedback | None, str]:
    """Validate a POST /widget/feedback body; return (feedback, '') or (None, error)."""
    try:
        payload = read_json_object(body, MAX_BODY_BYTES)
    except JsonBodyError as exc:
        return None, exc.message
    session_id = payload.get("session_id")
    if not isinstance(session_id, str) or not _is_uuid(session_id):
        return None, "session_id 必须是会话编号（UUID）"
    vote = payload.get("vote")
    if vote not in VOTES:
        return None, "vote 必须是 up 或 down"
    answer, error = _text_field(payload, "message", MAX_ANSWER_CHARS, required=True)
    if error:
        return None, error
    question, error = _text_field(payload, "question", MAX_QUESTION_CHARS, required=False)
    if error:
        return None, error
    return Feedback(session_id=session_id.lower(), question=question, answer=answer, vote=vote), ""


class FeedbackStore:
    """Writes and reads feedback rows; creates the table on first use."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ready = False
        self._lock = threading.Lock()

    def ensure_table(self) -> None:
        """Create the feedback table if it is missing (idempotent)."""
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                with self.engine.begin() as conn:
                    feedback_tables.create_all(conn, checkfirst=True)
                self._ready = True

    def add(self, entry: Feedback) -> int:
        """Store one vote; return the new row id."""
        self.ensure_table()
        with self.engine.begin() as conn:
            result = conn.execute(insert(feedback_table).values(
                created_at=dt.datetime.now(dt.timezone.utc),
                session_id=entry.session_id,
                question=entry.question,
                answer=entry.answer,
                vote=entry.vote,
            ))
            return int(result.inserted_primary_key[0])

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest rows first (for an admin view or a report)."""
        self.ensure_table()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(feedback_table).order_by(feedback_table.c.id.desc()).limit(limit)
            ).mappings().all()
        return [dict(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Number of votes per kind, e.g. {"up": 3, "down": 1}."""
        self.ensure_table()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(feedback_table.c.vote, func.count()).group_by(feedback_table.c.vote)
            ).all()
        return {vote: int(count) for vote, count in rows}


_shared: FeedbackStore | None = None
_shared_lock = threading.Lock()


def shared_store() -> FeedbackStore:
    """The process-wide store on the knowledge database (KEPU_DB_URL or SQLite)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = FeedbackStore(make_engine(database_url()))
        return _shared
