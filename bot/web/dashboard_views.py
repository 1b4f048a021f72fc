"""The staff dashboard at /admin/dashboard, the first page after login.

- GET /admin/dashboard[?days=N | ?start=YYYY-MM-DD&end=YYYY-MM-DD]: the period's figures, each by
  channel, as server-drawn SVG charts (bot/web/charts.py) with a text table beside each; the
  unanswered questions grouped by meaning (bot/staff/grouping.py), each with a suggested answer
  from the knowledge base's retrieval (bot/staff/suggestions.py) and an "添加为常见问题" link that
  opens the FAQ form prefilled with the group's wordings and the suggestion, for staff to edit and
  save: nothing is published without a person;
- GET /admin/dashboard.csv with the same arguments: the same figures as CSV (bot/staff/dashboard.summary_rows).

HTML comes from the Jinja2 templates in bot/web/templates (autoescape on), inside the admin
page's layout. The figures' sources are passed in (`Dashboard`, the knowledge set), so tests hand
in their own.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import clock
from bot.knowledge.model import KnowledgeSet
from bot.staff import grouping
from bot.staff.dashboard import (
    CHANNEL_LABELS,
    CHANNELS,
    COLUMNS,
    OUTCOME_LABELS,
    OUTCOMES,
    VOTE_LABELS,
    Dashboard,
    Period,
    Summary,
    label_topics,
    parse_period,
    percent,
    resolution,
    shared_dashboard,
    summary_rows,
    total,
)
from bot.staff.reports import to_csv
from bot.staff.suggestions import NOT_COVERED, Suggestion, suggest
from bot.web import charts
from bot.web.admin import _headers, _zone_label, api_error, layout, page

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
PRESETS = (7, 30, 90)
MAX_GROUPS = 20  # unanswered groups shown, the most asked first
CHART_LABEL = 9  # characters of a topic's name written beside its bar (the table has it whole)

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def _knowledge() -> KnowledgeSet:
    from bot.knowledge.store import shared_repository

    return shared_repository().get()


@dataclass
class GroupView:
    """One group of unanswered questions as the page shows it."""

    group: grouping.Group
    suggestion: Suggestion
    faq_link: str
    first: str
    last: str


def faq_link(group: grouping.Group, suggestion: Suggestion) -> str:
    """The FAQ form prefilled with the group's wordings as questions and the suggestion as the answer."""
    fields = {"question": "\n".join(group.examples or group.questions[:3])}
    if suggestion.covered:
        fields.update(answer=suggestion.answer, source=suggestion.source)
    return "/admin/faq/new?" + urlencode(fields)


def _short(text: str) -> str:
    return text if len(text) <= CHART_LABEL else text[:CHART_LABEL - 1] + "…"


def _series(by_category: list[dict[str, int]]) -> list[charts.Series]:
    return [(CHANNEL_LABELS[c], c, [counts[c] for counts in by_category]) for c in CHANNELS]


def figure_charts(summary: Summary) -> dict[str, charts.Chart]:
    """Every chart of the page, from the summary."""
    days = list(summary.messages)
    short_days = [d[5:] for d in days]  # MM-DD under the axis
    outcome_texts = [f"{total(summary.outcomes[o])}（{percent(summary.share(o))}）" for o in OUTCOMES]
    return {
        "messages": charts.line_chart(days, _series(list(summary.messages.values())), short_days),
        "conversations": charts.line_chart(days, _series(list(summary.conversations.values())), short_days),
        "outcomes": charts.hbar_chart([OUTCOME_LABELS[o] for o in OUTCOMES],
                                      _series([summary.outcomes[o] for o in OUTCOMES]), outcome_texts),
        "votes": charts.hbar_chart([VOTE_LABELS[v] for v in ("up", "down")],
                                   _series([summary.votes[v] for v in ("up", "down")])),
        "topics": charts.hbar_chart([_short(t.label) for t in summary.topics],
                                    _series([t.counts for t in summary.topics])),
        "hours": charts.bar_chart([f"{h}" for h in range(24)], _series(summary.hours)),
    }


