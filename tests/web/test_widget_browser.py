"""The portal widget in a real headless Chromium against the running bot.

Every test gets a fresh browser context; the `make_page` fixture checks after
each test that no request left for another host, no dialog opened and no
script or CSP error happened.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect
from sqlalchemy import select

from bot.knowledge.store import database_url, make_engine
from bot.web.feedback import feedback_table

pytestmark = pytest.mark.e2e

LAUNCHER = "打开智能机器人对话窗口"
SHADOW = "document.querySelector('kepu-chat-widget').shadowRoot"
XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def open_widget(page: Page, url: str, path: str = "/") -> None:
    """Load a page and open the widget, waiting for the hot questions."""
    page.goto(url + path)
    page.get_by_role("button", name=LAUNCHER).click()
    expect(page.get_by_role("dialog", name="智能机器人")).to_be_visible()
    expect(page.locator(".kepu-choice").first).to_be_visible()


def answers(page: Page) -> Any:
    """Bot answers (messages with feedback buttons)."""
    return page.locator(".kepu-bot:has(.kepu-feedback) .kepu-bubble")


def ask(page: Page, text: str) -> str:
    """Type a question, press Enter, return the new answer's text."""
    before = answers(page).count()
    page.locator(".kepu-input").fill(text)
    page.locator(".kepu-input").press("Enter")
    expect(answers(page)).to_have_count(before + 1)
    return visible_text(answers(page).nth(before))


def visible_text(locator: Any) -> str:
    """An element's text without the screen-reader-only hints."""
    return locator.evaluate(
        "e => { const c = e.cloneNode(true); c.querySelectorAll('.kepu-sr').forEach(s => s.remove());"
        " return c.textContent; }")


def session_id(page: Page) -> str | None:
    return page.evaluate("() => window.kepuWidget.sessionId()")


