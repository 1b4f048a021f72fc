# typer 0.7 reads the annotations at run time and knows typing.Optional/List, not
# `X | None`; typer.Option(...) defaults are how typer declares options.
# ruff: noqa: UP006, UP035, UP045, B008
"""`bot`: the staff command (FAQs, retraining, rollback, reports).

    bot faq list | add | update ID | remove ID
    bot retrain [--full]
    bot rollback
    bot report unanswered [--since YYYY-MM-DD] [--csv FILE]
    bot report feedback [--vote down|up|all] [--csv FILE]
    bot report summary [--days N | --from YYYY-MM-DD --to YYYY-MM-DD] [--csv FILE]
    bot audit
    bot unlock NAME_OR_ADDRESS

`make install` puts a wrapper at .venv/bin/bot that runs `python -m bot.cli`.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import List, Optional

from bot import typer_compat

typer_compat.apply()

import typer  # noqa: E402 (after the compatibility patch)

from bot.knowledge.loader import KnowledgeError  # noqa: E402

HELP = """科普日智能助手的员工工具 / staff tools of the 科普日 assistant.

常见问题（FAQ）的增删改、重新训练并上线（带质量门）、回滚、未回答问题和差评报告。
Manage FAQs, retrain and deploy behind a quality gate, roll back, and read reports.
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False)
faq_app = typer.Typer(help="常见问题 / manage FAQs (knowledge/faq.yml)", no_args_is_help=True)
report_app = typer.Typer(help="报告 / reports", no_args_is_help=True)
app.add_typer(faq_app, name="faq")
app.add_typer(report_app, name="report")


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _prompt_questions(existing: list[str]) -> list[str]:
    questions = [q for q in existing if q.strip()]
    if len(questions) >= 3:
        return questions
    typer.echo("请输入示例问题（至少三个，直接回车结束）/ example questions (at least three, empty line ends):")
    while True:
        text = typer.prompt(f"  问题 {len(questions) + 1}", default="", show_default=False).strip()
        if not text:
            if len(questions) >= 3:
                return questions
            typer.echo("  至少需要三个示例问题 / at least three are needed")
            continue
        questions.append(text)


def _show_live_check(questions: list[str], faq_id: str) -> None:
    from bot.staff.faqs import check_against_live

    warnings, note = check_against_live(questions, faq_id)
    for warning in warnings:
        typer.secho(f"警告 / warning: {warning}", fg=typer.colors.YELLOW)
    if warnings:
        typer.echo("  这些问题可能仍被原来的意图回答；可改写问题，或在重新训练后检查。")
    if note:
        typer.echo(f"说明 / note: {note}")


@faq_app.command("list")
def faq_list() -> None:
    """列出常见问题 / list the FAQs."""
    from bot.staff.faqs import list_faqs

    try:
        faqs = list_faqs()
    except KnowledgeError as exc:
        _fail(f"faq.yml 有错误 / invalid faq.yml: {exc}")
    if not faqs:
        typer.echo("还没有常见问题 / no FAQs yet")
    for faq in faqs:
        until = f"  有效期至 {faq.valid_until.isoformat()}" if faq.valid_until else ""
        source = f"  依据：{faq.source}" if faq.source else ""
        typer.secho(f"{faq.id}", bold=True, nl=False)
        typer.echo(f"  （{len(faq.questions)} 个示例问题）{until}{source}")
        typer.echo(f"  问：{faq.questions[0]}")
        answer = faq.answer if len(faq.answer) <= 80 else faq.answer[:80] + "…"
        typer.echo(f"  答：{answer}")
    typer.echo(f"共 {len(faqs)} 条 / {len(faqs)} FAQs")


