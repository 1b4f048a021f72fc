"""Rasa's SQL tracker store, kept in memory between messages and patient with a database restart.

endpoints.yml (`make run`, SQLite) and endpoints.replicas.yml (PostgreSQL) name it:

    tracker_store:
      type: bot.trackers.CachedSQLTrackerStore
      url: ${TRACKER_URL}        # or dialect/db as for Rasa's `SQL` type
      cache_size: 2000           # conversations kept in memory (least recently used dropped)
      max_event_history: 60      # events a tracker holds in memory (all are stored)
      retry_seconds: 15          # how long a message waits for the database to come back
      synchronous_commit: off    # PostgreSQL: a commit does not wait for its WAL flush (see below)

Rasa's SQLTrackerStore reads every event of the conversation's session on each message, replays
them into a tracker, and counts them again before saving; the policies then featurize, and the
action server receives, every event of the session: the cost of a message grows with the length
of the conversation. This store keeps the tracker it saved; the next message asks the database
only for events newer than the last one it knows (one indexed query that normally returns
nothing, or another replica's turns, which are applied in order) and saves only the events added
since. The tracker holds the last `max_event_history` events (Rasa's own DialogueStateTracker
option: every event is replayed, so slots are exact, but older events leave memory); the policies
look back three turns (MemoizationPolicy max_history) and the rules less, about 8 events a turn.
The database stays the truth: every event is written as Rasa writes it, in Rasa's own `events`
table, and a tracker whose state is in doubt (a message that failed before it was saved, a new
session) is read again.

`synchronous_commit: off` (PostgreSQL's own setting, for this store's connections only) answers
without waiting for the disk flush of each message's events: a restart or fast shutdown of the
server loses nothing (it flushes first), a crash of the database machine may lose the events of
its last fraction of a second (PostgreSQL documents at most three times wal_writer_delay, 0.6 s
by default), never corrupts them.

A database that does not answer (a restart, a network blip) is retried with short pauses for up
to `retry_seconds` before the message fails, so a restarted server costs no failed message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.events import Event, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.exc import DBAPIError, OperationalError

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_CACHE_SIZE = 2000
DEFAULT_RETRY_SECONDS = 15.0
# More than one message can add (Rasa stops after 10 predicted actions; a turn here adds about 8).
MIN_EVENT_HISTORY = 60
FIRST_PAUSE, LONGEST_PAUSE = 0.1, 1.0


class _Counted(deque):  # type: ignore[type-arg]
    """A tracker's events that counts every event ever appended (older ones leave the window)."""

    def __init__(self, events: Any = (), maxlen: int | None = None) -> None:
        super().__init__(events, maxlen)
        self.appended = len(self)

    def append(self, event: Event) -> None:
        super().append(event)
        self.appended += 1


class WindowedTracker(DialogueStateTracker):
    """Rasa's tracker whose event deque counts appended events (see _Counted)."""

    def _create_events(self, evts: list[Event]) -> deque:  # type: ignore[type-arg]
        return _Counted(super()._create_events(evts), self._max_event_history)


@dataclass
class _Known:
    """A conversation as this process last saw it in the database."""

    tracker: WindowedTracker
    appended: int  # tracker.events.appended when it matched the database
    last_id: int  # id of the newest stored event


def _appended(tracker: DialogueStateTracker) -> int:
    events = tracker.events
    return events.appended if isinstance(events, _Counted) else -1


