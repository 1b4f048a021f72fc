"""The staff admin page (/admin) against a running bot in real headless Chromium.

The bot for these tests runs on a free port (KEPU_ADMIN_TEST_PORT overrides it),
started by the `admin_url` fixture as `python -m tests.web.fake_server run ...`:
the real server, with the admin page handed the scripted retrain and rollback of
tests/web/fake_retrain.py (the real retrain is tested with bot/staff and
tests/web/test_admin_real_retrain.py). No action server: the admin page needs none. Each
test logs in as a throw-away staff account created directly in the database;
failed-login records of that account and of 127.0.0.1 are cleared around every
test, so the lock-out test does not lock out the others. knowledge/faq.yml is
restored after the FAQ test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Page, expect

from bot.staff.live import is_ready
from bot.web.admin_auth import AdminAuth, shared_auth
from tests.ports import free_port
from tests.web import fake_retrain
from tests.web.conftest import Recorder

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PORT = int(os.environ.get("KEPU_ADMIN_TEST_PORT") or free_port())
BASE_URL = f"http://127.0.0.1:{PORT}"
START_TIMEOUT = 240.0
FAQ_FILE = ROOT / "knowledge" / "faq.yml"
ELDER = "长者模式：大字体、高对比度"

# Every admin route but the login page and the two public assets.
PROTECTED = [
    ("GET", "/admin"), ("GET", "/admin/dashboard"), ("GET", "/admin/dashboard.csv"), ("GET", "/admin/faq"), ("GET", "/admin/faq/new"), ("POST", "/admin/faq/new"),
    ("GET", "/admin/faq/some_id/edit"), ("POST", "/admin/faq/some_id/edit"),
    ("GET", "/admin/faq/some_id/delete"), ("POST", "/admin/faq/some_id/delete"),
    ("GET", "/admin/unanswered"), ("GET", "/admin/unanswered.csv"), ("GET", "/admin/feedback"),
    ("GET", "/admin/audit"), ("GET", "/admin/retrain"), ("POST", "/admin/retrain"),
    ("GET", "/admin/rollback"), ("POST", "/admin/rollback"), ("POST", "/admin/logout"),
    ("GET", "/admin/no-such-page"),
]
PROTECTED_API = [("POST", "/admin/api/retrain"), ("GET", "/admin/api/retrain/status"), ("GET", "/admin/api/nothing")]


# ---------------------------------------------------------------- fixtures


def _start_scripted_bot(log: Path) -> subprocess.Popen:
    """The real server with the scripted retrain (tests/web/fake_server.py), as scripts/serve.sh runs it."""
    model = (ROOT / "build" / "current_model").read_text(encoding="utf-8").strip()
    command = [str(ROOT / ".venv" / "bin" / "python"), "-m", "tests.web.fake_server", "--step-seconds", "0.6",
               "run", "--model", model, "--port", str(PORT), "--enable-api", "--auth-token", secrets.token_urlsafe(16),
               "--cors", "*", "--credentials", "credentials.yml", "--endpoints", "endpoints.yml"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    """Stop the process group this module started."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)