class DashboardViews:
    """The dashboard's routes. `dashboard` and `knowledge` give the figures and the knowledge set."""

    def __init__(self, dashboard: Callable[[], Dashboard] = shared_dashboard,
                 knowledge: Callable[[], KnowledgeSet] = _knowledge) -> None:
        self._dashboard = dashboard
        self._knowledge = knowledge

    def period_of(self, request: Request) -> tuple[Period, str]:
        """The period the request asks for, and an error for people ('' if none)."""
        args = {name: request.args.get(name, "").strip() for name in ("days", "start", "end")}
        return parse_period(self._dashboard().today(), **args)

    def figures(self, period: Period) -> tuple[Summary, list[GroupView]]:
        """The period's summary (topics labelled) and its unanswered groups with suggestions."""
        board, kb = self._dashboard(), self._knowledge()
        summary = label_topics(board.summary(period), kb)
        views = []
        for group in grouping.group(board.unanswered(period, refresh=False))[:MAX_GROUPS]:
            found = suggest(kb, group.questions)
            views.append(GroupView(group, found, faq_link(group, found), clock.day_of(group.first).isoformat(),
                                   clock.day_of(group.last).isoformat()))
        return summary, views

    def render(self, period: Period, summary: Summary, groups: list[GroupView], query: str) -> str:
        """The page's body (the admin layout goes around it)."""
        today = self._dashboard().today()
        presets = [{"days": n, "href": "/admin/dashboard?" + urlencode({"days": n}),
                    "current": period == Period.last(n, today)} for n in PRESETS]
        return _env.get_template("dashboard.html").render(
            period=period, summary=summary, groups=groups, charts=figure_charts(summary), presets=presets,
            csv_link="/admin/dashboard.csv" + (f"?{query}" if query else ""), zone=_zone_label(),
            channels=CHANNELS, channel_labels=CHANNEL_LABELS, outcomes=OUTCOMES, outcome_labels=OUTCOME_LABELS,
            votes=("up", "down"), vote_labels=VOTE_LABELS, total=total, percent=percent,
            resolution=resolution(summary), not_covered=NOT_COVERED, max_groups=MAX_GROUPS)

    async def page(self, request: Request, session: Any) -> HTTPResponse:
        """GET /admin/dashboard."""
        period, error = self.period_of(request)
        try:
            summary, groups = await asyncio.to_thread(self.figures, period)
        except Exception as err:
            logger.exception("admin: dashboard failed")
            return page(layout("数据概览", "", session, "/admin/dashboard", error=f"无法生成数据概览：{err}"), 503)
        body = self.render(period, summary, groups, request.query_string)
        return page(layout("数据概览", body, session, "/admin/dashboard", error=error))

    async def csv(self, request: Request, session: Any) -> HTTPResponse:
        """GET /admin/dashboard.csv: the same figures (written by bot.staff.reports.to_csv)."""
        period, _ = self.period_of(request)

        def build() -> bytes:
            summary = label_topics(self._dashboard().summary(period), self._knowledge())
            with tempfile.TemporaryDirectory() as tmp:
                return to_csv(summary_rows(summary), Path(tmp) / "summary.csv", COLUMNS).read_bytes()

        try:
            data = await asyncio.to_thread(build)
        except Exception as err:
            logger.exception("admin: dashboard csv failed")
            return api_error(503, f"无法生成报表：{err}")
        name = f"summary-{period.start.isoformat()}-{period.end.isoformat()}.csv"
        return response.raw(data, content_type="text/csv; charset=utf-8",
                            headers=_headers(**{"Content-Disposition": f'attachment; filename="{name}"'}))


def dashboard_routes(views: DashboardViews, guard: Callable[..., Any]) -> list[tuple[Any, str, list[str]]]:
    """(handler, uri, methods) of the dashboard, each behind the admin session `guard`."""
    return [(guard(views.page), "/admin/dashboard", ["GET"]),
            (guard(views.csv), "/admin/dashboard.csv", ["GET"])]
