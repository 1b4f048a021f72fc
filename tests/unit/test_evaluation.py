"""bot.evaluation without a trained model: reading both suite formats, judging a
turn (kind, must, must_not, recited key facts), the figures of a run, a run
against a fake REST server, and the exact McNemar test of the retraining gate."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from bot import evaluation as ev

ROOT = Path(__file__).resolve().parents[2]
PHONE = "0955-8812005"


def turn(expect: str = "answer", must: tuple = (), must_not: tuple = ()) -> ev.Turn:
    return ev.Turn("问题", expect, must, must_not)


@pytest.fixture(scope="module")
def key_facts() -> tuple[str, ...]:
    return ev.key_facts_of(ROOT / "knowledge")


# -- reading the suites ----------------------------------------------------------

def test_dev_files_get_their_expectations_from_the_conversation_kind() -> None:
    dev = ev.load_set("dev")
    assert sum(len(c.turns) for c in dev) >= 300
    # The files of the old suite (no per-turn `expect`, except where a label was corrected).
    old = [c for c in dev if not c.file.startswith(("studied_", "holdout_"))]
    corrected = {("relative_year", "unstated"), ("followup", "unstated"), ("oos", "smalltalk")}
    expects = {(c.group, t.expect) for c in old for t in c.turns} - corrected
    assert expects == {("fact", "answer"), ("followup", "answer"), ("oos", "refusal"),
                       ("silent", "unstated"), ("smalltalk", "smalltalk")}
    assert any(c.is_followup and len(c.turns) > 1 for c in dev)


def test_the_gate_sample_is_fixed_stratified_and_keeps_whole_conversations() -> None:
    dev = ev.load_set("dev")
    total = sum(len(c.turns) for c in dev)
    subset = ev.sample(dev, 1000)
    turns = sum(len(c.turns) for c in subset)
    assert 900 <= turns <= 1200 < total
    assert [c.id for c in ev.sample(dev, 1000)] == [c.id for c in subset]  # the same on every run
    kept = {c.id: c for c in subset}
    assert all(kept[c.id] == c for c in dev if c.id in kept)  # whole conversations, not cut turns
    # Every (file, group) stratum of the suite is represented, follow-ups included.
    assert {(c.file, c.group) for c in subset} == {(c.file, c.group) for c in dev}
    assert ev.sample(dev, 0) == dev and ev.sample(dev, total) == dev


def test_holdout_format_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(textwrap.dedent("""\
        conversations:
          - id: hb-plain-001
            class: plain
            turns:
              - user: "报名最晚哪天"
                expect: answer
                must: ["9月24日", ["截止", "最晚"]]
                must_not: ["第十一小学"]
          - id: hb-detail-001
            class: detail
            turns:
              - user: "主场活动要门票吗"
                expect: clarification
        """), encoding="utf-8")
    (tmp_path / "README.md").write_text("not a suite", encoding="utf-8")
    plain, detail = ev.load_conversations(tmp_path)
    assert (plain.id, plain.group, plain.file) == ("hb-plain-001", "plain", "a.yml")
    assert plain.turns == (ev.Turn("报名最晚哪天", "answer", ("9月24日", ["截止", "最晚"]), ("第十一小学",)),)
    assert detail.turns[0].expect == "clarification"


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ({"conversations": [{"id": "x", "turns": [{"user": "你好", "expect": "greeting"}]}]}, "expect"),
        ({"conversations": [{"id": "x", "turns": [{"expect": "answer"}]}]}, "user"),
        ({"conversations": [{"turns": []}]}, "id"),
        ({"conversations": [{"id": "x", "turns": []}, {"id": "x", "turns": []}]}, "重复"),
    ],
)
def test_malformed_suites_are_reported(tmp_path: Path, doc: dict[str, Any], error: str) -> None:
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ev.SuiteError, match=error):
        ev.load_conversations(tmp_path)


# -- judging -------------------------------------------------------------------------

def test_a_refusal_that_recites_a_deadline_is_wrong(key_facts: tuple[str, ...]) -> None:
    reply = ev.Reply(200, f"抱歉，这个不在通知范围内。报名截止9月24日。请拨打{PHONE}。", ("refusal",))
    verdict = ev.judge(turn("refusal", must=("抱歉", PHONE)), reply, key_facts)
    assert not verdict.ok and verdict.recited == ("9月24日",)


def test_a_refusal_with_only_the_phone_is_right(key_facts: tuple[str, ...]) -> None:
    reply = ev.Reply(200, f"抱歉，这个问题不在这份通知的范围内，请拨打咨询电话{PHONE}。", ("refusal",))
    assert ev.judge(turn("refusal", must=("抱歉", PHONE)), reply, key_facts).ok


def test_an_answer_sent_as_a_refusal_is_not_a_contact_answer(key_facts: tuple[str, ...]) -> None:
    reply = ev.Reply(200, f"抱歉，这个问题我无法回答，请拨打{PHONE}。", ("refusal",))
    verdict = ev.judge(turn("answer", must=(PHONE,)), reply, key_facts)
    assert not verdict.ok and verdict.missing == () and verdict.kind == "refusal"
    assert ev.judge(turn("answer", must=(PHONE,)), dataclasses.replace(reply, kinds=("answer",)), key_facts).ok


def test_key_facts_are_only_checked_for_refusals(key_facts: tuple[str, ...]) -> None:
    reply = ev.Reply(200, "2021年9月24日前在www.kepuri.cn填报。", ("answer",))
    assert ev.judge(turn("answer", must=("9月24日",)), reply, key_facts).ok


@pytest.mark.parametrize(
    ("expect", "kinds", "ok"),
    [
        ("clarification", ("clarify",), True),
        ("clarification", ("answer",), False),
        ("unstated", ("unstated",), True),
        ("unstated", ("refusal",), False),
        ("smalltalk", ("smalltalk", "smalltalk"), True),
        ("answer", (), False),            # no kind sent at all
        ("answer", (None,), False),
        ("answer", ("answer", "refusal"), False),  # messages that disagree
    ],
)
def test_the_reply_kind_must_be_the_expected_one(expect: str, kinds: tuple, ok: bool) -> None:
    assert ev.judge(turn(expect), ev.Reply(200, "好的", kinds)).ok is ok


def test_must_items_are_alternatives_and_must_not_items_forbid() -> None:
    reply = ev.Reply(200, "代表大会在中卫市黄河金岸花园大酒店召开。", ("answer",))
    assert ev.judge(turn(must=(["酒店", "宾馆"], "代表大会")), reply).ok
    missing = ev.judge(turn(must=(["小学", "学校"],)), reply)
    assert missing.missing == (["小学", "学校"],) and not missing.ok
    forbidden = ev.judge(turn(must_not=("第十一小学", ["黄河金岸", "金岸"])), reply)
    assert forbidden.forbidden == ("黄河金岸", "金岸") and not forbidden.ok


def test_key_facts_come_from_the_knowledge_base(kb: Any, key_facts: tuple[str, ...]) -> None:
    for fact in ("9月24日", "10月10日", "10月22日", "9月17日", "9月13日", "第十一小学", "中卫市黄河金岸花园大酒店",
                 "沙坡头区教育局", "水利科普联合行动", "kepuri", "百年再出发，迈向高水平科技自立自强", "孙浩"):
        assert fact in key_facts, fact
    assert not [f for f in key_facts if PHONE in f or f in PHONE]
    # A changed deadline in the knowledge base changes what a refusal may not say.
    moved = dataclasses.replace(kb.facts["deadline.register"], date=dt.date(2021, 9, 30))
    changed = ev.refusal_key_facts(dataclasses.replace(kb, facts={**kb.facts, "deadline.register": moved}))
    assert "9月30日" in changed and "9月30日" not in key_facts


def test_the_bots_own_refusals_recite_no_key_fact(key_facts: tuple[str, ...]) -> None:
    replies = yaml.safe_load((ROOT / "knowledge" / "replies.yml").read_text(encoding="utf-8"))["replies"]
    reasons = [v for k, v in replies.items() if k.startswith("reason_")]
    assert reasons
    for reason in reasons:
        text = replies["refusal"].format(reason=reason, phone=PHONE)
        assert ev.judge(turn("refusal", must=("抱歉", PHONE)), ev.Reply(200, text, ("refusal",)), key_facts).ok, text


# -- the figures ------------------------------------------------------------------------

def played(conv_id: str, group: str, *outcomes: tuple[str, bool]) -> list[ev.TurnResult]:
    out = []
    for i, (expect, ok) in enumerate(outcomes):
        t = ev.Turn(f"{conv_id}-{i}", expect)
        kind = ev.REPLY_KIND[expect] if ok else "empty"
        reply = ev.Reply(200, "…", (kind,))
        out.append(ev.TurnResult(conv_id, group, i, t, reply, ev.judge(t, reply)))
    return out


def test_summary_figures_per_set_and_class() -> None:
    results = [
        played("a", "plain", ("answer", True)),
        played("b", "plain", ("answer", False)),
        played("c", "detail", ("unstated", True), ("clarification", True)),
        played("f1", "followup", ("answer", True), ("answer", True)),
        played("f2", "followup", ("answer", True), ("answer", False)),
        played("o", "oos", ("refusal", True)),
        played("s", "smalltalk", ("smalltalk", False)),
    ]
    s = ev.summarize(results, "holdout")
    assert (s["set"], s["conversations"], s["turns"]) == ("holdout", 7, 10)
    assert (s["answered"], s["answered_turns"]) == (6 / 8, 8)
    assert (s["oos_refused"], s["oos_turns"]) == (1.0, 1)
    assert (s["followup"], s["followup_conversations"]) == (0.5, 2)
    assert (s["smalltalk"], s["smalltalk_turns"]) == (0.0, 1)
    assert s["by_class"] == {"detail": "2/2", "followup": "3/4", "oos": "1/1", "plain": "1/2", "smalltalk": "0/1"}
    assert [(f["id"], f["turn"]) for f in s["failures"]] == [("b", 0), ("f2", 1), ("s", 0)]
    assert s["outcomes"]["f2#0"] is True and s["outcomes"]["f2#1"] is False and len(s["outcomes"]) == 10
    assert ev.targets_met(s) == {"answered": False, "oos_refused": True, "followup": False}


def test_a_set_without_turns_meets_no_target() -> None:
    s = ev.summarize([], "holdout")
    assert s["answered"] is None and s["turns"] == 0
    assert ev.targets_met(s) == {"answered": False, "oos_refused": False, "followup": False}
    assert "无数据" in "\n".join(ev.report_lines(s))


def test_report_is_labelled_with_the_set_and_says_whether_targets_are_met() -> None:
    s = ev.summarize([played("a", "plain", ("answer", True)), played("o", "oos", ("refusal", False))], "dev")
    text = "\n".join(ev.report_lines(s))
    assert text.startswith("== dev ==") and "FAIL o#0" in text
    assert "回答正确 answered: 100.0%" in text and "达标 met" in text and "未达标 MISSED" in text
    assert "FAIL" not in "\n".join(ev.report_lines(s, show_failures=False))


# -- a run against a fake REST server ------------------------------------------------------

@pytest.fixture()
async def fake_rest() -> AsyncIterator[str]:
    """/webhooks/rest/webhook answering like SafeRestInput with a kind; '坏' gets a 500."""

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        text = body["message"]
        if text == "坏":
            return web.json_response({"error": "boom"}, status=500)
        if text == "社保怎么交":
            return web.json_response([{"recipient_id": body["sender"], "kind": "refusal",
                                       "text": f"抱歉，这个问题不在通知范围内，请拨打{PHONE}。"}])
        sender = body["sender"]
        return web.json_response([{"recipient_id": sender, "text": "报名截止到2021年9月24日。", "kind": "answer"},
                                  {"recipient_id": sender, "text": "（依据：通知第五部分）", "kind": "answer"}])

    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", webhook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


async def test_run_suite_reads_kinds_and_records_http_errors(fake_rest: str, key_facts: tuple[str, ...]) -> None:
    conversations = [
        ev.Conversation("d", "plain", "x.yml", (ev.Turn("报名最晚哪天", "answer", ("9月24日", "依据")),)),
        ev.Conversation("o", "oos", "x.yml", (ev.Turn("社保怎么交", "refusal", ("抱歉",)),)),
        ev.Conversation("f", "followup", "x.yml", (ev.Turn("截止日期", "answer"), ev.Turn("坏", "answer"))),
    ]
    results = await ev.run_suite(fake_rest, conversations, key_facts)
    s = ev.summarize(results, "dev")
    assert results[0][0].reply.kind == "answer" and results[0][0].ok
    assert results[1][0].ok
    bad = results[2][1]
    assert bad.reply.status == 500 and not bad.ok and s["http_errors"] == 1
    assert (s["answered"], s["oos_refused"], s["followup"]) == (2 / 3, 1.0, 0.0)


# -- pairing two runs --------------------------------------------------------------------

def test_paired_counts_use_the_turns_both_runs_have() -> None:
    live = {"a#0": True, "a#1": True, "b#0": False, "c#0": True, "gone#0": True}
    cand = {"a#0": True, "a#1": False, "b#0": True, "c#0": False, "new#0": False}
    assert ev.paired_counts(live, cand) == (2, 1, 4)


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [(0, 0, 1.0), (5, 0, 1 / 32), (4, 0, 1 / 16), (6, 0, 1 / 64), (2, 1, 0.5), (0, 5, 1.0), (3, 3, 42 / 64)],
)
def test_mcnemar_exact_one_sided(b: int, c: int, p: float) -> None:
    assert ev.mcnemar_worse(b, c) == pytest.approx(p)


def test_mcnemar_matches_the_binomial_tail() -> None:
    for b in range(0, 15):
        for c in range(0, 15):
            n = b + c
            tail = sum(math.comb(n, k) * 0.5 ** n for k in range(b, n + 1)) if n else 1.0
            assert ev.mcnemar_worse(b, c) == pytest.approx(tail)
    assert ev.mcnemar_worse(10, 2) < 0.05 < ev.mcnemar_worse(7, 2)


def test_a_relative_year_turn_accepts_either_an_answer_or_unstated(tmp_path):
    (tmp_path / "s.yml").write_text(
        "conversations:\n- id: x\n  class: relative_year\n  turns:\n  - user: 今年科普日哪天\n"
        "    expect: answer\n    must: ['2021']\n", encoding="utf-8")
    turn = ev.load_conversations(tmp_path)[0].turns[0]
    said = "这份通知只安排了2021年的活动"
    assert ev.judge(turn, ev.Reply(200, said, ("unstated",))).ok
    assert ev.judge(turn, ev.Reply(200, said, ("answer",))).ok
    assert not ev.judge(turn, ev.Reply(200, said, ("refusal",))).ok
    assert not ev.judge(turn, ev.Reply(200, "没有安排", ("unstated",))).ok
