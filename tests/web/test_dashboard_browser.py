"""The staff dashboard in real headless Debian Chromium (tests/web/conftest.py's browser).

The web front (tests/web/front.py: the real server without a model, on a free port, with its own
databases) runs with today fixed to 2026-12-03 (KEPU_TODAY) and a copy of knowledge/, so the FAQ
added from a group lands in the copy. The conversations of tests/web/test_dashboard_http.py are
written into its tracker store with Rasa's own SQLTrackerStore, three votes into its feedback table.
A staff member logs in, sees the charts drawn with those numbers, switches the period, and adds an
FAQ from a group of unanswered questions; screenshots of the page on a desktop, a phone and in
长者模式 go to results/screenshots/.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from playwright.sync_api import Page, expect

from tests.dashboard_data import append_now
from tests.web.conftest import Recorder
from tests.web.front import Front, start_front, stop_front
from tests.web.test_dashboard_http import CONVERSATIONS, TODAY, beijing

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STAFF = ("e2e-dashboard", "dashboard-password-" + os.urandom(4).hex())
PHONE = {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
ELDER = "长者模式：大字体、高对比度"


def _save_votes(front: Front) -> None:
    """Two 满意 and one 不满意 on December 3, Beijing time."""
    from sqlalchemy import insert

    from bot.knowledge.store import make_engine
    from bot.web.feedback import feedback_table, feedback_tables

    engine = make_engine(front.db_url)
    with engine.begin() as conn:
        feedback_tables.create_all(conn)
        for minute, vote in ((1, "up"), (2, "up"), (3, "down")):
            at = dt.datetime.fromtimestamp(beijing(TODAY, 11, minute), dt.timezone.utc)
            conn.execute(insert(feedback_table).values(created_at=at, session_id="s", question="q", answer="a",
                                                       vote=vote))
    engine.dispose()


@pytest.fixture(scope="module")
def dash_front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    folder = tmp_path_factory.mktemp("dashboard-front")
    knowledge = folder / "knowledge"
    shutil.copytree(ROOT / "knowledge", knowledge)
    env = {"KEPU_TODAY": TODAY.isoformat(), "KEPU_KNOWLEDGE_DIR": str(knowledge),
           "KEPU_ADMIN_USER": STAFF[0], "KEPU_ADMIN_PASSWORD": STAFF[1]}
    try:
        front = start_front(folder, env, with_model=False)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    append_now(front.tracker_db, CONVERSATIONS)
    _save_votes(front)
    yield front
    stop_front(front)


@pytest.fixture()
def recorder(dash_front: Front) -> Recorder:
    """Overrides conftest's recorder: these pages may talk to this front only."""
    return Recorder(allowed_hosts={urlsplit(dash_front.url).netloc})


def login(page: Page, url: str) -> None:
    """Open /admin, log in as STAFF, land on the dashboard."""
    page.goto(url + "/admin")
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    page.get_by_label("用户名").fill(STAFF[0])
    page.get_by_label("密码").fill(STAFF[1])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(url + "/admin/dashboard")


def dot(page: Page, chart: str, series: str, day: str) -> Any:
    return page.locator(f"#chart-{chart} circle[data-series='{series}'][data-label='{day}']")


def test_the_charts_show_the_seeded_numbers(make_page: Any, dash_front: Front, screenshots: Path) -> None:
    page = make_page(1280, 900)
    login(page, dash_front.url)
    expect(page.get_by_role("heading", level=1)).to_have_text("数据概览")
    expect(page.get_by_role("navigation", name="管理功能").get_by_role("link").first).to_have_text("数据概览")
    expect(page.locator("#total-messages")).to_have_text("9")
    expect(page.locator("#total-conversations")).to_have_text("4")
    expect(page.locator("#resolution")).to_have_text("33.3%")
    expect(page.locator("#satisfaction")).to_have_text("66.7%")
    # The line charts: one point per day and channel, at the height of its value.
    chart = page.locator("#chart-messages")
    expect(chart).to_be_visible()
    assert chart.bounding_box()["width"] > 400
    expect(chart.locator("circle")).to_have_count(60)
    expect(dot(page, "messages", "网页", "2026-12-03")).to_have_attribute("data-value", "5")
    expect(dot(page, "messages", "微信", "2026-12-03")).to_have_attribute("data-value", "2")
    expect(dot(page, "conversations", "网页", "2026-11-20")).to_have_attribute("data-value", "1")
    five, two, zero = (dot(page, "messages", s, d).bounding_box()["y"]
                       for s, d in (("网页", "2026-12-03"), ("微信", "2026-12-03"), ("网页", "2026-12-01")))
    assert five < two < zero  # drawn: higher values higher up
    # Bars: how messages were answered, the busiest hours, the topics.
    expect(page.locator("#chart-outcomes g[data-label='通知未说明']")).to_have_attribute("data-value", "3")
    expect(page.locator("#chart-outcomes g[data-label='通知未说明'] text.dash-value")).to_have_text("3（33.3%）")
    wechat_at_8pm = page.locator("#chart-hours g[data-label='20'] rect[data-series='微信']")
    expect(wechat_at_8pm).to_have_attribute("data-value", "2")
    assert wechat_at_8pm.bounding_box()["height"] > 20
    expect(page.locator("#chart-votes g[data-label='满意']")).to_have_attribute("data-value", "2")
    expect(page.locator("#table-topics tbody tr").first).to_contain_text("活动登记填报截止")
    # The table beside each chart says the same in text.
    expect(page.locator("#table-daily tr", has_text="2026-12-03").locator("td")).to_have_text(["5", "2", "2", "1"])
    expect(page.locator("#table-outcomes tr", has_text="通知未说明").locator("td")).to_have_text(
        ["3", "0", "3", "33.3%"])
    # Charts are images for screen readers; the tables carry the numbers.
    assert chart.get_attribute("role") == "img" and "表格" in chart.get_attribute("aria-label")
    page.screenshot(path=str(screenshots / "dashboard-desktop.png"), full_page=True)


