"""The desk report in the web inbox: ``GET /inbox/report[?since=YYYY-MM-DD&until=...]``.

Signed-in agents only, like every inbox page. The dates are checked before
anything is read: a bad one is a 400 saying what is wrong, never a 500. The
queries and the charts block, so they run in a worker thread, not on the
event loop that acknowledges customers.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

from bot.gateway.agents.inbox import signed_in
from bot.gateway.report.data import PeriodError, parse_period
from bot.gateway.report.render import build_html

report_page = Blueprint("inbox_report", url_prefix="/inbox")


@report_page.get("/report")
@signed_in()
async def desk_report(request: Request) -> HTTPResponse:
    gateway = request.app.ctx.gateway
    profile = gateway.profile
    zone = profile.opening_hours.zone
    try:
        period = parse_period(request.args.get("since"), request.args.get("until"), zone,
                              datetime.now(zone).date())
    except PeriodError as error:
        return response.text(f"{error} Dates look like 2026-12-01 (since and until, "
                             "both included).", status=400)
    html = await asyncio.to_thread(build_html, gateway.store.engine, period,
                                   dict(profile.sla_minutes), request.ctx.session, time.time())
    return response.html(html)
