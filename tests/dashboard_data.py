"""Conversations as Rasa stores them, for the staff dashboard's tests (bot/staff/dashboard.py).

`turn()` is what one message answered by action_answer leaves in the tracker store (the slots
reply_kind and reply_facts as actions/actions.py sets them); `append()` adds events to senders'
trackers with Rasa's own SQLTrackerStore, so the tests read exactly the rows Rasa writes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def turn(text: str, kind: str | None, at: float, intent: str = "ask_time", facts: list[str] | None = None) -> list:
    """The events of one user message and its answer (no reply slots when `kind` is None: an older message)."""
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

    events = [UserUttered(text, intent={"name": intent, "confidence": 0.9},
                          parse_data={"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []},
                          timestamp=at),
              ActionExecuted("action_answer", timestamp=at + 0.1), BotUttered("……", timestamp=at + 0.2),
              SlotSet("context", {}, timestamp=at + 0.3)]
    if kind is not None:
        events += [SlotSet("reply_kind", kind, timestamp=at + 0.4),
                   SlotSet("reply_facts", facts or [], timestamp=at + 0.5)]
    return [*events, ActionExecuted("action_listen", timestamp=at + 0.6)]


def session_start(at: float) -> list:
    """A new session, with the slots Rasa carries over (carry_over_slots_to_new_session)."""
    from rasa.shared.core.events import ActionExecuted, SessionStarted, SlotSet

    return [ActionExecuted("action_session_start", timestamp=at), SessionStarted(timestamp=at + 0.01),
            SlotSet("reply_kind", "refusal", timestamp=at + 0.02), SlotSet("reply_facts", [], timestamp=at + 0.03),
            ActionExecuted("action_listen", timestamp=at + 0.04)]


async def append(tracker_db: Path | str, conversations: dict[str, list]) -> None:
    """Append each sender's events to their tracker in the tracker store `tracker_db`: a SQLite file,
    or a postgresql:// URL (user and host as Rasa's SQL tracker store takes them)."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from sqlalchemy.engine import make_url

    domain = Domain.load(str(ROOT / "domain.yml"))
    if isinstance(tracker_db, str) and tracker_db.startswith("postgresql"):
        url = make_url(tracker_db)
        store = SQLTrackerStore(domain, dialect="postgresql", host=url.host, port=url.port, db=url.database,
                                username=url.username, password=url.password)
    else:
        store = SQLTrackerStore(domain, dialect="sqlite", db=str(tracker_db))
    try:
        for sender, events in conversations.items():
            tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
            for event in events:
                tracker.update(event)
            await store.save(tracker)
    finally:
        store.engine.dispose()


def append_now(tracker_db: Path, conversations: dict[str, list]) -> None:
    """append() from synchronous code, even where an event loop runs (Playwright's sync API keeps one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, append(tracker_db, conversations)).result()