@faq_app.command("add")
def faq_add(
    faq_id: Optional[str] = typer.Option(None, "--id", help="编号（小写字母、数字、下划线）/ id (a-z, 0-9, _)"),
    question: List[str] = typer.Option([], "--question", "-q", help="示例问题，可重复，至少三个 / example question (repeat, at least 3)"),
    answer: Optional[str] = typer.Option(None, "--answer", "-a", help="答案（简体中文）/ the answer (Simplified Chinese)"),
    source: Optional[str] = typer.Option(None, "--source", help="依据（可选）/ where the answer comes from (optional)"),
    valid_until: Optional[str] = typer.Option(None, "--valid-until", help="有效期至 YYYY-MM-DD（可选）/ expiry date (optional)"),
    actor: str = typer.Option("cli", "--actor", help="操作人（写入审计日志）/ who (for the audit log)"),
) -> None:
    """添加常见问题 / add an FAQ (missing fields are asked for)."""
    from bot.staff.faqs import add_faq

    interactive = faq_id is None or answer is None or len(question) < 3
    faq_id = faq_id or typer.prompt("编号 / id").strip()
    questions = _prompt_questions(list(question))
    answer = answer or typer.prompt("答案 / answer").strip()
    if interactive and source is None:
        source = typer.prompt("依据（可留空）/ source (optional)", default="", show_default=False)
    if interactive and valid_until is None:
        valid_until = typer.prompt("有效期至 YYYY-MM-DD（可留空）/ valid until (optional)", default="",
                                   show_default=False) or None
    try:
        faq = add_faq(faq_id, questions, answer, source=source or "", valid_until=valid_until or None, actor=actor)
    except KnowledgeError as exc:
        _fail(f"未添加 / not added: {exc}")
    typer.secho(f"已添加常见问题 {faq.id}（{len(faq.questions)} 个示例问题）/ FAQ added", fg=typer.colors.GREEN)
    _show_live_check(list(faq.questions), faq.id)
    typer.echo("运行 `bot retrain` 后生效 / run `bot retrain` to make it live")


@faq_app.command("update")
def faq_update(
    faq_id: str = typer.Argument(..., help="要修改的编号 / id of the FAQ"),
    question: List[str] = typer.Option([], "--question", "-q", help="新的示例问题（给出则整体替换）/ new example questions (replace all)"),
    answer: Optional[str] = typer.Option(None, "--answer", "-a", help="新答案 / new answer"),
    source: Optional[str] = typer.Option(None, "--source", help="新依据（空字符串删除）/ new source ('' removes)"),
    valid_until: Optional[str] = typer.Option(None, "--valid-until", help="新有效期（空字符串删除）/ new expiry ('' removes)"),
    actor: str = typer.Option("cli", "--actor", help="操作人 / who (for the audit log)"),
) -> None:
    """修改常见问题 / change an FAQ."""
    from bot.staff.faqs import update_faq

    try:
        faq = update_faq(faq_id, questions=list(question) or None, answer=answer, source=source,
                         valid_until=valid_until, actor=actor)
    except KnowledgeError as exc:
        _fail(f"未修改 / not changed: {exc}")
    typer.secho(f"已修改常见问题 {faq.id} / FAQ updated", fg=typer.colors.GREEN)
    if question:
        _show_live_check(list(faq.questions), faq.id)
    typer.echo("运行 `bot retrain` 后生效 / run `bot retrain` to make it live")


@faq_app.command("remove")
def faq_remove(
    faq_id: str = typer.Argument(..., help="要删除的编号 / id of the FAQ"),
    actor: str = typer.Option("cli", "--actor", help="操作人 / who (for the audit log)"),
) -> None:
    """删除常见问题 / remove an FAQ."""
    from bot.staff.faqs import remove_faq

    try:
        remove_faq(faq_id, actor=actor)
    except KnowledgeError as exc:
        _fail(f"未删除 / not removed: {exc}")
    typer.secho(f"已删除常见问题 {faq_id} / FAQ removed", fg=typer.colors.GREEN)
    typer.echo("运行 `bot retrain` 后生效 / run `bot retrain` to make it live")


