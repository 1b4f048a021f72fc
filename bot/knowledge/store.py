"""The knowledge database: SQLAlchemy Core tables, built from a KnowledgeSet in
one transaction and read back by the assistant.

The URL comes from KEPU_DB_URL (default: an SQLite file under build/), so the
same code runs on SQLite for one machine and on PostgreSQL for replicas.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.knowledge.model import EntityValue, Fact, Faq, KnowledgeSet, Question, Source

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB_URL = f"sqlite:///{ROOT / 'build' / 'knowledge.db'}"

knowledge_tables = MetaData()

sources_table = Table(
    "kb_sources", knowledge_tables,
    Column("part", String(32), primary_key=True),
    Column("label", Text, nullable=False),
)
facts_table = Table(
    "kb_facts", knowledge_tables,
    Column("id", String(128), primary_key=True),
    Column("title", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("short", Text, nullable=False, default=""),
    Column("source_part", String(32), nullable=False),
    Column("source_item", Text, nullable=False, default=""),
    Column("date", Date),
    Column("end_date", Date),
    Column("start_date", Date),
    Column("date_kind", String(16), nullable=False, default=""),
    Column("data", JSON, nullable=False),
    Column("origin", String(128), nullable=False, default=""),
)
aliases_table = Table(
    "kb_entity_aliases", knowledge_tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entity_type", String(64), nullable=False, index=True),
    Column("value", String(64), nullable=False),
    Column("name", Text, nullable=False),
    Column("alias", Text, nullable=False),
    Column("position", Integer, nullable=False),
)
questions_table = Table(
    "kb_questions", knowledge_tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("intent", String(128), nullable=False),
    Column("label", Text, nullable=False),
    Column("hot", Integer, nullable=False, default=0),
    Column("entities", JSON, nullable=False),
    Column("keywords", JSON, nullable=False),
)
faqs_table = Table(
    "kb_faqs", knowledge_tables,
    Column("id", String(128), primary_key=True),
    Column("questions", JSON, nullable=False),
    Column("answer", Text, nullable=False),
    Column("source", Text, nullable=False, default=""),
    Column("valid_until", Date),
)
build_table = Table(
    "kb_build", knowledge_tables,
    Column("id", Integer, primary_key=True),
    Column("checksum", String(64), nullable=False),
    Column("built_at", DateTime, nullable=False),
    Column("fact_count", Integer, nullable=False),
)


def database_url() -> str:
    """The knowledge database URL (KEPU_DB_URL or the SQLite default)."""
    return os.environ.get("KEPU_DB_URL") or DEFAULT_DB_URL


def make_engine(url: str | None = None) -> Engine:
    """An engine for `url`; creates the SQLite parent folder when needed."""
    url = url or database_url()
    if not url.startswith("sqlite"):
        return create_engine(url, future=True, pool_pre_ping=True)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, connect_args={"timeout": 15})

    # pysqlite does not put DDL inside transactions; take over BEGIN so a
    # rebuild (drop, create, insert) is all-or-nothing, as SQLAlchemy documents.
    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record):  # noqa: ANN001
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(engine, "begin")
    def _begin(conn):  # noqa: ANN001
        conn.exec_driver_sql("BEGIN")

    return engine


def checksum(kb: KnowledgeSet) -> str:
    """A stable fingerprint of the knowledge content."""
    payload = json.dumps(_rows(kb), ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _rows(kb: KnowledgeSet) -> dict[str, list[dict]]:
    return {
        "sources": [{"part": k, "label": v} for k, v in kb.sources.items()],
        "facts": [
            {
                "id": f.id, "title": f.title, "answer": f.answer, "short": f.short,
                "source_part": f.source.part, "source_item": f.source.item,
                "date": f.date, "end_date": f.end_date, "start_date": f.start_date,
                "date_kind": f.date_kind, "data": f.data, "origin": f.origin,
            }
            for f in kb.facts.values()
        ],
        "aliases": [
            {"entity_type": ev.type, "value": ev.value, "name": ev.name, "alias": alias, "position": i}
            for values in kb.entities.values()
            for ev in values.values()
            for i, alias in enumerate(ev.aliases)
        ],
        "questions": [
            {"intent": q.intent, "label": q.label, "hot": q.hot, "entities": q.entities,
             "keywords": list(q.keywords)}
            for q in kb.questions
        ],
        "faqs": [
            {"id": f.id, "questions": list(f.questions), "answer": f.answer,
             "source": f.source, "valid_until": f.valid_until}
            for f in kb.faqs
        ],
    }


def build_database(kb: KnowledgeSet, url: str | None = None) -> str:
    """Replace the knowledge tables with `kb` in one transaction; return the checksum.

    If anything fails, the transaction rolls back and the previous content stays.
    """
    engine = make_engine(url)
    try:
        rows = _rows(kb)
        digest = checksum(kb)
        with engine.begin() as conn:
            # The knowledge tables are derived data: recreate them so the schema is current.
            knowledge_tables.drop_all(conn)
            knowledge_tables.create_all(conn)
            conn.execute(insert(sources_table), rows["sources"])
            conn.execute(insert(facts_table), rows["facts"])
            conn.execute(insert(aliases_table), rows["aliases"])
            conn.execute(insert(questions_table), rows["questions"])
            if rows["faqs"]:
                conn.execute(insert(faqs_table), rows["faqs"])
            conn.execute(insert(build_table), [{
                "id": 1, "checksum": digest, "built_at": dt.datetime.now(),
                "fact_count": len(rows["facts"]),
            }])
        return digest
    finally:
        engine.dispose()


def stored_checksum(engine: Engine) -> str | None:
    """Checksum of the current build, or None when the database was never built."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(build_table.name):
            return None
        row = conn.execute(select(build_table.c.checksum).where(build_table.c.id == 1)).first()
    return row[0] if row else None


