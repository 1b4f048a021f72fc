"""bot.trackers.CachedSQLTrackerStore against Rasa's own SQLTrackerStore on the same database.

Each test writes conversations through the cached store and reads them back with a plain
SQLTrackerStore (what a replica without the cache, or Rasa itself, would see), on an SQLite file
of the test's own and, for the restart, a PostgreSQL cluster the test starts and restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.trackers import CachedSQLTrackerStore
from tests.servers import PostgresServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain.yml"))


@pytest.fixture()
def db(tmp_path: Path) -> str:
    return str(tmp_path / "conversations.db")


def cached(db: str, domain: Domain, **kwargs: object) -> CachedSQLTrackerStore:
    return CachedSQLTrackerStore(domain=domain, dialect="sqlite", db=db, **kwargs)


def plain(db: str, domain: Domain) -> SQLTrackerStore:
    return SQLTrackerStore(domain=domain, dialect="sqlite", db=db)


def turn(text: str, context: str) -> list[Event]:
    """One turn as Rasa logs it: the user's message, the action, its slot and answer, listen."""
    return [UserUttered(text, {"name": "ask_time", "confidence": 0.9}), ActionExecuted("action_answer"),
            SlotSet("context", {"topic": context}), BotUttered(f"答：{text}"), ActionExecuted("action_listen")]


async def say(store: CachedSQLTrackerStore | SQLTrackerStore, sender: str, text: str, context: str) -> DialogueStateTracker:
    """What Rasa's processor does per message: get (or create) the tracker, add the turn, save."""
    tracker = await store.get_or_create_tracker(sender)
    for event in turn(text, context):
        tracker.update(event)
    await store.save(tracker)
    return tracker


def dumped(tracker: DialogueStateTracker | None) -> list[dict]:
    assert tracker is not None
    return [event.as_dict() for event in tracker.events]


def rows(db: str, sender: str) -> list[str]:
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.text("SELECT type_name FROM events WHERE sender_id = :s ORDER BY id"),
                                               {"s": sender})]
    finally:
        engine.dispose()


async def test_every_event_is_stored_once_as_rasa_stores_it(db: str, domain: Domain) -> None:
    store = cached(db, domain)
    for number in range(5):
        tracker = await say(store, "u1", f"第{number}个问题", f"t{number}")
    assert rows(db, "u1") == ["action"] + 5 * ["user", "action", "slot", "bot", "action"]
    reference = await plain(db, domain).retrieve("u1")
    assert dumped(reference) == dumped(tracker)
    assert reference is not None and reference.get_slot("context") == {"topic": "t4"}


async def test_a_conversation_is_not_read_again_in_full(db: str, domain: Domain) -> None:
    store = cached(db, domain)
    await say(store, "u1", "问题", "a")
    second = await say(store, "u1", "问题二", "b")
    assert await store.retrieve("u1") is second  # the saved tracker itself, with no new events


async def test_turns_stored_by_another_replica_are_applied_in_order(db: str, domain: Domain) -> None:
    a, b = cached(db, domain), cached(db, domain)
    await say(a, "u1", "主场活动哪天", "main")
    await say(b, "u1", "那在哪", "main-venue")
    await say(b, "u1", "谁负责", "main-lead")
    caught_up = await a.retrieve("u1")
    assert dumped(caught_up) == dumped(await plain(db, domain).retrieve("u1"))
    assert caught_up is not None and caught_up.get_slot("context") == {"topic": "main-lead"}
    await say(a, "u1", "还有吗", "main-more")
    assert rows(db, "u1").count("user") == 4
    assert dumped(await b.retrieve("u1")) == dumped(await plain(db, domain).retrieve("u1"))


async def test_a_long_conversation_keeps_its_last_events_in_memory_and_all_in_the_database(
        db: str, domain: Domain) -> None:
    store = cached(db, domain, max_event_history=60)
    for number in range(30):
        tracker = await say(store, "u1", f"第{number}个问题", f"t{number}")
    reference = await plain(db, domain).retrieve("u1")
    assert reference is not None and len(reference.events) == 1 + 30 * 5
    assert len(tracker.events) == 60 and dumped(tracker) == dumped(reference)[-60:]
    assert tracker.get_slot("context") == {"topic": "t29"}
    again = await cached(db, domain, max_event_history=60).retrieve("u1")  # another replica, from the database
    assert again is not None and dumped(again) == dumped(reference)[-60:]
    assert again.get_slot("context") == {"topic": "t29"}


