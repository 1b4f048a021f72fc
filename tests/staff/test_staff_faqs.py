"""bot.staff.faqs: changes validate the whole knowledge set, are atomic and audited."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.knowledge.loader import KnowledgeError, load_knowledge
from bot.staff import audit, faqs

QUESTIONS = ["小朋友能参加科普日吗", "孩子可以去科普日活动吗", "科普日适合带小孩去吗"]


def test_list_add_update_remove(staff_env):
    assert [f.id for f in faqs.list_faqs()] == ["purpose", "validity", "public"]
    faq = faqs.add_faq("kids", QUESTIONS, "可以，科普日面向社会公众。", source="测试", valid_until="2030-01-01")
    assert faq.id == "kids" and faq.valid_until == dt.date(2030, 1, 1)
    assert [f.id for f in faqs.list_faqs()][-1] == "kids"

    faq = faqs.update_faq("kids", answer="可以。", valid_until="")
    assert faq.answer == "可以。" and faq.valid_until is None and faq.source == "测试"
    faq = faqs.update_faq("kids", questions=[*QUESTIONS, "能带孩子去吗"], source="")
    assert len(faq.questions) == 4 and faq.source == ""

    faqs.remove_faq("kids")
    assert "kids" not in {f.id for f in faqs.list_faqs()}
    kb = load_knowledge(staff_env)  # the whole set is still valid
    assert len(kb.faqs) == 3


def test_the_file_keeps_its_header_and_stays_loadable(staff_env):
    header = (staff_env / "faq.yml").read_text(encoding="utf-8").splitlines()[0]
    faqs.add_faq("kids", QUESTIONS, "可以。")
    text = (staff_env / "faq.yml").read_text(encoding="utf-8")
    assert text.splitlines()[0] == header and "- 小朋友能参加科普日吗" in text


def test_remove_then_add_restores_the_file_byte_for_byte(staff_env):
    before = (staff_env / "faq.yml").read_bytes()
    faqs.add_faq("kids", QUESTIONS, "可以。")
    faqs.remove_faq("kids")
    assert (staff_env / "faq.yml").read_bytes() == before


@pytest.mark.parametrize("change", [
    pytest.param(lambda: faqs.add_faq("kids", QUESTIONS[:2], "可以。"), id="add-two-questions"),
    pytest.param(lambda: faqs.add_faq("kids", QUESTIONS, ""), id="add-empty-answer"),
    pytest.param(lambda: faqs.add_faq("purpose", QUESTIONS, "可以。"), id="add-existing-id"),
    pytest.param(lambda: faqs.add_faq("kids", [*QUESTIONS, "截止日期是什么时候"], "可以。"), id="add-nlu-clash"),
    pytest.param(lambda: faqs.add_faq("kids", [*QUESTIONS[:2], "这个通知现在还有效吗"], "可以。"),
                 id="add-clash-with-other-faq"),
    pytest.param(lambda: faqs.add_faq("kids", QUESTIONS, "可以。", valid_until="2030-02-30"), id="add-bad-date"),
    pytest.param(lambda: faqs.update_faq("purpose", answer=""), id="update-empty-answer"),
    pytest.param(lambda: faqs.update_faq("purpose", questions=["一个问题"]), id="update-one-question"),
    pytest.param(lambda: faqs.update_faq("nope", answer="x"), id="update-missing-id"),
    pytest.param(lambda: faqs.remove_faq("nope"), id="remove-missing-id"),
])
def test_a_failing_change_leaves_faq_yml_byte_identical(staff_env, change):
    before = (staff_env / "faq.yml").read_bytes()
    with pytest.raises(KnowledgeError):
        change()
    assert (staff_env / "faq.yml").read_bytes() == before
    assert audit.list_audit() == []
    assert not list(staff_env.glob(".*.tmp"))


def test_a_broken_other_knowledge_file_blocks_the_change(staff_env):
    """The whole knowledge set is validated, not only faq.yml."""
    (staff_env / "contacts.yml").write_text("facts: [{id: x}]\n", encoding="utf-8")
    before = (staff_env / "faq.yml").read_bytes()
    with pytest.raises(KnowledgeError, match="contacts.yml"):
        faqs.add_faq("kids", QUESTIONS, "可以。")
    assert (staff_env / "faq.yml").read_bytes() == before


def test_every_change_is_audited(staff_env):
    faqs.add_faq("kids", QUESTIONS, "可以。", actor="alice")
    faqs.update_faq("kids", answer="可以带。", actor="bob")
    faqs.remove_faq("kids", actor="carol")
    rows = audit.list_audit(10)
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("carol", "faq.remove"), ("bob", "faq.update"), ("alice", "faq.add")]
    assert json.loads(rows[1]["detail"])["after"]["answer"] == "可以带。"
    assert json.loads(rows[2]["detail"])["entry"]["questions"] == QUESTIONS
    assert all(r["at"].tzinfo is not None for r in rows)
    assert len(audit.list_audit(1)) == 1


def test_audit_table_lives_beside_the_knowledge_tables(staff_env, kb):
    """Rebuilding the knowledge base never drops the audit log."""
    import os

    from bot.knowledge.store import build_database

    audit.record("alice", "test", {"n": 1})
    build_database(kb, os.environ["KEPU_DB_URL"])
    assert audit.list_audit()[0]["action"] == "test"


# -- the check against the live model ----------------------------------------

class _FakeRasa(BaseHTTPRequestHandler):
    """/status and /model/parse of a Rasa server that reads every question as `parsed`."""

    parsed: dict = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self._json({"status": "ready"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        text = json.loads(self.rfile.read(length))["text"]
        self._json(self.parsed.get(text, {"intent": {"name": "nlu_fallback", "confidence": 0.3}}))

    def _json(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def fake_rasa() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRasa)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_live_check_names_the_intent_that_answers_today(staff_env, fake_rasa):
    _FakeRasa.parsed = {
        "截止时间是哪天": {"intent": {"name": "ask_deadline", "confidence": 0.95}},
        "差不多吧": {"intent": {"name": "ask_deadline", "confidence": 0.5}},
        "通知还有效吗": {"intent": {"name": "faq", "confidence": 0.9}, "response_selector": {"faq": {
            "response": {"intent_response_key": "faq/validity", "confidence": 0.97}}}},
    }
    warnings, note = faqs.check_against_live(["截止时间是哪天", "差不多吧", "通知还有效吗"], "kids", url=fake_rasa)
    assert note == ""
    assert len(warnings) == 2
    assert "这个问题目前会被回答为 ask_deadline「" in warnings[0]  # with the readable question label
    assert "常见问题 validity" in warnings[1]
    # The FAQ's own questions answered by itself are fine.
    assert faqs.check_against_live(["通知还有效吗"], "validity", url=fake_rasa) == ([], "")


def test_live_check_is_skipped_with_a_note_without_a_server(staff_env):
    warnings, note = faqs.check_against_live(QUESTIONS, "kids", url="http://127.0.0.1:9")
    assert warnings == [] and "跳过" in note
