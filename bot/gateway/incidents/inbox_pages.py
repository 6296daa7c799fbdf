"""The web inbox's incident pages: /inbox/incidents, each incident, its answer and close forms.

Signed-in agents only, CSRF on every form (the inbox's own guards). Customers'
words are shown masked (``to_placeholders``: cards, emails, phones and order
numbers hidden): an incident is about the problem, not about anyone's order.
Templates of their own, on the inbox's layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined
from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

from bot.gateway.agents.inbox import InboxEvents, form_post, signed_in
from bot.gateway.agents.inbox_pages import TEMPLATES as INBOX_TEMPLATES
from bot.gateway.agents.inbox_pages import waited, when
from bot.privacy import to_placeholders

SAMPLES = 3
ANSWER_EXAMPLE = ("Thanks for letting us know, {first_name}. We know about this problem and "
                  "our team is fixing it right now. We'll message you here as soon as it's "
                  "sorted.")
CLOSING_EXAMPLE = ("Good news, {first_name}: the problem you told us about is fixed. Thanks "
                   "for bearing with us, and sorry for the trouble.")

ENVIRONMENT = Environment(
    loader=ChoiceLoader([FileSystemLoader(Path(__file__).with_name("templates")),
                         FileSystemLoader(INBOX_TEMPLATES)]),
    autoescape=True, undefined=StrictUndefined, auto_reload=False, trim_blocks=True,
    lstrip_blocks=True)
_COMPILED = {name: ENVIRONMENT.get_template(name)
             for name in ("incidents.html", "incident_rows.html", "incident.html")}

incident_inbox = Blueprint("incident_inbox", url_prefix="/inbox/incidents")


class InboxIncidents:
    """Incident surface: open inbox pages fetch their incident lists again."""

    def __init__(self, events: InboxEvents) -> None:
        self.events = events

    async def on_incident(self, kind: str, incident: Dict[str, Any]) -> None:
        self.events.changed("incidents")


def _render(template: str, **values: Any) -> str:
    return _COMPILED[template].render(**values)


async def _rows(request: Request) -> List[Dict[str, Any]]:
    gateway = request.app.ctx.gateway
    zone = gateway.profile.opening_hours.zone
    rows = []
    for incident in await gateway.db.incidents():
        reports = await gateway.db.incident_reports(incident["id"], limit=SAMPLES)
        rows.append({**_summary(incident, zone),
                     "samples": [to_placeholders(r["text"])[:200] for r in reports]})
    return rows


def _summary(incident: Dict[str, Any], zone) -> Dict[str, Any]:  # noqa: ANN001 - a ZoneInfo
    return {"id": incident["id"], "title": incident["title"], "count": incident["count"],
            "status": incident["status"], "answered": bool(incident["answer"]),
            "told": incident["told"], "updated": incident["updated"],
            "since": when(incident["created_at"], zone),
            "last": waited(incident["last_report_at"])}


@incident_inbox.get("/")
@signed_in()
async def list_page(request: Request) -> HTTPResponse:
    return response.html(_render("incidents.html", session=request.ctx.session,
                                 rows=await _rows(request)))


@incident_inbox.get("/list")
@signed_in(page=False)
async def list_fragment(request: Request) -> HTTPResponse:
    return response.html(_render("incident_rows.html", rows=await _rows(request)))


@incident_inbox.get("/<incident_id:int>")
@signed_in()
async def incident_page(request: Request, incident_id: int) -> HTTPResponse:
    gateway = request.app.ctx.gateway
    incident = await gateway.db.incident(incident_id)
    if incident is None:
        return response.text("No such incident.", status=404)
    zone = gateway.profile.opening_hours.zone
    reports = [{"name": r["customer_name"] or "Customer", "at": when(r["reported_at"], zone),
                "text": to_placeholders(r["text"]), "told": bool(r["told_at"]),
                "updated": bool(r["updated_at"])}
               for r in await gateway.db.incident_reports(incident_id)]
    return response.html(_render(
        "incident.html", session=request.ctx.session, incident=_summary(incident, zone),
        answer=incident["answer"] or "", answered_by=incident["answered_by"] or "",
        closing=incident["closing_message"] or "", closed_by=incident["closed_by"] or "",
        reports=reports, answer_example=ANSWER_EXAMPLE, closing_example=CLOSING_EXAMPLE))


@incident_inbox.post("/<incident_id:int>/<action:str>")
@form_post
async def act(request: Request, incident_id: int, action: str) -> HTTPResponse:
    """The answer and close forms, through the incident desk (refusals: 400/404/409)."""
    desk = request.app.ctx.gateway.incidents
    agent = request.ctx.session["display_name"]
    text = request.form.get("text") or ""
    if action == "answer":
        await desk.answer(incident_id, agent, text)
    elif action == "close":
        await desk.close(incident_id, agent, text)
    else:
        return response.text("not found", status=404)
    return response.redirect(f"/inbox/incidents/{incident_id}", status=303)