def read_database(engine: Engine) -> KnowledgeSet:
    """Read the whole knowledge set back from the database."""
    with engine.connect() as conn:
        sources = {r.part: r.label for r in conn.execute(select(sources_table))}
        facts = {
            r.id: Fact(
                id=r.id, title=r.title, answer=r.answer, short=r.short,
                source=Source(r.source_part, r.source_item), date=r.date,
                end_date=r.end_date, start_date=r.start_date, date_kind=r.date_kind,
                data=dict(r.data or {}), origin=r.origin,
            )
            for r in conn.execute(select(facts_table))
        }
        grouped: dict[tuple[str, str], list] = {}
        for r in conn.execute(select(aliases_table).order_by(aliases_table.c.id)):
            grouped.setdefault((r.entity_type, r.value), []).append(r)
        entities: dict[str, dict[str, EntityValue]] = {}
        for (type_, value), rs in grouped.items():
            rs.sort(key=lambda r: r.position)
            entities.setdefault(type_, {})[value] = EntityValue(
                type=type_, value=value, name=rs[0].name, aliases=tuple(r.alias for r in rs)
            )
        questions = [
            Question(intent=r.intent, label=r.label, hot=r.hot, entities=dict(r.entities or {}),
                     keywords=tuple(r.keywords or ()))
            for r in conn.execute(select(questions_table).order_by(questions_table.c.id))
        ]
        faqs = [
            Faq(id=r.id, questions=tuple(r.questions), answer=r.answer, source=r.source,
                valid_until=r.valid_until)
            for r in conn.execute(select(faqs_table).order_by(faqs_table.c.id))
        ]
    if not facts:
        raise RuntimeError("知识库为空：请先运行 make kb 构建知识库")
    return KnowledgeSet(sources=sources, facts=facts, entities=entities, questions=questions, faqs=faqs)


class KnowledgeRepository:
    """The assistant's view of the database: cached, reloaded when a rebuild lands.

    The checksum is polled at most every `check_every` seconds so a message does
    not pay for a database round trip.
    """

    def __init__(self, url: str | None = None, check_every: float = 5.0) -> None:
        self._engine = make_engine(url)
        self._check_every = check_every
        self._lock = threading.Lock()
        self._kb: KnowledgeSet | None = None
        self._checksum: str | None = None
        self._checked_at = 0.0

    def get(self) -> KnowledgeSet:
        """The current knowledge set (reloaded if the database changed)."""
        now = time.monotonic()
        if self._kb is not None and now - self._checked_at < self._check_every:
            return self._kb
        with self._lock:
            self._checked_at = now
            try:
                current = stored_checksum(self._engine)
            except SQLAlchemyError as exc:
                if self._kb is None:
                    raise
                # A restarting database: keep answering from the knowledge already read.
                logger.warning("knowledge: the database does not answer (%s); answering from the "
                               "copy read at the last check", type(exc).__name__)
                return self._kb
            if current is None:
                raise RuntimeError("知识库尚未构建：请先运行 make kb")
            if self._kb is None or current != self._checksum:
                self._kb = read_database(self._engine)
                self._checksum = current
            return self._kb


_shared: KnowledgeRepository | None = None


def shared_repository() -> KnowledgeRepository:
    """The process-wide repository (one engine and cache per process)."""
    global _shared
    if _shared is None:
        _shared = KnowledgeRepository()
    return _shared


def consultation_phone() -> str:
    """The notice's consultation phone, for fallback texts; '' if unavailable."""
    try:
        fact = shared_repository().get().facts.get("contact.phone")
    except Exception:  # the database may be unreachable when this is needed
        return "咨询电话"
    return fact.short if fact else "咨询电话"
