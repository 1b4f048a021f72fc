"""bot.staff.dashboard on a real Rasa tracker store (SQLTrackerStore in a temporary SQLite file),
with a fixed clock and days in Beijing time."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import importlib.util
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.staff import dashboard as board
from bot.staff.dashboard import Dashboard, Period, parse_period
from tests.dashboard_data import append, session_start, turn

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc
TODAY = dt.date(2026, 12, 3)
# 2026-12-02 23:59:59 and 2026-12-03 00:00:00 in Beijing: the same UTC afternoon.
BEFORE_MIDNIGHT = dt.datetime(2026, 12, 2, 15, 59, 59, tzinfo=UTC).timestamp()
MIDNIGHT = dt.datetime(2026, 12, 2, 16, 0, 0, tzinfo=UTC).timestamp()
NOON = dt.datetime(2026, 12, 3, 4, 0, 0, tzinfo=UTC).timestamp()  # 12:00 Beijing


@pytest.fixture()
def save(tmp_path: Path) -> Callable[..., Any]:
    """save(conversations): append events to the senders' trackers in tmp_path/conversations.db."""
    return lambda conversations: append(tmp_path / "conversations.db", conversations)


@pytest.fixture()
def dash(tmp_path: Path) -> Dashboard:
    made = Dashboard(f"sqlite:///{tmp_path / 'conversations.db'}", f"sqlite:///{tmp_path / 'kb.db'}",
                     today=lambda: TODAY)
    yield made
    made.dispose()


SEEDED = {
    "widget-a": [*turn("报名截止是哪天", "answer", BEFORE_MIDNIGHT, "ask_deadline", ["deadline.register"]),
                 *turn("停车方便吗", "unstated", MIDNIGHT + 60, "ask_unstated"),
                 *turn("小朋友能去吗", "answer", NOON, "faq", ["faq:kids"])],
    "widget-b": [*turn("社保怎么交", "refusal", MIDNIGHT + 5, "out_of_scope"),
                 *turn("那个怎么弄", "clarify", MIDNIGHT + 65, "nlu_fallback"),
                 *turn("/ask_deadline", "answer", MIDNIGHT + 70, "ask_deadline", ["deadline.register"]),
                 *turn("你好", "smalltalk", MIDNIGHT + 75, "greet")],
    "wx-openid1": [*turn("报名截止是哪天", "answer", NOON + 10, "ask_deadline", ["deadline.register"]),
                   *turn("主场活动在哪", "answer", NOON + 20, "ask_venue", ["event.main_event.venue"]),
                   *turn("醫保卡丟了", None, NOON + 30, "out_of_scope")],  # an older message: no reply_kind
    "eval-0001": [*turn("社保怎么交", "refusal", NOON, "out_of_scope")],  # the tools' own traffic
}


async def test_days_and_hours_are_beijing_time_and_split_by_channel(save, dash) -> None:
    await save(SEEDED)
    assert dash.refresh() == 10
    summary = dash.summary(Period(dt.date(2026, 12, 2), TODAY))
    assert summary.messages == {"2026-12-02": {"widget": 1, "wechat": 0}, "2026-12-03": {"widget": 6, "wechat": 3}}
    assert summary.conversations == {"2026-12-02": {"widget": 1, "wechat": 0},
                                     "2026-12-03": {"widget": 2, "wechat": 1}}
    assert summary.hours[23] == {"widget": 1, "wechat": 0}  # 23:59:59 on December 2
    assert summary.hours[0] == {"widget": 5, "wechat": 0}
    assert summary.hours[12] == {"widget": 1, "wechat": 3}
    # December 3 alone: the message one second before Beijing's midnight is not in it.
    assert board.total(dash.summary(Period(TODAY, TODAY)).message_total()) == 9


async def test_each_message_counts_once_by_how_it_was_answered(save, dash) -> None:
    await save(SEEDED)
    summary = dash.summary(Period(dt.date(2026, 12, 2), TODAY))
    assert summary.outcomes == {
        "answer": {"widget": 2, "wechat": 2},  # facts (a button click too)
        "faq": {"widget": 1, "wechat": 0},
        "unstated": {"widget": 1, "wechat": 0},
        "clarify": {"widget": 1, "wechat": 0},
        "refusal": {"widget": 1, "wechat": 1},  # the WeChat one by its intent: it has no reply_kind
        "other": {"widget": 1, "wechat": 0},  # small talk
    }
    assert summary.share("refusal") == pytest.approx(2 / 10)
    assert [(t.key, t.counts) for t in summary.topics] == [
        ("deadline.register", {"widget": 2, "wechat": 1}),
        ("event.main_event.venue", {"widget": 0, "wechat": 1}),
        ("faq:kids", {"widget": 1, "wechat": 0}),
    ]