async def test_a_tracker_changed_but_never_saved_is_read_again(db: str, domain: Domain) -> None:
    store = cached(db, domain)
    await say(store, "u1", "问题", "saved")
    tracker = await store.retrieve("u1")
    assert tracker is not None
    for event in turn("失败的消息", "lost"):  # a message that failed before its save
        tracker.update(event)
    fresh = await store.retrieve("u1")
    assert fresh is not tracker and fresh is not None
    assert fresh.get_slot("context") == {"topic": "saved"}
    assert dumped(fresh) == dumped(await plain(db, domain).retrieve("u1"))


async def test_a_new_session_is_read_as_rasa_reads_it(db: str, domain: Domain) -> None:
    store = cached(db, domain)
    tracker = await say(store, "u1", "旧会话", "old")
    for event in [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]:
        tracker.update(event)
    await store.save(tracker)
    await say(store, "u1", "新会话", "new")
    assert dumped(await store.retrieve("u1")) == dumped(await plain(db, domain).retrieve("u1"))


async def test_the_cache_keeps_the_most_recent_conversations(db: str, domain: Domain) -> None:
    store = cached(db, domain, cache_size=2)
    for sender in ("u1", "u2", "u3"):
        await say(store, sender, "问题", sender)
    assert sorted(store._known) == ["u2", "u3"]
    assert dumped(await store.retrieve("u1")) == dumped(await plain(db, domain).retrieve("u1"))


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer().start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.remove()


async def test_a_postgresql_restart_is_waited_for_and_nothing_is_lost(postgres: PostgresServer, domain: Domain) -> None:
    store = CachedSQLTrackerStore(domain=domain, host=postgres.url(), retry_seconds=30)
    await say(store, "pg1", "重启之前", "before")
    postgres.stop()
    restarted = asyncio.get_running_loop().run_in_executor(None, postgres.start)
    during = await say(store, "pg1", "重启期间", "during")  # waits for the server to come back
    assert during.get_slot("context") == {"topic": "during"}
    await restarted
    await say(store, "pg1", "重启之后", "after")
    reference = await SQLTrackerStore(domain=domain, host=postgres.url()).retrieve("pg1")
    assert [e["text"] for e in dumped(reference) if e["event"] == "user"] == ["重启之前", "重启期间", "重启之后"]
    assert reference is not None and reference.get_slot("context") == {"topic": "after"}


async def test_the_wait_for_the_database_ends(postgres: PostgresServer, domain: Domain) -> None:
    store = CachedSQLTrackerStore(domain=domain, host=postgres.url(), retry_seconds=0.5)
    await say(store, "pg2", "问题", "x")
    postgres.stop()
    try:
        with pytest.raises(sa.exc.OperationalError):
            await store.retrieve("pg-new")
    finally:
        postgres.start()
    tracker = await store.retrieve("pg2")
    assert tracker is not None and tracker.get_slot("context") == {"topic": "x"}


async def test_synchronous_commit_off_is_this_stores_connections_only(postgres: PostgresServer, domain: Domain) -> None:
    store = CachedSQLTrackerStore(domain=domain, host=postgres.url(), synchronous_commit="off")
    default = CachedSQLTrackerStore(domain=domain, host=postgres.url())
    try:
        with store.engine.connect() as conn, default.engine.connect() as other:
            assert conn.execute(sa.text("SHOW synchronous_commit")).scalar() == "off"
            assert other.execute(sa.text("SHOW synchronous_commit")).scalar() == "on"
        await say(store, "pg3", "问题", "x")
        reference = await SQLTrackerStore(domain=domain, host=postgres.url()).retrieve("pg3")
        assert reference is not None and reference.get_slot("context") == {"topic": "x"}
    finally:
        store.engine.dispose()
        default.engine.dispose()
