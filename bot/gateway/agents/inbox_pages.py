"""The web inbox's HTML, from the templates in ``templates/``, autoescaped.

Each template is a small HTML file with ``{name}`` placeholders. Rendering
goes through MarkupSafe's ``Markup.format`` (what Jinja2's autoescape is built
on), so every value is HTML-escaped unless it is itself rendered markup: a
customer's or agent's text can never become HTML. (Jinja2 is not installed in
this project's environment, so its loops are written here in Python.)
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

from markupsafe import Markup
from sanic import response
from sanic.response import HTTPResponse

from bot.gateway.store import StoredMessage
from bot.handoff_contract import badge

TEMPLATES = Path(__file__).with_name("templates")
# Read once at import, so no page render touches the disk on the event loop.
_TEMPLATES = {path.stem: Markup(path.read_text(encoding="utf-8").rstrip("\n"))
              for path in TEMPLATES.glob("*.html")}
STYLE = Markup((TEMPLATES / "inbox.css").read_text(encoding="utf-8"))
LABELS = {"ack": "auto-ack", "reply": "bot", "agent": "agent", "csat": "bot"}


def render(template: str, **values: Any) -> Markup:
    """``templates/<template>.html`` with ``values`` escaped into its placeholders."""
    return _TEMPLATES[template].format(**values)


def join(parts: List[Markup]) -> Markup:
    return Markup("").join(parts)


LIVE = render("live")  # pages with [data-live] parts fetch them again on each event


def page(title: str, body: Markup, session: Optional[Dict[str, Any]] = None) -> HTTPResponse:
    user = render("signed_in", name=session["display_name"], csrf=csrf_field(session)) \
        if session else Markup("")
    return response.html(str(render("layout", title=title, style=STYLE, user=user, body=body)))


def csrf_field(session: Dict[str, Any]) -> Markup:
    return render("csrf", token=session["csrf"])


def when(timestamp: Optional[float], zone) -> str:  # noqa: ANN001 - a ZoneInfo
    return datetime.fromtimestamp(timestamp, zone).strftime("%a %H:%M") if timestamp else "-"


def waited(since: float) -> str:
    minutes = int((time.time() - since) // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def login_body(error: str = "") -> Markup:
    return render("login", message=render("login_error", error=error) if error else "")


def queue_body(rows: Markup) -> Markup:
    return render("queue", rows=rows, live=LIVE)


def queue_rows(handoffs: List[Dict[str, Any]], names: Dict[int, str],
               zone) -> Markup:  # noqa: ANN001 - a ZoneInfo
    if not handoffs:
        return render("queue_empty")
    return join([render(
        "queue_row", id=h["id"], badge=badge(h["priority"]), name=names.get(h["id"]) or "?",
        conversation_id=h["conversation_id"], reason=h["reason"], summary=h["summary"] or "",
        waited=waited(h["created_at"]), due=when(h["sla_due_at"], zone), status=h["status"],
        claimed=f" · {h['claimed_by']}" if h["claimed_by"] else "") for h in handoffs])


def transcript_html(messages: List[StoredMessage], zone,  # noqa: ANN001 - a ZoneInfo
                    session: Dict[str, Any], handoff_id: int, marks: Dict[int, str]) -> Markup:
    """The conversation; each customer message can be marked "bot misunderstood"."""
    return join([render(
        "message", side="in" if m.direction == "in" else "out",
        marked=" marked" if m.id in marks else "", id=m.id,
        label=LABELS.get(m.kind, "customer"), at=when(m.created_at, zone),
        flag=mark_form(m.id, session, handoff_id, marks.get(m.id))
        if m.direction == "in" and m.kind == "message" else "",
        text=m.text) for m in messages])


def mark_form(message_id: int, session: Dict[str, Any], handoff_id: int,
              marked_by: Optional[str]) -> Markup:
    """The mark button, or the mark and its Undo: misreadings feed the NLU review."""
    if marked_by is None:
        return render("mark", message_id=message_id, csrf=csrf_field(session),
                      handoff_id=handoff_id)
    return render("unmark", agent=marked_by, message_id=message_id, csrf=csrf_field(session),
                  handoff_id=handoff_id)


def handoff_body(handoff: Dict[str, Any], conversation: Dict[str, Any], transcript: Markup,
                 session: Dict[str, Any], zone) -> Markup:  # noqa: ANN001 - a ZoneInfo
    """A conversation's page: transcript, actions, reason, case details, turns, notes."""
    context = handoff["context"]
    csrf = csrf_field(session)
    details = join([render("detail_item", key=k, value=str(v))
                    for k, v in (context.get("details") or {}).items()])
    turns = join([render("turn_row", text=t.get("text") or "", intent=str(t.get("intent")),
                         confidence=t.get("confidence") or 0, sentiment=str(t.get("sentiment")))
                  for t in context.get("turns") or []])
    notes = join([render("note_item", agent=n["agent"], text=n["text"])
                  for n in handoff["notes"]]) or render("notes_empty")
    actions = "" if handoff["status"] == "resolved" else render(
        "handoff_actions", id=handoff["id"], csrf=csrf)
    return render(
        "handoff", name=conversation.get("customer_name") or "Customer",
        badge=badge(handoff["priority"]), status=handoff["status"], id=handoff["id"],
        transcript=transcript, actions=actions, reason=handoff["reason"],
        detail=context.get("detail") or "", summary=handoff["summary"] or "",
        due=when(handoff["sla_due_at"], zone), conversation_id=handoff["conversation_id"],
        details=details, turns=turns, notes=notes, csrf=csrf, live=LIVE)


def not_found_body() -> Markup:
    return render("not_found")
