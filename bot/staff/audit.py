"""Audit trail of staff changes (FAQ edits, retrains, rollbacks).

Table `audit_log` in the knowledge database (bot.knowledge.store.make_engine(),
i.e. KEPU_DB_URL or build/knowledge.db) but in its own MetaData, so rebuilding
the knowledge tables never drops it; created on first use.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, insert, select

from bot.knowledge.store import make_engine

audit_tables = MetaData()

audit_table = Table(
    "audit_log", audit_tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False, index=True),
    Column("detail", Text, nullable=False, default=""),
)


def _detail_text(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    return json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)


def record(actor: str, action: str, detail: Any = "") -> int:
    """Store one audit row (`detail`: text, or anything JSON-serialisable); return its id."""
    engine = make_engine()
    try:
        with engine.begin() as conn:
            audit_tables.create_all(conn, checkfirst=True)
            result = conn.execute(insert(audit_table).values(
                at=dt.datetime.now(dt.timezone.utc),
                actor=str(actor or "unknown")[:64],
                action=str(action)[:64],
                detail=_detail_text(detail),
            ))
            return int(result.inserted_primary_key[0])
    finally:
        engine.dispose()


def list_audit(limit: int = 50) -> list[dict[str, Any]]:
    """The newest `limit` audit rows first: dicts with id, at, actor, action, detail."""
    engine = make_engine()
    try:
        with engine.begin() as conn:
            audit_tables.create_all(conn, checkfirst=True)
            rows = conn.execute(
                select(audit_table).order_by(audit_table.c.id.desc()).limit(max(0, int(limit)))
            ).mappings().all()
        out = [dict(row) for row in rows]
    finally:
        engine.dispose()
    for row in out:  # SQLite drops the time zone; the times are stored in UTC
        if isinstance(row["at"], dt.datetime) and row["at"].tzinfo is None:
            row["at"] = row["at"].replace(tzinfo=dt.timezone.utc)
    return out