@app.command("retrain")
def retrain_command(
    full: bool = typer.Option(False, "--full", help="完整训练，不做微调 / train from scratch, no finetuning"),
) -> None:
    """重新训练并在通过质量门后上线 / retrain, gate and hot-swap the live servers."""
    from tqdm import tqdm

    from bot.staff.retrain import retrain

    bar = tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {elapsed}", file=sys.stderr)

    def progress(label: str, fraction: float) -> None:
        bar.set_description_str(label[:40])
        bar.n = round(100 * fraction, 1)
        bar.refresh()

    try:
        result = retrain(progress=progress, full=full)
    finally:
        bar.close()
    gate = result.gate or {}
    color = typer.colors.GREEN if result.deployed else typer.colors.YELLOW
    typer.secho(("已上线 / deployed: " if result.deployed else "未上线 / not deployed: ") + result.reason, fg=color)
    if gate.get("candidate_accuracy") is not None:
        live = gate.get("live_accuracy")
        typer.echo(f"质量门 / gate: 候选 candidate {gate['candidate_accuracy']:.1%}"
                   + (f"  线上 live {live:.1%}" if live is not None else "")
                   + f"  -> {'通过 passed' if gate.get('passed') else '未通过 failed'}")
    for check in gate.get("checks", []) + gate.get("smoke", []):
        mark = "✓" if check["ok"] else "✗"
        typer.echo(f"  {mark} “{check['question']}” -> {check['reply'][:60]}")
    steps = "  ".join(f"{name} {seconds:.1f}s" for name, seconds in result.steps)
    typer.echo(f"用时 / time: {result.seconds:.1f}s  ({steps})")
    typer.echo(f"模型 / model: {result.model}")
    if not result.deployed and not gate.get("unchanged"):
        raise typer.Exit(1)


@app.command("rollback")
def rollback_command() -> None:
    """切回上一个模型 / swap the live servers back to the previous model."""
    from bot.staff.retrain import rollback

    try:
        model = rollback()
    except RuntimeError as exc:
        _fail(f"未回滚 / not rolled back: {exc}")
    typer.secho(f"已回滚到 / rolled back to: {model}", fg=typer.colors.GREEN)


def _parse_day(value: Optional[str]) -> Optional[dt.date]:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        _fail(f"日期格式应为 YYYY-MM-DD / expected YYYY-MM-DD: {value!r}", code=2)
    return None


@report_app.command("unanswered")
def report_unanswered(
    since: Optional[str] = typer.Option(None, "--since", help="起始日期 YYYY-MM-DD / from this day on"),
    csv: Optional[Path] = typer.Option(None, "--csv", help="另存为 CSV 文件 / also write a CSV file"),
    limit: int = typer.Option(30, "--limit", help="最多显示几条 / rows to show"),
) -> None:
    """未回答的问题（拒答、澄清、通知未说明），按次数排序 / unanswered questions, most frequent first."""
    from bot.staff.reports import to_csv, unanswered

    rows = unanswered(_parse_day(since))
    if csv:
        to_csv(rows, csv, fields=["question", "originals", "count", "first", "last", "kinds"])
        typer.echo(f"已写入 / written: {csv}")
    if not rows:
        typer.echo("没有未回答的问题 / no unanswered questions")
        return
    typer.echo(f"{'次数':>4}  {'首次':<10}  {'最近':<10}  问题 / question")
    for row in rows[:limit]:
        typer.echo(f"{row['count']:>6}  {row['first']:<10}  {row['last']:<10}  {row['question']}  [{row['kinds']}]")
        typer.echo(f"{'':>6}  原话 / typed: {' | '.join(row['originals'])}")
    if len(rows) > limit:
        typer.echo(f"……共 {len(rows)} 条 / {len(rows)} in total")


