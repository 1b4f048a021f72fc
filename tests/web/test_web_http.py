"""The widget's HTTP routes on the running bot: assets, demo page, session
ids, hot questions and feedback validation (400, 413, never 500)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest
from sqlalchemy import select

from bot.knowledge.store import database_url, make_engine, read_database
from bot.web.feedback import feedback_table

pytestmark = pytest.mark.e2e


def fetch(url: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def post_json(url: str, payload: object) -> tuple[int, object]:
    status, _, body = fetch(url, "POST", json.dumps(payload).encode("utf-8"), {"Content-Type": "application/json"})
    return status, json.loads(body.decode("utf-8") or "null")


def test_demo_page_replaces_rasa_hello(web_url: str) -> None:
    status, headers, body = fetch(web_url + "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode("utf-8")
    assert "中卫市沙坡头区人民政府" in page and '<script src="/widget/widget.js" defer></script>' in page
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    status, headers, body = fetch(web_url + "/", "HEAD")
    assert status == 200 and body == b""


def test_rasa_routes_are_untouched(web_url: str) -> None:
    status, _, body = fetch(web_url + "/status")
    assert status == 200 and json.loads(body)["status"] == "ready"
    status, _, _ = fetch(web_url + "/conversations/x/tracker")
    assert status == 401


@pytest.mark.parametrize(("path", "content_type"), [
    ("/widget/widget.js", "text/javascript"),
    ("/widget/widget.css", "text/css"),
    ("/widget/demo.css", "text/css"),
    ("/widget/icons/robot.svg", "image/svg+xml"),
    ("/widget/icons/chat.svg", "image/svg+xml"),
])
def test_assets_are_served_by_the_bot(web_url: str, path: str, content_type: str) -> None:
    status, headers, body = fetch(web_url + path)
    assert status == 200 and body
    assert headers["content-type"].startswith(content_type)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cross-origin-resource-policy"] == "cross-origin"


@pytest.mark.parametrize("path", [
    "/widget/missing.js", "/widget/demo.html", "/widget/%2e%2e/__init__.py", "/widget/..%2f__init__.py",
    "/widget/icons/../../__init__.py", "/widget/feedback.py",
])
def test_unknown_assets_are_404(web_url: str, path: str) -> None:
    status, _, body = fetch(web_url + path)
    assert status == 404
    assert b"import" not in body


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_session_ids_are_fresh_uuid4(web_url: str, method: str) -> None:
    ids = set()
    for _ in range(3):
        status, headers, body = fetch(web_url + "/widget/session", method, b"" if method == "POST" else None)
        assert status == 200 and headers["cache-control"] == "no-store"
        value = json.loads(body)["session_id"]
        assert uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value
        ids.add(value)
    assert len(ids) == 3


def test_hot_questions_in_order(web_url: str) -> None:
    status, _, body = fetch(web_url + "/widget/hot")
    assert status == 200
    items = json.loads(body)
    engine = make_engine(database_url())
    try:
        kb = read_database(engine)  # what the server reads, not knowledge/ files being edited
    finally:
        engine.dispose()
    expected = sorted((q for q in kb.questions if q.hot > 0), key=lambda q: q.hot)
    assert items == [{"label": q.label, "payload": q.payload()} for q in expected]
    assert items[0]["label"] == "活动登记填报截止到什么时候？"


def test_feedback_is_stored(web_url: str) -> None:
    session = str(uuid.uuid4())
    status, body = post_json(web_url + "/widget/feedback", {
        "session_id": session, "message": "截止日期是2021年9月24日。", "question": "截止日期", "vote": "down",
    })
    assert status == 201 and body["status"] == "ok"
    engine = make_engine(database_url())
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(feedback_table).where(feedback_table.c.session_id == session)).all()
    finally:
        engine.dispose()
    assert [(r.vote, r.question, r.answer) for r in rows] == [("down", "截止日期", "截止日期是2021年9月24日。")]
    assert rows[0].created_at is not None


GOOD = {"session_id": "7d7c1f0e-4a34-4b8f-9f2a-3c1a2b3c4d5e", "message": "回答", "question": "问题", "vote": "up"}


@pytest.mark.parametrize("body", [
    b"", b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"null",
    json.dumps({**GOOD, "session_id": "abc"}).encode(),
    json.dumps({**GOOD, "session_id": 12}).encode(),
    json.dumps({k: v for k, v in GOOD.items() if k != "session_id"}).encode(),
    json.dumps({**GOOD, "vote": "maybe"}).encode(),
    json.dumps({**GOOD, "vote": None}).encode(),
    json.dumps({**GOOD, "message": ""}).encode(),
    json.dumps({**GOOD, "message": ["x"]}).encode(),
    json.dumps({**GOOD, "message": "长" * 4001}).encode(),
    json.dumps({**GOOD, "question": {"a": 1}}).encode(),
    json.dumps({**GOOD, "question": "问" * 1001}).encode(),
], ids=lambda body: body[:40].decode("utf-8", "replace"))
def test_bad_feedback_is_400(web_url: str, body: bytes) -> None:
    status, _, raw = fetch(web_url + "/widget/feedback", "POST", body, {"Content-Type": "application/json"})
    assert status == 400, raw
    assert json.loads(raw)["error"]


def test_oversized_feedback_is_413(web_url: str) -> None:
    body = json.dumps({**GOOD, "message": "a" * 70_000}).encode()
    status, _, raw = fetch(web_url + "/widget/feedback", "POST", body, {"Content-Type": "application/json"})
    assert status == 413 and json.loads(raw)["error"]


def test_feedback_only_accepts_post(web_url: str) -> None:
    status, _, _ = fetch(web_url + "/widget/feedback")
    assert status == 405
