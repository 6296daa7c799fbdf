"""The agents' web inbox: the handoff queue, live, and each conversation's context.

Sign-in with an agent account (`make agent`), a server-side session behind an
HttpOnly SameSite=Strict cookie, and a CSRF token in every form. Everything
customers wrote is HTML-escaped. The queue and the open conversation update
live through server-sent events.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from http.cookies import CookieError
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set

from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

from bot.gateway.agents import inbox_pages as pages
from bot.gateway.agents.canned import conversation_values
from bot.gateway.agents.inbox_view import canned_choices, history
from bot.gateway.agents.sign_in import LoginThrottle, verify
from bot.gateway.credentials import same_secret
from bot.gateway.handoffs.errors import HandoffNotFoundError
from bot.gateway.handoffs.events import HandoffChange
from bot.gateway.messages import is_storable
from bot.gateway.rate_limits import RateLimitedError
from bot.gateway.web import client_address

COOKIE = "inbox_session"
SESSION_SECONDS = 12 * 3600
LOGIN_COOKIE, LOGIN_FORM_SECONDS = "inbox_login", 3600  # the sign-in form's CSRF token
USERNAME_MAX, PASSWORD_MAX = 64, 1024  # longer is no account's, and costs scrypt time
VIA = "inbox"

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

    async def on_handoff_change(self, change: HandoffChange) -> None:
        """Any change to any handoff, from any surface: open pages fetch it again."""
        self.changed()


# --- who may call: guards as decorators -------------------------------------
Handler = Callable[..., Awaitable[HTTPResponse]]


def cookie(request: Request, name: str) -> Optional[str]:
    """A cookie's value; None too when the Cookie header cannot be parsed at all."""
    try:
        return request.cookies.get(name)
    except CookieError:
        return None


async def current_session(request: Request) -> Optional[Dict[str, Any]]:
    token = cookie(request, COOKIE)
    return await request.app.ctx.gateway.db.session(token) if token else None


def post_allowed(request: Request, session: Dict[str, Any]) -> bool:
    given = (request.form.get("csrf") or "") if request.form else ""
    return same_secret(given, session["csrf"])


def to_login() -> HTTPResponse:
    return response.redirect("/inbox/login")


def signed_in(page: bool = True) -> Callable[[Handler], Handler]:
    """Only for a signed-in agent (``request.ctx.session``); a page sends others to sign in,
    a fragment or feed answers 401."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            session = await current_session(request)
            if session is None:
                return to_login() if page else response.text("sign in first", status=401)
            request.ctx.session = session
            return await handler(request, *args, **kwargs)

        return guarded

    return decorate


def form_post(handler: Handler) -> Handler:
    """A form post by a signed-in agent carrying the page's CSRF token."""

    @functools.wraps(handler)
    async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        session = await current_session(request)
        if session is None:
            return to_login()
        if not post_allowed(request, session):
            return response.text("This form has expired; reload the page and try again.",
                                 status=403)
        request.ctx.session = session
        return await handler(request, *args, **kwargs)

    return guarded


@inbox.get("/login")
async def login_page(request: Request, error: str = "") -> HTTPResponse:
    """The sign-in form, with a CSRF token that is also set as a short-lived cookie.

    A login form posted from another site (login CSRF, e.g. to sign a victim
    into the attacker's account) carries no matching cookie and is refused.
    """
    token = cookie(request, LOGIN_COOKIE) or secrets.token_urlsafe(32)
    result = pages.login_page(error, csrf=token)
    _set_cookie(request, result, LOGIN_COOKIE, token, LOGIN_FORM_SECONDS)
    return result


def _set_cookie(request: Request, result: HTTPResponse, name: str, value: str,
                max_age: int) -> None:
    """HttpOnly, SameSite=Strict, only under /inbox; Secure when served over HTTPS
    (directly, or behind a proxy trusted with TRUST_PROXY)."""
    result.cookies[name] = value
    result.cookies[name]["httponly"] = True
    result.cookies[name]["samesite"] = "Strict"
    result.cookies[name]["max-age"] = max_age
    result.cookies[name]["path"] = "/inbox"
    result.cookies[name]["secure"] = request.scheme == "https"


