"""The staff dashboard's figures, from Rasa's tracker store, kept up to date incrementally.

Rasa's SQL tracker store (table `events`, bot.staff.reports.tracker_url) holds every event of
every conversation. Reading all of them for every page view would grow with the store, so
`Dashboard.refresh()` reads only the events added since the last refresh and keeps one row per
user message in `dashboard_messages`, in the knowledge database (KEPU_DB_URL, beside feedback and
the audit log, never in Rasa's own store): its channel (WeChat senders are `wx-…`, everything else
came through the REST channel of the portal widget), its time, its day and hour in bot.clock's
zone (Beijing time by default), how it was answered (the slot `reply_kind` that action_answer
sets) and from what (the slot `reply_facts`: fact ids or `faq:<id>`). The figures of a period are
then GROUP BY queries over that table's rows of the period's days.

Incremental and safe with several replicas: the last event id read is kept in `dashboard_state`;
each refresh re-reads the OVERLAP events below it (a transaction of another replica may commit a
lower id after a higher one was read) and every write is idempotent (a message is keyed by its
user event's id, a slot always applies to the same message). A store replaced or emptied (the
event at the kept id is gone or different), another time zone or another derivation VERSION
rebuilds the table from the first event.

`today` is injectable (default bot.clock.today, which KEPU_TODAY fixes), so the default period is
testable with a fixed clock.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    distinct,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, ProgrammingError

from bot import clock
from bot.channels.senders import WECHAT_PREFIX
from bot.knowledge.model import KnowledgeSet
from bot.knowledge.store import make_engine
from bot.staff.grouping import Asked
from bot.staff.reports import INTERNAL_SENDERS, UNANSWERED_KINDS, events_table, question_form, tracker_url

VERSION = "1"
CHANNELS = ("widget", "wechat")
# How a message was answered, in the order the page shows them.
OUTCOMES = ("answer", "faq", "unstated", "clarify", "refusal", "other")
REPLY_KINDS = ("answer", "unstated", "clarify", "refusal")  # reply_kind values that are outcomes as such
SLOTS = ("reply_kind", "reply_facts")
BATCH = 5000  # events per read and per write transaction
OVERLAP = 500  # events re-read below the last id read
DEFAULT_DAYS = 30
MAX_DAYS = 366
TOP_TOPICS = 10
MAX_TYPED = 300  # characters kept of what was typed (bot.text.MAX_CHARS)

dashboard_tables = MetaData()

messages_table = Table(
    "dashboard_messages", dashboard_tables,
    Column("id", Integer, primary_key=True, autoincrement=False),  # the user event's id in `events`
    Column("sender", String(255), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("at", Float, nullable=False),  # Unix time
    Column("day", String(10), nullable=False),  # YYYY-MM-DD in bot.clock's zone
    Column("hour", Integer, nullable=False),  # 0-23 in bot.clock's zone
    Column("kind", String(16), nullable=False),  # reply_kind; from the intent until it arrives
    Column("topic", String(255)),  # the first of reply_facts: a fact id or faq:<id>
    Column("question", Text, nullable=False),  # reports.question_form; '' for button payloads
    Column("typed", Text, nullable=False),
    Index("ix_dashboard_messages_day", "day"),
    Index("ix_dashboard_messages_sender", "sender", "id"),
)

state_table = Table(
    "dashboard_state", dashboard_tables,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("version", String(16), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("last_id", Integer, nullable=False),
    Column("last_at", Float),  # the timestamp of the event `last_id`: tells a replaced store
)

_m = messages_table.c
OUTCOME = case(
    (_m.topic.like("faq:%"), "faq"),
    (_m.kind.in_(REPLY_KINDS), _m.kind),
    else_="other",
)

Counts = dict[str, int]  # by channel


def _zero() -> Counts:
    return dict.fromkeys(CHANNELS, 0)


def total(counts: Counts) -> int:
    """The count over all channels."""
    return sum(counts.values())


# ---------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    """Days from `start` to `end`, both included, in bot.clock's zone."""

    start: dt.date
    end: dt.date

    @classmethod
    def last(cls, days: int, today: dt.date) -> Period:
        """The `days` days ending with `today`."""
        return cls(today - dt.timedelta(days=max(1, days) - 1), today)

    @property
    def days(self) -> list[dt.date]:
        """Every day of the period, in order."""
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def label(self) -> str:
        """'2026-11-04 至 2026-12-03'."""
        return f"{self.start.isoformat()} 至 {self.end.isoformat()}"