def test_switching_the_period(make_page: Any, dash_front: Front) -> None:
    page = make_page(1280, 900)
    login(page, dash_front.url)
    page.get_by_role("link", name="最近7天").click()
    expect(page).to_have_url(re.compile(r"/admin/dashboard\?days=7$"))
    expect(page.locator("#total-messages")).to_have_text("7")
    expect(page.locator("#chart-messages circle")).to_have_count(14)
    expect(page.get_by_role("link", name="最近7天")).to_have_attribute("aria-current", "true")
    expect(page.locator(".adm-lead").first).to_contain_text("2026-11-27 至 2026-12-03")
    page.get_by_label("开始日期").fill("2026-11-20")
    page.get_by_label("结束日期").fill("2026-11-20")
    page.get_by_role("button", name="查看").click()
    expect(page).to_have_url(re.compile(r"start=2026-11-20&end=2026-11-20"))
    expect(page.locator("#total-messages")).to_have_text("2")
    expect(page.locator("#chart-messages circle")).to_have_count(2)
    expect(page.locator(".dash-group-title")).to_have_text(["社保缴费"])
    page.get_by_role("link", name="最近30天").click()
    expect(page.locator("#total-messages")).to_have_text("9")


def test_adding_an_faq_from_a_group(make_page: Any, dash_front: Front) -> None:
    page = make_page(1280, 900)
    login(page, dash_front.url)
    group = page.locator(".dash-group", has=page.locator(".dash-group-title", has_text="活动现场有停车场吗"))
    expect(group.locator(".dash-group-count")).to_have_text("3")
    expect(group.locator(".dash-examples li")).to_have_text(["活动现场有停车场吗", "<b>停车厂</b>在哪里", "附近有沒有停車位"])
    expect(group.locator(".dash-none")).to_have_text("通知未涉及")
    group.get_by_role("link", name="添加为常见问题：活动现场有停车场吗").click()
    expect(page).to_have_url(re.compile(r"/admin/faq/new\?"))
    questions = page.get_by_label("问法（每行一种）")
    expect(questions).to_have_value("活动现场有停车场吗\n<b>停车厂</b>在哪里\n附近有沒有停車位")
    # The staff member edits before saving: nothing is published until they do.
    page.get_by_label("编号").fill("parking_dashboard")
    questions.fill("活动现场有停车场吗\n停车厂在哪里\n附近有没有停车位")
    page.get_by_label("答案", exact=True).fill("通知没有说明停车安排，具体可拨打0955-8812005咨询。")
    page.get_by_role("button", name="保存").click()
    expect(page).to_have_url(re.compile(r"/admin/faq\?done=added&id=parking_dashboard"))
    expect(page.get_by_role("status")).to_contain_text("已添加常见问题：parking_dashboard")
    saved = yaml.safe_load((dash_front.tracker_db.parent / "knowledge" / "faq.yml").read_text(encoding="utf-8"))
    entry = next(f for f in saved["faqs"] if f["id"] == "parking_dashboard")
    assert entry["questions"] == ["活动现场有停车场吗", "停车厂在哪里", "附近有没有停车位"]
    assert entry["answer"].startswith("通知没有说明停车安排")


@pytest.mark.parametrize("elder", [False, True], ids=["phone", "phone-elder"])
def test_the_dashboard_on_a_phone(make_page: Any, dash_front: Front, screenshots: Path, elder: bool) -> None:
    page = make_page(390, 844, **PHONE)
    login(page, dash_front.url)
    if elder:
        page.get_by_role("button", name=ELDER).click()
        expect(page.get_by_role("button", name=ELDER)).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#total-messages")).to_have_text("9")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # the page never widens
    expect(page.locator("#table-outcomes thead th").first).to_be_visible()  # numbers stay a table
    page.screenshot(path=str(screenshots / f"dashboard-{'elder' if elder else 'phone'}.png"), full_page=True)


def test_elder_mode_on_the_desktop(make_page: Any, dash_front: Front, screenshots: Path) -> None:
    page = make_page(1280, 900)
    login(page, dash_front.url)
    normal = page.locator("#table-daily td").first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    page.get_by_role("button", name=ELDER).click()
    larger = page.locator("#table-daily td").first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert larger > normal * 1.2
    page.screenshot(path=str(screenshots / "dashboard-desktop-elder.png"), full_page=True)
