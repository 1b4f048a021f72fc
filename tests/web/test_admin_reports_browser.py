"""The unanswered-question report and the admin header in real headless Chromium.

The web front (tests/web/front.py) runs with its clock in UTC and faked by
libfaketime (Debian's `faketime`, installed by scripts/install-test-deps.sh) to
2026-12-02 17:00 UTC, which is 2026-12-03 01:00 in Beijing: the hour at which
a server on UTC used to date a question to the day before. The questions are
written into the front's tracker store with Rasa's own SQLTrackerStore, stamped
with the server's (faked) time, as Rasa stamps a message when it arrives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.staff.test_reports import turn
from tests.web.conftest import Recorder
from tests.web.front import Front, start_front, stop_front

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SERVER_NOW = dt.datetime(2026, 12, 2, 17, 0, tzinfo=dt.timezone.utc)  # 2026-12-03 01:00 Beijing time
STAFF = ("e2e-zone", "zone-password-2026")
PHONE = {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
ELDER = "长者模式：大字体、高对比度"
TYPED = ["<b>社保</b>怎么 交？", "社保怎么交", '<img src=x onerror="alert(1)">社保  怎么交']


def _save_conversations(front: Front) -> None:
    """Three wordings of one unanswered question at 01:00 Beijing time, one the evening before."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker

    domain = Domain.load(str(ROOT / "domain.yml"))
    at = SERVER_NOW.timestamp() + 5
    evening = (SERVER_NOW - dt.timedelta(hours=1, minutes=30)).timestamp()  # 23:30 Beijing, Dec 2
    conversations = {f"zone-{n}": turn(text, "out_of_scope", "refusal", at + n) for n, text in enumerate(TYPED)}
    conversations["zone-evening"] = turn("北京明天下雨吗", "out_of_scope", "refusal", evening)
    store = SQLTrackerStore(domain, dialect="sqlite", db=str(front.tracker_db))

    async def save() -> None:
        for sender, events in conversations.items():
            await store.save(DialogueStateTracker.from_events(sender, events, slots=domain.slots))

    # Playwright's sync API keeps an event loop running in this thread: save from another.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, save()).result()
    store.engine.dispose()


@pytest.fixture(scope="module")
def utc_front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    """The web front on a UTC clock at 2026-12-02 17:00 (faketime), with the staff account STAFF."""
    if not shutil.which("faketime"):
        pytest.fail("faketime is missing: run 'make test-deps' (scripts/install-test-deps.sh)")
    env = {"TZ": "UTC", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
           "KEPU_ADMIN_USER": STAFF[0], "KEPU_ADMIN_PASSWORD": STAFF[1]}
    clock = ["faketime", "-f", "@" + SERVER_NOW.strftime("%Y-%m-%d %H:%M:%S")]
    try:
        front = start_front(tmp_path_factory.mktemp("utc-front"), env, prefix=clock, with_model=False)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    _save_conversations(front)
    yield front
    stop_front(front)


@pytest.fixture()
def recorder(utc_front: Front) -> Recorder:
    """Overrides conftest's recorder: these pages may talk to this front only."""
    return Recorder(allowed_hosts={urlsplit(utc_front.url).netloc})


def login(page: Page, url: str, path: str) -> None:
    """Log in as STAFF through the form, landing on `path`."""
    page.goto(url + path)
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    page.get_by_label("用户名").fill(STAFF[0])
    page.get_by_label("密码").fill(STAFF[1])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(url + path)


def report_row(page: Page, question: str) -> Any:
    return page.locator("tbody tr", has=page.locator("td:first-child", has_text=re.compile(f"^{question}$")))


# ---------------------------------------------------------------- time zone (issue 9, item 12)


