"""The staff admin page at /admin on Rasa's port: FAQ editing, reports, retrain
with live progress, rollback and the audit log.

`register_admin(app)` adds these routes (all answers carry a strict CSP and
`Cache-Control: no-store`):

- GET  /admin (-> /admin/dashboard, bot/web/dashboard_views.py), /admin/login, POST /admin/login,
  POST /admin/logout;
- GET  /admin/faq; GET|POST /admin/faq/new; GET|POST /admin/faq/<id>/edit;
  GET|POST /admin/faq/<id>/delete (a confirmation page, then the POST);
- GET  /admin/unanswered (+ .csv), /admin/feedback, /admin/audit;
- GET|POST /admin/retrain (the page; the POST is the no-JavaScript fallback),
  POST /admin/api/retrain, GET /admin/api/retrain/status (JSON, polled by admin.js);
- GET|POST /admin/rollback (a confirmation page, then the POST);
- GET  /admin/static/admin.js|admin.css (public, the login page needs them).

Security: every route but the login page and the two static files needs a
session (pages redirect to the login page, /admin/api/* answers 401). Every
POST must come from this origin (Origin, else Referer, must name this host)
and carry the session's CSRF token (form field `csrf_token` or header
`X-CSRF-Token`), else 403. The login form is protected the same way by a
short-lived pre-session cookie (double submit).

Retraining takes minutes: it runs in its own worker thread; its progress
callback feeds the status that the page polls. The retrain and rollback functions
are passed into `AdminSite` (default: bot.staff.retrain's), so tests hand in their own.

`python -m bot.web.admin create-user NAME` adds a staff account (the password
is asked for twice); see also `set-password`, `unlock` and `list-users`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import getpass
import hmac
import json
import logging
import re
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import clock
from bot.json_body import JsonBodyError, read_json
from bot.web import DEMO_CSP
from bot.web.admin_auth import AdminAuth, AuthError, Session, bootstrap_from_env, shared_auth
from bot.web.proxies import client_address, forwarded_https, trusted_proxies

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"admin.js": "text/javascript; charset=utf-8", "admin.css": "text/css; charset=utf-8"}

SESSION_COOKIE = "kepu_admin_session"
LOGIN_COOKIE = "kepu_admin_login"
COOKIE_PATH = "/admin"
MAX_FORM_BYTES = 256 * 1024
ADMIN_PREFIX = "/admin"
CORS_EVALUATED = "_sanic_cors_e"  # sanic_cors.core.SANIC_CORS_EVALUATED: "headers already handled"

# The same policy as the demo page: nothing but our own origin, no inline script or style.
ADMIN_CSP = DEMO_CSP

# "same-origin" (not "no-referrer"): with no-referrer, browsers send `Origin: null`
# on form POSTs, and the origin check below would refuse our own forms.
PAGE_HEADERS = {
    "Content-Security-Policy": ADMIN_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}

NAV = [
    ("/admin/dashboard", "数据概览"),
    ("/admin/faq", "常见问题"),
    ("/admin/unanswered", "未解答问题"),
    ("/admin/feedback", "不满意反馈"),
    ("/admin/retrain", "重新训练"),
    ("/admin/audit", "操作记录"),
]

ACTION_LABELS = {
    "login": "登录",
    "logout": "退出登录",
    "login_failed": "登录失败",
    "faq.add": "添加常见问题",
    "faq.update": "修改常见问题",
    "faq.remove": "删除常见问题",
    "faq_add": "添加常见问题",
    "faq_update": "修改常见问题",
    "faq_remove": "删除常见问题",
    "retrain": "重新训练",
    "retrain.start": "开始重新训练",
    "retrain.done": "重新训练完成",
    "retrain.failed": "重新训练失败",
    "rollback": "回滚模型",
    "user.create": "添加工作人员账号",
    "user.password": "修改密码",
    "unlock": "解除登录锁定",
}

KIND_LABELS = {"refusal": "超出通知范围", "clarify": "追问澄清", "unstated": "通知未说明",
               "nlu_fallback": "未能理解", "out_of_scope": "超出通知范围"}

STATE_LABELS = {"idle": "尚未开始", "running": "正在训练", "done": "已完成", "failed": "失败"}

Handler = Callable[..., Awaitable[HTTPResponse]]


# ---------------------------------------------------------------- small helpers


def h(value: object) -> str:
    """HTML-escape any value for text and attribute positions."""
    return escape("" if value is None else str(value), quote=True)


def _fmt_time(value: object) -> str:
    """A timestamp (datetime, date, ISO text or Unix seconds) as 'YYYY-MM-DD HH:MM' in bot.clock's zone.

    Naive datetimes are taken as UTC (SQLite drops the zone of the UTC times stored by bot/staff).
    """
    if value is None or value == "":
        return ""
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value, dt.timezone.utc)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value) if "T" in value or " " in value else dt.date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        return clock.local(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _audit_detail(detail: object) -> str:
    """An audit detail for people: FAQ changes (JSON from bot/staff/faqs) as a short Chinese summary."""
    text = "" if detail is None else str(detail)
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        return text
    if not isinstance(data, dict):
        return text
    parts = []
    if "deployed" in data:
        parts.append(f"已部署 {data.get('model', '')}" if data["deployed"] else "未部署新模型")
        if data.get("reason"):
            parts.append(str(data["reason"]))
    if "to" in data and "from" in data:
        parts.append(f"从 {data.get('from') or '（无）'} 回滚到 {data.get('to')}")
    if "id" in data:
        parts.append(f"编号 {data['id']}")
    entry = data.get("entry") or data.get("after")
    if isinstance(entry, dict) and entry.get("questions"):
        first = entry["questions"][0] if isinstance(entry["questions"], list) else entry["questions"]
        parts.append(f"问法“{first}”等")
    before, after = data.get("before"), data.get("after")
    if isinstance(before, dict) and isinstance(after, dict):
        names = {"questions": "问法", "answer": "答案", "source": "来源", "valid_until": "有效期"}
        changed = [label for key, label in names.items() if before.get(key) != after.get(key)]
        parts.append("修改了" + "、".join(changed) if changed else "内容未变")
    return "；".join(parts) if parts else text


def _percent(value: object) -> str:
    return f"{float(value):.1%}" if isinstance(value, (int, float)) else "无"


def gate_rows(gate: object) -> list[list[str]]:
    """The quality gate's verdict as [label, value] rows in Chinese (shape of bot.staff.retrain's gate)."""
    if not isinstance(gate, dict):
        return []
    rows: list[list[str]] = []
    known = {"candidate", "live", "candidate_accuracy", "live_accuracy", "checks", "passed", "smoke"}
    if "passed" in gate:
        rows.append(["质量门", "通过" if gate["passed"] else "未通过"])
    if "candidate_accuracy" in gate:
        rows.append(["候选模型准确率", _percent(gate.get("candidate_accuracy"))])
    if "candidate_accuracy" in gate or "live_accuracy" in gate:
        rows.append(["线上模型准确率", _percent(gate.get("live_accuracy")) if gate.get("live_accuracy") is not None
                     else "无（没有线上模型可比）"])
    for key, label in (("checks", "新问题检查"), ("smoke", "上线后冒烟检查")):
        checks = gate.get(key)
        if isinstance(checks, list) and checks:
            failed = [c for c in checks if isinstance(c, dict) and not c.get("ok")]
            text = f"共 {len(checks)} 项，未通过 {len(failed)} 项"
            if failed:
                text += "：" + "、".join(f"“{c.get('question', '')}”" for c in failed[:5])
            rows.append([label, text])
    for key, value in gate.items():
        if key not in known:
            rows.append([str(key), value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)])
    return rows


def _jsonable(value: Any) -> Any:
    """Any value as plain JSON types (dates and unknown objects become text)."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _client_ip(request: Request) -> str:
    """The client's address for the lock-out: X-Forwarded-For only from KEPU_TRUSTED_PROXIES."""
    return client_address(request.ip, request.headers.getall("x-forwarded-for", []), trusted_proxies())