def test_demo_page_is_a_portal_page_with_strict_csp(page: Page, web_url: str) -> None:
    response = page.goto(web_url + "/")
    assert response is not None and response.status == 200
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    expect(page.get_by_text("中卫市沙坡头区人民政府").first).to_be_visible()
    expect(page.get_by_role("navigation", name="网站主导航")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("关于举办2021年中卫沙坡头区全国科普日活动的通知")
    launcher = page.get_by_role("button", name=LAUNCHER)
    expect(launcher).to_be_visible()
    expect(launcher).to_have_text("智能机器人")
    expect(page.get_by_role("dialog")).to_be_hidden()


def test_hot_question_click_is_answered(page: Page, web_url: str) -> None:
    open_widget(page, web_url)
    expect(page.locator(".kepu-bot").first).to_contain_text("您好")
    expect(page.get_by_role("group", name="热点问题")).to_be_visible()
    hot = page.locator(".kepu-choice")
    assert hot.count() >= 3
    title = hot.first.inner_text()
    assert title == "活动登记填报截止到什么时候？"
    hot.first.click()
    # The title is shown as the user's message; the payload goes to the bot.
    expect(page.locator(".kepu-user .kepu-bubble").last).to_have_text("我：" + title)
    expect(answers(page).last).to_contain_text("9月24日")
    link = page.locator(".kepu-bot a.kepu-link").first
    expect(link).to_have_attribute("href", "https://www.kepuri.cn/")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")


def test_typed_question_survives_reload_and_navigation(page: Page, web_url: str) -> None:
    open_widget(page, web_url)
    assert "9月24日" in ask(page, "截止日期是什么时候")
    sid = session_id(page)
    assert sid and len(sid) == 36 and sid[14] == "4"  # server-issued UUID4
    page.reload()
    expect(page.get_by_role("dialog")).to_be_visible()  # it was open: it stays open
    expect(page.locator(".kepu-user .kepu-bubble")).to_have_text(["我：截止日期是什么时候"])
    expect(answers(page)).to_have_count(1)
    expect(answers(page).first).to_contain_text("9月24日")
    assert session_id(page) == sid
    # Another portal page of the same site keeps the conversation.
    page.get_by_role("button", name="关闭对话窗口").click()
    page.get_by_role("link", name="新闻中心").click()
    page.wait_for_url("**/?page=xwzx")
    page.get_by_role("button", name=LAUNCHER).click()
    expect(answers(page).first).to_contain_text("9月24日")
    assert session_id(page) == sid


def test_new_conversation_starts_over(page: Page, web_url: str) -> None:
    open_widget(page, web_url)
    ask(page, "主场活动在哪里")
    sid = session_id(page)
    page.get_by_role("button", name="新对话：清空对话记录，重新开始").click()
    expect(page.locator(".kepu-user")).to_have_count(0)
    expect(page.locator(".kepu-choice").first).to_be_visible()
    page.wait_for_function("old => window.kepuWidget.sessionId() && window.kepuWidget.sessionId() !== old", arg=sid)
    page.reload()
    expect(page.locator(".kepu-user")).to_have_count(0)


def test_elder_mode_enlarges_text_and_persists(page: Page, web_url: str) -> None:
    open_widget(page, web_url)
    bubble = page.locator(".kepu-bot .kepu-bubble").first
    normal = float(bubble.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
    toggle = page.get_by_role("button", name="长者模式：大字体、高对比度")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    large = float(bubble.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
    assert large >= normal * 1.3, (normal, large)
    assert bubble.evaluate("e => getComputedStyle(e).color") == "rgb(0, 0, 0)"
    page.reload()
    bubble = page.locator(".kepu-bot .kepu-bubble").first
    expect(bubble).to_be_visible()
    assert float(bubble.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) == large
    expect(page.get_by_role("button", name="长者模式：大字体、高对比度")).to_have_attribute("aria-pressed", "true")


def test_ime_enter_never_sends_and_shift_enter_adds_a_line(page: Page, web_url: str) -> None:
    open_widget(page, web_url)
    box = page.locator(".kepu-input")
    box.fill("截止日期")
    results = page.evaluate(f"""() => {{
        const input = {SHADOW}.querySelector('.kepu-input');
        const fire = init => {{
            const event = new KeyboardEvent('keydown', {{bubbles: true, cancelable: true, composed: true, ...init}});
            input.dispatchEvent(event);
            return {{isComposing: event.isComposing, keyCode: event.keyCode}};
        }};
        const out = [
            fire({{key: 'Enter', code: 'Enter', keyCode: 13, isComposing: true}}),
            fire({{key: 'Enter', code: 'Enter', keyCode: 229}}),
            fire({{key: 'Process', keyCode: 229}}),
        ];
        input.dispatchEvent(new CompositionEvent('compositionstart', {{data: 'jiezhi'}}));
        out.push(fire({{key: 'Enter', code: 'Enter', keyCode: 13}}));
        input.dispatchEvent(new CompositionEvent('compositionend', {{data: '截止'}}));
        return out;
    }}""")
    assert results[0]["isComposing"] is True and results[1]["keyCode"] == 229
    page.wait_for_timeout(300)
    expect(page.locator(".kepu-user")).to_have_count(0)
    expect(box).to_have_value("截止日期")
    box.press("End")
    box.press("Shift+Enter")
    box.type("是哪天")
    expect(box).to_have_value("截止日期\n是哪天")
    expect(page.locator(".kepu-user")).to_have_count(0)
    box.press("Enter")  # no composition: this one sends
    expect(page.locator(".kepu-user .kepu-bubble")).to_have_text(["我：截止日期\n是哪天"])
    expect(box).to_have_value("")
    expect(answers(page)).to_have_count(1)


def test_input_limit_and_counter(page: Page, web_url: str) -> None:
    open_widget(page, web_url)
    box = page.locator(".kepu-input")
    counter = page.locator(".kepu-counter")
    expect(counter).to_have_text("0/500")
    box.fill("科普" * 10)
    expect(counter).to_have_text("20/500")
    box.fill("长" * 600)
    assert len(box.input_value()) == 500
    expect(counter).to_contain_text("500/500")
    expect(counter).to_be_visible()


def test_xss_is_shown_as_text_and_only_allowed_links_are_clickable(page: Page, web_url: str) -> None:
    open_widget(page, web_url)
    bot_text = (f"回答：{XSS} 请访问 www.kepuri.cn 或 http://mtw.so/5Mzxml，"
                "门户 https://www.zwsptq.gov.cn/kpr/ ，勿访问 http://evil.example.com/x 与 kepuri.cn.evil.example。"
                "邮箱 sptqkxjsj@163.com")

    def fake_bot(route: Route) -> None:
        sender = json.loads(route.request.post_data or "{}").get("sender")
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps([{"recipient_id": sender, "text": bot_text,
                                        "buttons": [{"title": XSS, "payload": "/greet"}]}]))

    page.route("**/webhooks/rest/webhook", fake_bot)
    box = page.locator(".kepu-input")
    box.fill(XSS)
    box.press("Enter")
    expect(page.locator(".kepu-user .kepu-bubble").last).to_have_text("我：" + XSS)
    answer = answers(page).last
    expect(answer).to_contain_text(XSS)
    expect(page.locator(".kepu-choice", has_text="<img")).to_have_text(XSS)
    # No element was created from the strings: only our avatars and icons are images.
    assert page.evaluate(f"() => {SHADOW}.querySelectorAll('script').length") == 0
    sources = page.evaluate(f"() => [...{SHADOW}.querySelectorAll('img')].map(i => i.getAttribute('src'))")
    assert all(src.startswith(web_url + "/widget/icons/") for src in sources), sources
    hrefs = answer.locator("a").evaluate_all("links => links.map(a => [a.href, a.target, a.rel])")
    assert hrefs == [
        ["https://www.kepuri.cn/", "_blank", "noopener noreferrer"],
        ["http://mtw.so/5Mzxml", "_blank", "noopener noreferrer"],
        ["https://www.zwsptq.gov.cn/kpr/", "_blank", "noopener noreferrer"],
    ]
    expect(answer).to_contain_text("http://evil.example.com/x")
    page.wait_for_timeout(200)  # give a would-be onerror handler the time to fire


def test_unreachable_server_marks_message_failed_and_retry_works(page: Page, web_url: str) -> None:
    open_widget(page, web_url)
    page.route("**/webhooks/rest/webhook", lambda route: route.abort("connectionrefused"))
    box = page.locator(".kepu-input")
    box.fill("主场活动在哪里举办")
    box.press("Enter")
    failed = page.locator(".kepu-user.kepu-failed")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("主场活动在哪里举办")
    expect(failed.get_by_role("button", name="发送失败，点击重试：主场活动在哪里举办")).to_have_text("发送失败，点击重试")
    expect(page.locator(".kepu-typing")).to_have_count(0)
    # The text is not lost, not even across a reload.
    page.reload()
    expect(page.locator(".kepu-user.kepu-failed")).to_contain_text("主场活动在哪里举办")
    # A non-200 answer is a failure too.
    page.unroute("**/webhooks/rest/webhook")
    page.route("**/webhooks/rest/webhook", lambda route: route.fulfill(status=502, body="bad gateway"))
    page.get_by_text("发送失败，点击重试").click()
    expect(page.locator(".kepu-user.kepu-failed")).to_have_count(1)
    expect(page.get_by_text("发送失败，点击重试")).to_be_visible()
    page.unroute("**/webhooks/rest/webhook")
    page.get_by_text("发送失败，点击重试").click()
    expect(answers(page)).to_have_count(1)
    expect(answers(page).first).to_contain_text("第十一小学")
    expect(page.locator(".kepu-user.kepu-failed")).to_have_count(0)
    expect(page.locator(".kepu-user")).to_have_count(1)


def test_feedback_click_is_stored(page: Page, web_url: str) -> None:
    open_widget(page, web_url)
    answer = ask(page, "截止日期是什么时候")
    sid = session_id(page)
    page.get_by_role("button", name="满意：这条回答有帮助").click()
    expect(page.get_by_text("感谢您的反馈！")).to_be_visible()
    expect(page.get_by_role("button", name="满意：这条回答有帮助")).to_have_attribute("aria-pressed", "true")
    engine = make_engine(database_url())
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(feedback_table).where(feedback_table.c.session_id == sid)).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    row = rows[0]
    assert row.vote == "up" and row.question == "截止日期是什么时候"
    assert "9月24日" in row.answer and row.answer == answer
    # A second click does not vote again.
    expect(page.get_by_role("button", name="不满意：这条回答没有帮助")).to_be_disabled()
    page.get_by_role("button", name="不满意：这条回答没有帮助").click(force=True)
    page.wait_for_timeout(300)
    expect(page.get_by_role("button", name="不满意：这条回答没有帮助")).to_have_attribute("aria-pressed", "false")


def test_keyboard_only_focus_trap_and_escape(page: Page, web_url: str) -> None:
    page.goto(web_url + "/")
    launcher = page.get_by_role("button", name=LAUNCHER)
    launcher.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.locator(".kepu-choice").first).to_be_visible()
    inside = f"() => {SHADOW}.querySelector('.kepu-panel').contains({SHADOW}.activeElement)"
    assert page.evaluate(inside)
    expect(page.locator(".kepu-input")).to_be_focused()
    for key in ["Tab"] * 16 + ["Shift+Tab"] * 16:
        page.keyboard.press(key)
        assert page.evaluate(inside), f"focus left the dialog after {key}"
    # The outline is visible on keyboard focus.
    outline = page.evaluate(f"() => getComputedStyle({SHADOW}.activeElement).outlineStyle")
    assert outline == "solid"
    # Every control has an accessible label.
    unlabeled = page.evaluate(f"""() => [...{SHADOW}.querySelectorAll('button, textarea')]
        .filter(e => !(e.getAttribute('aria-label') || '').trim()).map(e => e.outerHTML)""")
    assert unlabeled == []
    dialog = page.get_by_role("dialog")
    expect(dialog).to_have_attribute("aria-modal", "false")  # floating on a desktop: non-modal
    expect(page.locator(".kepu-messages")).to_have_attribute("aria-live", "polite")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")


