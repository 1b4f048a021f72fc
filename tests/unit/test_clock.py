"""bot.clock: one time zone for every day the assistant and its staff tools show."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from bot import clock

MIDNIGHT_BEIJING = dt.datetime(2026, 12, 2, 16, 0, tzinfo=dt.timezone.utc)  # 2026-12-03 00:00 in Beijing


@pytest.fixture(autouse=True)
def utc_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's own zone is UTC (a server's clock), and no zone or day is configured."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("KEPU_TIMEZONE", raising=False)
    monkeypatch.delenv("KEPU_TODAY", raising=False)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_asia_shanghai_by_default_whatever_the_server_clock() -> None:
    assert clock.zone_name() == "Asia/Shanghai"
    assert clock.day_of(MIDNIGHT_BEIJING.timestamp()) == dt.date(2026, 12, 3)
    assert clock.day_of(MIDNIGHT_BEIJING.timestamp() - 1) == dt.date(2026, 12, 2)
    assert clock.start_of(dt.date(2026, 12, 3)) == MIDNIGHT_BEIJING.timestamp()
    assert clock.local(dt.datetime(2026, 12, 2, 17, 0)).strftime("%Y-%m-%d %H:%M") == "2026-12-03 01:00"


def test_zone_is_configurable_and_an_unknown_one_falls_back(monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("KEPU_TIMEZONE", "UTC")
    assert clock.day_of(MIDNIGHT_BEIJING.timestamp()) == dt.date(2026, 12, 2)
    assert clock.start_of(dt.date(2026, 12, 3)) == MIDNIGHT_BEIJING.timestamp() + 8 * 3600
    monkeypatch.setenv("KEPU_TIMEZONE", "Mars/Olympus")
    assert clock.zone_name() == "Asia/Shanghai"
    assert "Mars/Olympus" in caplog.text


def test_today_is_the_zone_s_today_or_kepu_today(monkeypatch: pytest.MonkeyPatch) -> None:
    assert clock.today() == dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    monkeypatch.setenv("KEPU_TODAY", "2021-09-20")
    assert clock.today() == dt.date(2021, 9, 20)
