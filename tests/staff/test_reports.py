"""bot.staff.reports on a real Rasa tracker store (SQLTrackerStore in a temporary SQLite file)."""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.staff import reports

DAY1 = dt.datetime(2026, 11, 1, 10, 0).timestamp()
DAY2 = dt.datetime(2026, 11, 3, 15, 0).timestamp()
DAY3 = dt.datetime(2026, 11, 5, 9, 0).timestamp()


def turn(text: str, intent: str, kind: str | None, at: float, confidence: float = 0.9) -> list:
    """What Rasa stores for one message answered by action_answer."""
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

    events = [UserUttered(text, intent={"name": intent, "confidence": confidence},
                          parse_data={"text": text, "intent": {"name": intent, "confidence": confidence},
                                      "entities": []}, timestamp=at),
              ActionExecuted("action_answer", timestamp=at + 0.1),
              BotUttered("……", timestamp=at + 0.2),
              SlotSet("context", {}, timestamp=at + 0.3)]
    if kind is not None:
        events.append(SlotSet("reply_kind", kind, timestamp=at + 0.4))
    events.append(ActionExecuted("action_listen", timestamp=at + 0.5))
    return events


@pytest.fixture()
async def tracker_db(tmp_path: Path, domain, monkeypatch: pytest.MonkeyPatch) -> Path:
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker

    path = tmp_path / "conversations.db"
    store = SQLTrackerStore(Domain.from_dict(domain), dialect="sqlite", db=str(path))
    conversations = {
        "user-a": [*turn("社保怎么交？", "out_of_scope", "refusal", DAY1),
                   *turn("截止日期是什么时候", "ask_deadline", "answer", DAY1 + 60),
                   *turn("停车方便吗", "ask_unstated", "unstated", DAY1 + 120)],
        "user-b": [*turn("社保怎么交", "out_of_scope", "refusal", DAY2),
                   *turn("那个怎么弄", "nlu_fallback", "clarify", DAY2 + 60, 0.3)],
        "user-c": [*turn("社 保 怎么交!!", "out_of_scope", "refusal", DAY3),
                   *turn("代表大会开完了没", "nlu_fallback", "answer", DAY3 + 60, 0.3),  # rescued: answered
                   *turn("/ask_deadline", "ask_deadline", "answer", DAY3 + 120),
                   *turn("醫保卡丟了", "out_of_scope", None, DAY3 + 180)],  # older message without reply_kind
        "eval-0123": [*turn("户口迁移要带哪些材料", "out_of_scope", "refusal", DAY3)],  # the gate's own traffic
    }
    for sender, events in conversations.items():
        tracker = DialogueStateTracker.from_events(sender, events, slots=Domain.from_dict(domain).slots)
        await store.save(tracker)
    store.engine.dispose()
    monkeypatch.setenv("TRACKER_URL", f"sqlite:///{path}")
    return path


async def test_unanswered_groups_normalised_text_and_ranks_by_count(tracker_db):
    rows = reports.unanswered()
    assert rows[0] == {"question": "社保怎么交", "originals": ["社保怎么交？", "社保怎么交", "社 保 怎么交!!"],
                       "count": 3, "first": "2026-11-01", "last": "2026-11-05", "kinds": "refusal"}
    questions = [r["question"] for r in rows]
    assert set(questions) == {"社保怎么交", "停车方便吗", "那个怎么弄", "医保卡丢了"}
    by_question = {r["question"]: r for r in rows}
    assert by_question["那个怎么弄"]["kinds"] == "clarify"
    assert by_question["停车方便吗"]["kinds"] == "unstated"
    assert by_question["医保卡丢了"]["kinds"] == "out_of_scope"  # intent decides without reply_kind


async def test_answered_messages_payloads_and_internal_senders_are_left_out(tracker_db):
    questions = {r["question"] for r in reports.unanswered()}
    assert "截止日期是什么时候" not in questions
    assert "代表大会开完了没" not in questions  # nlu_fallback, but the reply was an answer
    assert "/ask_deadline" not in questions
    assert "户口迁移要带哪些材料" not in questions


async def test_since_filters_by_day(tracker_db):
    rows = reports.unanswered(since=dt.date(2026, 11, 3))
    assert {r["question"]: r["count"] for r in rows} == {"社保怎么交": 2, "那个怎么弄": 1, "医保卡丢了": 1}
    assert reports.unanswered(since=dt.date(2026, 12, 1)) == []