CONTRAST_JS = f"""() => {{
    const root = {SHADOW};
    const parse = c => {{
        const p = c.match(/[\\d.]+/g).map(Number);
        return {{r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}};
    }};
    const lum = c => {{
        const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
        return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
    }};
    const background = el => {{
        for (let node = el; node; node = node.parentNode) {{
            if (node.nodeType !== 1) continue;
            const c = parse(getComputedStyle(node).backgroundColor);
            if (c.a > 0.99) return c;
        }}
        return {{r: 255, g: 255, b: 255, a: 1}};
    }};
    const out = [];
    root.querySelectorAll('*').forEach(el => {{
        const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
        if (!own || !el.getClientRects().length || el.closest('.kepu-sr')) return;
        const a = lum(parse(getComputedStyle(el).color)), b = lum(background(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        out.push([el.textContent.trim().slice(0, 20), Math.round(ratio * 100) / 100]);
    }});
    return out;
}}"""


def test_text_contrast_meets_wcag_aa(page: Page, web_url: str) -> None:
    open_widget(page, web_url)
    ask(page, "咨询电话是多少")
    page.get_by_role("button", name="满意：这条回答有帮助").click()
    expect(page.get_by_text("感谢您的反馈！")).to_be_visible()
    for mode in ("normal", "elder"):
        if mode == "elder":
            page.get_by_role("button", name="长者模式：大字体、高对比度").click()
        pairs = page.evaluate(CONTRAST_JS)
        assert len(pairs) > 10
        low = [p for p in pairs if p[1] < 4.5]
        assert not low, f"{mode}: contrast below 4.5:1: {low}"