def _unavailable(exc: BaseException) -> bool:
    """Whether a database error means "not reachable right now" (worth waiting for)."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _engine(url: Any, synchronous_commit: bool = True) -> sa.engine.Engine:
    """Rasa's engine for `url`; SQLite gets a pool too (SQLAlchemy 1.4 opens a new SQLite connection
    per session otherwise). No ping before each use (a round trip per session): a connection a
    restarted server dropped fails once, SQLAlchemy then empties the pool, and the retry of
    `_patiently` runs on a new connection."""
    if sa.engine.make_url(url).get_backend_name() == "sqlite":
        return sa.create_engine(url, poolclass=sa.pool.QueuePool, connect_args={"check_same_thread": False})
    kwargs = create_engine_kwargs(url)
    if not synchronous_commit:
        args = kwargs.setdefault("connect_args", {})
        args["options"] = f"{args.get('options', '')} -csynchronous_commit=off".strip()
    return sa.create_engine(url, **kwargs)


class CachedSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore that keeps saved trackers in memory and rides out a database restart."""

    def __init__(self, *args: Any, cache_size: int = DEFAULT_CACHE_SIZE, max_event_history: int = MIN_EVENT_HISTORY,
                 retry_seconds: float = DEFAULT_RETRY_SECONDS, synchronous_commit: bool | str = True,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine.dispose()
        self.engine = _engine(self.engine.url, str(synchronous_commit).lower() not in ("false", "off", "0", "no"))
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)
        self.cache_size = int(cache_size)
        self.window = max(int(max_event_history), MIN_EVENT_HISTORY)
        self.retry_seconds = float(retry_seconds)
        self._known: OrderedDict[str, _Known] = OrderedDict()

    # -- waiting for the database ---------------------------------------------------

    async def _patiently(self, what: str, work: Callable[[], T]) -> T:
        """`work()`, retried while the database is unreachable, for up to retry_seconds."""
        deadline = time.monotonic() + self.retry_seconds
        pause = FIRST_PAUSE
        while True:
            try:
                return work()
            except DBAPIError as exc:
                if not _unavailable(exc) or time.monotonic() + pause > deadline:
                    raise
                logger.warning("tracker store: the database does not answer (%s); retrying %s in %.1f s",
                               str(exc.orig).strip().splitlines()[0] if exc.orig else exc, what, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)

    # -- reading ----------------------------------------------------------------------

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The conversation's tracker: the cached one brought up to date, else read in full."""
        return await self._patiently("a read", lambda: self._current(sender_id))

    def _current(self, sender_id: str) -> DialogueStateTracker | None:
        known = self._known.get(sender_id)
        if known is not None and _appended(known.tracker) == known.appended and self._catch_up(known):
            self._known.move_to_end(sender_id)
            return known.tracker
        self._known.pop(sender_id, None)
        return self._read_session(sender_id)

    def _catch_up(self, known: _Known) -> bool:
        """Apply the events other processes stored after `known.last_id`; False when the
        tracker must be read again (a new session began)."""
        with self.session_scope() as session:
            rows = (session.query(self.SQLEvent.id, self.SQLEvent.type_name, self.SQLEvent.data)
                    .filter(self.SQLEvent.sender_id == known.tracker.sender_id, self.SQLEvent.id > known.last_id)
                    .order_by(self.SQLEvent.id).all())
        if any(type_name == SessionStarted.type_name for _, type_name, _ in rows):
            return False
        for _, _, data in rows:
            known.tracker.update(Event.from_parameters(json.loads(data)))
        if rows:
            known.appended = _appended(known.tracker)
            known.last_id = rows[-1][0]
        return True

    def _read_session(self, sender_id: str) -> DialogueStateTracker | None:
        """Rasa's own read of the current session, remembered with its newest event id."""
        with self.session_scope() as session:
            rows = self._event_query(session, sender_id, fetch_events_from_all_sessions=False).all()
        if not rows or not self.domain:
            return None
        tracker = WindowedTracker.from_dict(sender_id, [json.loads(row.data) for row in rows], self.domain.slots,
                                            self.window)
        self._remember(sender_id, _Known(tracker, _appended(tracker), rows[-1].id))  # type: ignore[arg-type]
        return tracker

    def _remember(self, sender_id: str, known: _Known) -> None:
        self._known[sender_id] = known
        self._known.move_to_end(sender_id)
        while len(self._known) > self.cache_size:
            self._known.popitem(last=False)

    # -- writing ----------------------------------------------------------------------

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the events added since the tracker was read (as Rasa's save does) and keep it."""
        await self.stream_events(tracker)
        await self._patiently("a save", lambda: self._store(tracker))

    def _store(self, tracker: DialogueStateTracker) -> None:
        sender_id = tracker.sender_id
        known = self._known.get(sender_id)
        with self.session_scope() as session:
            if known is not None and known.tracker is tracker:
                new = self._added(known)
            else:  # a tracker this store did not hand out (a new conversation): Rasa's own count
                new = list(self._additional_events(session, tracker))
            if new:
                session.execute(self.SQLEvent.__table__.insert(), [self._row(sender_id, event) for event in new])
            last_id = session.query(sa.func.max(self.SQLEvent.id)).filter(
                self.SQLEvent.sender_id == sender_id).scalar() if new or known is None else known.last_id
            session.commit()
        if last_id is None:
            self._known.pop(sender_id, None)
            return
        if not isinstance(tracker, WindowedTracker) or any(isinstance(event, SessionStarted) for event in new):
            tracker = self._as_read(tracker)
        self._remember(sender_id, _Known(tracker, _appended(tracker), int(last_id)))  # type: ignore[arg-type]

    def _as_read(self, tracker: DialogueStateTracker) -> WindowedTracker:
        """The tracker a read of the database would now give: the events from the latest session
        start on (Rasa reads the current session only), replayed into a WindowedTracker."""
        events = list(tracker.events)
        starts = [i for i, event in enumerate(events) if isinstance(event, SessionStarted)]
        slots = self.domain.slots if self.domain else None
        return WindowedTracker.from_events(tracker.sender_id, events[starts[-1]:] if starts else events, slots,
                                           self.window)  # type: ignore[return-value]

    @staticmethod
    def _added(known: _Known) -> list[Event]:
        """The events appended to the known tracker since it matched the database."""
        events = known.tracker.events
        added = _appended(known.tracker) - known.appended
        if added > len(events):  # cannot happen below MIN_EVENT_HISTORY events per message
            logger.error("tracker store: %d events of %s in one message, more than the %d kept in memory; "
                         "only the last %d are stored", added, known.tracker.sender_id, len(events), len(events))
        return list(events)[max(len(events) - added, 0):] if added > 0 else []

    @staticmethod
    def _row(sender_id: str, event: Event) -> dict[str, Any]:
        """The `events` row of one event, with Rasa's columns and values."""
        data = event.as_dict()
        return {"sender_id": sender_id, "type_name": event.type_name, "timestamp": data.get("timestamp"),
                "intent_name": data.get("parse_data", {}).get("intent", {}).get("name"),
                "action_name": data.get("name"), "data": json.dumps(data)}