def parse_period(today: dt.date, days: str = "", start: str = "", end: str = "") -> tuple[Period, str]:
    """The period asked for (`days`, or `start`/`end` as YYYY-MM-DD) and an error for people ('' if
    none); anything unreadable falls back to the last DEFAULT_DAYS days."""
    default = Period.last(DEFAULT_DAYS, today)
    if start or end:
        try:
            first = dt.date.fromisoformat(start) if start else default.start
            last = dt.date.fromisoformat(end) if end else today
        except ValueError:
            return default, "日期格式不正确，请按“年-月-日”填写。"
        if first > last:
            return default, "开始日期不能晚于结束日期。"
        if (last - first).days >= MAX_DAYS:
            return default, f"时间段最长 {MAX_DAYS} 天。"
        return Period(first, last), ""
    if days:
        if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
            return default, f"天数应为 1 到 {MAX_DAYS} 之间的整数。"
        return Period.last(int(days), today), ""
    return default, ""


# ---------------------------------------------------------------- figures


@dataclass
class Topic:
    """A fact or FAQ that answers were given from, and how often."""

    key: str  # fact id or faq:<id>
    counts: Counts
    label: str = ""


@dataclass
class Summary:
    """The figures of one period, each by channel."""

    period: Period
    messages: dict[str, Counts] = field(default_factory=dict)  # day -> counts
    conversations: dict[str, Counts] = field(default_factory=dict)  # day -> senders who wrote that day
    outcomes: dict[str, Counts] = field(default_factory=dict)  # OUTCOMES -> counts
    votes: dict[str, Counts] = field(default_factory=dict)  # up / down -> counts
    topics: list[Topic] = field(default_factory=list)  # the most asked first, at most TOP_TOPICS
    hours: list[Counts] = field(default_factory=list)  # 24 hours of the day

    def message_total(self) -> Counts:
        """Messages of the period."""
        return _sum(self.messages.values())

    def conversation_total(self) -> Counts:
        """Conversations of the period, counted per day (one person writing on two days counts twice)."""
        return _sum(self.conversations.values())

    def satisfaction(self) -> float | None:
        """满意 / (满意 + 不满意), None without votes."""
        up, down = total(self.votes["up"]), total(self.votes["down"])
        return up / (up + down) if up + down else None

    def share(self, outcome: str) -> float | None:
        """The outcome's share of all messages, None without messages."""
        messages = total(self.message_total())
        return total(self.outcomes[outcome]) / messages if messages else None


def _sum(many: Iterable[Counts]) -> Counts:
    out = _zero()
    for counts in many:
        for channel, n in counts.items():
            out[channel] = out.get(channel, 0) + n
    return out


def topic_label(kb: KnowledgeSet, key: str) -> str:
    """A topic for people: the fact's title, or the FAQ's first question."""
    if key.startswith("faq:"):
        faq = next((f for f in kb.faqs if f.id == key[4:]), None)
        return f"常见问题：{faq.questions[0]}" if faq and faq.questions else f"常见问题 {key[4:]}"
    fact = kb.facts.get(key)
    return fact.title if fact else key


# ---------------------------------------------------------------- reading events


def channel_of(sender: str) -> str:
    """"wechat" for WeChat's conversation ids, else "widget" (the REST channel)."""
    return "wechat" if sender.lower().startswith(WECHAT_PREFIX) else "widget"


def _initial_kind(intent: str | None) -> str:
    """How a message counts until its reply_kind arrives (older conversations never get one)."""
    return {"out_of_scope": "refusal", "nlu_fallback": "clarify"}.get(intent or "", "answer")