def _wait_until_ready(process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not is_ready(BASE_URL):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"could not start the bot on port {PORT}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bot with the scripted retrain on its own port, started for this session."""
    if not (ROOT / "build" / "current_model").exists():
        pytest.fail("no trained model (build/current_model): run 'make train' first")
    log = tmp_path_factory.mktemp("admin-bot") / "rasa.log"
    process = _start_scripted_bot(log)
    try:
        _wait_until_ready(process, log)
        yield BASE_URL
    finally:
        _stop(process)


@pytest.fixture()
def recorder(admin_url: str) -> Recorder:
    """Overrides conftest's recorder: the admin pages may talk to the admin test bot only."""
    return Recorder(allowed_hosts={urlsplit(admin_url).netloc})


@pytest.fixture(scope="session")
def auth() -> AdminAuth:
    return shared_auth()


@pytest.fixture()
def staff(auth: AdminAuth) -> Iterator[tuple[str, str]]:
    """A fresh staff account (name, password), removed afterwards; no failed logins around it."""
    name = f"e2e-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    auth.create_user(name, password)
    auth.unlock("127.0.0.1")
    yield name, password
    auth.delete_user(name)
    auth.unlock(name)
    auth.unlock("127.0.0.1")


def fetch(url: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    def flat(message: Any) -> dict[str, str]:
        out = {k.lower(): v for k, v in message.items()}
        out["set-cookie"] = "\n".join(message.get_all("Set-Cookie") or [])
        return out

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=15) as resp:
            return resp.status, flat(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, flat(err.headers), err.read()


def cookie_named(headers: dict[str, str], name: str) -> str:
    """The Set-Cookie line for `name`."""
    return next(line for line in headers["set-cookie"].splitlines() if line.startswith(name + "="))


def http_login(url: str, name: str, password: str) -> tuple[str, str]:
    """Log in without a browser; return (Cookie header, the session's CSRF token)."""
    status, headers, body = fetch(url + "/admin/login")
    assert status == 200
    login_cookie = cookie_named(headers, "kepu_admin_login").split(";")[0]
    token = re.search(r'name="login_token" value="([^"]+)"', body.decode()).group(1)
    form = urlencode({"login_token": token, "name": name, "password": password, "next": "/admin/retrain"})
    status, headers, _ = fetch(url + "/admin/login", "POST", form.encode(),
                               {"Origin": url, "Cookie": login_cookie,
                                "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and headers["location"] == "/admin/retrain"
    cookie = cookie_named(headers, "kepu_admin_session")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    session_cookie = cookie.split(";")[0]
    assert session_cookie.startswith("kepu_admin_session=")
    status, _, body = fetch(url + "/admin/retrain", headers={"Cookie": session_cookie})
    assert status == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', body.decode()).group(1)
    return session_cookie, csrf


def login(page: Page, url: str, name: str, password: str, path: str = "/admin/faq") -> None:
    """Log in through the form, landing on `path`."""
    page.goto(url + path)
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    page.get_by_label("用户名").fill(name)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(url + path)


# ---------------------------------------------------------------- HTTP-level checks


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_admin_pages_redirect_to_login_without_a_session(admin_url: str, method: str, path: str) -> None:
    body = b"csrf_token=x" if method == "POST" else None
    status, headers, _ = fetch(admin_url + path, method, body,
                               {"Origin": admin_url, "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303, (method, path, status)
    assert headers["location"].startswith("/admin/login?next=")


@pytest.mark.parametrize(("method", "path"), PROTECTED_API)
def test_admin_api_answers_401_without_a_session(admin_url: str, method: str, path: str) -> None:
    status, _, body = fetch(admin_url + path, method, b"{}" if method == "POST" else None,
                            {"Origin": admin_url, "Content-Type": "application/json"})
    assert status == 401 and json.loads(body) == {"error": "请先登录"}


def test_forged_session_cookie_is_not_a_session(admin_url: str) -> None:
    status, _, _ = fetch(admin_url + "/admin/api/retrain/status",
                         headers={"Cookie": "kepu_admin_session=" + secrets.token_urlsafe(32)})
    assert status == 401


def test_login_page_is_public_with_strict_csp_and_no_cors(admin_url: str) -> None:
    status, headers, body = fetch(admin_url + "/admin/login", headers={"Origin": "https://evil.example"})
    assert status == 200
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in headers  # Rasa's --cors "*" does not reach /admin
    assert "location" not in headers
    page_html = body.decode()
    assert "<script>" not in page_html and " on" + "click=" not in page_html and "style=" not in page_html
    for asset in ("/admin/static/admin.js", "/admin/static/admin.css"):
        assert fetch(admin_url + asset)[0] == 200


def test_cross_site_posts_are_refused(admin_url: str, staff: tuple[str, str]) -> None:
    cookie, csrf = http_login(admin_url, *staff)
    form = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    json_headers = {"Content-Type": "application/json", "Cookie": cookie}
    # Wrong Origin, even with the right token.
    status, _, body = fetch(admin_url + "/admin/faq/new", "POST",
                            urlencode({"csrf_token": csrf, "id": "x"}).encode(),
                            {**form, "Origin": "https://evil.example"})
    assert status == 403 and "请求被拒绝" in body.decode()
    # No Origin and a foreign Referer.
    status, _, _ = fetch(admin_url + "/admin/rollback", "POST", urlencode({"csrf_token": csrf}).encode(),
                         {**form, "Referer": "https://evil.example/page"})
    assert status == 403
    # Right Origin, missing or wrong CSRF token.
    status, _, _ = fetch(admin_url + "/admin/rollback", "POST", b"", {**form, "Origin": admin_url})
    assert status == 403
    status, _, body = fetch(admin_url + "/admin/api/retrain", "POST", b"{}",
                            {**json_headers, "Origin": admin_url, "X-CSRF-Token": "wrong"})
    assert status == 403 and "CSRF" in json.loads(body)["error"]
    # The login form is protected too (Origin + its own token).
    status, _, _ = fetch(admin_url + "/admin/login", "POST",
                         urlencode({"name": staff[0], "password": staff[1]}).encode(),
                         {"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"})
    assert status == 403
    # Nothing happened: the status is still readable and no retrain started by us.
    status, _, body = fetch(admin_url + "/admin/api/retrain/status", headers={"Cookie": cookie})
    assert status == 200 and json.loads(body)["started_by"] != staff[0]
    # Logout with the token works and ends the session.
    status, _, _ = fetch(admin_url + "/admin/logout", "POST", urlencode({"csrf_token": csrf}).encode(),
                         {**form, "Origin": admin_url})
    assert status == 303
    assert fetch(admin_url + "/admin/api/retrain/status", headers={"Cookie": cookie})[0] == 401


# ---------------------------------------------------------------- browser: login


def test_wrong_password_shows_a_message(page: Page, admin_url: str, staff: tuple[str, str]) -> None:
    page.goto(admin_url + "/admin/faq")
    expect(page.get_by_role("heading", level=1)).to_have_text("工作人员登录")
    page.get_by_label("用户名").fill(staff[0])
    page.get_by_label("密码").fill("not-the-password")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_have_text("用户名或密码错误，请重新输入。")
    expect(page.get_by_label("用户名")).to_have_value(staff[0])
    expect(page.get_by_label("密码")).to_have_attribute("aria-invalid", "true")
    assert "kepu_admin_session" not in {c["name"] for c in page.context.cookies()}


def test_five_failures_lock_the_account(page: Page, admin_url: str, staff: tuple[str, str]) -> None:
    page.goto(admin_url + "/admin/login")
    for _ in range(5):
        page.get_by_label("用户名").fill(staff[0])
        page.get_by_label("密码").fill("wrong-password")
        page.get_by_role("button", name="登录").click()
        expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("登录失败次数过多，账号已被锁定，请 15 分钟后再试")
    # The right password is refused too while locked.
    page.get_by_label("密码").fill(staff[1])
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_contain_text("已被锁定")
    expect(page).to_have_url(re.compile(r"/admin/login"))


def test_login_logout_and_the_audit_log(page: Page, admin_url: str, staff: tuple[str, str]) -> None:
    login(page, admin_url, *staff, path="/admin/audit")
    expect(page.get_by_role("navigation", name="管理功能")).to_be_visible()
    expect(page.get_by_role("link", name="操作记录")).to_have_attribute("aria-current", "page")
    expect(page.get_by_text(f"当前用户：{staff[0]}")).to_be_visible()
    row = page.locator("tr", has=page.locator("td", has_text=staff[0])).first
    expect(row).to_contain_text("登录")
    cookie = next(c for c in page.context.cookies() if c["name"] == "kepu_admin_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
    page.get_by_role("button", name="退出登录").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("工作人员登录")
    expect(page.get_by_role("status")).to_have_text("您已安全退出登录。")
    page.goto(admin_url + "/admin/audit")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2Faudit"))
    login(page, admin_url, *staff, path="/admin/audit")
    expect(page.locator("tr", has=page.locator("td", has_text=staff[0])).filter(has_text="退出登录")).to_have_count(1)


# ---------------------------------------------------------------- browser: retrain


def test_retrain_shows_live_progress_and_the_verdict(page: Page, admin_url: str, staff: tuple[str, str],
                                                     screenshots: Path) -> None:
    login(page, admin_url, *staff, path="/admin/retrain")
    bar = page.get_by_role("progressbar")
    page.get_by_role("button", name="开始重新训练").click()
    expect(page.get_by_role("button", name="开始重新训练")).to_be_disabled()
    seen: list[float] = []
    for _ in range(60):
        seen.append(float(bar.evaluate("e => e.value")))
        if page.locator("#retrain-verdict .adm-verdict").count():
            break
        page.wait_for_timeout(250)
    steps = sorted(set(seen))
    assert len(steps) >= 3 and 0 < steps[1] < 100, seen  # the bar moved through intermediate values
    expect(page.locator("#retrain-verdict")).to_contain_text(f"已部署新模型：{fake_retrain.DEPLOYED_MODEL}")
    expect(page.locator("#retrain-verdict")).to_contain_text("各项指标均达到门槛")
    expect(page.locator("#retrain-verdict")).to_contain_text("候选模型准确率97.0%")
    expect(page.locator("#retrain-verdict")).to_contain_text("共 1 项，未通过 0 项")
    expect(bar).to_have_attribute("value", "100")
    expect(page.locator("#retrain-steps li")).to_contain_text(["检查知识库", "生成训练数据", "训练模型"])
    expect(page.get_by_role("button", name="开始重新训练")).to_be_enabled()
    page.screenshot(path=str(screenshots / "admin-retrain.png"), full_page=True)
    # A reload shows the finished job server-side (no JavaScript needed).
    page.reload()
    expect(page.locator("#retrain-verdict")).to_contain_text("已部署新模型")
    # Rollback goes through a confirmation page.
    page.get_by_role("link", name="回滚到上一个模型…").click()
    page.get_by_role("button", name="确认回滚").click()
    expect(page.get_by_role("status")).to_contain_text(f"已回滚到模型 {fake_retrain.PREVIOUS_MODEL}")
    page.get_by_role("link", name="操作记录").click()
    mine = page.locator("tbody tr", has=page.locator("td", has_text=staff[0]))
    expect(mine.filter(has_text="开始重新训练")).to_have_count(1)
    expect(mine.filter(has_text="重新训练完成")).to_have_count(1)
    expect(mine.filter(has_text="回滚模型")).to_have_count(1)


# ---------------------------------------------------------------- browser: FAQs


@pytest.fixture()
def faq_file() -> Iterator[Path]:
    """knowledge/faq.yml, put back byte for byte after the test (unless someone else changed it meanwhile)."""
    import yaml

    before = FAQ_FILE.read_bytes() if FAQ_FILE.exists() else None
    yield FAQ_FILE
    if before is None:
        FAQ_FILE.unlink(missing_ok=True)
        return
    now = yaml.safe_load(FAQ_FILE.read_text(encoding="utf-8")) if FAQ_FILE.exists() else None
    then = yaml.safe_load(before.decode("utf-8"))
    ours = [e for e in (now or {}).get("faqs") or [] if not str(e.get("id", "")).startswith("e2e_test")]
    if ours == (then or {}).get("faqs"):
        FAQ_FILE.write_bytes(before)
    else:  # a concurrent edit: keep it, but our entries must be gone
        assert ours == (now or {}).get("faqs"), "the test FAQ is still in knowledge/faq.yml"


def test_add_edit_remove_an_faq_through_the_form(page: Page, admin_url: str, staff: tuple[str, str],
                                                 faq_file: Path) -> None:
    fid = f"e2e_test_{secrets.token_hex(3)}"
    question = f"测试问题{fid[-6:]}科普日可以带宠物吗"
    login(page, admin_url, *staff, path="/admin/faq")
    expect(page.locator("tbody tr").first).to_be_visible()
    before = faq_file.read_bytes()
    # One click from a report pre-fills the question (the link the reports use).
    page.goto(admin_url + "/admin/faq/new?" + urlencode({"question": question}))
    expect(page.get_by_label("问法（每行一种）")).to_have_value(question)
    # Invalid: one question only -> the KnowledgeError in Chinese, nothing written.
    page.get_by_label("编号").fill(fid)
    page.get_by_label("答案").fill("可以带宠物，但请看管好。")
    page.get_by_role("button", name="保存").click()
    expect(page.get_by_role("alert")).to_contain_text("至少需要3个示例问题")
    expect(page.get_by_role("alert")).to_contain_text(fid)
    expect(page.get_by_label("答案")).to_have_value("可以带宠物，但请看管好。")  # the form keeps what was typed
    assert faq_file.read_bytes() == before
    # Valid.
    page.get_by_label("问法（每行一种）").fill(f"{question}\n活动现场能不能带狗{fid[-6:]}\n宠物可以进入科普日会场吗{fid[-6:]}")
    page.get_by_label("来源（可选）").fill("测试来源")
    page.get_by_label("有效期至（可选）").fill("2030-12-31")
    page.get_by_role("button", name="保存").click()
    page.wait_for_url(re.compile(r"/admin/faq\?done=added"))
    expect(page.get_by_role("status")).to_contain_text(f"已添加常见问题：{fid}")
    row = page.locator("tbody tr", has=page.locator("code", has_text=fid))
    expect(row).to_contain_text(question)
    expect(row).to_contain_text("2030-12-31")
    text = faq_file.read_text(encoding="utf-8")
    assert f"id: {fid}" in text and question in text and "可以带宠物，但请看管好。" in text
    # Edit: change the answer, clear the date.
    row.get_by_role("link", name=f"编辑 {fid}").click()
    expect(page.get_by_label("编号")).to_have_attribute("readonly", "")
    page.get_by_label("答案").fill("不建议带宠物入场。")
    page.get_by_label("有效期至（可选）").fill("")
    page.get_by_role("button", name="保存").click()
    expect(page.get_by_role("status")).to_contain_text(f"已保存修改：{fid}")
    expect(row).to_contain_text("不建议带宠物入场。")
    expect(row).to_contain_text("长期有效")
    assert "不建议带宠物入场。" in faq_file.read_text(encoding="utf-8")
    # The audit log shows who changed what.
    page.get_by_role("link", name="操作记录").click()
    mine = page.locator("tbody tr", has=page.locator("td", has_text=staff[0]))
    expect(mine.filter(has_text="添加常见问题").filter(has_text=f"编号 {fid}")).to_have_count(1)
    expect(mine.filter(has_text="修改常见问题").filter(has_text="修改了答案、有效期")).to_have_count(1)
    # Remove, through the confirmation page.
    page.get_by_role("link", name="常见问题").click()
    page.get_by_role("link", name=f"删除 {fid}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("删除常见问题")
    page.get_by_role("button", name="确认删除").click()
    expect(page.get_by_role("status")).to_contain_text(f"已删除常见问题：{fid}")
    expect(page.locator("code", has_text=fid)).to_have_count(0)
    assert fid not in faq_file.read_text(encoding="utf-8")
    page.get_by_role("link", name="操作记录").click()
    expect(mine.filter(has_text="删除常见问题")).to_have_count(1)


# ---------------------------------------------------------------- browser: look, phone, 长者模式, keyboard

CONTRAST_JS = """() => {
    const parse = c => {
        const p = c.match(/[\\d.]+/g).map(Number);
        return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
    };
    const lum = c => {
        const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
        return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
    };
    const background = el => {
        for (let node = el; node; node = node.parentNode) {
            if (node.nodeType !== 1) continue;
            const c = parse(getComputedStyle(node).backgroundColor);
            if (c.a > 0.99) return c;
        }
        return {r: 255, g: 255, b: 255, a: 1};
    };
    const out = [];
    document.body.querySelectorAll('*').forEach(el => {
        const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
        if (!own || !el.getClientRects().length || el.closest('.adm-sr, .adm-skip')) return;
        const a = lum(parse(getComputedStyle(el).color)), b = lum(background(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        out.push([el.textContent.trim().slice(0, 20), Math.round(ratio * 100) / 100]);
    });
    return out;
}"""

SMALL_TARGETS_JS = """() => [...document.querySelectorAll('a, button, input, textarea, select, summary')]
    .filter(e => e.getClientRects().length && !e.closest('.adm-skip') && e.type !== 'hidden')
    .map(e => { const r = e.getBoundingClientRect(), t = e.type === 'checkbox' ? e.closest('.adm-check') : e;
                const box = t.getBoundingClientRect();
                return [e.textContent.trim().slice(0, 20) || e.name || e.id, Math.round(box.height)]; })
    .filter(p => p[1] < 44)"""


def font_size(page: Page, selector: str) -> float:
    return float(page.locator(selector).first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))


def test_keyboard_only_login(page: Page, admin_url: str, staff: tuple[str, str]) -> None:
    page.goto(admin_url + "/admin/login")
    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(page.evaluate("() => document.activeElement.textContent.trim() || document.activeElement.id"))
    assert order == ["跳到正文", "长者模式", "name", "password", "登录"], order
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.type(staff[0])
    page.keyboard.press("Tab")
    page.keyboard.type(staff[1])
    page.keyboard.press("Enter")
    page.wait_for_url(admin_url + "/admin/dashboard")  # the first page after login
    focused = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert focused is not None
    # The skip link and every navigation item are reachable by Tab.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "跳到正文"


def test_contrast_elder_mode_phone_and_screenshots(make_page: Any, admin_url: str, staff: tuple[str, str],
                                                   screenshots: Path) -> None:
    desktop = make_page(1280, 800)
    login(desktop, admin_url, *staff, path="/admin/faq")
    expect(desktop.locator("tbody tr").first).to_be_visible()
    desktop.screenshot(path=str(screenshots / "admin-desktop.png"))
    normal = font_size(desktop, "td")
    toggle = desktop.get_by_role("button", name=ELDER)
    expect(toggle).to_have_attribute("aria-pressed", "false")
    for mode in ("normal", "elder"):
        if mode == "elder":
            toggle.click()
            expect(toggle).to_have_attribute("aria-pressed", "true")
        pairs = desktop.evaluate(CONTRAST_JS)
        assert len(pairs) > 10
        low = [p for p in pairs if p[1] < 4.5]
        assert not low, f"{mode}: contrast below 4.5:1: {low}"
    large = font_size(desktop, "td")
    assert large >= normal * 1.3, (normal, large)
    assert desktop.locator("td").first.evaluate("e => getComputedStyle(e).color") == "rgb(0, 0, 0)"
    desktop.reload()  # persisted (shared with the widget's 长者模式)
    expect(desktop.get_by_role("button", name=ELDER)).to_have_attribute("aria-pressed", "true")
    assert font_size(desktop, "td") == large
    desktop.get_by_role("button", name=ELDER).click()

    phone = make_page(390, 844, is_mobile=True, has_touch=True, device_scale_factor=2)
    login(phone, admin_url, *staff, path="/admin/faq")
    expect(phone.locator("tbody tr").first).to_be_visible()
    for path in ("/admin/faq", "/admin/faq/new", "/admin/retrain", "/admin/audit"):
        phone.goto(admin_url + path)
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390, path
        assert not phone.evaluate(SMALL_TARGETS_JS), (path, phone.evaluate(SMALL_TARGETS_JS))
    phone.goto(admin_url + "/admin/faq")
    # On a phone each table row is a card with the column names as labels.
    assert phone.locator("thead").first.evaluate("e => e.getBoundingClientRect().height") <= 1
    phone.screenshot(path=str(screenshots / "admin-mobile.png"))
    phone.get_by_role("button", name=ELDER).click()
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(screenshots / "admin-mobile-elder.png"))


# ---------------------------------------------------------------- browser: reports


@pytest.fixture()
def report_marker() -> Iterator[int]:
    """A number that makes this test's question unique; its conversation and vote are deleted afterwards."""
    from sqlalchemy import create_engine, delete

    from bot.knowledge.store import make_engine
    from bot.staff.reports import events_table, tracker_url
    from bot.web.feedback import feedback_table

    n = secrets.randbelow(900000) + 100000
    yield n
    tracker = create_engine(tracker_url(), future=True)
    with tracker.begin() as conn:
        conn.execute(delete(events_table).where(events_table.c.sender_id == f"admin-e2e-{n}"))
    tracker.dispose()
    engine = make_engine()
    with engine.begin() as conn:
        conn.execute(delete(feedback_table).where(feedback_table.c.question.like(f"%{n}")))
    engine.dispose()


def test_reports_lead_to_a_prefilled_faq_form(page: Page, admin_url: str, staff: tuple[str, str],
                                              report_marker: int) -> None:
    import datetime as dt
    import uuid

    n = report_marker
    unanswered = f"请问月球背面第{n}号基地今天的天气怎么样"
    disliked = f"科普日主场活动附近停车方便吗{n}"
    # An out-of-scope question to the bot (recorded in the tracker store) and a 不满意 vote from the widget.
    status, _, _ = fetch(admin_url + "/webhooks/rest/webhook", "POST",
                         json.dumps({"sender": f"admin-e2e-{n}", "message": unanswered}).encode(),
                         {"Content-Type": "application/json"})
    assert status == 200
    vote = {"session_id": str(uuid.uuid4()), "message": "抱歉，通知里没有说明停车安排。", "question": disliked,
            "vote": "down"}
    status, _, _ = fetch(admin_url + "/widget/feedback", "POST", json.dumps(vote).encode(),
                         {"Content-Type": "application/json"})
    assert status == 201

    login(page, admin_url, *staff, path="/admin/unanswered")
    row = page.locator("tbody tr", has_text=f"月球背面第{n}号")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(2)).to_have_text("1")  # 次数, after the grouped form and what users typed
    csv = page.request.get(admin_url + "/admin/unanswered.csv")
    assert csv.status == 200 and f"月球背面第{n}号" in csv.text()
    assert "attachment" in csv.headers["content-disposition"]
    row.get_by_role("link", name=re.compile("^添加为常见问题")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("添加常见问题")
    expect(page.get_by_label("问法（每行一种）")).to_have_value(re.compile(f"月球背面第{n}号"))
    # The date filter.
    page.get_by_role("link", name="未解答问题").click()
    later = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    page.get_by_label("起始日期（可选）").fill(later)
    page.get_by_role("button", name="筛选").click()
    expect(page).to_have_url(re.compile(f"since={later}"))
    expect(page.locator("tbody tr", has_text=f"月球背面第{n}号")).to_have_count(0)

    page.get_by_role("link", name="不满意反馈").click()
    row = page.locator("tbody tr", has_text=disliked)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("抱歉，通知里没有说明停车安排。")
    row.get_by_role("link", name=re.compile("^添加为常见问题")).click()
    expect(page.get_by_label("问法（每行一种）")).to_have_value(disliked)
