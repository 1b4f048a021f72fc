"""The widget without a server or a browser: feedback validation and storage,
route registration, and static checks of the assets (strict-CSP friendly,
no third-party URL, text never parsed as HTML)."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sanic import Sanic
from sqlalchemy import inspect

from bot.knowledge.store import build_database, make_engine
from bot.web import STATIC, register
from bot.web.feedback import MAX_ANSWER_CHARS, Feedback, FeedbackStore, parse_feedback

SID = str(uuid.uuid4())
GOOD = {"session_id": SID, "message": "截止日期是2021年9月24日。", "question": "截止日期", "vote": "up"}


def body(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------- feedback


def test_parse_feedback_accepts_a_vote() -> None:
    entry, error = parse_feedback(body(GOOD))
    assert error == "" and entry == Feedback(SID, "截止日期", "截止日期是2021年9月24日。", "up")
    entry, _ = parse_feedback(body({**GOOD, "vote": "down", "question": None, "session_id": SID.upper()}))
    assert entry is not None and entry.vote == "down" and entry.question == "" and entry.session_id == SID


@pytest.mark.parametrize(("payload", "message"), [
    (b"{", "JSON"),
    (b"\xff", "UTF-8"),
    ([GOOD], "JSON 对象"),
    ({**GOOD, "session_id": "not-a-uuid"}, "session_id"),
    ({**GOOD, "session_id": SID.replace("-", "")}, "session_id"),
    ({**GOOD, "vote": "UP"}, "vote"),
    ({**GOOD, "message": "   "}, "message"),
    ({**GOOD, "message": "长" * (MAX_ANSWER_CHARS + 1)}, "过长"),
    ({**GOOD, "question": 3}, "question"),
    ({**GOOD, "question": "问" * 1001}, "过长"),
], ids=["broken", "not-utf8", "array", "session", "session-hex", "vote", "blank", "long-answer",
        "question-type", "long-question"])
def test_parse_feedback_rejects_bad_input(payload: object, message: str) -> None:
    raw = payload if isinstance(payload, bytes) else body(payload)
    entry, error = parse_feedback(raw)
    assert entry is None and message in error


def test_parse_feedback_limits_the_body() -> None:
    entry, error = parse_feedback(b" " * (64 * 1024 + 1))
    assert entry is None and "过大" in error


def test_store_creates_the_table_and_survives_knowledge_rebuilds(tmp_path: Path, kb) -> None:
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    build_database(kb, url)
    engine = make_engine(url)
    try:
        store = FeedbackStore(engine)
        with engine.connect() as conn:
            assert not inspect(conn).has_table("feedback")
        first = store.add(Feedback(SID, "截止日期", "2021年9月24日", "up"))
        second = store.add(Feedback(SID, "在哪里", "第十一小学", "down"))
        assert second == first + 1
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("feedback")}
        assert columns == {"id", "created_at", "session_id", "question", "answer", "vote"}
        build_database(kb, url)  # the knowledge tables are rebuilt; feedback is not theirs
        rows = FeedbackStore(engine).recent()
        assert [(r["question"], r["vote"]) for r in rows] == [("在哪里", "down"), ("截止日期", "up")]
        assert rows[0]["created_at"] is not None
        assert store.counts() == {"up": 1, "down": 1}
    finally:
        engine.dispose()


# ---------------------------------------------------------------- routes


def test_register_adds_the_widget_routes() -> None:
    app = Sanic(f"kepu_web_test_{uuid.uuid4().hex[:8]}")
    register(app)
    routes = {(r.path, tuple(sorted(r.methods))) for r in app.router.routes}
    assert ("widget/session", ("GET", "POST")) in routes
    assert ("widget/hot", ("GET",)) in routes
    assert ("widget/feedback", ("POST",)) in routes
    assert ("widget/<name:path>", ("GET",)) in routes
    assert len(app.request_middleware) == 1  # GET / (the demo page) is a middleware


# ---------------------------------------------------------------- assets

WIDGET_JS = (STATIC / "widget.js").read_text(encoding="utf-8")
WIDGET_CSS = (STATIC / "widget.css").read_text(encoding="utf-8")
DEMO_HTML = (STATIC / "demo.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("pattern", [
    r"\.innerHTML", r"\.outerHTML", r"insertAdjacentHTML", r"document\.write", r"\beval\(",
    r"new Function", r"setTimeout\(\s*['\"]", r"setAttribute\(\s*['\"]style", r"javascript:",
])
def test_widget_never_parses_text_as_html_or_code(pattern: str) -> None:
    assert not re.search(pattern, WIDGET_JS), pattern


def test_no_third_party_urls_in_assets() -> None:
    for path in STATIC.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        for host in re.findall(r"https?://([^/\s\"')]+)", text):
            assert host in {"www.w3.org", "HOST:5005"}, f"{path.name}: {host}"
    assert "@import" not in WIDGET_CSS and "url(" not in WIDGET_CSS


def test_link_allow_list() -> None:
    hosts = json.loads(re.search(r"var LINK_HOSTS = (\[[^\]]*\]);", WIDGET_JS).group(1))
    assert hosts == ["kepuri.cn", "www.kepuri.cn", "www.zwsptq.gov.cn", "mtw.so"]
    assert 'rel: "noopener noreferrer"' in WIDGET_JS and 'target: "_blank"' in WIDGET_JS


def test_user_facing_strings_are_chinese() -> None:
    strings = re.search(r"var T = \{(.*?)\n  \};", WIDGET_JS, re.S).group(1)
    values = re.findall(r':\s*"([^"]*)"', strings)
    assert len(values) > 20
    assert all(re.search(r"[\u4e00-\u9fff]", v) for v in values), values


class _PageAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            if not values.get("src"):
                self.problems.append("inline <script>")
            else:
                self.scripts.append(values["src"] or "")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"{tag} {name}=")
            if name in ("src", "href") and value:
                self.refs.append(value)


def test_demo_page_has_no_inline_code_and_only_local_references() -> None:
    audit = _PageAudit()
    audit.feed(DEMO_HTML)
    assert audit.problems == []
    assert audit.scripts == ["/widget/widget.js"]
    assert all(ref.startswith("/") or ref.startswith("#") for ref in audit.refs), audit.refs
    assert "中卫市沙坡头区人民政府" in DEMO_HTML
    assert "关于举办2021年中卫沙坡头区全国科普日活动的通知" in DEMO_HTML


def test_referenced_icons_exist_and_are_plain_svg() -> None:
    names = set(re.findall(r'icon\("([\w-]+)"', WIDGET_JS))
    assert names >= {"chat", "close", "send", "robot", "thumb-up", "thumb-down"}
    for name in names:
        path = STATIC / "icons" / f"{name}.svg"
        root = ET.parse(path).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        text = path.read_text(encoding="utf-8")
        assert "<script" not in text and "href" not in text


def test_phone_and_elder_styles() -> None:
    assert "@media (max-width: 599.98px)" in WIDGET_CSS and "100dvh" in WIDGET_CSS
    phone = WIDGET_CSS[WIDGET_CSS.index("@media (max-width: 599.98px)"):]
    assert "min-height: 44px" in phone
    assert ".kepu-elder {" in WIDGET_CSS and "font-size: 22px" in WIDGET_CSS
    assert ":focus-visible" in WIDGET_CSS
    assert "visualViewport" in WIDGET_JS


def test_widget_js_is_valid_javascript(node: str) -> None:
    result = subprocess.run([node, "--check", str(STATIC / "widget.js")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