def _https(request: Request) -> bool:
    return request.scheme == "https" or forwarded_https(
        request.ip, request.headers.get("x-forwarded-proto"), trusted_proxies())


def _origin_ok(request: Request) -> bool:
    """True when the request's Origin (else Referer) names this host."""
    host = (request.headers.get("host") or "").lower()
    source = request.headers.get("origin")
    if not source or source == "null":
        source = request.headers.get("referer")
    if not source or not host:
        return False
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host


def _form(request: Request) -> dict[str, str]:
    """The urlencoded form as {name: first value}."""
    form = request.form or {}
    return {key: (form.get(key) or "") for key in form}


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/admin") and "//" not in target and "\\" not in target:
        return target
    return "/admin/dashboard"


def _staff(module: str) -> Any:
    """bot.staff.<module>, imported when first needed (the library may be installed later)."""
    import importlib

    return importlib.import_module(f"bot.staff.{module}")


def _knowledge_error() -> type[Exception]:
    from bot.knowledge.loader import KnowledgeError

    return KnowledgeError


# ---------------------------------------------------------------- rendering


def _nav(current: str) -> str:
    items = []
    for path, label in NAV:
        mark = ' aria-current="page"' if current == path else ""
        items.append(f'<li><a href="{path}"{mark}>{h(label)}</a></li>')
    return f'<nav class="adm-nav" aria-label="管理功能"><ul class="adm-wrap">{"".join(items)}</ul></nav>'


def csrf_field(session: Session) -> str:
    """The hidden CSRF input for a form."""
    return f'<input type="hidden" name="csrf_token" value="{h(session.csrf)}">'