def test_screenshots_desktop_and_mobile(make_page: Any, web_url: str, screenshots: Any) -> None:
    desktop = make_page(1280, 800)
    open_widget(desktop, web_url)
    ask(desktop, "截止日期是什么时候")
    desktop.screenshot(path=str(screenshots / "desktop.png"))
    box = desktop.locator(".kepu-panel").bounding_box()
    assert box and box["width"] < 600 and box["x"] > 600  # a floating panel at the right

    phone = make_page(390, 844, is_mobile=True, has_touch=True, device_scale_factor=2)
    open_widget(phone, web_url)
    ask(phone, "主场活动在哪里")
    phone.screenshot(path=str(screenshots / "mobile.png"))
    box = phone.locator(".kepu-panel").bounding_box()
    assert box and [round(box[k]) for k in ("x", "y", "width", "height")] == [0, 0, 390, 844]  # full screen
    heights = phone.evaluate(f"""() => [...{SHADOW}.querySelectorAll('.kepu-panel button')]
        .filter(b => b.getClientRects().length).map(b => [b.textContent.trim(), b.getBoundingClientRect().height])""")
    small = [h for h in heights if h[1] < 44]
    assert not small, f"buttons under 44 px: {small}"
    # The on-screen keyboard shrinks the visual viewport: the input stays visible above it.
    phone.set_viewport_size({"width": 390, "height": 480})
    phone.wait_for_timeout(200)
    input_box = phone.locator(".kepu-input").bounding_box()
    send_box = phone.locator(".kepu-send").bounding_box()
    assert input_box and send_box and send_box["y"] + send_box["height"] <= 480, (input_box, send_box)

    elder = make_page(390, 844, is_mobile=True, has_touch=True, device_scale_factor=2)
    open_widget(elder, web_url)
    elder.get_by_role("button", name="长者模式：大字体、高对比度").click()
    elder.screenshot(path=str(screenshots / "mobile-elder.png"))