async def test_unanswered_wordings_for_grouping(save, dash) -> None:
    await save(SEEDED)
    asked = {a.question: a for a in dash.unanswered(Period(dt.date(2026, 12, 2), TODAY))}
    assert set(asked) == {"停车方便吗", "社保怎么交", "那个怎么弄", "医保卡丢了"}  # no eval-, no answers
    assert asked["医保卡丢了"].typed == "醫保卡丟了" and asked["医保卡丢了"].count == 1
    assert asked["社保怎么交"].first == pytest.approx(MIDNIGHT + 5)


async def test_refresh_reads_only_new_events(save, dash, monkeypatch: pytest.MonkeyPatch) -> None:
    await save(SEEDED)
    assert dash.refresh() == 10
    with dash.store.connect() as conn:
        read = conn.execute(board.state_table.select()).mappings().one()["last_id"]
    with dash.tracker.connect() as conn:
        assert read >= conn.exec_driver_sql("SELECT max(id) FROM events").scalar() - 1  # all read
    dash.overlap = 5
    starts: list[int] = []
    real = dash._events_after
    monkeypatch.setattr(dash, "_events_after", lambda start: starts.append(start) or real(start))
    assert dash.refresh() == 0
    await save({"widget-c": turn("代表大会在哪开", "answer", NOON + 100, "ask_venue", ["event.congress.venue"])})
    assert dash.refresh() == 1
    assert starts and starts[0] == read - 5  # not 0: no full scan
    assert all(start >= read - 5 for start in starts)
    assert board.total(dash.summary(Period(TODAY, TODAY), refresh=False).message_total()) == 10


async def test_a_reply_read_in_a_later_refresh_still_settles_its_message(save, dash) -> None:
    from rasa.shared.core.events import SlotSet, UserUttered

    await save({"widget-d": [UserUttered("社保卡在哪办", intent={"name": "ask_venue", "confidence": 0.4},
                                         parse_data={"text": "社保卡在哪办", "intent": {"name": "ask_venue"}},
                                         timestamp=NOON)]})
    dash.refresh()
    assert dash.summary(Period(TODAY, TODAY)).outcomes["answer"]["widget"] == 1  # not yet settled
    await save({"widget-d": [SlotSet("reply_kind", "refusal", timestamp=NOON + 1)]})
    summary = dash.summary(Period(TODAY, TODAY))
    assert summary.outcomes["answer"]["widget"] == 0 and summary.outcomes["refusal"]["widget"] == 1


async def test_slots_carried_into_a_new_session_change_nothing(save, dash) -> None:
    await save({"widget-e": [*turn("报名截止是哪天", "answer", NOON, "ask_deadline", ["deadline.register"]),
                             *session_start(NOON + 4000)]})
    summary = dash.summary(Period(TODAY, TODAY))
    assert summary.outcomes["answer"]["widget"] == 1 and summary.outcomes["refusal"]["widget"] == 0
    assert summary.topics[0].key == "deadline.register"


async def test_overlap_reread_does_not_count_twice(save, dash) -> None:
    await save(SEEDED)
    dash.refresh()
    with dash.store.begin() as conn:  # as if the last refresh had stopped OVERLAP events earlier
        conn.execute(board.state_table.update().values(last_id=board.state_table.c.last_id - 3))
    dash.refresh()
    assert board.total(dash.summary(Period(dt.date(2026, 12, 2), TODAY), refresh=False).message_total()) == 10


async def test_a_replaced_tracker_store_is_read_again_from_the_start(save, dash, tmp_path: Path) -> None:
    await save(SEEDED)
    dash.refresh()
    with dash.tracker.begin() as conn:
        conn.exec_driver_sql("DELETE FROM events")
    await save({"widget-f": turn("截止日期", "answer", NOON, "ask_deadline", ["deadline.register"])})
    summary = dash.summary(Period(dt.date(2026, 12, 2), TODAY))
    assert board.total(summary.message_total()) == 1


async def test_another_time_zone_rebuilds_the_days(save, dash, monkeypatch: pytest.MonkeyPatch) -> None:
    await save(SEEDED)
    dash.refresh()
    monkeypatch.setenv("KEPU_TIMEZONE", "UTC")
    summary = dash.summary(Period(dt.date(2026, 12, 2), TODAY))
    assert summary.messages["2026-12-02"]["widget"] == 6  # 16:00 UTC is still December 2 in UTC


