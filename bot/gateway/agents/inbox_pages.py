"""The web inbox's HTML: every value a customer or agent typed is escaped here."""

from __future__ import annotations

import time
from datetime import datetime
from html import escape
from typing import Any, Dict, List, Optional

from sanic import response
from sanic.response import HTTPResponse

from bot.gateway.store import StoredMessage
from bot.handoff_contract import badge

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f5f2;color:#1d1d1b}
header{background:#2f5d50;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:center}
header a{color:#fff} header form{margin-left:auto} main{padding:20px;max-width:1100px}
table{border-collapse:collapse;width:100%;background:#fff} td,th{padding:8px;border-bottom:1px
solid #e4e1da;text-align:left;vertical-align:top} .muted{color:#777;font-size:13px}
.msg{padding:6px 10px;border-radius:10px;margin:4px 0;max-width:75%;white-space:pre-wrap}
.in{background:#fff;border:1px solid #ddd} .out{background:#e3efe9;margin-left:auto}
.cols{display:grid;grid-template-columns:2fr 1fr;gap:20px} textarea{width:100%;min-height:70px}
.card{background:#fff;padding:12px;border-radius:8px;margin-bottom:12px} .error{color:#a00}
.mark{display:inline;margin-left:6px} .mark button{font-size:12px;padding:0 6px}
.marked{border-color:#d9a03f} .flag{color:#8a5a00;font-size:13px}
"""


def page(title: str, body: str, session: Optional[Dict[str, Any]] = None) -> HTTPResponse:
    user = ""
    if session:
        user = (f"<span>{escape(session['display_name'])}</span>"
                f"<form method=post action=/inbox/logout>{csrf_field(session)}"
                f"<button>Sign out</button></form>")
    return response.html(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}"
        f"</title><meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<style>{STYLE}</style></head><body><header><a href=/inbox/><b>Inbox</b></a>{user}"
        f"</header><main>{body}</main></body></html>")


def csrf_field(session: Dict[str, Any]) -> str:
    return f"<input type=hidden name=csrf value='{escape(session['csrf'])}'>"


def when(timestamp: Optional[float], zone) -> str:  # noqa: ANN001 - a ZoneInfo
    return datetime.fromtimestamp(timestamp, zone).strftime("%a %H:%M") if timestamp else "-"


def waited(since: float) -> str:
    minutes = int((time.time() - since) // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def queue_rows(handoffs: List[Dict[str, Any]], names: Dict[str, str], zone) -> str:  # noqa: ANN001
    if not handoffs:
        return "<tr><td colspan=6 class=muted>No one is waiting. 🎉</td></tr>"
    rows = []
    for h in handoffs:
        rows.append(
            f"<tr data-handoff={h['id']}><td>{escape(badge(h['priority']))}"
            f"</td><td><a href=/inbox/handoffs/{h['id']}>{escape(names.get(h['id']) or '?')}"
            f"</a><div class=muted>{escape(h['conversation_id'])}</div></td>"
            f"<td>{escape(h['reason'])}</td><td>{escape(h['summary'] or '')}</td>"
            f"<td>{waited(h['created_at'])}<div class=muted>due {when(h['sla_due_at'], zone)}"
            f"</div></td><td>{escape(h['status'])}"
            f"{(' · ' + escape(h['claimed_by'])) if h['claimed_by'] else ''}</td></tr>")
    return "".join(rows)


def transcript_html(messages: List[StoredMessage], zone,  # noqa: ANN001 - a ZoneInfo
                    session: Dict[str, Any], handoff_id: int, marks: Dict[int, str]) -> str:
    """The conversation; each customer message can be marked "bot misunderstood"."""
    parts = []
    for m in messages:
        side = "in" if m.direction == "in" else "out"
        label = {"ack": "auto-ack", "reply": "bot", "agent": "agent", "csat": "bot"}.get(
            m.kind, "customer")
        flag = ""
        if m.direction == "in" and m.kind == "message":
            flag = mark_form(m.id, session, handoff_id, marks.get(m.id))
        extra = " marked" if m.id in marks else ""
        parts.append(f"<div class='msg {side}{extra}' data-message={m.id}><span class=muted>"
                     f"{label} · {when(m.created_at, zone)}</span>{flag}<br>"
                     f"{escape(m.text)}</div>")
    return "".join(parts)


def mark_form(message_id: int, session: Dict[str, Any], handoff_id: int,
              marked_by: Optional[str]) -> str:
    """The mark button, or the mark and its Undo: misreadings feed the NLU review."""
    hidden = f"{csrf_field(session)}<input type=hidden name=handoff value={handoff_id}>"
    if marked_by is None:
        return (f"<form class=mark method=post action=/inbox/messages/{message_id}/misunderstood>"
                f"{hidden}<button title='Flag for the NLU trainers&#39; review'>"
                f"Bot misunderstood</button></form>")
    return (f" <span class=flag>marked: bot misunderstood · {escape(marked_by)}</span>"
            f"<form class=mark method=post action=/inbox/messages/{message_id}/understood>"
            f"{hidden}<button>Undo</button></form>")


LIVE = """<script>
new EventSource('/inbox/events').onmessage = async () => {
  for (const el of document.querySelectorAll('[data-live]')) {
    const r = await fetch(el.dataset.live);
    if (r.ok) el.innerHTML = await r.text();
  }
};
</script>"""




def handoff_body(handoff: Dict[str, Any], conversation: Dict[str, Any], transcript: str,
                 session: Dict[str, Any], zone) -> str:  # noqa: ANN001 - a ZoneInfo
    """A conversation's page: transcript, actions, reason, case details, turns, notes."""
    handoff_id = handoff["id"]
    context = handoff["context"]
    details = "".join(f"<li>{escape(k)}: {escape(str(v))}</li>"
                      for k, v in (context.get("details") or {}).items())
    turns = "".join(
        f"<tr><td>{escape(t.get('text') or '')}</td><td>{escape(str(t.get('intent')))}</td>"
        f"<td>{t.get('confidence') or 0:.2f}</td><td>{escape(str(t.get('sentiment')))}</td></tr>"
        for t in context.get("turns") or [])
    notes = "".join(f"<li><b>{escape(n['agent'])}</b>: {escape(n['text'])}</li>"
                    for n in handoff["notes"]) or "<li class=muted>none</li>"
    form = csrf_field(session)
    actions = "" if handoff["status"] == "resolved" else (
        f"<form method=post action=/inbox/handoffs/{handoff_id}/reply>{form}"
        f"<textarea name=text aria-label=Reply placeholder='Reply to the customer'></textarea>"
        f"<button>Send reply</button></form><p>"
        f"<form method=post action=/inbox/handoffs/{handoff_id}/claim style=display:inline>"
        f"{form}<button>Claim</button></form> "
        f"<form method=post action=/inbox/handoffs/{handoff_id}/resolve style=display:inline>"
        f"{form}<button>Resolve: back to the bot</button></form></p>")
    body = (
        f"<h2>{escape(conversation.get('customer_name') or 'Customer')} · "
        f"{badge(handoff['priority'])} · <span id=status>{escape(handoff['status'])}"
        f"</span></h2><div class=cols><div><div class=card id=transcript "
        f"data-live=/inbox/handoffs/{handoff_id}/transcript>"
        f"{transcript}"
        f"</div>{actions}</div><div><div class=card><b>Reason</b>: {escape(handoff['reason'])}"
        f" {escape(context.get('detail') or '')}<br><b>Summary</b>: "
        f"{escape(handoff['summary'] or '')}<br><b>Reply due</b>: "
        f"{when(handoff['sla_due_at'], zone)}<br><b>Channel</b>: "
        f"{escape(handoff['conversation_id'])}<ul>{details}</ul></div><div class=card>"
        f"<b>Turns</b><table><tr><th>Message</th><th>Intent</th><th>Conf.</th><th>Mood</th>"
        f"</tr>{turns}</table></div><div class=card><b>Internal notes</b><ul>{notes}</ul>"
        f"<form method=post action=/inbox/handoffs/{handoff_id}/notes>{form}"
        f"<textarea name=text aria-label=Note></textarea><button>Add note</button></form>"
        f"</div></div></div>")
    return body
