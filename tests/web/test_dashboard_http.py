"""The staff dashboard over HTTP: the admin routes (bot.web.admin.register_admin) served on a free
port, the dashboard handed a Dashboard on temporary databases with a fixed clock and conversations
written with Rasa's own SQLTrackerStore; driven with aiohttp like a browser without JavaScript."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bot.knowledge.model import KnowledgeSet
from bot.knowledge.store import make_engine
from bot.staff.dashboard import Dashboard
from bot.web import DEMO_CSP
from bot.web.admin import AdminSite, register_admin
from bot.web.admin_auth import AdminAuth
from bot.web.dashboard_views import DashboardViews
from tests.dashboard_data import append, turn
from tests.servers import SanicServer, new_app

UTC = dt.timezone.utc
TODAY = dt.date(2026, 12, 3)
STAFF = ("dash-staff", "dash-password-2026")


def beijing(day: dt.date, hour: int, minute: int = 0) -> float:
    """The Unix time of `day` `hour`:`minute` in Beijing."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()


NOV_20 = dt.date(2026, 11, 20)  # in the last 30 days, not in the last 7
CONVERSATIONS = {
    "w-1": [*turn("报名截止是哪天", "answer", beijing(TODAY, 9), "ask_deadline", ["deadline.register"]),
            *turn("活动现场有停车场吗", "unstated", beijing(TODAY, 9, 5), "ask_unstated"),
            *turn("<b>停车厂</b>在哪里", "unstated", beijing(TODAY, 9, 6), "ask_unstated")],
    "w-2": [*turn("附近有沒有停車位", "unstated", beijing(TODAY, 10), "ask_unstated"),
            *turn("总结材料有模板吗", "clarify", beijing(TODAY, 10, 2), "nlu_fallback")],
    "wx-o1": [*turn("报名截止是哪天", "answer", beijing(TODAY, 20), "ask_deadline", ["deadline.register"]),
              *turn("社保怎么交", "refusal", beijing(TODAY, 20, 1), "out_of_scope")],
    "w-3": [*turn("主场活动在哪", "answer", beijing(NOV_20, 15), "ask_venue", ["event.main_event.venue"]),
            *turn("社保繳費", "refusal", beijing(NOV_20, 15, 1), "out_of_scope")],
}


@pytest.fixture()
async def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kb: KnowledgeSet) -> AsyncIterator[str]:
    """The admin routes on a free port, the dashboard on tmp_path's databases; yields the base URL."""
    db_url = f"sqlite:///{tmp_path / 'kb.db'}"
    monkeypatch.setenv("KEPU_DB_URL", db_url)  # the audit log
    await append(tmp_path / "conversations.db", CONVERSATIONS)
    board = Dashboard(f"sqlite:///{tmp_path / 'conversations.db'}", db_url, today=lambda: TODAY)
    auth = AdminAuth(make_engine(db_url))
    auth.create_user(*STAFF)
    app = new_app("dashboard_http")
    register_admin(app, AdminSite(auth), DashboardViews(lambda: board, lambda: kb))
    server = await SanicServer(app).start()
    yield server.base
    await server.stop()
    board.dispose()


