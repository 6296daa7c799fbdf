"""The agents' API: the handoff queue with context, reply, claim, resolve, notes.

Scripts and helpdesk bridges use it with ``Authorization: Bearer
$AGENT_API_TOKEN``. With no token configured the API is off: customer data is
never served without credentials. Every action goes through the handoff desk;
its refusals (404, 409, 503 when the bot cannot take a conversation back) are
mapped by the app's one error handler.
"""

from __future__ import annotations

import functools
import hmac
from typing import Any, Awaitable, Callable, Dict, Tuple

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from bot.gateway.web import InvalidInputError, error, iso, json_body, message_json

VIA = "api"
agent_api = Blueprint("agent_api", url_prefix="/handoffs")  # under /api/v1 (app.py)

Handler = Callable[..., Awaitable[HTTPResponse]]


def bearer_token_required(handler: Handler) -> Handler:
    """Refuse the request unless it carries the agent API's bearer token (constant time)."""

    @functools.wraps(handler)
    async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        token = request.app.ctx.settings.agent_api_token
        if not token:
            return error(403, "the agent API is off: set AGENT_API_TOKEN to enable it")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(errors="surrogateescape"), token.encode()):
            return error(401, "missing or wrong bearer token")
        return await handler(request, *args, **kwargs)

    return guarded


def handoff_json(handoff: Dict[str, Any]) -> Dict[str, Any]:
    return {
        **{k: handoff[k] for k in ("id", "conversation_id", "reason", "priority", "summary",
                                   "status", "claimed_by", "csat")},
        "context": handoff["context"],
        "notes": handoff["notes"],
        "created_at": iso(handoff["created_at"]),
        "sla_due_at": iso(handoff["sla_due_at"]),
        "claimed_at": iso(handoff["claimed_at"]) if handoff["claimed_at"] else None,
        "resolved_at": iso(handoff["resolved_at"]) if handoff["resolved_at"] else None,
    }


def agent_and_text(request: Request, need_text: bool) -> Tuple[str, str]:
    """The agent's name and text from the JSON body; InvalidInputError (400) otherwise."""
    body = json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("agent"), str) or not (
            body["agent"].strip()):
        raise InvalidInputError("body must be JSON with agent (the agent's name)")
    text = body.get("text")
    if need_text and (not isinstance(text, str) or not text.strip()):
        raise InvalidInputError("text must be a non-empty string")
    return body["agent"].strip(), (text if isinstance(text, str) else "").strip()


@agent_api.get("/")
@bearer_token_required
async def queue(request: Request) -> HTTPResponse:
    desk = request.app.ctx.gateway.handoffs
    rows = await desk.queue(include_resolved=request.args.get("all") == "1")
    return json({"handoffs": [handoff_json(h) for h in rows]})


@agent_api.get("/<handoff_id:int>")
@bearer_token_required
async def detail(request: Request, handoff_id: int) -> HTTPResponse:
    gateway = request.app.ctx.gateway
    handoff = await gateway.handoffs.handoff(handoff_id)
    transcript = await gateway.db.transcript(handoff["conversation_id"])
    conversation = await gateway.db.conversation(handoff["conversation_id"])
    return json({**handoff_json(handoff),
                 "customer_name": conversation["customer_name"] if conversation else None,
                 "channel": conversation["channel"] if conversation else None,
                 "transcript": [message_json(m) for m in transcript]})


@agent_api.post("/<handoff_id:int>/reply")
@bearer_token_required
async def reply(request: Request, handoff_id: int) -> HTTPResponse:
    agent, text = agent_and_text(request, need_text=True)
    message_id = await request.app.ctx.gateway.handoffs.reply(handoff_id, agent, text, VIA)
    return json({"message_id": message_id}, status=202)


# Actions answered with the handoff as it is afterwards: (needs text, desk method).
ACTIONS = {"claim": (False, "claim"), "resolve": (False, "resolve"), "notes": (True, "note")}


@agent_api.post("/<handoff_id:int>/<action:str>")
@bearer_token_required
async def act(request: Request, handoff_id: int, action: str) -> HTTPResponse:
    """claim, resolve (503 when the bot cannot take the conversation back) and notes."""
    if action not in ACTIONS:
        return error(404, f"no action {action!r}; use reply or one of {sorted(ACTIONS)}")
    need_text, method = ACTIONS[action]
    agent, text = agent_and_text(request, need_text=need_text)
    desk = request.app.ctx.gateway.handoffs
    args = (handoff_id, agent, text, VIA) if need_text else (handoff_id, agent, VIA)
    return json(handoff_json(await getattr(desk, method)(*args)))