@inbox.post("/login")
async def login(request: Request) -> HTTPResponse:
    db = request.app.ctx.gateway.db
    throttle: LoginThrottle = request.app.ctx.login_throttle
    username = (request.form.get("username") or "").strip().lower()[:USERNAME_MAX]
    password = (request.form.get("password") or "")[:PASSWORD_MAX]
    if not (is_storable(username) and is_storable(password)):  # no account has such a name,
        username, password = "", ""  # no hash takes such a password: a wrong sign-in
    address = client_address(request)
    expected = cookie(request, LOGIN_COOKIE) or ""
    given = request.form.get("csrf") or ""
    if not expected or not same_secret(given, expected):
        return response.text("This form has expired; reload the page and try again.",
                             status=403)
    try:
        throttle.check(username, address)
    except RateLimitedError as refused:
        result = await login_page(request, str(refused))
        result.status = refused.status
        result.headers["Retry-After"] = str(refused.retry_after)
        return result
    account = await db.agent(username) if username else None
    if not await verify(account, password):
        throttle.failed(username, address)
        result = await login_page(request, "Wrong username or password.")
        result.status = 401
        return result
    throttle.succeeded(username)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    await db.open_session(token, username, csrf, time.time() + SESSION_SECONDS)
    result = response.redirect("/inbox/", status=303)
    _set_cookie(request, result, COOKIE, token, SESSION_SECONDS)
    return result


@inbox.post("/logout")
async def logout(request: Request) -> HTTPResponse:
    session = await current_session(request)
    if session and post_allowed(request, session):
        await request.app.ctx.gateway.db.close_session(session["token"])
    result = to_login()
    del result.cookies[COOKIE]
    return result


# --- the queue and a conversation -------------------------------------------
async def _names(db, handoffs) -> Dict[int, str]:  # noqa: ANN001 - an AsyncStore
    names = {}
    for h in handoffs:
        conversation = await db.conversation(h["conversation_id"])
        names[h["id"]] = (conversation or {}).get("customer_name") or "Customer"
    return names


@inbox.get("/")
@signed_in()
async def queue_page(request: Request) -> HTTPResponse:
    return pages.queue_page(await _queue_rows(request), request.ctx.session)


async def _queue_rows(request: Request) -> List[Dict[str, Any]]:
    gateway = request.app.ctx.gateway
    handoffs = await gateway.handoffs.queue()
    awaiting = await gateway.db.awaiting_answer([h["conversation_id"] for h in handoffs])
    rows = pages.queue_rows(handoffs, await _names(gateway.db, handoffs), gateway.profile
                            .opening_hours.zone, awaiting)
    return await gateway.follow_ups.mark_queue(handoffs, rows)  # "due soon" / "overdue"


@inbox.get("/queue")
@signed_in(page=False)
async def queue_fragment(request: Request) -> HTTPResponse:
    return response.html(pages.queue_fragment(await _queue_rows(request)))


@inbox.get("/handoffs/<handoff_id:int>")
@signed_in()
async def handoff_page(request: Request, handoff_id: int) -> HTTPResponse:
    session = request.ctx.session
    gateway = request.app.ctx.gateway
    handoff = await gateway.db.handoff(handoff_id)
    if handoff is None:
        page = pages.not_found_page(session)
        page.status = 404
        return page
    zone = gateway.profile.opening_hours.zone
    conversation = await gateway.db.conversation(handoff["conversation_id"]) or {}
    lines = await _transcript_lines(gateway.db, handoff, zone)
    return pages.handoff_page(handoff, conversation, lines, session, zone,
                              await _around(request, handoff, conversation, lines))