def test_questions_at_1am_beijing_are_dated_beijings_day_on_a_utc_server(make_page: Any, utc_front: Front) -> None:
    page = make_page(1280, 800)
    login(page, utc_front.url, "/admin/unanswered")
    row = report_row(page, "社保怎么交")
    expect(row).to_have_count(1)
    expect(row.locator("td", has_text=re.compile(r"^\d{4}-"))).to_have_text(["2026-12-03", "2026-12-03"])  # first, last
    evening = report_row(page, "北京明天下雨吗").locator("td", has_text=re.compile(r"^\d{4}-"))
    expect(evening).to_have_text(["2026-12-02", "2026-12-02"])
    expect(page.locator(".adm-lead")).to_contain_text("日期按北京时间（Asia/Shanghai）计算")
    # "Today" is Beijing's today, although the server's own clock still says December 2.
    page.get_by_role("link", name="只看今天（2026-12-03）").click()
    expect(page).to_have_url(re.compile(r"since=2026-12-03$"))
    expect(report_row(page, "社保怎么交")).to_have_count(1)
    expect(report_row(page, "北京明天下雨吗")).to_have_count(0)
    csv = page.request.get(utc_front.url + "/admin/unanswered.csv?since=2026-12-03")
    assert csv.status == 200 and "社保怎么交" in csv.text() and "北京明天下雨吗" not in csv.text()
    assert 'filename="unanswered-2026-12-03.csv"' in csv.headers["content-disposition"]
    page.goto(utc_front.url + "/admin/unanswered?since=2026-12-04")
    expect(page.get_by_text("暂无未解答的问题。")).to_be_visible()


# ---------------------------------------------------------------- what users typed (item 13)


def test_report_shows_what_users_typed_escaped_beside_the_grouped_form(make_page: Any, utc_front: Front) -> None:
    page = make_page(1280, 800)
    login(page, utc_front.url, "/admin/unanswered")
    expect(page.locator("thead th")).to_have_text(
        ["问题（归并后）", "用户原话", "次数", "机器人的处理", "首次提问", "最近提问", "操作"])
    row = report_row(page, "社保怎么交")
    expect(row.locator("td").nth(2)).to_have_text("3")
    typed = row.locator("td").nth(1).locator("li")
    expect(typed).to_have_text(TYPED)  # literally: markup, spaces and all
    assert [t.strip() for t in typed.evaluate_all("items => items.map(i => i.innerText)")] == TYPED
    assert row.locator("b, img").count() == 0  # shown as text, never as markup
    page.wait_for_timeout(200)  # a would-be onerror handler would have fired (the recorder fails on dialogs)


# ---------------------------------------------------------------- header on a phone (item 15)


@pytest.mark.parametrize(("elder", "share"), [(False, 0.25), (True, 0.34)], ids=["normal", "elder"])
def test_admin_header_leaves_the_phone_screen_to_the_content(make_page: Any, utc_front: Front, screenshots: Path,
                                                             elder: bool, share: float) -> None:
    page = make_page(390, 844, **PHONE)
    login(page, utc_front.url, "/admin/unanswered")
    if elder:
        page.get_by_role("button", name=ELDER).click()
        expect(page.get_by_role("button", name=ELDER)).to_have_attribute("aria-pressed", "true")
    page.screenshot(path=str(screenshots / f"admin-phone-header{'-elder' if elder else ''}.png"))
    wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5 && !e.closest('.adm-nav ul, thead'))
        .map(e => e.tagName + '.' + e.className + ':' + e.textContent.trim().slice(0, 16))""")
    assert not wide, wide
    header = page.locator(".adm-header").bounding_box()
    assert header is not None and header["height"] <= 844 * share, header
    heading = page.get_by_role("heading", level=1).bounding_box()
    assert heading is not None and heading["y"] + heading["height"] <= 844 * (share + 0.12), heading
    # Every page of the menu is still there, in one row that scrolls sideways, the current one in view.
    nav = page.get_by_role("navigation", name="管理功能")
    expect(nav.get_by_role("link")).to_have_text(["数据概览", "常见问题", "未解答问题", "不满意反馈", "重新训练",
                                                  "操作记录"])
    tops = {round(b["y"]) for b in nav.get_by_role("link").evaluate_all(
        "links => links.map(a => a.getBoundingClientRect()).map(r => ({y: r.top}))")}
    assert len(tops) == 1, tops
    current = nav.locator("a[aria-current='page']").bounding_box()
    assert current is not None and current["x"] >= 0 and current["x"] + current["width"] <= 390
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    expect(page.get_by_text(f"当前用户：{STAFF[0]}")).to_be_visible()
