"""The desk report as HTML: one template of content (agents/templates/report_body.html)
for both the signed-in page and the file `make report` writes.

The page (report.html) sits in the inbox's layout, with its stylesheet and
script. The file (report_file.html) wraps the same content in a document of
its own, CSS and SVG inline, without a signed-in agent's controls (no date
form, no sign-out): it opens anywhere and fetches nothing.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Dict, Optional

from markupsafe import Markup
from sqlalchemy.engine import Engine

from bot.gateway.agents.inbox_pages import render
from bot.gateway.report.data import Period, Report, build_report


def duration(seconds: Optional[float]) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``; a dash for no value."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def percent(value: Optional[float]) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def report_html(report: Report, charts: Dict[str, str], session: Optional[Dict[str, Any]],
                generated_at: float) -> str:
    """The whole document: the inbox page for a ``session``, else the file."""
    period = report.period
    return render(
        "report.html" if session else "report_file.html", session=session, r=report,
        since=period.since.isoformat(), until=period.until.isoformat(), days=len(period.days),
        zone=str(period.zone), duration=duration, percent=percent,
        charts={name: Markup(svg) for name, svg in charts.items()},  # noqa: S704 - our SVG
        generated=datetime.fromtimestamp(generated_at, period.zone).strftime("%d %b %Y %H:%M"))


def build_html(engine: Engine, period: Period, sla_minutes: Dict[str, int],
               session: Optional[Dict[str, Any]] = None, now: Optional[float] = None) -> str:
    """Query, draw and render: blocking, so the page runs it in a worker thread.

    matplotlib is imported here, on the first report, not when the gateway starts
    (about a second that customers' first messages should not wait for).
    """
    from bot.gateway.report import plots

    now = time.time() if now is None else now
    report = build_report(engine, period, sla_minutes, now)
    return report_html(report, plots.charts(report), session, now)