async def test_votes_of_the_period_in_beijing_days(dash) -> None:
    from sqlalchemy import insert

    from bot.web.feedback import feedback_table, feedback_tables

    with dash.store.begin() as conn:
        feedback_tables.create_all(conn)
        for at, vote in ((dt.datetime(2026, 12, 2, 15, 59, tzinfo=UTC), "up"),  # Dec 2, 23:59 Beijing
                         (dt.datetime(2026, 12, 2, 16, 1, tzinfo=UTC), "up"),  # Dec 3, 00:01 Beijing
                         (dt.datetime(2026, 12, 3, 2, 0, tzinfo=UTC), "down"),
                         (dt.datetime(2026, 12, 3, 3, 0, tzinfo=UTC), "up")):
            conn.execute(insert(feedback_table).values(created_at=at, session_id="s", question="q", answer="a",
                                                       vote=vote))
    summary = dash.summary(Period(TODAY, TODAY))
    assert summary.votes == {"up": {"widget": 2, "wechat": 0}, "down": {"widget": 1, "wechat": 0}}
    assert summary.satisfaction() == pytest.approx(2 / 3)


def test_no_tracker_store_yet_gives_empty_figures(tmp_path: Path) -> None:
    made = Dashboard(f"sqlite:///{tmp_path / 'none.db'}", f"sqlite:///{tmp_path / 'kb.db'}", today=lambda: TODAY)
    summary = made.summary(made.default_period())
    assert board.total(summary.message_total()) == 0 and summary.satisfaction() is None
    assert summary.share("answer") is None
    assert not (tmp_path / "none.db").exists()
    made.dispose()


def test_the_default_period_is_the_last_30_days_of_the_injected_clock(dash) -> None:
    assert dash.default_period() == Period(dt.date(2026, 11, 4), TODAY)
    assert len(dash.default_period().days) == 30


@pytest.mark.parametrize(("args", "period", "error"), [
    ({}, Period(dt.date(2026, 11, 4), TODAY), ""),
    ({"days": "7"}, Period(dt.date(2026, 11, 27), TODAY), ""),
    ({"start": "2026-11-01", "end": "2026-11-30"}, Period(dt.date(2026, 11, 1), dt.date(2026, 11, 30)), ""),
    ({"start": "2026-11-30", "end": "2026-11-01"}, Period(dt.date(2026, 11, 4), TODAY), "开始日期不能晚于结束日期。"),
    ({"start": "11/01"}, Period(dt.date(2026, 11, 4), TODAY), "日期格式不正确，请按“年-月-日”填写。"),
    ({"days": "0"}, Period(dt.date(2026, 11, 4), TODAY), "天数应为 1 到 366 之间的整数。"),
    ({"start": "2020-01-01"}, Period(dt.date(2026, 11, 4), TODAY), "时间段最长 366 天。"),
])
def test_parse_period(args: dict[str, str], period: Period, error: str) -> None:
    assert parse_period(TODAY, **args) == (period, error)


# ---------------------------------------------------------------- PostgreSQL (the multi-replica setup)

PG_SERVER = os.environ.get("KEPU_TEST_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")


def _cluster_stores() -> Any:
    spec = importlib.util.spec_from_file_location("cluster_stores", ROOT / "scripts" / "cluster_stores.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def pg_url() -> str:
    """A fresh PostgreSQL database for the tracker store and the dashboard's table, dropped afterwards."""
    stores = _cluster_stores()
    url = f"{PG_SERVER}/kepu_dash_{uuid.uuid4().hex[:10]}"
    try:
        stores.ensure_database(url)
    except stores.StoreError as exc:
        pytest.fail(f"no PostgreSQL server at {PG_SERVER} (python-svc machines run one): {exc}")
    yield url
    stores.drop_database(url)


async def test_postgresql_gives_the_same_figures_and_two_replicas_count_once(pg_url: str) -> None:
    await append(pg_url, SEEDED)
    replicas = [Dashboard(pg_url, pg_url, today=lambda: TODAY) for _ in range(2)]
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # both read the same events at once
            list(pool.map(lambda board: board.refresh(), replicas))
        for board in replicas:
            summary = board.summary(Period(dt.date(2026, 12, 2), TODAY))
            assert summary.messages == {"2026-12-02": {"widget": 1, "wechat": 0},
                                        "2026-12-03": {"widget": 6, "wechat": 3}}
            assert summary.outcomes["faq"] == {"widget": 1, "wechat": 0}
            assert summary.hours[23] == {"widget": 1, "wechat": 0}
        assert {a.question for a in replicas[0].unanswered(Period(dt.date(2026, 12, 2), TODAY))} == {
            "停车方便吗", "社保怎么交", "那个怎么弄", "医保卡丢了"}
    finally:
        for board in replicas:
            board.dispose()
