"""The one time zone of every date the assistant and its staff tools show or compare.

KEPU_TIMEZONE (an IANA name, default Asia/Shanghai). Servers often keep their clock
in UTC, eight hours behind 中卫: a question asked at 01:00 Beijing time belongs to
Beijing's day in the reports, `since=<day>` starts at 00:00 Beijing time, and the
deadlines' "today" is Beijing's today. KEPU_TODAY=YYYY-MM-DD fixes today (tests, demos).
"""

from __future__ import annotations

import datetime as dt
import logging
import os

logger = logging.getLogger(__name__)

DEFAULT_ZONE = "Asia/Shanghai"
# China has kept UTC+8 without daylight saving since 1991: exact when no tz database is installed.
_CHINA = dt.timezone(dt.timedelta(hours=8), DEFAULT_ZONE)


def zone() -> dt.tzinfo:
    """The configured time zone; an unknown KEPU_TIMEZONE is logged and Asia/Shanghai used."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = os.environ.get("KEPU_TIMEZONE") or DEFAULT_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name != DEFAULT_ZONE:
            logger.warning("KEPU_TIMEZONE=%r is not a known time zone; using %s", name, DEFAULT_ZONE)
        try:
            return ZoneInfo(DEFAULT_ZONE)
        except ZoneInfoNotFoundError:
            return _CHINA


def zone_name() -> str:
    """The configured zone's name, e.g. 'Asia/Shanghai' (for pages that say which zone they use)."""
    current = zone()
    return str(getattr(current, "key", None) or current.tzname(None) or DEFAULT_ZONE)


def now() -> dt.datetime:
    """The current time in the configured zone (timezone-aware)."""
    return dt.datetime.now(zone())


def today() -> dt.date:
    """Today in the configured zone, or KEPU_TODAY when set."""
    fixed = os.environ.get("KEPU_TODAY")
    return dt.date.fromisoformat(fixed) if fixed else now().date()


def local(value: dt.datetime) -> dt.datetime:
    """An aware datetime in the configured zone; a naive one is taken as UTC (how the tables store it)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(zone())


def day_of(timestamp: float) -> dt.date:
    """The day (in the configured zone) of a Unix timestamp."""
    return dt.datetime.fromtimestamp(timestamp, zone()).date()


def start_of(day: dt.date) -> float:
    """The Unix timestamp of 00:00 of `day` in the configured zone."""
    return dt.datetime.combine(day, dt.time(), tzinfo=zone()).timestamp()