def _json(data: str | None) -> dict[str, Any]:
    try:
        value = json.loads(data or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _slot_value(name: str, data: str | None) -> tuple[str, str | None]:
    """(column, value) for a reply_kind / reply_facts slot event."""
    value = _json(data).get("value")
    if name == "reply_kind":
        return "kind", str(value) if value else "other"
    first = value[0] if isinstance(value, list) and value else None
    return "topic", str(first)[:255] if first else None


@dataclass
class _Batch:
    """What one batch of events adds: new message rows and slot values for messages."""

    rows: dict[int, dict[str, Any]] = field(default_factory=dict)  # message id -> row
    slots: dict[int, dict[str, Any]] = field(default_factory=dict)  # message id -> column values
    unresolved: list[tuple[str, int, str, str | None]] = field(default_factory=list)  # sender, event id, slot, data


class _Reader:
    """Turns `events` rows (in id order) into a _Batch."""

    def __init__(self, zone: dt.tzinfo) -> None:
        self.zone = zone
        self.latest: dict[str, int] = {}  # sender -> their last message in this batch
        self.carried: set[str] = set()  # senders after session_started: slots carried over, not set

    def message(self, event_id: int, sender: str, at: float, intent: str | None, data: str | None) -> dict | None:
        text = str(_json(data).get("text") or "").strip()
        if not text:
            return None
        local = dt.datetime.fromtimestamp(at, self.zone)
        button = text.startswith("/")  # "/intent{...}" payloads are button clicks
        return {"id": event_id, "sender": sender, "channel": channel_of(sender), "at": at,
                "day": local.date().isoformat(), "hour": local.hour, "kind": _initial_kind(intent), "topic": None,
                "question": "" if button else question_form(text), "typed": text[:MAX_TYPED]}

    def read(self, rows: Iterable[Any]) -> _Batch:
        batch = _Batch()
        for event_id, sender, type_name, at, intent, action, data in rows:
            if sender.startswith(INTERNAL_SENDERS):
                continue
            if type_name == "user":
                row = self.message(event_id, sender, float(at or 0.0), intent, data)
                if row is not None:
                    batch.rows[event_id] = row
                    self.latest[sender] = event_id
                    self.carried.discard(sender)
            elif type_name == "session_started":
                self.carried.add(sender)
            elif type_name == "slot" and sender not in self.carried:
                target = self.latest.get(sender)
                if target is None:
                    batch.unresolved.append((sender, event_id, action, data))
                    continue
                column, value = _slot_value(action, data)
                batch.slots.setdefault(target, {})[column] = value
        return batch


# ---------------------------------------------------------------- the dashboard


class Dashboard:
    """The figures of the tracker store at `tracker` (default bot.staff.reports.tracker_url()),
    kept in the database at `store` (default the knowledge database)."""

    def __init__(self, tracker: str | Engine | None = None, store: str | Engine | None = None,
                 today: Callable[[], dt.date] = clock.today, overlap: int = OVERLAP) -> None:
        self.tracker = tracker if isinstance(tracker, Engine) else make_engine(tracker or tracker_url())
        self.store = store if isinstance(store, Engine) else make_engine(store)
        self.today = today
        self.overlap = overlap
        self._lock = threading.Lock()  # one refresh at a time in this process
        self._ready = False

    def default_period(self) -> Period:
        """The last DEFAULT_DAYS days, today included."""
        return Period.last(DEFAULT_DAYS, self.today())

    # ------------------------------------------------------------ incremental refresh

    def _ensure_tables(self) -> None:
        if self._ready:
            return
        try:
            with self.store.begin() as conn:
                dashboard_tables.create_all(conn, checkfirst=True)
        except (IntegrityError, ProgrammingError):  # another replica created them at the same moment
            with self.store.begin() as conn:
                dashboard_tables.create_all(conn, checkfirst=True)
        self._ready = True

    def refresh(self) -> int:
        """Read the events added since the last refresh; the number of messages read."""
        self._ensure_tables()
        with self._lock:
            if not self._has_events():
                return 0
            try:
                last_id = self._start()
            except IntegrityError:  # another replica started the table at the same moment
                last_id = self._start()
            read = 0
            start = max(0, last_id - self.overlap)
            while True:
                rows = self._events_after(start)
                if not rows:
                    return read
                try:
                    read += self._apply(rows, last_id)
                except IntegrityError:  # another replica stored the same messages a moment before
                    read += self._apply(rows, last_id)
                start = last_id = max(last_id, rows[-1][0])
                if len(rows) < BATCH:
                    return read

    def _has_events(self) -> bool:
        url = self.tracker.url
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
            return False  # Rasa has stored nothing yet: do not create its file
        with self.tracker.connect() as conn:
            return inspect(conn).has_table("events")

    def _start(self) -> int:
        """The last event id already read; 0 (and an emptied table) when it must be rebuilt."""
        zone = clock.zone_name()
        with self.store.begin() as conn:
            state = conn.execute(select(state_table).where(state_table.c.id == 1)).mappings().first()
            if state is not None and state["version"] == VERSION and state["zone"] == zone \
                    and self._same_event(int(state["last_id"]), state["last_at"]):
                return int(state["last_id"])
            conn.execute(delete(messages_table))
            conn.execute(delete(state_table))
            conn.execute(insert(state_table).values(id=1, version=VERSION, zone=zone, last_id=0, last_at=None))
        return 0

    def _same_event(self, event_id: int, at: float | None) -> bool:
        if event_id == 0:
            return True
        with self.tracker.connect() as conn:
            found = conn.execute(select(events_table.c.timestamp).where(events_table.c.id == event_id)).first()
        return found is not None and at is not None and abs(float(found[0] or 0.0) - at) < 1e-6

    def _events_after(self, start: int) -> list[Any]:
        e = events_table.c
        query = (select(e.id, e.sender_id, e.type_name, e.timestamp, e.intent_name, e.action_name, e.data)
                 .where(e.id > start)
                 .where(or_(e.type_name.in_(("user", "session_started")),
                            and_(e.type_name == "slot", e.action_name.in_(SLOTS))))
                 .order_by(e.id).limit(BATCH))
        with self.tracker.connect() as conn:
            return list(conn.execute(query).all())

    def _apply(self, rows: Sequence[Any], last_id: int) -> int:
        """Store one batch: new messages (existing ones kept), their slots, and the new last id."""
        batch = _Reader(clock.zone()).read(rows)
        with self.store.begin() as conn:
            for sender, event_id, name, data in batch.unresolved:
                target = conn.execute(select(func.max(_m.id)).where(_m.sender == sender, _m.id < event_id)).scalar()
                if target is not None:
                    column, value = _slot_value(name, data)
                    batch.slots.setdefault(int(target), {})[column] = value
            existing = self._existing(conn, list(batch.rows))
            fresh = [{**row, **batch.slots.get(i, {})} for i, row in batch.rows.items() if i not in existing]
            if fresh:
                conn.execute(insert(messages_table), fresh)
            for target, values in batch.slots.items():
                if target not in batch.rows or target in existing:
                    conn.execute(update(messages_table).where(_m.id == target).values(**values))
            end = rows[-1]
            conn.execute(update(state_table).where(state_table.c.id == 1, state_table.c.last_id < end[0])
                         .values(last_id=end[0], last_at=float(end[3] or 0.0)))
        return len(fresh)

    @staticmethod
    def _existing(conn: Connection, ids: list[int]) -> set[int]:
        """Which of `ids` are stored already (in chunks: databases bound the number of parameters)."""
        found: set[int] = set()
        for start in range(0, len(ids), 500):
            found.update(int(i) for i in conn.execute(select(_m.id).where(_m.id.in_(ids[start:start + 500]))).scalars())
        return found

    # ------------------------------------------------------------ figures

    def summary(self, period: Period, refresh: bool = True) -> Summary:
        """The period's figures (after reading new events unless `refresh` is False)."""
        if refresh:
            self.refresh()
        self._ensure_tables()
        within = _m.day.between(period.start.isoformat(), period.end.isoformat())
        out = Summary(period, messages={d.isoformat(): _zero() for d in period.days},
                      conversations={d.isoformat(): _zero() for d in period.days},
                      outcomes={o: _zero() for o in OUTCOMES}, votes={"up": _zero(), "down": _zero()},
                      hours=[_zero() for _ in range(24)])
        with self.store.connect() as conn:
            for day, channel, messages, senders in conn.execute(
                    select(_m.day, _m.channel, func.count(), func.count(distinct(_m.sender)))
                    .where(within).group_by(_m.day, _m.channel)):
                out.messages[day][channel] = int(messages)
                out.conversations[day][channel] = int(senders)
            for outcome, channel, n in conn.execute(
                    select(OUTCOME, _m.channel, func.count()).where(within).group_by(OUTCOME, _m.channel)):
                out.outcomes[outcome][channel] = int(n)
            for hour, channel, n in conn.execute(
                    select(_m.hour, _m.channel, func.count()).where(within).group_by(_m.hour, _m.channel)):
                out.hours[int(hour)][channel] = int(n)
            out.topics = self._topics(conn, within)
        out.votes = self._votes(period)
        return out

    @staticmethod
    def _topics(conn: Connection, within: Any) -> list[Topic]:
        ranked = (select(_m.topic).where(within, _m.topic.is_not(None)).group_by(_m.topic)
                  .order_by(func.count().desc(), _m.topic).limit(TOP_TOPICS).subquery())
        topics: dict[str, Topic] = {}
        for key in conn.execute(select(ranked.c.topic)).scalars():
            topics[key] = Topic(key, _zero())
        if topics:
            for key, channel, n in conn.execute(
                    select(_m.topic, _m.channel, func.count()).where(within, _m.topic.in_(list(topics)))
                    .group_by(_m.topic, _m.channel)):
                topics[key].counts[channel] = int(n)
        return sorted(topics.values(), key=lambda t: (-total(t.counts), t.key))

    def _votes(self, period: Period) -> dict[str, Counts]:
        """满意 / 不满意 of the period; votes come from the portal widget only."""
        from bot.web.feedback import feedback_table, feedback_tables

        start = dt.datetime.fromtimestamp(clock.start_of(period.start), dt.timezone.utc)
        end = dt.datetime.fromtimestamp(clock.start_of(period.end + dt.timedelta(days=1)), dt.timezone.utc)
        votes = {"up": _zero(), "down": _zero()}
        with self.store.begin() as conn:
            feedback_tables.create_all(conn, checkfirst=True)
            c = feedback_table.c
            for vote, n in conn.execute(select(c.vote, func.count())
                                        .where(c.created_at >= start, c.created_at < end).group_by(c.vote)):
                if vote in votes:
                    votes[vote]["widget"] = int(n)
        return votes

    def unanswered(self, period: Period, refresh: bool = True) -> list[Asked]:
        """The period's unanswered wordings (refused, clarified, "通知里没有说明"), for grouping."""
        if refresh:
            self.refresh()
        self._ensure_tables()
        within = _m.day.between(period.start.isoformat(), period.end.isoformat())
        query = (select(_m.question, _m.typed, func.count(), func.min(_m.at), func.max(_m.at))
                 .where(within, _m.question != "", OUTCOME.in_(UNANSWERED_KINDS))
                 .group_by(_m.question, _m.typed))
        with self.store.connect() as conn:
            return [Asked(q, typed, int(n), float(first), float(last)) for q, typed, n, first, last in conn.execute(query)]

    def dispose(self) -> None:
        """Close both engines' connections."""
        self.tracker.dispose()
        self.store.dispose()


_shared: Dashboard | None = None
_shared_lock = threading.Lock()


def shared_dashboard() -> Dashboard:
    """The process-wide dashboard on TRACKER_URL and KEPU_DB_URL."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Dashboard()
        return _shared


# ---------------------------------------------------------------- the same figures as rows


CHANNEL_LABELS = {"widget": "网页", "wechat": "微信"}
OUTCOME_LABELS = {"answer": "已回答（通知内容）", "faq": "常见问题回答", "unstated": "通知未说明",
                  "clarify": "追问澄清（您是想问）", "refusal": "超出范围（婉拒）", "other": "闲聊及其他"}
VOTE_LABELS = {"up": "满意", "down": "不满意"}
COLUMNS = ("指标", "项目", "网页", "微信", "合计", "占比")
RESOLVED = ("answer", "faq")  # 解决率: answered from the notice or by a staff FAQ


def percent(value: float | None) -> str:
    """0.8234 -> '82.3%'; None -> '—'."""
    return "—" if value is None else f"{value:.1%}"


def resolution(summary: Summary) -> float | None:
    """解决率: the share of messages answered from the notice or by a staff FAQ."""
    messages = total(summary.message_total())
    return sum(total(summary.outcomes[o]) for o in RESOLVED) / messages if messages else None


def label_topics(summary: Summary, kb: KnowledgeSet) -> Summary:
    """Fill in each topic's label for people (the fact's title, the FAQ's first question)."""
    for topic in summary.topics:
        topic.label = topic_label(kb, topic.key)
    return summary


def _row(figure: str, item: str, counts: Counts, share: str = "") -> dict[str, Any]:
    return {"指标": figure, "项目": item, "网页": counts.get("widget", 0), "微信": counts.get("wechat", 0),
            "合计": total(counts), "占比": share}


def _text_row(figure: str, item: str, share: str = "") -> dict[str, Any]:
    return {"指标": figure, "项目": item, "网页": "", "微信": "", "合计": "", "占比": share}


def summary_rows(summary: Summary) -> list[dict[str, Any]]:
    """Every figure of the summary as rows of COLUMNS (the CSV and `bot report summary`)."""
    messages, conversations = summary.message_total(), summary.conversation_total()
    rows = [_text_row("时间段", summary.period.label()),
            _row("合计", "咨询消息数", messages), _row("合计", "对话数（按天）", conversations),
            _text_row("合计", "解决率", percent(resolution(summary))),
            _text_row("合计", "满意率", percent(summary.satisfaction()))]
    rows += [_row("每日消息数", day, counts) for day, counts in summary.messages.items()]
    rows += [_row("每日对话数", day, counts) for day, counts in summary.conversations.items()]
    rows += [_row("回答情况", OUTCOME_LABELS[o], summary.outcomes[o], percent(summary.share(o))) for o in OUTCOMES]
    votes = total(summary.votes["up"]) + total(summary.votes["down"])
    rows += [_row("评价", VOTE_LABELS[v], summary.votes[v], percent(total(summary.votes[v]) / votes if votes else None))
             for v in ("up", "down")]
    rows += [_row("热门话题", f"{i}. {t.label or t.key}", t.counts) for i, t in enumerate(summary.topics, 1)]
    rows += [_row("咨询时段", f"{hour:02d}时", counts) for hour, counts in enumerate(summary.hours)]
    return rows