class _PortalHandler(BaseHTTPRequestHandler):
    """A stand-in portal: the same HTML on every path, with a strict CSP."""

    html = b""
    csp = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/favicon.ico":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Security-Policy", self.csp)
        self.send_header("Content-Length", str(len(self.html)))
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args: Any) -> None:
        pass


def test_embedding_on_another_origin_with_strict_csp(make_page: Any, recorder: Any, web_url: str) -> None:
    """The one-line embed on a portal of another origin that sends a strict CSP."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PortalHandler)
    portal = f"http://127.0.0.1:{server.server_address[1]}"
    recorder.allowed_hosts.add(urlsplit(portal).netloc)
    _PortalHandler.csp = "; ".join([
        "default-src 'self'", f"script-src 'self' {web_url}", f"style-src 'self' {web_url}",
        f"img-src 'self' {web_url}", f"connect-src 'self' {web_url}", "object-src 'none'", "base-uri 'none'",
    ])
    _PortalHandler.html = (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>门户页面</title>'
        f'<script src="{web_url}/widget/widget.js" defer></script></head>'
        f'<body><h1>沙坡头区门户</h1><a href="/page2">下一页</a></body></html>'
    ).encode()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = make_page()
        page.goto(f"{portal}/page1")
        page.get_by_role("button", name=LAUNCHER).click()
        expect(page.locator(".kepu-choice").first).to_be_visible()
        assert "9月24日" in ask(page, "截止日期是什么时候")
        page.get_by_role("button", name="关闭对话窗口").click()
        page.get_by_role("link", name="下一页").click()
        page.wait_for_url(f"{portal}/page2")
        page.get_by_role("button", name=LAUNCHER).click()
        expect(answers(page).first).to_contain_text("9月24日")
    finally:
        server.shutdown()
        server.server_close()
