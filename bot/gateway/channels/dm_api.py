"""The generic DM API, for other platforms' bridges, and the transcript.

POST /api/v1/messages                       a customer's message (stored, acknowledged)
GET  /api/v1/conversations/{id}/messages    the transcript, both directions
GET  /api/v1/openapi.yaml                   this API, described

Replies for these channels are not pushed anywhere: a bridge reads them
from the transcript (``?after=<last id seen>`` returns only newer ones).

Public posts: a message with ``"visibility": "public"`` and its ``post_id`` (a
comment or mention on a public post) joins the customer's private
conversation, so the bot carries on there without asking them to repeat it.
Its only public answer is one short line with nothing private in it (kind
``public_reply``, ``visibility`` public, once per post): the bridge posts that
under the post and everything else as a private message.
Every call but the spec needs a bridge credential (``bridges.py``): 401
without one, 403 posting to a channel not the bridge's. A bridge reads only
its own channels' transcripts; any other conversation, Telegram and web chat
ones included, is the same 404 as one that does not exist, so ids cannot be
probed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

from bot.gateway.channels.bridges import bridge_required
from bot.gateway.messages import (
    PRIVATE,
    PUBLIC,
    InboundMessage,
    InvalidMessageError,
    OutboundMessage,
)
from bot.gateway.web import after_arg, error, json_body, message_json

OPENAPI = Path(__file__).parent.parent / "openapi.yaml"
FIELDS = ("channel", "conversation_id", "sender_name", "text", "channel_message_id")
OPTIONAL = ("sender_name", "visibility", "post_id")
# Channels that deliver through the DM API; bridges fetch replies from the transcript.
API_CHANNELS = ("api", "instagram", "facebook", "whatsapp", "x", "tiktok", "sms")

dm_api = Blueprint("dm_api")  # under /api/v1 (app.py groups the versioned APIs)


class PollingChannel:
    """A channel whose customers fetch replies themselves (DM API bridges, web chat)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, external_id: str, message: OutboundMessage) -> Optional[str]:
        return None  # stored in the transcript, which the client reads

    async def typing(self, external_id: str) -> None:
        return None


@dm_api.post("/messages")
@bridge_required
async def post_message(request: Request) -> HTTPResponse:
    body = json_body(request)
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object with " + ", ".join(FIELDS))
    missing = [f for f in FIELDS if f not in OPTIONAL and f not in body]
    if missing:
        return error(400, f"missing field(s): {', '.join(missing)}")
    wrong = [f for f in FIELDS + OPTIONAL
             if body.get(f) is not None and not isinstance(body[f], str)]
    if wrong:
        return error(400, f"field(s) must be strings: {', '.join(wrong)}")
    channel = body["channel"]
    if channel not in request.app.ctx.api_channels:
        return error(400, f"unknown channel {channel!r}; use one of "
                          f"{sorted(request.app.ctx.api_channels)}")
    if channel not in request.ctx.bridge_channels:
        return error(403, f"this bridge may not post to {channel!r}; its channels are "
                          f"{sorted(request.ctx.bridge_channels)}")
    visibility = body.get("visibility") or PRIVATE
    if visibility == PUBLIC and body.get("post_id") is None:
        return error(400, "a public message needs the post_id it was written on")
    where = {key: body[key] for key in ("visibility", "post_id") if body.get(key) is not None}
    try:
        message = InboundMessage(
            channel=channel, external_id=body["conversation_id"],
            channel_message_id=body["channel_message_id"], text=body["text"],
            sender_name=body.get("sender_name"), metadata=where,
        )
    except InvalidMessageError as problem:
        return error(400, str(problem))
    received = await request.app.ctx.gateway.receive(message)
    return response.json(
        {"message_id": received.message_id, "conversation_id": message.conversation_id,
         "duplicate": received.duplicate, "acknowledged": received.acknowledge},
        status=200 if received.duplicate else 202,
    )


@dm_api.get("/conversations/<conversation_id:str>/messages")
@bridge_required
async def get_transcript(request: Request, conversation_id: str) -> HTTPResponse:
    db = request.app.ctx.gateway.db
    after = after_arg(request)
    channel = conversation_id.partition(":")[0]
    conversation = (await db.conversation(conversation_id)
                    if channel in request.ctx.bridge_channels else None)
    if conversation is None or conversation["channel"] not in request.ctx.bridge_channels:
        return error(404, f"no conversation {conversation_id!r}")
    rows = await db.transcript(conversation_id, after_id=after)
    return response.json({
        "conversation_id": conversation_id,
        "channel": conversation["channel"],
        "customer_name": conversation["customer_name"],
        "messages": [message_json(m) for m in rows],
    })


@dm_api.get("/openapi.yaml")
async def openapi(request: Request) -> HTTPResponse:
    return await response.file(str(OPENAPI), mime_type="application/yaml")
