"""The widget's layout, focus and text in real headless Chromium, on the bot's web front.

Browser zoom is played the way Chromium does it: a desktop window of 1366x768 at
200% is a 683x384 CSS-pixel viewport at device scale factor 2. Conversations are
the ones the widget itself restores from sessionStorage after a reload, with the
notice's real answers (knowledge/), so these tests need no trained model; the
server is the real one (tests/web/front.py), started by the session's `front`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from bot.knowledge.answers import citation, render
from bot.knowledge.loader import load_knowledge
from tests.web.conftest import Recorder
from tests.web.front import Front

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = "打开智能机器人对话窗口"
ELDER = "长者模式：大字体、高对比度"
SHADOW = "document.querySelector('kepu-chat-widget').shadowRoot"
STATE_KEY = "kepu-widget:state:v1"
ZOOM_200 = {"width": 683, "height": 384, "device_scale_factor": 2}  # 1366x768 at 200%
PHONE = {"width": 390, "height": 844, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


@pytest.fixture()
def recorder(front: Front) -> Recorder:
    """Overrides conftest's recorder: these pages may talk to the front only."""
    return Recorder(allowed_hosts={urlsplit(front.url).netloc})


@pytest.fixture(scope="module")
def facts() -> dict[str, str]:
    """The notice's answers by fact id, as the bot says them (dates, status, citation)."""
    kb = load_knowledge(ROOT / "knowledge")
    today = dt.date(2026, 12, 2)
    return {fid: render(fact, kb, today) + citation(kb, [fact]) for fid, fact in kb.facts.items()}


def conversation(facts: dict[str, str], *pairs: tuple[str, str]) -> list[dict[str, Any]]:
    """Saved widget messages: each (question, fact id) as a question and the notice's answer."""
    messages: list[dict[str, Any]] = []
    for n, (question, fact_id) in enumerate(pairs):
        messages.append({"id": f"q{n}", "role": "user", "text": question, "status": "sent"})
        messages.append({"id": f"a{n}", "role": "bot", "kind": "answer", "text": facts[fact_id], "buttons": [],
                         "question": question})
    return messages


def seeded_page(make_page: Any, messages: list[dict[str, Any]] | None, elder: bool = False,
                **viewport: Any) -> Page:
    """A page whose tab already holds `messages` (open), as after a reload; 长者模式 on if `elder`."""
    size = {"width": 1280, "height": 800, **viewport}
    page = make_page(size.pop("width"), size.pop("height"), **size)
    state = {"sessionId": None, "messages": messages, "open": True} if messages is not None else None
    page.add_init_script(f"""(() => {{
        const state = {json.dumps(state, ensure_ascii=False)};
        if (state && !sessionStorage.getItem({json.dumps(STATE_KEY)})) {{
            sessionStorage.setItem({json.dumps(STATE_KEY)}, JSON.stringify(state));
        }}
        localStorage.setItem("kepu-widget:elder", {json.dumps("1" if elder else "0")});
    }})()""")
    return page


def open_page(page: Page, url: str) -> None:
    """Load the demo page and wait for the (restored or freshly opened) panel."""
    page.goto(url + "/")
    if not page.get_by_role("dialog").is_visible():
        page.get_by_role("button", name=LAUNCHER).click()
    expect(page.get_by_role("dialog", name="智能机器人")).to_be_visible()
    page.wait_for_function(f"() => {SHADOW}.querySelector('link').sheet !== null")


def box(page: Page, selector: str) -> dict[str, float]:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


# ---------------------------------------------------------------- 200% zoom (issue 9, item 9)

FULLY_VISIBLE_JS = f"""() => {{
    const log = {SHADOW}.querySelector('.kepu-messages').getBoundingClientRect();
    return [...{SHADOW}.querySelectorAll('.kepu-msg')].filter(m => {{
        const r = m.getBoundingClientRect();
        return r.height > 0 && r.top >= log.top - 0.5 && r.bottom <= log.bottom + 0.5;
    }}).length;
}}"""


