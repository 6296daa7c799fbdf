"""A local web chat page, so a person can DM the bot from a browser.

`make run` offers it when no Telegram token is set. When a chat starts, the
page asks for a session (``POST /chat/api/sessions``): a random id and a
secret (each from ``secrets``, 128 and 256 bits), of which the store keeps
only the secret's digest. The page keeps both in localStorage and sends
``Authorization: Bearer <secret>`` with every post and poll, so knowing or
guessing a conversation id is not enough to read or write it: a wrong or
missing secret and an unknown session are the same 401.
"""

from __future__ import annotations

import re
import secrets
import uuid
from pathlib import Path
from typing import Optional

from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

from bot.gateway.credentials import bearer, digest, matches, new_secret
from bot.gateway.messages import InboundMessage, InvalidMessageError, conversation_id
from bot.gateway.rate_limits import RateLimitedError
from bot.gateway.web import after_arg, client_address, error, json_body, message_json

PAGE = Path(__file__).parent.parent / "static" / "webchat.html"
CHANNEL = "webchat"
SESSION = re.compile(r"[A-Za-z0-9_\-]{8,64}")
REFUSED = "unknown chat session or wrong secret; start a new chat"

webchat = Blueprint("webchat", url_prefix="/chat")


@webchat.get("/")
async def page(request: Request) -> HTTPResponse:
    html = PAGE.read_text(encoding="utf-8").replace(
        "{{brand}}", request.app.ctx.gateway.profile.name)
    return response.html(html)


@webchat.post("/api/sessions")
async def start(request: Request) -> HTTPResponse:
    """A new chat: its id and secret, shown once (only the digest is stored).

    CHAT_SESSIONS_PER_HOUR per client address, so nobody fills the store with chats.
    """
    wait = request.app.ctx.chat_sessions.take(client_address(request))
    if wait > 0:
        raise RateLimitedError("too many new chats from this address; try again later", wait)
    session, secret = secrets.token_urlsafe(16), new_secret()
    await request.app.ctx.gateway.db.open_chat(session, digest(secret))
    return response.json({"session": session, "secret": secret}, status=201)


async def _authorised(request: Request, session: object) -> Optional[str]:
    """The session, when the request proves it holds that chat's secret; else None."""
    secret = bearer(request)
    if not isinstance(session, str) or not SESSION.fullmatch(session) or secret is None:
        return None
    stored = await request.app.ctx.gateway.db.chat_secret_digest(session)
    return session if stored is not None and matches(secret, stored) else None


@webchat.post("/api/messages")
async def post(request: Request) -> HTTPResponse:
    body = json_body(request)
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object with session and text")
    session = await _authorised(request, body.get("session"))
    if session is None:
        return error(401, REFUSED)
    text, payload = body.get("text"), body.get("payload")
    try:
        message = InboundMessage(
            channel=CHANNEL, external_id=session,
            channel_message_id=str(body.get("client_id") or uuid.uuid4()),
            text=text if isinstance(text, str) else "",
            payload=payload if isinstance(payload, str) and payload.startswith("/") else None,
            sender_name=body.get("name") if isinstance(body.get("name"), str) else None,
        )
    except InvalidMessageError as problem:
        return error(400, str(problem))
    received = await request.app.ctx.gateway.receive(message)
    return response.json({"message_id": received.message_id}, status=202)


@webchat.get("/api/messages")
async def poll(request: Request) -> HTTPResponse:
    after = after_arg(request)
    session = await _authorised(request, request.args.get("session", ""))
    if session is None:
        return error(401, REFUSED)
    rows = await request.app.ctx.gateway.db.transcript(conversation_id(CHANNEL, session), after)
    return response.json({"messages": [message_json(m) for m in rows]})
