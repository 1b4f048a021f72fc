"""The staff dashboard's page time with 100 000 stored messages (a benchmark, not a test).

    python -m tests.bench.bench_dashboard [--messages 100000] [--views 10] [--regenerate]
    make bench-dashboard

The messages come from tests/bench/generate_messages.py (kept in results/bench_dashboard/ and
written again only when asked or when the count changes). The admin routes are served on a free
port exactly as in the HTTP tests (register_admin with a Dashboard on these databases, today fixed
to --today), a staff member logs in with aiohttp, and every figure is one whole GET of
/admin/dashboard, the time until the last byte:

- the first view on an empty dashboard table: it reads all the stored events once (catch-up);
- later views with nothing new, and views after 50 new messages each (the incremental refresh);
- the 90-day period, and the CSV of the default period.

Prints the figures and writes results/bench_dashboard.json. The target of issue 12: under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select

from bot.knowledge.loader import load_knowledge
from bot.knowledge.store import build_database, make_engine
from bot.staff.dashboard import Dashboard
from bot.staff.reports import events_table
from bot.web.admin import AdminSite, register_admin
from bot.web.admin_auth import AdminAuth
from bot.web.dashboard_views import DashboardViews
from tests.bench.generate_messages import _rows, generate
from tests.dashboard_data import turn
from tests.servers import SanicServer, new_app
from tests.web.test_dashboard_http import STAFF, logged_in

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "results" / "bench_dashboard"
TARGET_SECONDS = 1.0
NEW_PER_VIEW = 50


def _stored_messages(path: Path) -> int:
    if not path.exists():
        return 0
    engine = create_engine(f"sqlite:///{path}", future=True)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(events_table.c.type_name == "user")).scalar() or 0)
    finally:
        engine.dispose()


def _add_messages(path: Path, count: int, at: float, serial: int) -> None:
    """`count` new messages of one new conversation, written the way Rasa writes them."""
    rng = random.Random(serial)
    rows: list[dict] = []
    for i in range(count):
        kind = rng.choice(["answer", "answer", "unstated", "refusal"])
        rows += _rows(f"w-new-{serial}", turn(f"新问题{serial}-{i}停车", kind, at + i, "ask_time",
                                              ["deadline.register"] if kind == "answer" else []))
    engine = create_engine(f"sqlite:///{path}", future=True)
    with engine.begin() as conn:
        conn.execute(insert(events_table), rows)
    engine.dispose()


async def _timed_get(session: Any, url: str) -> float:
    started = time.perf_counter()
    async with session.get(url) as resp:
        await resp.read()
        assert resp.status == 200, (url, resp.status)
    return time.perf_counter() - started


async def measure(messages: int, views: int, today: dt.date, regenerate: bool) -> dict[str, Any]:
    FOLDER.mkdir(parents=True, exist_ok=True)
    tracker = FOLDER / "conversations.db"
    if regenerate or _stored_messages(tracker) != messages:
        started = time.perf_counter()
        events = generate(tracker, messages, today)
        print(f"generated {messages} messages ({events} events) in {time.perf_counter() - started:.1f} s")
    knowledge = FOLDER / "knowledge.db"
    knowledge.unlink(missing_ok=True)
    db_url = f"sqlite:///{knowledge}"
    kb = load_knowledge(ROOT / "knowledge")
    build_database(kb, db_url)
    board = Dashboard(f"sqlite:///{tracker}", db_url, today=lambda: today)
    auth = AdminAuth(make_engine(db_url))
    auth.create_user(*STAFF)
    app = new_app("bench_dashboard")
    register_admin(app, AdminSite(auth), DashboardViews(lambda: board, lambda: kb))
    server = await SanicServer(app).start()
    page = server.base + "/admin/dashboard"
    try:
        session, _ = await logged_in(server.base)
        async with session:
            first = await _timed_get(session, page)
            steady = [await _timed_get(session, page) for _ in range(views)]
            incremental = []
            at = dt.datetime.combine(today, dt.time(15), tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
            for view in range(views):
                _add_messages(tracker, NEW_PER_VIEW, at + view * 100, view)
                incremental.append(await _timed_get(session, page))
            quarter = [await _timed_get(session, page + "?days=90") for _ in range(3)]
            export = [await _timed_get(session, server.base + "/admin/dashboard.csv") for _ in range(3)]
    finally:
        await server.stop()
        board.dispose()
    return {"messages": messages, "today": today.isoformat(), "views": views,
            "first_view_with_catch_up_s": round(first, 3),
            "view_s": {"median": round(statistics.median(steady), 3), "max": round(max(steady), 3)},
            f"view_after_{NEW_PER_VIEW}_new_messages_s": {"median": round(statistics.median(incremental), 3),
                                                          "max": round(max(incremental), 3)},
            "view_90_days_s": {"median": round(statistics.median(quarter), 3)},
            "csv_s": {"median": round(statistics.median(export), 3)},
            "target_s": TARGET_SECONDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.date(2026, 12, 3))
    parser.add_argument("--regenerate", action="store_true", help="write the messages again")
    args = parser.parse_args()
    result = asyncio.run(measure(args.messages, args.views, args.today, args.regenerate))
    (ROOT / "results" / "bench_dashboard.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    steady = result["view_s"]["median"]
    new = result[f"view_after_{NEW_PER_VIEW}_new_messages_s"]["median"]
    print(f"dashboard page with {result['messages']} stored messages (last 30 days, whole GET):")
    print(f"  first view, reading every stored event once: {result['first_view_with_catch_up_s']:.3f} s")
    print(f"  later views: median {steady:.3f} s, max {result['view_s']['max']:.3f} s")
    print(f"  views after {NEW_PER_VIEW} new messages each: median {new:.3f} s, "
          f"max {result[f'view_after_{NEW_PER_VIEW}_new_messages_s']['max']:.3f} s")
    print(f"  90 days: median {result['view_90_days_s']['median']:.3f} s; CSV: {result['csv_s']['median']:.3f} s")
    verdict = "met" if max(steady, new) < TARGET_SECONDS else "NOT met"
    print(f"  target < {TARGET_SECONDS:.0f} s per view: {verdict}; results/bench_dashboard.json")


if __name__ == "__main__":
    main()
