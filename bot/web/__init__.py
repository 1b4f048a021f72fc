"""The portal chat widget on Rasa's port: assets, demo page, session ids, hot
questions and answer feedback.

`register(app)` adds, next to Rasa's own routes:
- GET /                  the demo portal page with the widget (strict CSP);
- GET /widget/<file>     widget.js, widget.css, demo.css and the SVG icons;
- GET|POST /widget/session  {"session_id": uuid4} for a new conversation;
- GET /widget/hot        [{"label", "payload"}] hot questions, most asked first;
- POST /widget/feedback  {session_id, message, question, vote} -> one row in `feedback`.

Rasa already owns GET "/", so the demo page is answered by a request
middleware, the same way bot/server.py answers the public GET /status.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.web.feedback import parse_feedback, shared_store

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}

# The demo page allows nothing but its own origin: no inline script or style, no eval.
DEMO_CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

PAGE_HEADERS = {
    "Content-Security-Policy": DEMO_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

ASSET_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Portals load the widget from another origin; allow that even under COEP.
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Cache-Control": "public, max-age=300",
}

NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _load_assets() -> dict[str, tuple[bytes, str]]:
    """Every servable file under static/ (but the demo page) by its URL path below /widget/."""
    assets: dict[str, tuple[bytes, str]] = {}
    for path in sorted(STATIC.rglob("*")):
        content_type = CONTENT_TYPES.get(path.suffix)
        if not path.is_file() or content_type is None or path.name == "demo.html":
            continue
        assets[path.relative_to(STATIC).as_posix()] = (path.read_bytes(), content_type)
    return assets


def _error(status: int, message: str) -> HTTPResponse:
    return response.json({"error": message}, status=status, headers=NO_STORE)


def hot_questions() -> list[dict[str, str]]:
    """The hot questions (hot > 0) as widget buttons, most asked first."""
    from bot.knowledge.store import shared_repository

    questions = sorted((q for q in shared_repository().get().questions if q.hot > 0), key=lambda q: q.hot)
    return [{"label": q.label, "payload": q.payload()} for q in questions]


def register(app: Sanic, admin_site: Any = None) -> None:
    """Add the widget routes, the demo page and the admin page (`admin_site`, else a default one)."""
    assets = _load_assets()
    demo_page = (STATIC / "demo.html").read_bytes()

    @app.middleware("request")
    async def kepu_demo_page(request: Request) -> HTTPResponse | None:
        if request.path != "/" or request.method not in ("GET", "HEAD"):
            return None
        body = b"" if request.method == "HEAD" else demo_page
        return response.raw(body, content_type=CONTENT_TYPES[".html"], headers=PAGE_HEADERS)

    async def widget_asset(request: Request, name: str) -> HTTPResponse:
        asset = assets.get(name)
        if asset is None:
            return _error(404, "文件不存在")
        body, content_type = asset
        return response.raw(body, content_type=content_type, headers=ASSET_HEADERS)

    async def widget_session(request: Request) -> HTTPResponse:
        return response.json({"session_id": str(uuid.uuid4())}, headers=NO_STORE)

    async def widget_hot(request: Request) -> HTTPResponse:
        try:
            items = await asyncio.to_thread(hot_questions)
        except Exception:  # the widget still works without hot questions
            logger.exception("widget: hot questions unavailable")
            return _error(503, "热点问题暂时不可用")
        return response.json(items, headers={**NO_STORE, "Cache-Control": "public, max-age=60"})

    async def widget_feedback(request: Request) -> HTTPResponse:
        entry, error = parse_feedback(request.body or b"")  # never raises: a bad body is a 400
        if entry is None:
            return _error(413 if "过大" in error else 400, error)
        try:
            row_id = await asyncio.to_thread(shared_store().add, entry)
        except Exception:  # never a 500: the vote is lost, the page is told so
            logger.exception("widget: failed to store feedback")
            return _error(503, "反馈暂时无法保存，请稍后再试")
        return response.json({"status": "ok", "id": row_id}, status=201, headers=NO_STORE)

    app.add_route(widget_session, "/widget/session", methods=["GET", "POST"], name="kepu_widget_session")
    app.add_route(widget_hot, "/widget/hot", methods=["GET"], name="kepu_widget_hot")
    app.add_route(widget_feedback, "/widget/feedback", methods=["POST"], name="kepu_widget_feedback")
    app.add_route(widget_asset, "/widget/<name:path>", methods=["GET"], name="kepu_widget_asset")

    from bot.web.admin import register_admin  # the staff admin page at /admin

    register_admin(app, admin_site)
