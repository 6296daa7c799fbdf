"""The web inbox's HTML: plain values here, Jinja2 templates in ``templates/``.

One environment, autoescaped: every template is HTML, so anything a customer
or an agent wrote is escaped and can never become markup. A value a template
does not get is an error (``StrictUndefined``), not a silent blank. Every
template is compiled once at import and never reloaded, so rendering a page
does not touch the disk on the event loop.

The templates send their HTML without line breaks between tags, as a browser
does not need them: a line starting with ``{#- #}`` continues the line above.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sanic import response
from sanic.response import HTTPResponse

from bot.gateway.agents.inbox_view import priority_class, sla_badge, unread
from bot.gateway.store import StoredMessage
from bot.handoff_contract import badge

TEMPLATES = Path(__file__).with_name("templates")
ENVIRONMENT = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                          undefined=StrictUndefined, auto_reload=False,
                          trim_blocks=True, lstrip_blocks=True)
# Compiled now, and kept in the environment's cache for includes and imports too.
_COMPILED = {name: ENVIRONMENT.get_template(name) for name in ENVIRONMENT.list_templates()}
LABELS = {"ack": "auto-ack", "reply": "bot", "agent": "agent", "csat": "bot",
          "public_reply": "bot, in public", "follow_up": "bot, follow-up"}
Values = Dict[str, Any]


def render(template: str, **values: Any) -> str:
    """``templates/<template>`` with ``values``, escaped."""
    return _COMPILED[template].render(**values)


def page(template: str, session: Optional[Values], **values: Any) -> HTTPResponse:
    """A whole page; ``session`` (None before sign-in) shows who is signed in."""
    return response.html(render(template, session=session, **values))


def when(timestamp: Optional[float], zone) -> str:  # noqa: ANN001 - a ZoneInfo
    return datetime.fromtimestamp(timestamp, zone).strftime("%a %H:%M") if timestamp else "-"


def waited(since: float, now: Optional[float] = None) -> str:
    minutes = int(((now or time.time()) - since) // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def login_page(error: str = "", csrf: str = "") -> HTTPResponse:
    return page("login.html", None, error=error, csrf=csrf)


def queue_rows(handoffs: List[Values], names: Dict[int, str],
               zone, awaiting: Optional[Dict[str, int]] = None,  # noqa: ANN001 - a ZoneInfo
               now: Optional[float] = None) -> List[Values]:
    """What the queue shows of each waiting handoff; ``awaiting``: conversations whose
    customer wrote after the last agent reply (store.awaiting_answer)."""
    now = now or time.time()
    return [{"id": h["id"], "badge": badge(h["priority"]), "name": names.get(h["id"]) or "?",
             "conversation_id": h["conversation_id"], "reason": h["reason"],
             "summary": h["summary"] or "", "waited": waited(h["created_at"], now),
             "due": when(h["sla_due_at"], zone), "status": h["status"],
             "claimed_by": h["claimed_by"], "prio": priority_class(h["priority"]),
             "sla": sla_badge(h["sla_due_at"], h["status"], now),
             "unread": unread(h, awaiting or {}), "current": False} for h in handoffs]


def queue_page(rows: List[Values], session: Values) -> HTTPResponse:
    return page("queue.html", session, rows=rows)


def queue_fragment(rows: List[Values]) -> str:
    """The queue's rows alone, for the page's live updates."""
    return render("queue_rows.html", rows=rows)


def transcript_lines(messages: List[StoredMessage], marks: Dict[int, str],
                     zone) -> List[Values]:  # noqa: ANN001 - a ZoneInfo
    """The conversation; a customer's message can be marked (``marks``: id -> agent)."""
    return [{"id": m.id, "side": "in" if m.direction == "in" else "out",
             "label": LABELS.get(m.kind, "customer") + (
                 ", in public" if m.direction == "in" and m.meta.get("visibility") == "public"
                 else ""), "at": when(m.created_at, zone),
             "markable": m.direction == "in" and m.kind == "message",
             "marked": m.id in marks, "marked_by": marks.get(m.id), "text": m.text}
            for m in messages]


def transcript_fragment(lines: List[Values], handoff_id: int, session: Values) -> str:
    """The transcript alone, for the handoff page's live updates."""
    return render("transcript.html", lines=lines, handoff_id=handoff_id, session=session)


def handoff_page(handoff: Values, conversation: Values, lines: List[Values], session: Values,
                 zone, around: Optional[Values] = None,  # noqa: ANN001 - a ZoneInfo
                 now: Optional[float] = None) -> HTTPResponse:
    """A conversation's page: the queue beside it, transcript, actions, reason, case
    details, earlier cases, turns, notes. ``around``: rows (the queue), history (earlier
    handoffs), canned (filled replies) and draft (the reply box's text)."""
    context = handoff["context"]
    around = {"rows": [], "history": [], "canned": [], "draft": "", **(around or {})}
    for row in around["rows"]:
        row["current"] = row["id"] == handoff["id"]
    return page(
        "handoff.html", session, handoff_id=handoff["id"], lines=lines, **around,
        prio=priority_class(handoff["priority"]),
        sla=sla_badge(handoff["sla_due_at"], handoff["status"], now or time.time()),
        name=conversation.get("customer_name") or "Customer", badge=badge(handoff["priority"]),
        status=handoff["status"], resolved=handoff["status"] == "resolved",
        reason=handoff["reason"], detail=context.get("detail") or "",
        summary=handoff["summary"] or "", due=when(handoff["sla_due_at"], zone),
        conversation_id=handoff["conversation_id"],
        details=[(key, str(value)) for key, value in (context.get("details") or {}).items()],
        turns=[{"text": t.get("text") or "", "intent": str(t.get("intent")),
                "confidence": t.get("confidence") or 0, "sentiment": str(t.get("sentiment"))}
               for t in context.get("turns") or []],
        notes=[{"agent": n["agent"], "text": n["text"]} for n in handoff["notes"]])


def not_found_page(session: Values) -> HTTPResponse:
    return page("not_found.html", session)