async def test_to_csv(tracker_db, tmp_path):
    path = reports.to_csv(reports.unanswered(), tmp_path / "out" / "unanswered.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets read the Chinese correctly
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["question"] == "社保怎么交" and rows[0]["count"] == "3"
    assert rows[0]["originals"] == "社保怎么交？\n社保怎么交\n社 保 怎么交!!"  # one cell, one wording a line
    empty = reports.to_csv([], tmp_path / "empty.csv", fields=["question", "count"])
    assert empty.read_text(encoding="utf-8-sig").strip() == "question,count"


def test_no_tracker_database_means_no_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_URL", f"sqlite:///{tmp_path / 'missing.db'}")
    assert reports.unanswered() == []
    assert not (tmp_path / "missing.db").exists()


def test_feedback_reads_down_votes_newest_first(tmp_path, monkeypatch):
    from bot.knowledge.store import make_engine
    from bot.web.feedback import Feedback, FeedbackStore

    url = f"sqlite:///{tmp_path / 'kb.db'}"
    monkeypatch.setenv("KEPU_DB_URL", url)
    store = FeedbackStore(make_engine(url))
    sid = "0b6f1c1e-8f6a-4f4e-9a53-5f0c6c1d2e3f"
    store.add(Feedback(sid, "截止日期", "截止日期是2021年9月24日。", "down"))
    store.add(Feedback(sid, "主场在哪", "中卫市沙坡头区第十一小学。", "up"))
    store.add(Feedback(sid, "停车", "通知里没有说明停车安排。", "down"))
    store.engine.dispose()
    rows = reports.feedback()
    assert [r["question"] for r in rows] == ["停车", "截止日期"]
    assert set(rows[0]) == {"question", "answer", "at"} and rows[0]["at"].startswith("20")
    assert [r["vote"] for r in reports.feedback(None)] == ["down", "up", "down"]


# ---------------------------------------------------------------- one time zone (issue 9, items 12 and 13)

# 2026-12-03 01:00 in Beijing is still 2026-12-02 on a server whose clock is in UTC.
AT_1AM_BEIJING = dt.datetime(2026, 12, 2, 17, 0, tzinfo=dt.timezone.utc).timestamp()
EVENING_BEFORE = dt.datetime(2026, 12, 2, 15, 30, tzinfo=dt.timezone.utc).timestamp()  # 23:30 Beijing


@pytest.fixture()
def utc_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time zone is UTC, as on a server that keeps its clock in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture()
async def night_db(tmp_path: Path, domain, monkeypatch: pytest.MonkeyPatch) -> Path:
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker

    path = tmp_path / "night.db"
    store = SQLTrackerStore(Domain.from_dict(domain), dialect="sqlite", db=str(path))
    conversations = {
        "night-a": turn("<b>社保</b>怎么 交？", "out_of_scope", "refusal", AT_1AM_BEIJING),
        "night-b": turn("社保怎么交", "out_of_scope", "refusal", AT_1AM_BEIJING + 60),
        "evening": turn("北京明天下雨吗", "out_of_scope", "refusal", EVENING_BEFORE),
    }
    for sender, events in conversations.items():
        await store.save(DialogueStateTracker.from_events(sender, events, slots=Domain.from_dict(domain).slots))
    store.engine.dispose()
    monkeypatch.setenv("TRACKER_URL", f"sqlite:///{path}")
    return path


async def test_a_question_at_1am_beijing_time_is_dated_beijings_day_on_a_utc_server(utc_server, night_db,
                                                                                  monkeypatch):
    monkeypatch.delenv("KEPU_TIMEZONE", raising=False)
    by_question = {r["question"]: r for r in reports.unanswered()}
    assert (by_question["社保怎么交"]["first"], by_question["社保怎么交"]["last"]) == ("2026-12-03", "2026-12-03")
    assert by_question["北京明天下雨吗"]["first"] == "2026-12-02"
    # since=<Beijing's today> starts at 00:00 Beijing time (16:00 UTC the day before).
    assert [r["question"] for r in reports.unanswered(since=dt.date(2026, 12, 3))] == ["社保怎么交"]
    assert reports.unanswered(since=dt.date(2026, 12, 4)) == []


async def test_the_time_zone_is_configurable(utc_server, night_db, monkeypatch):
    monkeypatch.setenv("KEPU_TIMEZONE", "UTC")
    assert reports.unanswered()[0]["first"] == "2026-12-02"
    assert reports.unanswered(since=dt.date(2026, 12, 3)) == []
    monkeypatch.setenv("KEPU_TIMEZONE", "Not/AZone")  # unknown: logged, Beijing time
    assert reports.unanswered()[0]["first"] == "2026-12-03"


async def test_rows_keep_what_users_typed_beside_the_grouped_form(night_db):
    row = next(r for r in reports.unanswered() if r["question"] == "社保怎么交")
    assert row["count"] == 2
    assert row["originals"] == ["<b>社保</b>怎么 交？", "社保怎么交"]
