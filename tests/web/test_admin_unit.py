"""Admin page helpers without a server: the retrain job and rollback (with the scripted ones of
tests/web/fake_retrain.py handed in), the gate summary, audit details, times and the origin check."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from types import SimpleNamespace

import pytest

from bot.web import admin
from bot.web.proxies import client_address, forwarded_https, parse_networks
from tests.web.fake_retrain import STEPS, ScriptedRetrain


def run_job(retrain: ScriptedRetrain, full: bool = False) -> tuple[dict, list[tuple[str, str, str]]]:
    job = admin.RetrainJob(retrain)
    audited: list[tuple[str, str, str]] = []
    assert job.start("zhangsan", full, lambda *row: audited.append(row))
    assert not job.start("lisi", False, lambda *row: audited.append(row))  # one at a time
    job.join(10)
    return job.snapshot(), audited


def test_a_deployed_retrain_reports_every_step_and_the_verdict() -> None:
    retrain = ScriptedRetrain("deploy")
    status, audited = run_job(retrain, full=True)
    assert retrain.calls == [True]  # the job ran the retrain it was given, with the page's choice
    assert status["state"] == "done" and status["progress"] == 1.0 and status["full"]
    assert [s["label"] for s in status["steps"]] == [label for label, _ in STEPS] + ["完成"]
    assert [s["progress"] for s in status["steps"]] == [fraction for _, fraction in STEPS] + [1.0]
    result = status["result"]
    assert result["deployed"] and ["质量门", "通过"] in result["gate_rows"]
    assert ["候选模型准确率", "97.0%"] in result["gate_rows"] and ["线上模型准确率", "95.0%"] in result["gate_rows"]
    assert [a[:2] for a in audited] == [("zhangsan", "retrain.start"), ("zhangsan", "retrain.done")]
    assert audited[0][2] == "开始重新训练（完整训练）"
    assert audited[1][2].startswith(f"重新训练完成，已部署新模型 {result['model']}")
    html = admin.AdminSite()._verdict_html(status)
    assert f'<p class="adm-verdict adm-ok">已部署新模型：{result["model"]}</p>' in html
    assert "<dt>质量门</dt><dd>通过</dd>" in html and f"原因：{result['reason']}" in html


def test_a_retrain_rejected_by_the_gate_keeps_the_old_model() -> None:
    status, audited = run_job(ScriptedRetrain("reject"))
    assert status["state"] == "done" and not status["result"]["deployed"]
    assert ["质量门", "未通过"] in status["result"]["gate_rows"]
    assert audited[-1][2].startswith(f"重新训练完成，未部署新模型：{status['result']['reason']}")
    html = admin.AdminSite()._verdict_html(status)
    assert '<p class="adm-verdict adm-bad">未部署新模型，继续使用原模型。</p>' in html
    assert "<dt>质量门</dt><dd>未通过</dd>" in html


def test_failed_retrain_is_reported_not_raised() -> None:
    status, audited = run_job(ScriptedRetrain("fail"))
    assert status["state"] == "failed" and status["error"] == "重新训练失败：（测试）训练过程出错"
    assert [s["label"] for s in status["steps"]] == [label for label, _ in STEPS[:3]]  # stopped at the error
    assert audited[-1][1:] == ("retrain.failed", "重新训练失败：（测试）训练过程出错")
    assert admin.AdminSite()._verdict_html(status) == \
        '<p class="adm-verdict adm-bad">重新训练失败：（测试）训练过程出错</p>'


def test_the_site_runs_the_retrain_and_rollback_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    rollbacks: list[str] = []

    def rollback() -> str:
        rollbacks.append("called")
        return "models/given-previous.tar.gz"

    retrain = ScriptedRetrain("deploy")
    site = admin.AdminSite(retrain=retrain, rollback=rollback)
    audited: list[tuple[str, str, str]] = []
    monkeypatch.setattr(admin.AdminSite, "audit", staticmethod(lambda *row: audited.append(row)))
    assert site.job.start("zhangsan", False, site.audit)
    site.job.join(10)
    assert retrain.calls == [False] and site.job.snapshot()["result"]["deployed"]
    session = admin.Session(user="zhangsan", csrf="c", expires_at=0.0)
    request = SimpleNamespace(method="POST")
    answer = asyncio.run(site.rollback(request, session))  # type: ignore[arg-type]
    assert rollbacks == ["called"] and answer.status == 200
    assert "已回滚到模型 models/given-previous.tar.gz。" in answer.body.decode()
    assert ("zhangsan", "rollback", "回滚到模型 models/given-previous.tar.gz") in audited


def test_gate_rows_of_the_real_gate_shape() -> None:
    gate = {"candidate": {"accuracy": 0.9}, "live": None, "candidate_accuracy": 0.9123, "live_accuracy": None,
            "checks": [{"question": "新问题一", "ok": True}, {"question": "新问题二", "ok": False}],
            "passed": False}
    rows = admin.gate_rows(gate)
    assert rows == [["质量门", "未通过"], ["候选模型准确率", "91.2%"], ["线上模型准确率", "无（没有线上模型可比）"],
                    ["新问题检查", "共 2 项，未通过 1 项：“新问题二”"]]


def test_audit_details_read_like_sentences() -> None:
    add = json.dumps({"id": "parking", "entry": {"questions": ["能停车吗", "b", "c"]}}, ensure_ascii=False)
    assert admin._audit_detail(add) == "编号 parking；问法“能停车吗”等"
    update = json.dumps({"id": "parking", "before": {"answer": "a", "questions": ["q"]},
                         "after": {"answer": "b", "questions": ["q"]}}, ensure_ascii=False)
    assert admin._audit_detail(update).endswith("修改了答案")
    rollback = json.dumps({"from": "models/b.tar.gz", "to": "models/a.tar.gz", "servers": []})
    assert admin._audit_detail(rollback) == "从 models/b.tar.gz 回滚到 models/a.tar.gz"
    assert admin._audit_detail("登录成功") == "登录成功"


def test_times_are_shown_in_china_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEPU_TIMEZONE", raising=False)
    assert admin._fmt_time(dt.datetime(2021, 9, 17, 6, 30)) == "2021-09-17 14:30"  # naive = UTC
    assert admin._fmt_time("2021-09-17T06:30:00+00:00") == "2021-09-17 14:30"
    assert admin._fmt_time("2021-09-17") == "2021-09-17"
    assert admin._fmt_time(dt.date(2030, 12, 31)) == "2030-12-31"
    assert admin._fmt_time(None) == ""


@pytest.mark.parametrize(("headers", "ok"), [
    ({"host": "gov.example:5005", "origin": "http://gov.example:5005"}, True),
    ({"host": "gov.example:5005", "origin": "https://evil.example"}, False),
    ({"host": "gov.example:5005", "origin": "null", "referer": "http://gov.example:5005/admin/faq"}, True),
    ({"host": "gov.example:5005", "referer": "http://gov.example.evil.example/"}, False),
    ({"host": "gov.example:5005"}, False),
])
def test_origin_check(headers: dict[str, str], ok: bool) -> None:
    assert admin._origin_ok(SimpleNamespace(headers=headers)) is ok  # type: ignore[arg-type]


def test_safe_next_stays_on_the_admin_page() -> None:
    assert admin._safe_next("/admin/audit") == "/admin/audit"
    for target in ("https://evil.example/", "//evil.example/admin", "/admin\\\\evil", None, "/widget/x"):
        assert admin._safe_next(target) == "/admin/dashboard"  # the first page


TRUSTED = parse_networks("127.0.0.1, 10.0.0.0/8, ::1")


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("203.0.113.5", ["198.51.100.7"], "203.0.113.5"),  # not a proxy: the header is ignored
    ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
    ("127.0.0.1", ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),  # the client's own entry on the left
    ("127.0.0.1", ["198.51.100.7, 10.0.0.5"], "198.51.100.7"),  # two proxy hops
    ("127.0.0.1", ["198.51.100.7", "10.0.0.5"], "198.51.100.7"),  # the header twice
    ("127.0.0.1", ["garbage, 10.0.0.5"], "10.0.0.5"),
    ("127.0.0.1", [], "127.0.0.1"),
    ("::1", ["2001:db8::7"], "2001:db8::7"),
])
def test_client_address_trusts_forwarded_for_only_from_proxies(peer: str, forwarded: list[str], client: str) -> None:
    assert client_address(peer, forwarded, TRUSTED) == client


def test_invalid_trusted_proxy_entries_are_left_out() -> None:
    assert [str(n) for n in parse_networks("127.0.0.1, nonsense, 10.0.0.0/8")] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert forwarded_https("127.0.0.1", "https", TRUSTED) and not forwarded_https("203.0.113.5", "https", TRUSTED)