@pytest.mark.parametrize("elder", [False, True], ids=["normal", "elder"])
def test_200_percent_zoom_is_full_screen_with_three_messages_and_the_whole_disclaimer(
        make_page: Any, front: Front, facts: dict[str, str], screenshots: Path, elder: bool) -> None:
    messages = conversation(facts, ("截止日期是什么时候", "deadline.register"), ("在哪里填报", "registration.how"),
                            ("电话多少", "contact.phone"))
    # Short messages at the end: three of them must fit, whatever the zoom.
    messages += [{"id": "q9", "role": "user", "text": "好的", "status": "sent"},
                 {"id": "a9", "role": "bot", "kind": "notice", "text": "不客气。"},
                 {"id": "q10", "role": "user", "text": "谢谢", "status": "sent"}]
    page = seeded_page(make_page, messages, elder=elder, **ZOOM_200)
    open_page(page, front.url)
    page.screenshot(path=str(screenshots / f"widget-zoom200{'-elder' if elder else ''}.png"))
    # The full-screen layout, although the window is wider than a phone.
    panel = box(page, ".kepu-panel")
    assert [round(panel[k]) for k in ("x", "y", "width", "height")] == [0, 0, 683, 384], panel
    assert page.get_by_role("dialog").get_attribute("aria-modal") == "true"
    assert page.evaluate(FULLY_VISIBLE_JS) >= 3
    # The disclaimer is whole: inside the viewport and not cut by the panel.
    disclaimer = box(page, ".kepu-disclaimer")
    assert disclaimer["y"] >= 0 and disclaimer["y"] + disclaimer["height"] <= 384 + 0.5, disclaimer
    clipped = page.locator(".kepu-disclaimer").evaluate(
        "e => e.scrollHeight > e.clientHeight + 1 || e.scrollWidth > e.clientWidth + 1")
    assert not clipped
    expect(page.locator(".kepu-disclaimer")).to_have_text("回答依据通知原文整理，仅供参考。")
    # The composer is usable: input and send button on screen.
    send = box(page, ".kepu-send")
    assert send["y"] + send["height"] <= 384 + 0.5 and send["x"] + send["width"] <= 683 + 0.5, send
    page.locator(".kepu-input").fill("主场活动在哪里")
    expect(page.locator(".kepu-input")).to_have_value("主场活动在哪里")


def test_tall_desktop_window_keeps_the_floating_panel(make_page: Any, front: Front, facts: dict[str, str],
                                                      screenshots: Path) -> None:
    page = seeded_page(make_page, conversation(facts, ("截止日期是什么时候", "deadline.register")), width=1366,
                       height=768)
    open_page(page, front.url)
    page.screenshot(path=str(screenshots / "widget-desktop.png"))
    panel = box(page, ".kepu-panel")
    assert panel["width"] == 400 and panel["x"] > 900, panel
    assert page.get_by_role("dialog").get_attribute("aria-modal") == "false"


# ---------------------------------------------------------------- focus (item 10)


def test_portal_search_box_keeps_focus_and_typed_text_on_desktop(make_page: Any, front: Front) -> None:
    page = seeded_page(make_page, None)
    open_page(page, front.url)
    chat_input = page.locator(".kepu-input")
    expect(chat_input).to_be_focused()
    search = page.get_by_role("searchbox", name="站内搜索")
    search.click()
    page.keyboard.type("科普日活动")
    expect(search).to_have_value("科普日活动")
    expect(search).to_be_focused()
    expect(chat_input).to_have_value("")
    expect(page.get_by_role("dialog")).to_be_visible()
    # Inside the panel, Tab still cycles through the panel's own controls.
    chat_input.focus()
    inside = f"() => {SHADOW}.querySelector('.kepu-panel').contains({SHADOW}.activeElement)"
    for key in ["Tab"] * 12 + ["Shift+Tab"] * 12:
        page.keyboard.press(key)
        assert page.evaluate(inside), f"focus left the panel after {key}"


def test_phone_full_screen_dialog_stays_modal(make_page: Any, front: Front) -> None:
    page = seeded_page(make_page, None, **PHONE)
    open_page(page, front.url)
    assert page.get_by_role("dialog").get_attribute("aria-modal") == "true"
    page.evaluate("() => document.getElementById('site-search').focus()")
    assert page.evaluate("() => document.activeElement.id") != "site-search"
    assert page.evaluate(f"() => {SHADOW}.querySelector('.kepu-panel').contains({SHADOW}.activeElement)")


# ---------------------------------------------------------------- numbers, e-mail, URLs (item 11)