async def _around(request: Request, handoff: Dict[str, Any], conversation: Dict[str, Any],
                  lines: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The handoff page's surroundings: the queue, the conversation's earlier cases, the
    canned replies filled for this customer, and the one picked without JavaScript
    (``?canned=key``; an unknown key picks none)."""
    gateway = request.app.ctx.gateway
    values = conversation_values(
        gateway.profile, conversation.get("customer_name"), request.ctx.session["display_name"],
        handoff["context"].get("details") or {},
        [line["text"] for line in lines if line["side"] == "in"])
    canned = canned_choices(request.app.ctx.canned_replies, values)
    picked = request.args.get("canned") or ""
    return {"rows": await _queue_rows(request),
            "history": history(await gateway.db.handoffs_of_conversation(
                handoff["conversation_id"]), handoff["id"], gateway.profile.opening_hours.zone),
            "canned": canned,
            "draft": next((c["text"] for c in canned if c["key"] == picked), "")}


async def _transcript_lines(db, handoff: Dict[str, Any],  # noqa: ANN001 - an AsyncStore
                            zone) -> List[Dict[str, Any]]:  # noqa: ANN001 - a ZoneInfo
    conversation_id = handoff["conversation_id"]
    return pages.transcript_lines(await db.transcript(conversation_id),
                                  await db.misunderstood_ids(conversation_id), zone)


@inbox.get("/handoffs/<handoff_id:int>/transcript")
@signed_in(page=False)
async def transcript_fragment(request: Request, handoff_id: int) -> HTTPResponse:
    gateway = request.app.ctx.gateway
    handoff = await gateway.db.handoff(handoff_id)
    if handoff is None:
        return response.text("no such handoff", status=404)
    lines = await _transcript_lines(gateway.db, handoff, gateway.profile.opening_hours.zone)
    return response.html(pages.transcript_fragment(lines, handoff_id, request.ctx.session))


@inbox.post("/handoffs/<handoff_id:int>/<action:str>")
@form_post
async def act(request: Request, handoff_id: int, action: str) -> HTTPResponse:
    """The page's buttons, through the handoff desk (its refusals: the app's error handler)."""
    desk = request.app.ctx.gateway.handoffs
    if action not in {"reply", "claim", "resolve", "notes"}:
        return response.text("not found", status=404)
    agent = request.ctx.session["display_name"]
    text = (request.form.get("text") or "").strip()
    if action == "reply" and text:
        await desk.reply(handoff_id, agent, text, VIA)
    elif action == "claim":
        await desk.claim(handoff_id, agent, VIA)
    elif action == "notes" and text:
        await desk.note(handoff_id, agent, text, VIA)
    elif action == "resolve":
        await desk.resolve(handoff_id, agent, VIA)
    else:
        await desk.handoff(handoff_id)  # an empty reply or note: nothing to do, if it exists
    return response.redirect(f"/inbox/handoffs/{handoff_id}", status=303)


@inbox.post("/messages/<message_id:int>/misunderstood")
@form_post
async def mark_misunderstood(request: Request, message_id: int) -> HTTPResponse:
    return await _mark(request, message_id, marked=True)


@inbox.post("/messages/<message_id:int>/understood")
@form_post
async def unmark_misunderstood(request: Request, message_id: int) -> HTTPResponse:
    return await _mark(request, message_id, marked=False)


async def _mark(request: Request, message_id: int, marked: bool) -> HTTPResponse:
    """Set or undo a "bot misunderstood" mark, then go back to the handoff."""
    try:
        handoff_id = int(request.form.get("handoff") or "")
    except ValueError:
        handoff_id = 0
    desk = request.app.ctx.gateway.handoffs
    try:
        await desk.mark_misunderstood(handoff_id, message_id, marked,
                                      request.ctx.session["display_name"],
                                      (request.form.get("note") or "").strip(), VIA)
    except HandoffNotFoundError:
        return response.text("No such handoff to return to.", status=404)
    except ValueError as error:  # unknown message, or not a customer's
        return response.text(str(error), status=400)
    return response.redirect(f"/inbox/handoffs/{handoff_id}", status=303)


@inbox.get("/events")
@signed_in(page=False)
async def events(request: Request) -> Optional[HTTPResponse]:
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
