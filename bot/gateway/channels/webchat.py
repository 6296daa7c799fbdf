"""A local web chat page, so a person can DM the bot from a browser.

`make run` offers it when no Telegram token is set. The page keeps a session
id in localStorage, posts what the customer types, and polls for replies.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

from bot.gateway.messages import (
    InboundMessage,
    InvalidMessageError,
    check_id,
    conversation_id,
)
from bot.gateway.web import after_arg, error, json_body, message_json

PAGE = Path(__file__).parent.parent / "static" / "webchat.html"
CHANNEL = "webchat"

webchat = Blueprint("webchat", url_prefix="/chat")


@webchat.get("/")
async def page(request: Request) -> HTTPResponse:
    html = PAGE.read_text(encoding="utf-8").replace(
        "{{brand}}", request.app.ctx.gateway.profile.name)
    return response.html(html)


@webchat.post("/api/messages")
async def post(request: Request) -> HTTPResponse:
    body = json_body(request)
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object with session and text")
    session, text = body.get("session"), body.get("text")
    payload = body.get("payload")
    if not isinstance(session, str) or not 8 <= len(session) <= 64:
        return error(400, "session must be a string of 8-64 characters")
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
    session = request.args.get("session", "")
    try:
        check_id("session", session)
    except InvalidMessageError as problem:
        return error(400, str(problem))
    after = after_arg(request)
    rows = await request.app.ctx.gateway.db.transcript(conversation_id(CHANNEL, session), after)
    return response.json({"messages": [message_json(m) for m in rows]})
