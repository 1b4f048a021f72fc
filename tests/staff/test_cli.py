"""The `bot` command (typer on click 8.5 through bot.typer_compat), without training."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.staff import audit, faqs, retrain

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_live_server(monkeypatch):
    monkeypatch.setenv("KEPU_LIVE_URLS", "http://127.0.0.1:9")


def test_help_is_bilingual():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "员工工具" in result.output and "staff tools" in result.output
    for command in ("faq", "retrain", "rollback", "report", "audit"):
        assert command in result.output
    add = runner.invoke(app, ["faq", "add", "--help"])
    assert "添加常见问题 / add an FAQ" in add.output and "--question" in add.output and "--valid-until" in add.output


def test_faq_add_interactively(staff_env):
    answers = "\n".join(["kids", "小朋友能参加科普日吗", "孩子可以去科普日活动吗", "", "科普日适合带小孩去吗", "",
                         "可以，科普日面向社会公众。", "测试", "2030-01-01", ""])
    result = runner.invoke(app, ["faq", "add"], input=answers)
    assert result.exit_code == 0, result.output
    assert "至少需要三个示例问题" in result.output and "已添加常见问题 kids" in result.output
    assert "跳过" in result.output  # no live server to check against
    faq = faqs.list_faqs()[-1]
    assert (faq.id, faq.source, str(faq.valid_until)) == ("kids", "测试", "2030-01-01")
    assert audit.list_audit(1)[0]["action"] == "faq.add"


def test_faq_add_with_flags_list_update_remove(staff_env):
    args = ["faq", "add", "--id", "kids", "--answer", "可以。"]
    for q in ("小朋友能参加科普日吗", "孩子可以去科普日活动吗", "科普日适合带小孩去吗"):
        args += ["-q", q]
    assert runner.invoke(app, args).exit_code == 0
    listed = runner.invoke(app, ["faq", "list"])
    assert "kids" in listed.output and "共 4 条" in listed.output
    updated = runner.invoke(app, ["faq", "update", "kids", "--answer", "可以带。"])
    assert updated.exit_code == 0 and faqs.list_faqs()[-1].answer == "可以带。"
    removed = runner.invoke(app, ["faq", "remove", "kids"])
    assert removed.exit_code == 0 and "kids" not in {f.id for f in faqs.list_faqs()}


def test_invalid_faq_is_refused_with_the_entry_named(staff_env):
    before = (staff_env / "faq.yml").read_bytes()
    args = ["faq", "add", "--id", "kids", "--answer", "可以。", "-q", "截止日期是什么时候", "-q", "问题二", "-q", "问题三"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "未添加" in result.output and "kids" in result.output
    assert "ask_deadline" in result.output
    assert (staff_env / "faq.yml").read_bytes() == before
    assert runner.invoke(app, ["faq", "remove", "nope"]).exit_code == 1


def test_retrain_prints_the_verdict(staff_env, monkeypatch):
    def fake(progress=None, full=False):
        progress("训练 / training", 0.5)
        return retrain.RetrainResult(
            deployed=False, model="models/kepu-old.tar.gz", reason="未通过质量门，线上模型未改动：……", seconds=12.5,
            gate={"candidate_accuracy": 0.95, "live_accuracy": 0.97, "passed": False,
                  "checks": [{"question": "问一", "ok": True, "reply": "答一"}]},
            steps=[("validate", 0.2), ("train:full", 10.0)])

    monkeypatch.setattr(retrain, "retrain", fake)
    result = runner.invoke(app, ["retrain"])
    assert result.exit_code == 1
    assert "未上线 / not deployed" in result.output and "候选 candidate 95.0%" in result.output
    assert "线上 live 97.0%" in result.output and "train:full 10.0s" in result.output and "✓ “问一”" in result.output

    monkeypatch.setattr(retrain, "retrain", lambda progress=None, full=False: retrain.RetrainResult(
        False, "m", "训练数据没有变化", 1.0, {"unchanged": True}, []))
    assert runner.invoke(app, ["retrain", "--full"]).exit_code == 0


def test_rollback_command(staff_env, monkeypatch):
    monkeypatch.setattr(retrain, "rollback", lambda: "models/kepu-prev.tar.gz")
    result = runner.invoke(app, ["rollback"])
    assert result.exit_code == 0 and "models/kepu-prev.tar.gz" in result.output

    def nothing() -> str:
        raise RuntimeError("没有可回滚的上一个模型")

    monkeypatch.setattr(retrain, "rollback", nothing)
    result = runner.invoke(app, ["rollback"])
    assert result.exit_code == 1 and "没有可回滚" in result.output


def test_reports(staff_env, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_URL", f"sqlite:///{tmp_path / 'none.db'}")
    result = runner.invoke(app, ["report", "unanswered", "--csv", str(tmp_path / "u.csv"), "--since", "2026-01-01"])
    assert result.exit_code == 0 and "没有未回答的问题" in result.output
    assert (tmp_path / "u.csv").read_text(encoding="utf-8-sig").startswith("question,originals,count,first,last,kinds")
    assert runner.invoke(app, ["report", "unanswered", "--since", "yesterday"]).exit_code == 2
    feedback = runner.invoke(app, ["report", "feedback", "--vote", "all"])
    assert feedback.exit_code == 0 and "没有评价" in feedback.output
    assert runner.invoke(app, ["report", "feedback", "--vote", "meh"]).exit_code == 2


async def test_report_summary_prints_and_writes_the_dashboards_figures(staff_env, kb, tmp_path, monkeypatch):
    from bot.knowledge import store
    from bot.staff import dashboard
    from tests.dashboard_data import append
    from tests.web.test_dashboard_http import CONVERSATIONS

    db_url = f"sqlite:///{tmp_path / 'staff.db'}"
    store.build_database(kb, db_url)
    monkeypatch.setattr(store, "_shared", store.KnowledgeRepository(db_url))
    monkeypatch.setattr(dashboard, "_shared", None)
    await append(tmp_path / "conversations.db", CONVERSATIONS)
    monkeypatch.setenv("TRACKER_URL", f"sqlite:///{tmp_path / 'conversations.db'}")
    monkeypatch.setenv("KEPU_TODAY", "2026-12-03")
    result = runner.invoke(app, ["report", "summary", "--days", "7", "--csv", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["2026-11-27", "至", "2026-12-03"] in lines
    assert ["咨询消息数", "5", "2", "7"] in lines and ["2026-12-03", "5", "2", "7"] in lines
    assert ["通知未说明", "3", "0", "3", "42.9%"] in lines and ["1.", "活动登记填报截止", "1", "1", "2"] in lines
    rows = (tmp_path / "s.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rows[0] == "指标,项目,网页,微信,合计,占比" and "回答情况,通知未说明,3,0,3,42.9%" in rows
    assert runner.invoke(app, ["report", "summary", "--from", "2026-12-05", "--to", "2026-12-01"]).exit_code == 2