def layout(title: str, body: str, session: Session | None = None, current: str = "",
           flash: str = "", error: str = "") -> str:
    """The whole admin page around `body` (already escaped HTML)."""
    user_tools = ""
    nav = ""
    if session is not None:
        user_tools = (
            f'<span class="adm-user">当前用户：<strong>{h(session.user)}</strong></span>'
            f'<form method="post" action="/admin/logout" class="adm-inline">{csrf_field(session)}'
            '<button type="submit" class="adm-tool">退出登录</button></form>'
        )
        nav = _nav(current)
    notes = ""
    if flash:
        notes += f'<p class="adm-flash adm-ok" role="status">{h(flash)}</p>'
    if error:
        notes += f'<p class="adm-flash adm-bad" role="alert" id="form-error">{h(error)}</p>'
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{h(title)} - 科普日智能助手管理后台</title>
<link rel="icon" href="/widget/icons/robot.svg" type="image/svg+xml">
<link rel="stylesheet" href="/admin/static/admin.css">
<script src="/admin/static/admin.js"></script>
</head>
<body>
<a class="adm-skip" href="#main">跳到正文</a>
<header class="adm-header">
<div class="adm-wrap adm-header-inner">
<p class="adm-brand"><img src="/widget/icons/robot.svg" alt="" class="adm-logo" width="36" height="36">科普日智能助手 · 管理后台</p>
<div class="adm-tools">
<button type="button" class="adm-tool adm-elder-toggle" aria-pressed="false" aria-label="长者模式：大字体、高对比度">长者模式</button>
{user_tools}
</div>
</div>
{nav}
</header>
<main id="main" class="adm-wrap adm-main" tabindex="-1">
<h1>{h(title)}</h1>
{notes}
{body}
</main>
<footer class="adm-footer"><p class="adm-wrap">中卫市沙坡头区 · 科普日智能助手 · 仅限工作人员使用</p></footer>
</body>
</html>
"""


def _headers(**extra: str) -> dict[str, str]:
    """A fresh copy of the admin headers (Sanic's helpers modify the dict they are given)."""
    return {**PAGE_HEADERS, **extra}


def page(html: str, status: int = 200) -> HTTPResponse:
    """An HTML answer with the admin headers."""
    return response.html(html, status=status, headers=_headers())


def api_json(body: Any, status: int = 200) -> HTTPResponse:
    """A JSON answer with the admin headers."""
    return response.json(body, status=status, headers=_headers())


def api_error(status: int, message: str) -> HTTPResponse:
    """A JSON error with the admin headers."""
    return api_json({"error": message}, status)


def _redirect(to: str) -> HTTPResponse:
    return response.redirect(to, status=303, headers=_headers())


def _set_cookie(resp: HTTPResponse, request: Request, name: str, value: str, max_age: int) -> None:
    resp.cookies[name] = value
    cookie = resp.cookies[name]
    cookie["path"] = COOKIE_PATH
    cookie["httponly"] = True
    cookie["samesite"] = "Strict"
    cookie["max-age"] = max_age
    if _https(request):
        cookie["secure"] = True


def _table(headers: list[str], rows: list[list[str]], caption: str, empty: str) -> str:
    """A responsive table; cells are escaped HTML already. On phones each row becomes a card."""
    if not rows:
        return f'<p class="adm-empty">{h(empty)}</p>'
    head = "".join(f'<th scope="col">{h(x)}</th>' for x in headers)
    body = []
    for row in rows:
        cells = "".join(f'<td data-label="{h(label)}">{cell}</td>' for label, cell in zip(headers, row, strict=False))
        body.append(f"<tr>{cells}</tr>")
    return (f'<div class="adm-table-wrap"><table class="adm-table"><caption class="adm-sr">{h(caption)}</caption>'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def _since_arg(request: Request) -> tuple[str, dt.date | None, str]:
    """The report's `since` argument: (its text, the day, an error for the page); a bad date is dropped."""
    text = request.args.get("since", "").strip()
    if not text:
        return "", None, ""
    try:
        return text, dt.date.fromisoformat(text), ""
    except ValueError:
        return "", None, "日期格式不正确，请按“年-月-日”填写。"


def _zone_label() -> str:
    """The report's time zone for people: 北京时间 for Asia/Shanghai, else its name."""
    name = clock.zone_name()
    return f"北京时间（{name}）" if name == clock.DEFAULT_ZONE else name


def _unanswered_filter(since_text: str) -> str:
    """The lead, the day filter (with a link to today's questions) and the CSV link."""
    today = clock.today().isoformat()
    csv_link = "/admin/unanswered.csv" + (f"?{urlencode({'since': since_text})}" if since_text else "")
    return f"""
<p class="adm-lead">机器人没能回答的问题，按提问次数排列；“用户原话”是群众输入的原文，同一问题的不同写法归为一行。\
点击“添加为常见问题”可直接为它编写答案。日期按{h(_zone_label())}计算。</p>
<form method="get" action="/admin/unanswered" class="adm-filter">
<div class="adm-field"><label for="since">起始日期（可选）</label>
<input id="since" name="since" type="date" value="{h(since_text)}"></div>
<div class="adm-buttons"><button type="submit" class="adm-button">筛选</button>
<a class="adm-button" href="/admin/unanswered?{h(urlencode({'since': today}))}">只看今天（{h(today)}）</a>
<a class="adm-button" href="{h(csv_link)}" download>下载 CSV</a></div>
</form>
"""


def _unanswered_cells(row: dict[str, Any]) -> list[str]:
    """One report row as escaped table cells: the grouped form, what users typed, counts, days, action."""
    question = str(row.get("question", ""))
    add = "/admin/faq/new?" + urlencode({"question": question})
    kinds = [KIND_LABELS.get(k, k) for k in str(row.get("kinds") or "").split(",") if k]
    typed = "".join(f"<li>{h(text)}</li>" for text in row.get("originals") or [])
    return [h(question), f'<ul class="adm-originals">{typed}</ul>', h(row.get("count", "")),
            h("、".join(dict.fromkeys(kinds)) or "—"), h(_fmt_time(row.get("first"))), h(_fmt_time(row.get("last"))),
            f'<a class="adm-button adm-small" href="{h(add)}" aria-label="添加为常见问题：{h(question)}">添加为常见问题</a>']


# ---------------------------------------------------------------- retrain job


Progress = Callable[[str, float], None]
Retrain = Callable[..., Any]  # (progress=..., full=...) -> a result shaped like bot.staff.retrain.RetrainResult
Rollback = Callable[[], str]  # () -> the model now live


def staff_retrain(progress: Progress | None = None, full: bool = False) -> Any:
    """bot.staff.retrain.retrain, looked up when called (the staff library is imported on first use)."""
    return _staff("retrain").retrain(progress=progress, full=full)


def staff_rollback() -> str:
    """bot.staff.retrain.rollback, looked up when called."""
    return _staff("retrain").rollback()


class RetrainJob:
    """The one retrain that may run at a time, in a worker thread; its status for polling.

    `retrain(progress=..., full=...)` does the work (default: bot.staff.retrain.retrain).
    """

    def __init__(self, retrain: Retrain = staff_retrain) -> None:
        self._retrain = retrain
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {"state": "idle", "step": "", "progress": 0.0, "steps": [],
                                        "started_by": "", "started_at": None, "finished_at": None,
                                        "result": None, "error": "", "full": False}
        self._thread: threading.Thread | None = None

    def snapshot(self) -> dict[str, Any]:
        """A copy of the status (JSON-able)."""
        with self._lock:
            status = _jsonable(self._status)
        status["state_label"] = STATE_LABELS.get(status["state"], status["state"])
        return status

    def running(self) -> bool:
        """True while a retrain is in progress."""
        with self._lock:
            return self._status["state"] == "running"

    def _progress(self, step: str, fraction: float) -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        with self._lock:
            self._status["step"] = str(step)
            self._status["progress"] = max(self._status["progress"], fraction)
            steps = self._status["steps"]
            if not steps or steps[-1]["label"] != step:
                steps.append({"label": str(step), "progress": fraction, "at": time.time()})

    def start(self, actor: str, full: bool, audit: Callable[[str, str, str], None]) -> bool:
        """Start a retrain for `actor`; False if one is already running."""
        with self._lock:
            if self._status["state"] == "running":
                return False
            self._status = {"state": "running", "step": "准备中", "progress": 0.0, "steps": [],
                            "started_by": actor, "started_at": time.time(), "finished_at": None,
                            "result": None, "error": "", "full": full}
        self._thread = threading.Thread(target=self._run, args=(actor, full, audit),
                                        name="kepu-admin-retrain", daemon=True)
        self._thread.start()
        return True

    def _run(self, actor: str, full: bool, audit: Callable[[str, str, str], None]) -> None:
        kind = "完整训练" if full else "增量训练"
        audit(actor, "retrain.start", f"开始重新训练（{kind}）")
        try:
            result = self._retrain(progress=self._progress, full=full)
            data = (dataclasses.asdict(result) if dataclasses.is_dataclass(result)
                    else {key: getattr(result, key, None)
                          for key in ("deployed", "model", "reason", "seconds", "gate", "steps")})
            data = _jsonable(data)
            data["gate_rows"] = gate_rows(data.get("gate"))
            data.pop("gate", None)  # can be large (every check's reply); the rows say what matters
        except Exception as err:  # the page shows the failure; the server keeps running
            logger.exception("admin: retrain failed")
            with self._lock:
                self._status.update(state="failed", error=f"重新训练失败：{err}", finished_at=time.time())
            audit(actor, "retrain.failed", f"重新训练失败：{err}")
            return
        with self._lock:
            self._status.update(state="done", result=data, finished_at=time.time())
            if data.get("deployed"):
                self._status["progress"] = 1.0
        verdict = (f"已部署新模型 {data.get('model', '')}" if data.get("deployed")
                   else f"未部署新模型：{data.get('reason', '')}")
        audit(actor, "retrain.done", f"重新训练完成，{verdict}（用时 {data.get('seconds', 0)} 秒）")

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker thread (tests and shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)


# ---------------------------------------------------------------- the admin app


class AdminSite:
    """The admin routes' state: the account store, the retrain job, the rollback, the audit sink.

    `retrain` and `rollback` default to bot.staff.retrain's; tests pass in their own.
    """

    def __init__(self, auth: AdminAuth | None = None, retrain: Retrain = staff_retrain,
                 rollback: Rollback = staff_rollback) -> None:
        self._auth = auth
        self.job = RetrainJob(retrain)
        self._rollback = rollback
        self.rollback_lock = threading.Lock()

    @property
    def auth(self) -> AdminAuth:
        """The account store (the shared one unless injected)."""
        if self._auth is None:
            self._auth = shared_auth()
        return self._auth

    # ------------------------------------------------------------ audit

    @staticmethod
    def audit(actor: str, action: str, detail: str) -> None:
        """Record one action in the audit log; never raises (the log says why it failed)."""
        try:
            _staff("audit").record(actor, action, detail)
        except Exception:
            logger.exception("admin: could not write the audit log (%s %s)", actor, action)

    async def audit_async(self, actor: str, action: str, detail: str) -> None:
        """audit() off the event loop."""
        await asyncio.to_thread(self.audit, actor, action, detail)

    # ------------------------------------------------------------ sessions

    async def session_of(self, request: Request) -> Session | None:
        """The request's session, or None."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        try:
            return await asyncio.to_thread(self.auth.session, token)
        except Exception:
            logger.exception("admin: session lookup failed")
            return None

    def guard(self, handler: Handler, api: bool = False) -> Handler:
        """Wrap a handler: session required (401 / redirect), and for POSTs origin + CSRF (403)."""

        async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            session = await self.session_of(request)
            if session is None:
                if api or request.path.startswith("/admin/api/"):
                    return api_error(401, "请先登录")
                target = request.path if request.method == "GET" else "/admin/faq"
                if request.method == "GET" and request.query_string:
                    target += "?" + request.query_string
                return _redirect("/admin/login?" + urlencode({"next": target}))
            if request.method not in ("GET", "HEAD"):
                refusal = self.check_post(request, session)
                if refusal is not None:
                    return refusal
            return await handler(request, session, *args, **kwargs)

        guarded.__name__ = handler.__name__
        return guarded

    @staticmethod
    def check_post(request: Request, session: Session) -> HTTPResponse | None:
        """403 unless the POST comes from this origin and carries the session's CSRF token."""
        json_wanted = request.path.startswith("/admin/api/")
        if len(request.body or b"") > MAX_FORM_BYTES:
            return api_error(413, "提交的内容过大") if json_wanted else page(
                layout("内容过大", '<p><a href="/admin/faq">返回</a></p>', session, error="提交的内容过大。"), 413)
        token = request.headers.get("x-csrf-token")
        if token is None:
            content_type = request.headers.get("content-type", "")
            if content_type.startswith("application/x-www-form-urlencoded") or content_type.startswith("multipart/"):
                token = (request.form or {}).get("csrf_token")
        if _origin_ok(request) and token and hmac.compare_digest(str(token), session.csrf):
            return None
        message = "请求被拒绝：来源校验或安全令牌（CSRF）校验失败。请刷新页面后重试。"
        if json_wanted:
            return api_error(403, message)
        return page(layout("请求被拒绝", '<p><a class="adm-button" href="/admin/faq">返回管理后台</a></p>',
                           session, error=message), 403)

    # ------------------------------------------------------------ login / logout

    async def login_page(self, request: Request) -> HTTPResponse:
        """GET /admin/login."""
        if await self.session_of(request) is not None:
            return _redirect(_safe_next(request.args.get("next")))
        flash = "您已安全退出登录。" if request.args.get("bye") else ""
        return self._login_form(request, "", request.args.get("next") or "", "", 200, flash=flash)

    def _login_form(self, request: Request, name: str, target: str, error: str, status: int,
                    flash: str = "") -> HTTPResponse:
        token = secrets.token_urlsafe(24)
        body = f"""
<form method="post" action="/admin/login" class="adm-form adm-login" novalidate>
<input type="hidden" name="login_token" value="{h(token)}">
<input type="hidden" name="next" value="{h(_safe_next(target))}">
<div class="adm-field">
<label for="name">用户名</label>
<input id="name" name="name" type="text" autocomplete="username" required maxlength="64" value="{h(name)}"
 autocapitalize="none" spellcheck="false"{' aria-invalid="true" aria-describedby="form-error"' if error else ''}>
</div>
<div class="adm-field">
<label for="password">密码</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="256"
{' aria-invalid="true" aria-describedby="form-error"' if error else ''}>
</div>
<button type="submit" class="adm-button adm-primary">登录</button>
</form>
<p class="adm-hint">仅限科普日智能助手的工作人员使用。从同一网络地址连续 5 次输入错误，需等待 15 分钟才能再试，之后每错一次等待时间加倍。</p>"""
        resp = page(layout("工作人员登录", body, flash=flash, error=error), status)
        _set_cookie(resp, request, LOGIN_COOKIE, token, 3600)
        return resp

    async def login(self, request: Request) -> HTTPResponse:
        """POST /admin/login: origin + double-submit token, then the password check."""
        form = _form(request)
        cookie = request.cookies.get(LOGIN_COOKIE) or ""
        field = form.get("login_token", "")
        if not _origin_ok(request) or not cookie or not hmac.compare_digest(cookie, field):
            return self._login_form(request, form.get("name", ""), form.get("next", ""),
                                    "页面已过期或请求来源不正确，请重新登录。", 403)
        name = form.get("name", "").strip()[:64]
        password = form.get("password", "")
        if not name or not password:
            return self._login_form(request, name, form.get("next", ""), "请输入用户名和密码。", 400)
        ip = _client_ip(request)
        result = await asyncio.to_thread(self.auth.login, name, password, ip)
        if result.token is None:
            if result.attempted:
                await self.audit_async(name, "login_failed", f"登录失败（来自 {ip}）" + ("，已锁定" if result.locked else ""))
            return self._login_form(request, name, form.get("next", ""), result.message,
                                    429 if result.locked or result.throttled else 401)
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            await asyncio.to_thread(self.auth.end_session, old)
        await self.audit_async(name, "login", f"登录成功（来自 {ip}）")
        resp = _redirect(_safe_next(form.get("next")))
        _set_cookie(resp, request, SESSION_COOKIE, result.token, int(result.session.expires_at - time.time()))
        _set_cookie(resp, request, LOGIN_COOKIE, "", 0)
        return resp

    async def logout(self, request: Request, session: Session) -> HTTPResponse:
        """POST /admin/logout."""
        await asyncio.to_thread(self.auth.end_session, request.cookies.get(SESSION_COOKIE))
        await self.audit_async(session.user, "logout", "退出登录")
        resp = _redirect("/admin/login?" + urlencode({"bye": "1"}))
        _set_cookie(resp, request, SESSION_COOKIE, "", 0)
        return resp

    async def index(self, request: Request, session: Session) -> HTTPResponse:
        """GET /admin: the dashboard is the first page."""
        return _redirect("/admin/dashboard")

    # ------------------------------------------------------------ FAQ

    async def faq_list(self, request: Request, session: Session) -> HTTPResponse:
        """GET /admin/faq: all FAQ entries with edit / remove."""
        try:
            faqs = await asyncio.to_thread(lambda: _staff("faqs").list_faqs())
        except Exception as err:
            logger.exception("admin: list_faqs failed")
            return page(layout("常见问题", "", session, "/admin/faq", error=f"无法读取常见问题：{err}"), 503)
        done = {"added": "已添加常见问题", "updated": "已保存修改", "removed": "已删除常见问题"}
        flash = ""
        if request.args.get("done") in done:
            flash = f"{done[request.args.get('done')]}：{request.args.get('id', '')}。重新训练后机器人才会按新内容回答。"
        rows = []
        for faq in faqs:
            fid = quote(str(faq.id), safe="")
            questions = "".join(f"<li>{h(q)}</li>" for q in faq.questions)
            actions = (f'<a class="adm-button adm-small" href="/admin/faq/{fid}/edit" aria-label="编辑 {h(faq.id)}">编辑</a>'
                       f'<a class="adm-button adm-small adm-danger" href="/admin/faq/{fid}/delete" '
                       f'aria-label="删除 {h(faq.id)}">删除</a>')
            rows.append([f'<span class="adm-nowrap"><code>{h(faq.id)}</code></span>',
                         f'<ul class="adm-questions">{questions}</ul>',
                         f'<div class="adm-answer">{h(faq.answer)}</div>', h(faq.source or "—"),
                         f'<span class="adm-nowrap">{h(_fmt_time(faq.valid_until) or "长期有效")}</span>',
                         f'<div class="adm-actions">{actions}</div>'])
        body = (f'<p class="adm-lead">共 {len(faqs)} 条常见问题。机器人遇到这些问法时直接给出对应答案。</p>'
                '<p><a class="adm-button adm-primary" href="/admin/faq/new">添加常见问题</a></p>'
                + _table(["编号", "问法", "答案", "来源", "有效期至", "操作"], rows, "常见问题列表",
                         "还没有常见问题，请点击“添加常见问题”。"))
        return page(layout("常见问题", body, session, "/admin/faq", flash=flash))

    def _faq_form(self, session: Session, *, action: str, title: str, values: dict[str, str], editing: bool,
                  error: str = "", status: int = 200) -> HTTPResponse:
        invalid = ' aria-invalid="true" aria-describedby="form-error"' if error else ""
        id_attrs = ' readonly aria-readonly="true"' if editing else ' required'
        body = f"""
<form method="post" action="{h(action)}" class="adm-form">
{csrf_field(session)}
<div class="adm-field">
<label for="faq-id">编号</label>
<input id="faq-id" name="id" type="text" maxlength="128" value="{h(values.get('id', ''))}"{id_attrs}
 autocapitalize="none" spellcheck="false" aria-describedby="faq-id-hint">
<p class="adm-hint" id="faq-id-hint">这条问答的唯一编号：小写英文字母开头，只用小写字母、数字和下划线，例如 parking_info。{"编号保存后不能修改。" if editing else ""}</p>
</div>
<div class="adm-field">
<label for="faq-questions">问法（每行一种）</label>
<textarea id="faq-questions" name="questions" rows="5" required{invalid}>{h(values.get('questions', ''))}</textarea>
<p class="adm-hint">写下群众可能的不同问法，每行一种，至少三种，不能与其他问题的示例相同。</p>
</div>
<div class="adm-field">
<label for="faq-answer">答案</label>
<textarea id="faq-answer" name="answer" rows="6" required{invalid}>{h(values.get('answer', ''))}</textarea>
</div>
<div class="adm-field">
<label for="faq-source">来源（可选）</label>
<input id="faq-source" name="source" type="text" maxlength="500" value="{h(values.get('source', ''))}">
<p class="adm-hint">答案的依据，例如通知原文的段落或文件名。</p>
</div>
<div class="adm-field">
<label for="faq-valid">有效期至（可选）</label>
<input id="faq-valid" name="valid_until" type="date" value="{h(values.get('valid_until', ''))}">
<p class="adm-hint">过了这一天，机器人不再使用这条答案；不填则长期有效。</p>
</div>
<div class="adm-buttons">
<button type="submit" class="adm-button adm-primary">保存</button>
<a class="adm-button" href="/admin/faq">取消</a>
</div>
</form>"""
        return page(layout(title, body, session, "/admin/faq", error=error), status)

    @staticmethod
    def _faq_input(form: dict[str, str]) -> tuple[dict[str, Any], str]:
        questions = tuple(line.strip() for line in form.get("questions", "").splitlines() if line.strip())
        valid_text = form.get("valid_until", "").strip()
        valid_until = None
        if valid_text:
            try:
                valid_until = dt.date.fromisoformat(valid_text)
            except ValueError:
                return {}, "有效期格式不正确，请按“年-月-日”填写，例如 2021-10-22。"
        return {"questions": questions, "answer": form.get("answer", "").strip(),
                "source": form.get("source", "").strip(), "valid_until": valid_until}, ""

    async def faq_new(self, request: Request, session: Session) -> HTTPResponse:
        """GET|POST /admin/faq/new (GET ?question=, ?answer=, ?source= pre-fill the form)."""
        if request.method == "GET":
            values = {"questions": request.args.get("question", "")[:1000],
                      "answer": request.args.get("answer", "")[:4000], "source": request.args.get("source", "")[:500]}
            return self._faq_form(session, action="/admin/faq/new", title="添加常见问题", values=values,
                                  editing=False)
        form = _form(request)
        fid = form.get("id", "").strip()
        data, error = self._faq_input(form)
        if not error and not fid:
            error = "请填写编号。"
        if not error:
            try:
                await asyncio.to_thread(lambda: _staff("faqs").add_faq(fid, actor=session.user, **data))
            except _knowledge_error() as err:
                error = str(err)
            except Exception as err:
                logger.exception("admin: add_faq failed")
                error = f"保存失败：{err}"
        if error:
            return self._faq_form(session, action="/admin/faq/new", title="添加常见问题", values=form,
                                  editing=False, error=error, status=400)
        return _redirect("/admin/faq?" + urlencode({"done": "added", "id": fid}))

    async def _find_faq(self, fid: str) -> Any:
        faqs = await asyncio.to_thread(lambda: _staff("faqs").list_faqs())
        return next((faq for faq in faqs if str(faq.id) == fid), None)

    def _not_found(self, session: Session, what: str) -> HTTPResponse:
        return page(layout("未找到", '<p><a class="adm-button" href="/admin/faq">返回常见问题列表</a></p>', session,
                           "/admin/faq", error=f"没有找到{what}，可能已被其他人删除。"), 404)

    async def faq_edit(self, request: Request, session: Session, fid: str) -> HTTPResponse:
        """GET|POST /admin/faq/<id>/edit."""
        from urllib.parse import unquote

        fid = unquote(fid)
        action = f"/admin/faq/{quote(fid, safe='')}/edit"
        if request.method == "GET":
            faq = await self._find_faq(fid)
            if faq is None:
                return self._not_found(session, f"常见问题 {fid}")
            values = {"id": faq.id, "questions": "\n".join(faq.questions), "answer": faq.answer,
                      "source": faq.source or "", "valid_until": _fmt_time(faq.valid_until)}
            return self._faq_form(session, action=action, title=f"编辑常见问题 {fid}", values=values, editing=True)
        form = _form(request)
        form["id"] = fid
        data, error = self._faq_input(form)
        if not error:
            data["valid_until"] = data["valid_until"] or ""  # an emptied field removes the date
            try:
                await asyncio.to_thread(lambda: _staff("faqs").update_faq(fid, actor=session.user, **data))
            except _knowledge_error() as err:
                error = str(err)
            except Exception as err:
                logger.exception("admin: update_faq failed")
                error = f"保存失败：{err}"
        if error:
            return self._faq_form(session, action=action, title=f"编辑常见问题 {fid}", values=form, editing=True,
                                  error=error, status=400)
        return _redirect("/admin/faq?" + urlencode({"done": "updated", "id": fid}))

    async def faq_delete(self, request: Request, session: Session, fid: str) -> HTTPResponse:
        """GET (confirm) | POST /admin/faq/<id>/delete."""
        from urllib.parse import unquote

        fid = unquote(fid)
        if request.method == "GET":
            faq = await self._find_faq(fid)
            if faq is None:
                return self._not_found(session, f"常见问题 {fid}")
            questions = "".join(f"<li>{h(q)}</li>" for q in faq.questions)
            body = (f'<p>确定要删除常见问题 <code>{h(fid)}</code> 吗？删除后，重新训练时机器人将不再使用它。</p>'
                    f'<ul class="adm-questions">{questions}</ul>'
                    f'<form method="post" action="/admin/faq/{quote(fid, safe="")}/delete" class="adm-buttons">'
                    f'{csrf_field(session)}<button type="submit" class="adm-button adm-danger-solid">确认删除</button>'
                    '<a class="adm-button" href="/admin/faq">取消</a></form>')
            return page(layout("删除常见问题", body, session, "/admin/faq"))
        try:
            await asyncio.to_thread(lambda: _staff("faqs").remove_faq(fid, actor=session.user))
        except _knowledge_error() as err:
            return page(layout("删除常见问题", '<p><a class="adm-button" href="/admin/faq">返回常见问题列表</a></p>',
                               session, "/admin/faq", error=str(err)), 400)
        return _redirect("/admin/faq?" + urlencode({"done": "removed", "id": fid}))

    # ------------------------------------------------------------ reports

    async def unanswered(self, request: Request, session: Session) -> HTTPResponse:
        """GET /admin/unanswered[?since=YYYY-MM-DD]: questions the bot could not answer."""
        since_text, since, error = _since_arg(request)
        try:
            rows = await asyncio.to_thread(lambda: _staff("reports").unanswered(since=since))
        except Exception as err:
            logger.exception("admin: unanswered report failed")
            return page(layout("未解答问题", "", session, "/admin/unanswered", error=f"无法生成报表：{err}"), 503)
        headers = ["问题（归并后）", "用户原话", "次数", "机器人的处理", "首次提问", "最近提问", "操作"]
        body = _unanswered_filter(since_text) + _table(
            headers, [_unanswered_cells(row) for row in rows], "未解答问题报表", "暂无未解答的问题。")
        return page(layout("未解答问题", body, session, "/admin/unanswered", error=error))

    async def unanswered_csv(self, request: Request, session: Session) -> HTTPResponse:
        """GET /admin/unanswered.csv: the same report as a CSV file (written by reports.to_csv)."""
        since = _since_arg(request)[1]

        def build() -> bytes:
            reports = _staff("reports")
            rows = reports.unanswered(since=since)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "unanswered.csv"
                reports.to_csv(rows, path)
                return path.read_bytes()

        try:
            data = await asyncio.to_thread(build)
        except Exception as err:
            logger.exception("admin: unanswered csv failed")
            return api_error(503, f"无法生成报表：{err}")
        name = f"unanswered-{clock.today().isoformat()}.csv"
        return response.raw(data, content_type="text/csv; charset=utf-8",
                            headers=_headers(**{"Content-Disposition": f'attachment; filename="{name}"'}))

    async def feedback(self, request: Request, session: Session) -> HTTPResponse:
        """GET /admin/feedback: answers that users marked 不满意."""
        try:
            rows = await asyncio.to_thread(lambda: _staff("reports").feedback(vote="down"))
        except Exception as err:
            logger.exception("admin: feedback report failed")
            return page(layout("不满意反馈", "", session, "/admin/feedback", error=f"无法读取反馈：{err}"), 503)
        cells = []
        for row in rows:
            question = str(row.get("question") or "")
            add = "/admin/faq/new?" + urlencode({"question": question})
            action = (f'<a class="adm-button adm-small" href="{h(add)}" aria-label="添加为常见问题：{h(question)}">'
                      '添加为常见问题</a>') if question else ""
            cells.append([h(question or "（未记录问题）"), f'<div class="adm-answer">{h(row.get("answer", ""))}</div>',
                          h(_fmt_time(row.get("at"))), action])
        body = ('<p class="adm-lead">群众在对话窗口中点了“不满意”的回答，最新的在前。</p>'
                + _table(["问题", "机器人的回答", "时间", "操作"], cells, "不满意反馈列表", "暂无不满意反馈。"))
        return page(layout("不满意反馈", body, session, "/admin/feedback"))

    async def audit_page(self, request: Request, session: Session) -> HTTPResponse:
        """GET /admin/audit: who changed what, when."""
        try:
            rows = await asyncio.to_thread(lambda: _staff("audit").list_audit(limit=200))
        except Exception as err:
            logger.exception("admin: audit log failed")
            return page(layout("操作记录", "", session, "/admin/audit", error=f"无法读取操作记录：{err}"), 503)
        cells = [[h(_fmt_time(row.get("at"))), h(row.get("actor", "")),
                  h(ACTION_LABELS.get(str(row.get("action", "")), row.get("action", ""))),
                  h(_audit_detail(row.get("detail", "")))]
                 for row in rows]
        body = ('<p class="adm-lead">最近 200 条操作，最新的在前。</p>'
                + _table(["时间", "操作人", "操作", "详情"], cells, "操作记录", "暂无操作记录。"))
        return page(layout("操作记录", body, session, "/admin/audit"))

    # ------------------------------------------------------------ retrain / rollback

    def _verdict_html(self, status: dict[str, Any]) -> str:
        if status["state"] == "failed":
            return f'<p class="adm-verdict adm-bad">{h(status["error"])}</p>'
        result = status.get("result")
        if status["state"] != "done" or not result:
            return ""
        if result.get("deployed"):
            head = f'<p class="adm-verdict adm-ok">已部署新模型：{h(result.get("model", ""))}</p>'
        else:
            head = '<p class="adm-verdict adm-bad">未部署新模型，继续使用原模型。</p>'
        gate = "".join(f"<dt>{h(k)}</dt><dd>{h(v)}</dd>" for k, v in result.get("gate_rows") or [])
        return (head + f'<p>原因：{h(result.get("reason", ""))}</p><p>用时：{h(result.get("seconds", ""))} 秒</p>'
                + (f'<dl class="adm-gate">{gate}</dl>' if gate else ""))

    async def retrain_page(self, request: Request, session: Session) -> HTTPResponse:
        """GET /admin/retrain: the button, live progress and the verdict; POST: start without JavaScript."""
        if request.method == "POST":
            full = _form(request).get("full") == "1"
            started = self.job.start(session.user, full, self.audit)
            if not started:
                return page(layout("重新训练", '<p><a class="adm-button" href="/admin/retrain">返回</a></p>', session,
                                   "/admin/retrain", error="已有一次重新训练正在进行，请等待它完成。"), 409)
            return _redirect("/admin/retrain")
        status = self.job.snapshot()
        running = status["state"] == "running"
        percent = int(round(status["progress"] * 100))
        steps = "".join(f"<li>{h(step['label'])}</li>" for step in status["steps"])
        started = (f'由 {h(status["started_by"])} 于 {h(_fmt_time(status["started_at"]))} 开始'
                   if status["started_at"] else "")
        body = f"""<p class="adm-lead">修改常见问题或知识库后，需要重新训练，机器人才会使用新内容。训练需要几分钟；新模型只有通过质量门槛才会部署，否则继续使用原模型。</p>
<form method="post" action="/admin/retrain" id="retrain-form" class="adm-form">
{csrf_field(session)}
<div class="adm-check"><input type="checkbox" id="retrain-full" name="full" value="1">
<label for="retrain-full">完整训练（不复用上次的模型，耗时更长）</label></div>
<button type="submit" class="adm-button adm-primary" id="retrain-start"{' disabled' if running else ''}>开始重新训练</button>
</form>
<section class="adm-card" aria-labelledby="progress-title" id="retrain-panel" data-state="{h(status['state'])}">
<h2 id="progress-title">训练进度</h2>
<label for="retrain-bar" class="adm-progress-label">进度：<span id="retrain-percent">{percent}%</span></label>
<progress id="retrain-bar" max="100" value="{percent}">{percent}%</progress>
<p id="retrain-state" role="status" aria-live="polite">{h(status['state_label'])}{('：' + h(status['step'])) if running else ''}</p>
<p id="retrain-meta" class="adm-hint">{started}</p>
<ol id="retrain-steps" class="adm-steps">{steps}</ol>
<div id="retrain-verdict" aria-live="polite">{self._verdict_html(status)}</div>
</section>
<section class="adm-card" aria-labelledby="rollback-title">
<h2 id="rollback-title">回滚</h2>
<p>如果新模型上线后回答变差，可以回滚到上一个模型。</p>
<a class="adm-button adm-danger" href="/admin/rollback">回滚到上一个模型…</a>
</section>"""
        return page(layout("重新训练", body, session, "/admin/retrain"))

    async def retrain_start(self, request: Request, session: Session) -> HTTPResponse:
        """POST /admin/api/retrain {"full": bool}: start; 409 if one is running."""
        try:
            payload = read_json(request.body or b"{}", MAX_FORM_BYTES)
        except JsonBodyError as exc:
            return api_error(exc.status, exc.message)
        full = bool(payload.get("full")) if isinstance(payload, dict) else False
        if not self.job.start(session.user, full, self.audit):
            return api_error(409, "已有一次重新训练正在进行，请等待它完成。")
        return api_json(self.job.snapshot(), 202)

    async def retrain_status(self, request: Request, session: Session) -> HTTPResponse:
        """GET /admin/api/retrain/status: the job's status for polling."""
        return api_json(self.job.snapshot())

    async def rollback(self, request: Request, session: Session) -> HTTPResponse:
        """GET (confirm) | POST /admin/rollback."""
        if request.method == "GET":
            body = (f'<p>确定要回滚到上一个模型吗？回滚后，机器人将使用上一次部署的模型回答问题。</p>'
                    f'<form method="post" action="/admin/rollback" class="adm-buttons">{csrf_field(session)}'
                    '<button type="submit" class="adm-button adm-danger-solid">确认回滚</button>'
                    '<a class="adm-button" href="/admin/retrain">取消</a></form>')
            return page(layout("回滚模型", body, session, "/admin/retrain"))
        if self.job.running() or not self.rollback_lock.acquire(blocking=False):
            return page(layout("回滚模型", '<p><a class="adm-button" href="/admin/retrain">返回</a></p>', session,
                               "/admin/retrain", error="正在重新训练或回滚，请稍后再试。"), 409)
        try:
            model = await asyncio.to_thread(self._rollback)
        except Exception as err:
            logger.exception("admin: rollback failed")
            await self.audit_async(session.user, "rollback", f"回滚失败：{err}")
            return page(layout("回滚模型", '<p><a class="adm-button" href="/admin/retrain">返回</a></p>', session,
                               "/admin/retrain", error=f"回滚失败：{err}"), 500)
        finally:
            self.rollback_lock.release()
        await self.audit_async(session.user, "rollback", f"回滚到模型 {model}")
        body = '<p><a class="adm-button" href="/admin/retrain">返回重新训练页面</a></p>'
        return page(layout("回滚模型", body, session, "/admin/retrain", flash=f"已回滚到模型 {model}。"))

    async def not_found(self, request: Request, session: Session, rest: str = "") -> HTTPResponse:
        """Any other /admin path (after the session check)."""
        if request.path.startswith("/admin/api/"):
            return api_error(404, "接口不存在")
        return page(layout("页面不存在", '<p><a class="adm-button" href="/admin/faq">返回管理后台</a></p>',
                           session, error="您访问的页面不存在。"), 404)

    # ------------------------------------------------------------ assets

    @staticmethod
    def asset_response(name: str) -> HTTPResponse:
        """admin.js / admin.css (read once per request; tiny)."""
        content_type = ASSETS.get(name)
        if content_type is None:
            return api_error(404, "文件不存在")
        return response.raw((STATIC / name).read_bytes(), content_type=content_type,
                            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


def keep_cors_off_admin(app: Sanic) -> None:
    """Make Rasa's CORS resources (sanic_cors, `--cors`) skip /admin, preflights included.

    sanic_cors answers an OPTIONS preflight in a request middleware that runs before any route,
    reflecting the Origin with credentials allowed; with no resource matching /admin, neither a
    preflight nor an answer there gets an Access-Control-* header.
    """
    context = getattr(app.ctx, "sanic_cors", None)
    if context is None:
        return
    from sanic_cors.core import get_regexp_pattern, probably_regex

    resources = []
    for pattern, options in context.resources:
        source = get_regexp_pattern(pattern)
        if not (isinstance(pattern, re.Pattern) or probably_regex(pattern)):
            source = re.escape(source) + "$"  # sanic_cors compares such a string literally
        resources.append((re.compile(rf"(?!{ADMIN_PREFIX}(?:/|$)){source}", re.IGNORECASE), options))
    context.resources = resources


def _same_origin_only(handler: Handler) -> Handler:
    """Keep Rasa's CORS headers off an admin answer.

    Rasa's --cors "*" makes sanic_cors reflect any Origin with credentials allowed;
    the admin page is same-origin only, so mark the request as already handled.
    """

    async def wrapped(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        setattr(request.ctx, CORS_EVALUATED, "1")
        return await handler(request, *args, **kwargs)

    wrapped.__name__ = handler.__name__
    return wrapped


def register_admin(app: Sanic, site: AdminSite | None = None, dashboard: Any = None) -> AdminSite:
    """Add the /admin routes to Rasa's Sanic app; returns the site (tests inspect its job).
    `dashboard`: the dashboard's views (default bot.web.dashboard_views.DashboardViews())."""
    from bot.web.dashboard_views import DashboardViews, dashboard_routes

    site = site or AdminSite()
    keep_cors_off_admin(app)
    g = site.guard

    async def asset(request: Request, name: str) -> HTTPResponse:
        return site.asset_response(name)

    async def login_route(request: Request) -> HTTPResponse:
        if request.method == "POST":
            return await site.login(request)
        return await site.login_page(request)

    routes: list[tuple[Handler, str, list[str]]] = [
        (asset, "/admin/static/<name:str>", ["GET"]),
        (login_route, "/admin/login", ["GET", "POST"]),
        (g(site.logout), "/admin/logout", ["POST"]),
        (g(site.index), "/admin", ["GET"]),
        (g(site.faq_list), "/admin/faq", ["GET"]),
        (g(site.faq_new), "/admin/faq/new", ["GET", "POST"]),
        (g(site.faq_edit), "/admin/faq/<fid:str>/edit", ["GET", "POST"]),
        (g(site.faq_delete), "/admin/faq/<fid:str>/delete", ["GET", "POST"]),
        (g(site.unanswered), "/admin/unanswered", ["GET"]),
        (g(site.unanswered_csv), "/admin/unanswered.csv", ["GET"]),
        (g(site.feedback), "/admin/feedback", ["GET"]),
        (g(site.audit_page), "/admin/audit", ["GET"]),
        (g(site.retrain_page), "/admin/retrain", ["GET", "POST"]),
        (g(site.retrain_start, api=True), "/admin/api/retrain", ["POST"]),
        (g(site.retrain_status, api=True), "/admin/api/retrain/status", ["GET"]),
        (g(site.rollback), "/admin/rollback", ["GET", "POST"]),
        *dashboard_routes(dashboard or DashboardViews(), g),
        (g(site.not_found), "/admin/<rest:path>", ["GET", "POST"]),
    ]
    for handler, uri, methods in routes:
        handler = _same_origin_only(handler)
        name = "kepu_admin_" + uri.strip("/").replace("/", "_").replace("<", "").replace(">", "").replace(":", "_")
        name = name.replace(".", "_")
        app.add_route(handler, uri, methods=methods, name=name)

    @app.listener("before_server_start")
    async def kepu_admin_bootstrap(_app: Sanic, _loop: object) -> None:
        try:
            if await asyncio.to_thread(bootstrap_from_env, site.auth):
                logger.info("admin: created the first staff account from KEPU_ADMIN_USER")
        except Exception:
            logger.exception("admin: could not create the first staff account")

    return site


# ---------------------------------------------------------------- command line


def _ask_password() -> str:
    first = getpass.getpass("密码：")
    second = getpass.getpass("再次输入密码：")
    if first != second:
        raise AuthError("两次输入的密码不一致")
    return first


def main(argv: list[str] | None = None) -> int:
    """`python -m bot.web.admin create-user NAME | set-password NAME | unlock NAME_OR_IP | list-users`."""
    parser = argparse.ArgumentParser(prog="python -m bot.web.admin", description="科普日智能助手管理后台：工作人员账号")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="添加工作人员账号（提示输入密码）")
    create.add_argument("name")
    password = commands.add_parser("set-password", help="修改密码（并注销该用户的所有会话）")
    password.add_argument("name")
    unlock = commands.add_parser("unlock", help="解除某个用户名或 IP 地址的登录锁定")
    unlock.add_argument("key")
    commands.add_parser("list-users", help="列出所有工作人员账号")
    args = parser.parse_args(argv)
    auth = shared_auth()
    try:
        if args.command == "create-user":
            auth.create_user(args.name, _ask_password())
            AdminSite.audit("cli", "user.create", f"添加工作人员账号 {args.name}")
            print(f"已添加工作人员账号：{args.name}")
        elif args.command == "set-password":
            auth.set_password(args.name, _ask_password())
            AdminSite.audit("cli", "user.password", f"修改了 {args.name} 的密码")
            print(f"已修改 {args.name} 的密码，该用户需要重新登录。")
        elif args.command == "unlock":
            print(f"已解除锁定：{args.key}（清除了 {auth.unlock(args.key)} 条失败记录）")
        else:
            for name in auth.user_names():
                print(name)
    except AuthError as err:
        print(f"错误：{err}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print("\n已取消", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