async def logged_in(base: str, target: str | None = None) -> tuple[aiohttp.ClientSession, str]:
    """A client session logged in as STAFF through the form; (session, where the login sent it)."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(base + "/admin/login" + (f"?next={target}" if target else "")) as resp:
        page = await resp.text()
    token = re.search(r'name="login_token" value="([^"]+)"', page).group(1)
    follow = re.search(r'name="next" value="([^"]*)"', page).group(1)
    form = {"login_token": token, "name": STAFF[0], "password": STAFF[1], "next": unescape(follow)}
    async with session.post(base + "/admin/login", data=form, allow_redirects=False,
                            headers={"Origin": base}) as resp:
        assert resp.status == 303
        return session, resp.headers["Location"]


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], str]:
    async with session.get(url, allow_redirects=False) as resp:
        return resp.status, dict(resp.headers), await resp.text()


def cell(html: str, table: str, row: str) -> list[str]:
    """The cells of the row headed `row` in the table with id `table`."""
    body = re.search(rf'<table class="adm-table" id="{table}">(.*?)</table>', html, re.S).group(1)
    found = re.search(rf"<tr><th scope=\"row\"[^>]*>{re.escape(row)}</th>(.*?)</tr>", body, re.S)
    assert found, f"no row {row!r} in {table}"
    return [unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", found.group(1))]


async def test_the_dashboard_needs_a_login_and_is_the_first_page_after_it(site: str) -> None:
    async with aiohttp.ClientSession() as anonymous:
        status, headers, _ = await get(anonymous, site + "/admin/dashboard")
        assert status == 303 and headers["Location"] == "/admin/login?next=%2Fadmin%2Fdashboard"
        status, headers, _ = await get(anonymous, site + "/admin/dashboard.csv")
        assert status == 303 and headers["Location"].startswith("/admin/login?next=")
    session, landing = await logged_in(site)
    async with session:
        assert landing == "/admin/dashboard"
        status, headers, _ = await get(session, site + "/admin")
        assert status == 303 and headers["Location"] == "/admin/dashboard"


async def test_the_page_shows_the_last_30_days_by_channel(site: str) -> None:
    session, _ = await logged_in(site)
    async with session:
        status, headers, html = await get(session, site + "/admin/dashboard")
    assert status == 200 and headers["Content-Security-Policy"] == DEMO_CSP
    assert "2026-11-04 至 2026-12-03" in html and "北京时间（Asia/Shanghai）" in html
    assert re.search(r'id="total-messages">9<', html) and re.search(r'id="total-conversations">4<', html)
    assert cell(html, "table-daily", "2026-12-03") == ["5", "2", "2", "1"]  # messages, then conversations
    assert cell(html, "table-daily", "2026-11-20") == ["2", "0", "1", "0"]
    assert cell(html, "table-topics", "活动登记填报截止") == ["1", "1", "2"]
    assert cell(html, "table-hours", "20:00–20:59") == ["0", "2", "2"]
    # One line point per day and channel, drawn by the server; no script, no style attribute (CSP).
    assert html.count('class="dash-dot dash-s-widget"') == 2 * 30  # messages and conversations charts
    assert 'data-series="网页" data-label="2026-12-03" data-value="5"' in html
    assert "<script" not in html.split("</head>")[1] and " style=" not in html


async def test_the_shares_of_how_messages_were_answered(site: str) -> None:
    session, _ = await logged_in(site)
    async with session:
        _, _, html = await get(session, site + "/admin/dashboard")
    # 9 messages: 3 answered from the notice, 3 "通知未说明", 1 clarified, 2 refused.
    assert cell(html, "table-outcomes", "已回答（通知内容）") == ["2", "1", "3", "33.3%"]
    assert cell(html, "table-outcomes", "通知未说明") == ["3", "0", "3", "33.3%"]
    assert cell(html, "table-outcomes", "超出范围（婉拒）") == ["1", "1", "2", "22.2%"]
    assert cell(html, "table-outcomes", "追问澄清（您是想问）") == ["1", "0", "1", "11.1%"]
    assert cell(html, "table-outcomes", "常见问题回答") == ["0", "0", "0", "0.0%"]
    assert re.search(r'id="resolution">33\.3%<', html) and re.search(r'id="satisfaction">—<', html)


async def test_switching_the_period(site: str) -> None:
    session, _ = await logged_in(site)
    async with session:
        _, _, week = await get(session, site + "/admin/dashboard?days=7")
        _, _, custom = await get(session, site + "/admin/dashboard?start=2026-11-20&end=2026-11-20")
        status, _, wrong = await get(session, site + "/admin/dashboard?start=2026-12-05&end=2026-12-01")
    assert "2026-11-27 至 2026-12-03" in week and re.search(r'id="total-messages">7<', week)
    assert 'aria-current="true">最近7天<' in week
    assert week.count('class="dash-dot dash-s-widget"') == 2 * 7
    assert "社保繳費" not in week  # asked on November 20
    assert re.search(r'id="total-messages">2<', custom) and "社保繳費" in custom
    assert status == 200 and "开始日期不能晚于结束日期。" in wrong and "2026-11-04 至 2026-12-03" in wrong


def groups(html: str) -> list[dict[str, Any]]:
    """Each unanswered group of the page: its title, count, the typed examples, suggestion, FAQ link."""
    found = []
    for item in re.findall(r'<li class="dash-group"[^>]*>(.*?)</li>\n(?=<li class="dash-group"|</ol>)', html, re.S):
        link = unescape(re.search(r'<a class="[^"]*" href="([^"]+)"', item).group(1))
        found.append({
            "title": unescape(re.search(r'<h3 class="dash-group-title">(.*?)</h3>', item).group(1)),
            "count": int(re.search(r'dash-group-count">(\d+)<', item).group(1)),
            "examples": [unescape(e) for e in re.findall(r"<li>(.*?)</li>", item)],
            "raw": item, "link": link})
    return found


async def test_unanswered_questions_grouped_by_meaning_with_suggestions(site: str) -> None:
    session, _ = await logged_in(site)
    async with session:
        _, _, html = await get(session, site + "/admin/dashboard")
    found = {g["title"]: g for g in groups(html)}
    parking = found["活动现场有停车场吗"]
    assert parking["count"] == 3 and "2026-12-03" in parking["raw"]
    assert parking["examples"] == ["活动现场有停车场吗", "<b>停车厂</b>在哪里", "附近有沒有停車位"]  # as typed
    assert "&lt;b&gt;停车厂&lt;/b&gt;" in parking["raw"] and "<b>" not in parking["raw"]
    assert "通知未涉及" in parking["raw"]
    social = found["社保缴费"]  # asked first (November 20), as often as 社保怎么交
    assert social["count"] == 2 and "首次 2026-11-20" in social["raw"] and "最近 2026-12-03" in social["raw"]
    summary = found["总结材料有模板吗"]
    assert "2021年10月10日" in summary["raw"] and "来源：通知第五部分" in summary["raw"]
    # The FAQ form link: the wordings as the questions, the suggestion as the answer, with its source.
    query = parse_qs(urlsplit(summary["link"]).query)
    assert urlsplit(summary["link"]).path == "/admin/faq/new"
    assert query["question"] == ["总结材料有模板吗"] and "2021年10月10日" in query["answer"][0]
    assert query["source"][0].startswith("通知第五部分")
    assert parse_qs(urlsplit(parking["link"]).query) == {
        "question": ["活动现场有停车场吗\n<b>停车厂</b>在哪里\n附近有沒有停車位"]}


async def test_the_faq_form_opens_prefilled_from_a_group(site: str) -> None:
    session, _ = await logged_in(site)
    async with session:
        _, _, html = await get(session, site + "/admin/dashboard")
        link = {g["title"]: g for g in groups(html)}["总结材料有模板吗"]["link"]
        status, _, form = await get(session, site + link)
    assert status == 200
    questions = re.search(r'<textarea id="faq-questions"[^>]*>(.*?)</textarea>', form, re.S).group(1)
    answer = re.search(r'<textarea id="faq-answer"[^>]*>(.*?)</textarea>', form, re.S).group(1)
    source = re.search(r'<input id="faq-source"[^>]*value="([^"]*)"', form).group(1)
    assert unescape(questions) == "总结材料有模板吗" and "2021年10月10日" in unescape(answer)
    assert unescape(source).startswith("通知第五部分")


async def test_the_same_figures_as_csv(site: str) -> None:
    session, _ = await logged_in(site)
    async with session, session.get(site + "/admin/dashboard.csv?days=7") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
        assert 'filename="summary-2026-11-27-2026-12-03.csv"' in resp.headers["Content-Disposition"]
        data = await resp.read()
    assert data.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    by = {(r["指标"], r["项目"]): r for r in rows}
    assert by[("时间段", "2026-11-27 至 2026-12-03")]
    assert (by[("合计", "咨询消息数")]["网页"], by[("合计", "咨询消息数")]["微信"], by[("合计", "咨询消息数")]["合计"]) \
        == ("5", "2", "7")
    assert by[("每日消息数", "2026-12-03")]["合计"] == "7"
    assert by[("回答情况", "通知未说明")]["占比"] == "42.9%"
    assert by[("热门话题", "1. 活动登记填报截止")]["合计"] == "2"
    assert by[("咨询时段", "20时")]["微信"] == "2"
