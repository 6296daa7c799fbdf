"""The agents' web inbox: the handoff queue, live, and each conversation's context.

Sign-in with an agent account (`make agent`), a server-side session behind an
HttpOnly SameSite=Strict cookie, and a CSRF token in every form. Everything
customers wrote is HTML-escaped. The queue and the open conversation update
live through server-sent events.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from datetime import datetime
from html import escape
from typing import Any, Dict, List, Optional, Set, Tuple

from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

from bot.gateway.agent_accounts import check_password
from bot.gateway.rasa_client import RasaUnavailableError
from bot.gateway.store import StoredMessage

COOKIE = "inbox_session"
SESSION_SECONDS = 12 * 3600
BADGE = {"urgent": "🔴 urgent", "high": "🟠 high", "normal": "🟡 normal", "low": "⚪ low"}

inbox = Blueprint("inbox", url_prefix="/inbox")


class InboxEvents:
    """Agent surface that pushes 'something changed' to every open inbox page."""

    def __init__(self) -> None:
        self._subscribers: Set[asyncio.Queue] = set()

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=100)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    def changed(self, what: str = "queue") -> None:
        for queue in list(self._subscribers):
            if not queue.full():
                queue.put_nowait(what)

    async def on_handoff(self, handoff_id: int) -> None:
        self.changed()

    async def on_customer_message(self, conversation_id: str, message: StoredMessage) -> None:
        self.changed()


# --- pages ---------------------------------------------------------------
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
            f"<tr data-handoff={h['id']}><td>{BADGE.get(h['priority'], escape(h['priority']))}"
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


# --- session handling ------------------------------------------------------
def current_session(request: Request) -> Optional[Dict[str, Any]]:
    token = request.cookies.get(COOKIE)
    return request.app.ctx.gateway.store.session(token) if token else None


def post_allowed(request: Request, session: Dict[str, Any]) -> bool:
    given = (request.form.get("csrf") or "") if request.form else ""
    return hmac.compare_digest(given.encode(), session["csrf"].encode())


def form_session(request: Request) -> Tuple[Dict[str, Any], Optional[HTTPResponse]]:
    """The agent behind a form post, or the response refusing it (sign in, expired form)."""
    session = current_session(request)
    if session is None:
        return {}, to_login()
    if not post_allowed(request, session):
        return session, response.text("This form has expired; reload the page and try again.",
                                      status=403)
    return session, None


def to_login() -> HTTPResponse:
    return response.redirect("/inbox/login")


@inbox.get("/login")
async def login_page(request: Request, error: str = "") -> HTTPResponse:
    message = f"<p class=error>{escape(error)}</p>" if error else ""
    return page("Sign in", f"<h2>Sign in</h2>{message}<form method=post action=/inbox/login>"
                           "<p><label>Username <input name=username autocomplete=username>"
                           "</label></p><p><label>Password <input name=password type=password "
                           "autocomplete=current-password></label></p><button>Sign in</button>"
                           "</form>")


@inbox.post("/login")
async def login(request: Request) -> HTTPResponse:
    store = request.app.ctx.gateway.store
    username = (request.form.get("username") or "").strip().lower()
    password = request.form.get("password") or ""
    account = store.agent(username) if username else None
    if account is None or not check_password(password, account["password_hash"]):
        result = await login_page(request, "Wrong username or password.")
        result.status = 401
        return result
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store.open_session(token, username, csrf, time.time() + SESSION_SECONDS)
    result = response.redirect("/inbox/", status=303)
    result.cookies[COOKIE] = token
    result.cookies[COOKIE]["httponly"] = True
    result.cookies[COOKIE]["samesite"] = "Strict"
    result.cookies[COOKIE]["max-age"] = SESSION_SECONDS
    result.cookies[COOKIE]["path"] = "/inbox"
    return result


@inbox.post("/logout")
async def logout(request: Request) -> HTTPResponse:
    session = current_session(request)
    if session and post_allowed(request, session):
        request.app.ctx.gateway.store.close_session(session["token"])
    result = to_login()
    del result.cookies[COOKIE]
    return result


# --- the queue and a conversation -------------------------------------------
def _names(store, handoffs) -> Dict[int, str]:  # noqa: ANN001
    names = {}
    for h in handoffs:
        conversation = store.conversation(h["conversation_id"])
        names[h["id"]] = (conversation or {}).get("customer_name") or "Customer"
    return names


@inbox.get("/")
async def queue_page(request: Request) -> HTTPResponse:
    session = current_session(request)
    if session is None:
        return to_login()
    return page("Inbox", "<h2>Waiting for a person</h2><table><thead><tr><th>Priority</th>"
                         "<th>Customer</th><th>Reason</th><th>Summary</th><th>Waiting</th>"
                         "<th>Status</th></tr></thead><tbody id=queue data-live=/inbox/queue>"
                         + await _queue_fragment(request) + "</tbody></table>" + LIVE, session)


async def _queue_fragment(request: Request) -> str:
    gateway = request.app.ctx.gateway
    handoffs = gateway.store.handoff_queue()
    return queue_rows(handoffs, _names(gateway.store, handoffs), gateway.profile
                      .opening_hours.zone)


@inbox.get("/queue")
async def queue_fragment(request: Request) -> HTTPResponse:
    if current_session(request) is None:
        return response.text("sign in first", status=401)
    return response.html(await _queue_fragment(request))


@inbox.get("/handoffs/<handoff_id:int>")
async def handoff_page(request: Request, handoff_id: int) -> HTTPResponse:
    session = current_session(request)
    if session is None:
        return to_login()
    gateway = request.app.ctx.gateway
    handoff = gateway.store.handoff(handoff_id)
    if handoff is None:
        return page("Not found", "<p>No such handoff.</p>", session)
    zone = gateway.profile.opening_hours.zone
    conversation = gateway.store.conversation(handoff["conversation_id"]) or {}
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
        f"{BADGE.get(handoff['priority'], '')} · <span id=status>{escape(handoff['status'])}"
        f"</span></h2><div class=cols><div><div class=card id=transcript "
        f"data-live=/inbox/handoffs/{handoff_id}/transcript>"
        f"{_transcript(gateway.store, handoff, session, zone)}"
        f"</div>{actions}</div><div><div class=card><b>Reason</b>: {escape(handoff['reason'])}"
        f" {escape(context.get('detail') or '')}<br><b>Summary</b>: "
        f"{escape(handoff['summary'] or '')}<br><b>Reply due</b>: "
        f"{when(handoff['sla_due_at'], zone)}<br><b>Channel</b>: "
        f"{escape(handoff['conversation_id'])}<ul>{details}</ul></div><div class=card>"
        f"<b>Turns</b><table><tr><th>Message</th><th>Intent</th><th>Conf.</th><th>Mood</th>"
        f"</tr>{turns}</table></div><div class=card><b>Internal notes</b><ul>{notes}</ul>"
        f"<form method=post action=/inbox/handoffs/{handoff_id}/notes>{form}"
        f"<textarea name=text aria-label=Note></textarea><button>Add note</button></form>"
        f"</div></div></div>" + LIVE)
    return page("Conversation", body, session)


def _transcript(store, handoff: Dict[str, Any], session: Dict[str, Any],
                zone) -> str:  # noqa: ANN001 - a Store and a ZoneInfo
    conversation_id = handoff["conversation_id"]
    return transcript_html(store.transcript(conversation_id), zone, session, handoff["id"],
                           store.misunderstood_ids(conversation_id))


@inbox.get("/handoffs/<handoff_id:int>/transcript")
async def transcript_fragment(request: Request, handoff_id: int) -> HTTPResponse:
    session = current_session(request)
    if session is None:
        return response.text("sign in first", status=401)
    gateway = request.app.ctx.gateway
    handoff = gateway.store.handoff(handoff_id)
    if handoff is None:
        return response.text("no such handoff", status=404)
    return response.html(_transcript(gateway.store, handoff, session,
                                     gateway.profile.opening_hours.zone))


@inbox.post("/handoffs/<handoff_id:int>/<action:str>")
async def act(request: Request, handoff_id: int, action: str) -> HTTPResponse:
    session, refusal = form_session(request)
    if refusal:
        return refusal
    gateway = request.app.ctx.gateway
    if gateway.store.handoff(handoff_id) is None or action not in {
            "reply", "claim", "resolve", "notes"}:
        return response.text("not found", status=404)
    agent = session["display_name"]
    text = (request.form.get("text") or "").strip()
    try:
        if action == "reply" and text:
            await gateway.agent_reply(handoff_id, agent, text)
        elif action == "claim":
            gateway.store.claim_handoff(handoff_id, agent)
        elif action == "notes" and text:
            gateway.store.add_note(handoff_id, agent, text)
        elif action == "resolve" and gateway.store.handoff(handoff_id)["status"] != "resolved":
            await gateway.resolve(handoff_id, agent)
    except RasaUnavailableError:
        return response.text("The bot is unavailable, so the conversation stays with you. "
                             "Try again in a minute.", status=503)
    request.app.ctx.inbox_events.changed()
    return response.redirect(f"/inbox/handoffs/{handoff_id}", status=303)


@inbox.post("/messages/<message_id:int>/misunderstood")
async def mark_misunderstood(request: Request, message_id: int) -> HTTPResponse:
    return await _mark(request, message_id, marked=True)


@inbox.post("/messages/<message_id:int>/understood")
async def unmark_misunderstood(request: Request, message_id: int) -> HTTPResponse:
    return await _mark(request, message_id, marked=False)


async def _mark(request: Request, message_id: int, marked: bool) -> HTTPResponse:
    """Set or undo a "bot misunderstood" mark, then go back to the handoff."""
    session, refusal = form_session(request)
    if refusal:
        return refusal
    store = request.app.ctx.gateway.store
    try:
        handoff_id = int(request.form.get("handoff") or "")
    except ValueError:
        handoff_id = 0
    if store.handoff(handoff_id) is None:
        return response.text("No such handoff to return to.", status=404)
    try:
        if marked:
            store.mark_misunderstood(message_id, session["display_name"],
                                     (request.form.get("note") or "").strip())
        else:
            store.unmark_misunderstood(message_id)
    except ValueError as error:  # unknown message, or not a customer's
        return response.text(str(error), status=400)
    request.app.ctx.inbox_events.changed()
    return response.redirect(f"/inbox/handoffs/{handoff_id}", status=303)


@inbox.get("/events")
async def events(request: Request) -> Optional[HTTPResponse]:
    if current_session(request) is None:
        return response.text("sign in first", status=401)
    feed: InboxEvents = request.app.ctx.inbox_events
    queue = feed.subscribe()
    stream = await request.respond(content_type="text/event-stream",
                                   headers={"Cache-Control": "no-cache"})
    try:
        await stream.send("retry: 2000\n\n")
        while True:
            try:
                what = await asyncio.wait_for(queue.get(), timeout=15)
                await stream.send(f"data: {what}\n\n")
            except asyncio.TimeoutError:
                await stream.send(": keep-alive\n\n")
    finally:
        feed.unsubscribe(queue)
    return None