@report_app.command("feedback")
def report_feedback(
    vote: str = typer.Option("down", "--vote", help="down（不满意）、up（满意）或 all / down, up or all"),
    csv: Optional[Path] = typer.Option(None, "--csv", help="另存为 CSV 文件 / also write a CSV file"),
    limit: int = typer.Option(30, "--limit", help="最多显示几条 / rows to show"),
) -> None:
    """用户评价（默认：不满意）/ answers rated in the widget (default: thumbs down)."""
    from bot.staff.reports import feedback, to_csv

    if vote not in ("down", "up", "all"):
        _fail("--vote 只能是 down、up 或 all", code=2)
    rows = feedback(None if vote == "all" else vote)
    if csv:
        to_csv(rows, csv, fields=["question", "answer", "at"] + (["vote"] if vote == "all" else []))
        typer.echo(f"已写入 / written: {csv}")
    if not rows:
        typer.echo("没有评价 / no feedback")
        return
    for row in rows[:limit]:
        answer = row["answer"].replace("\n", " ")
        typer.echo(f"{row['at']}  问：{row['question'] or '（无）'}\n    答：{answer[:80]}")
    if len(rows) > limit:
        typer.echo(f"……共 {len(rows)} 条 / {len(rows)} in total")


@report_app.command("summary")
def report_summary(
    days: Optional[str] = typer.Option(None, "--days", help="最近几天（默认 30）/ the last N days (default 30)"),
    start: Optional[str] = typer.Option(None, "--from", help="开始日期 YYYY-MM-DD / first day"),
    end: Optional[str] = typer.Option(None, "--to", help="结束日期 YYYY-MM-DD / last day"),
    csv: Optional[Path] = typer.Option(None, "--csv", help="另存为 CSV 文件 / also write a CSV file"),
) -> None:
    """咨询量、回答情况、满意率、热门话题、咨询时段（与管理后台“数据概览”相同）/ the dashboard's figures."""
    from bot.knowledge.store import shared_repository
    from bot.staff.dashboard import COLUMNS, label_topics, parse_period, shared_dashboard, summary_rows
    from bot.staff.reports import to_csv

    board = shared_dashboard()
    period, error = parse_period(board.today(), days or "", start or "", end or "")
    if error:
        _fail(error, code=2)
    rows = summary_rows(label_topics(board.summary(period), shared_repository().get()))
    if csv:
        to_csv(rows, csv, COLUMNS)
        typer.echo(f"已写入 / written: {csv}")
    figure = ""
    for row in rows:
        if row["指标"] != figure:
            figure = row["指标"]
            typer.echo(f"\n{figure}" + ("" if row["网页"] == "" else "（网页 / 微信 / 合计）"))
        counts = "" if row["网页"] == "" else f"{row['网页']:>6} {row['微信']:>6} {row['合计']:>6}"
        typer.echo(f"  {_pad(str(row['项目']), 26)}{counts}  {row['占比']}".rstrip())


def _pad(text: str, width: int) -> str:
    """`text` padded to `width` terminal columns (a Chinese character takes two)."""
    import unicodedata

    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(1, width - used)


@app.command("audit")
def audit_command(limit: int = typer.Option(20, "--limit", help="最多显示几条 / rows to show")) -> None:
    """审计日志（谁在何时改了什么）/ the audit log."""
    from bot import clock
    from bot.staff.audit import list_audit

    for row in list_audit(limit):
        at = clock.local(row["at"]).isoformat(timespec="seconds") if isinstance(row["at"], dt.datetime) else row["at"]
        typer.echo(f"{at}  {row['actor']:<8}  {row['action']:<12}  {str(row['detail'])[:100]}")


@app.command("unlock")
def unlock_command(
    key: str = typer.Argument(..., help="用户名或 IP 地址 / a staff user name or a client address"),
) -> None:
    """解除管理后台的登录锁定 / clear the admin page's login lock-out.

    用户名：解除所有地址对该账号的锁定；IP 地址：解除该地址对所有账号的锁定。
    A user name is unlocked from every address, an address for every user name.
    """
    from bot.staff.audit import record
    from bot.web.admin_auth import shared_auth

    removed = shared_auth().unlock(key)
    record("cli", "unlock", f"解除登录锁定：{key}（清除了 {removed} 条失败记录）")
    typer.secho(f"已解除锁定 / unlocked: {key}（清除了 {removed} 条失败记录 / failures cleared）",
                fg=typer.colors.GREEN)


def main() -> None:
    """Entry point of `python -m bot.cli` and .venv/bin/bot."""
    app(prog_name="bot")


if __name__ == "__main__":
    main()