# For each token in each bubble: the number of distinct lines its text occupies.
TOKEN_LINES_JS = f"""tokens => [...{SHADOW}.querySelectorAll('.kepu-bot .kepu-bubble')].flatMap(bubble => {{
    const nodes = [], walker = document.createTreeWalker(bubble, NodeFilter.SHOW_TEXT);
    let text = '';
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {{
        if (n.parentElement.closest('.kepu-sr')) continue;
        nodes.push([n, text.length]); text += n.data;
    }}
    const at = i => {{
        const [node, start] = nodes.filter(([, s]) => s <= i).pop();
        return [node, i - start];
    }};
    return tokens.flatMap(token => {{
        const i = text.indexOf(token);
        if (i < 0) return [];
        const range = document.createRange();
        range.setStart(...at(i)); range.setEnd(...at(i + token.length - 1));
        range.setEnd(range.endContainer, range.endOffset + 1);
        const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
        return [[token, tops.size]];
    }});
}})"""

TOKENS = ["0955-8812005", "0955-8812012", "15109558601", "17752356599", "sptqkxjsj@163.com"]


def contact_messages(facts: dict[str, str]) -> list[dict[str, Any]]:
    """The contact answer behind prefixes of every length, so each number meets a line end somewhere."""
    messages: list[dict[str, Any]] = [{"id": "q", "role": "user", "text": "联系方式", "status": "sent"}]
    for n in range(24):
        messages.append({"id": f"a{n}", "role": "bot", "kind": "notice",
                         "text": "联系" * (n // 2) + "。" * (n % 2) + facts["contact.all"]})
    return messages


@pytest.mark.parametrize("elder", [False, True], ids=["normal", "elder"])
def test_phone_numbers_and_email_never_wrap_in_the_desktop_panel(make_page: Any, front: Front,
                                                                  facts: dict[str, str], elder: bool) -> None:
    page = seeded_page(make_page, contact_messages(facts), elder=elder)
    open_page(page, front.url)
    assert box(page, ".kepu-panel")["width"] <= 480
    lines = page.evaluate(TOKEN_LINES_JS, TOKENS)
    assert len(lines) == 24 * len(TOKENS)
    broken = sorted({token for token, count in lines if count != 1})
    assert not broken, f"wrapped inside: {broken}"
    # On a desktop they are text, not tel:/mailto: links.
    assert page.locator(".kepu-bot a[href^='tel:'], .kepu-bot a[href^='mailto:']").count() == 0


def test_phone_numbers_and_email_are_tap_links_on_a_phone(make_page: Any, front: Front, facts: dict[str, str],
                                                          screenshots: Path) -> None:
    messages = [{"id": "q", "role": "user", "text": "联系方式", "status": "sent"},
                {"id": "a", "role": "bot", "kind": "answer", "text": facts["contact.all"], "buttons": [],
                 "question": "联系方式"},
                {"id": "q2", "role": "user", "text": "怎么登记", "status": "sent"},
                {"id": "a2", "role": "bot", "kind": "answer", "text": facts["registration.how"], "buttons": [],
                 "question": "怎么登记"}]
    page = seeded_page(make_page, messages, **PHONE)
    open_page(page, front.url)
    page.screenshot(path=str(screenshots / "widget-phone.png"))
    links = page.locator(".kepu-bot a").evaluate_all("links => links.map(a => [a.textContent, a.getAttribute('href')])")
    expected = [["0955-8812005", "tel:09558812005"], ["15109558601", "tel:15109558601"],
                ["17752356599", "tel:17752356599"], ["0955-8812012", "tel:09558812012"],
                ["sptqkxjsj@163.com", "mailto:sptqkxjsj@163.com"]]
    assert [pair for pair in links if pair in expected] == expected, links
    lines = page.evaluate(TOKEN_LINES_JS, TOKENS + ["www.kepuri.cn"])
    assert lines and all(count == 1 for _, count in lines), lines
    # tel: links open no new tab; the allow-listed web links still do.
    assert page.locator(".kepu-bot a[href^='tel:'][target]").count() == 0
    expect(page.locator(".kepu-bot a[href='https://www.kepuri.cn/']").first).to_have_attribute("target", "_blank")


# ---------------------------------------------------------------- smaller (item 15)


@pytest.mark.parametrize(("viewport", "elder"), [(ZOOM_200, False), (PHONE, True)], ids=["zoom200", "phone-elder"])
def test_widget_opens_at_the_start_of_the_greeting(make_page: Any, front: Front, screenshots: Path,
                                                   viewport: dict[str, Any], elder: bool) -> None:
    page = seeded_page(make_page, None, elder=elder, **viewport)
    open_page(page, front.url)
    expect(page.locator(".kepu-choice").first).to_be_attached()  # the hot questions arrived
    page.wait_for_timeout(200)
    if elder:
        page.screenshot(path=str(screenshots / "widget-phone-elder.png"))
    log = page.locator(".kepu-messages")
    assert log.evaluate("e => e.scrollHeight > e.clientHeight"), "the greeting fits: nothing to test"
    greeting = box(page, ".kepu-bot .kepu-bubble")
    assert greeting["y"] >= box(page, ".kepu-messages")["y"] - 0.5, "the greeting's first line is scrolled away"
    expect(page.locator(".kepu-bot .kepu-bubble").first).to_contain_text("您好！我是沙坡头区的智能机器人")


def test_retried_answer_lands_under_its_question(make_page: Any, front: Front) -> None:
    page = seeded_page(make_page, None)
    open_page(page, front.url)
    expect(page.locator(".kepu-choice").first).to_be_visible()
    first = "主场活动在哪里举办"
    page.route("**/webhooks/rest/webhook", lambda route: route.abort("connectionrefused"))
    page.locator(".kepu-input").fill(first)
    page.locator(".kepu-input").press("Enter")
    expect(page.locator(".kepu-user.kepu-failed")).to_have_count(1)
    page.unroute("**/webhooks/rest/webhook")
    # A second question is answered (by the front's own REST channel) while the first stays failed.
    page.locator(".kepu-input").fill("截止日期是什么时候")
    page.locator(".kepu-input").press("Enter")
    # Answers only: the typing indicator is a .kepu-bot message too, shown while a request is pending.
    answers = page.locator(".kepu-bot:not(.kepu-typing)")
    expect(answers).to_have_count(2)
    page.get_by_text("发送失败，点击重试").click()
    expect(answers).to_have_count(3)
    expect(page.locator(".kepu-typing")).to_have_count(0)
    order_js = f"""() => [...{SHADOW}.querySelectorAll('.kepu-msg:not(.kepu-typing)')].map(m =>
        m.classList.contains('kepu-user') ? 'user:' + m.querySelector('.kepu-bubble').lastChild.data : 'bot')"""
    expected = ["bot", f"user:{first}", "bot", "user:截止日期是什么时候", "bot"]
    assert page.evaluate(order_js) == expected
    saved = page.evaluate(f"() => JSON.parse(sessionStorage.getItem('{STATE_KEY}')).messages"
                          ".map(m => m.role === 'user' ? 'user:' + m.text : 'bot:' + (m.question || ''))")
    assert saved == ["bot:", f"user:{first}", f"bot:{first}", "user:截止日期是什么时候", "bot:截止日期是什么时候"]
    page.reload()
    expect(answers).to_have_count(3)
    assert page.evaluate(order_js) == expected


SMALL_TEXT_JS = f"""min => [...{SHADOW}.querySelectorAll('.kepu-panel *')].filter(e => {{
    const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    return own && e.getClientRects().length && !e.closest('.kepu-sr')
        && parseFloat(getComputedStyle(e).fontSize) < min;
}}).map(e => [e.className, e.textContent.trim().slice(0, 12), getComputedStyle(e).fontSize])"""


@pytest.mark.parametrize("viewport", [{}, PHONE], ids=["desktop", "phone"])
def test_elder_mode_has_no_text_under_22_px(make_page: Any, front: Front, facts: dict[str, str],
                                            viewport: dict[str, Any]) -> None:
    messages = conversation(facts, ("截止日期是什么时候", "deadline.register"))
    messages.append({"id": "q1", "role": "user", "text": "主场在哪", "status": "failed"})
    page = seeded_page(make_page, messages, elder=True, **viewport)
    open_page(page, front.url)
    page.locator(".kepu-input").fill("科普")
    expect(page.locator(".kepu-retry")).to_be_visible()
    expect(page.locator(".kepu-vote").first).to_be_visible()
    for selector in (".kepu-disclaimer", ".kepu-counter"):
        assert page.locator(selector).evaluate("e => parseFloat(getComputedStyle(e).fontSize)") >= 22, selector
    assert page.evaluate(SMALL_TEXT_JS, 21.99) == []
