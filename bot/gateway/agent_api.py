"""The agents' API: the handoff queue with context, reply, claim, resolve, notes.

Agent surfaces (the web inbox, scripts, a helpdesk bridge) use it with
``Authorization: Bearer $AGENT_API_TOKEN``. With no token configured the API
is off: customer data is never served without credentials.
"""

from __future__ import annotations

import hmac
from typing import Any, Dict, Optional

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from bot.gateway.http_api import error, iso, json_body, message_json

agents = Blueprint("agent_api", url_prefix="/api/v1/handoffs")


def authorised(request: Request) -> Optional[HTTPResponse]:
    """None when the bearer token is right, else the error response to send."""
    token = request.app.ctx.settings.agent_api_token
    if not token:
        return error(403, "the agent API is off: set AGENT_API_TOKEN to enable it")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return error(401, "missing or wrong bearer token")
    return None


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


def agent_and_text(request: Request, need_text: bool):  # noqa: ANN201
    body = json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("agent"), str) or not (
            body["agent"].strip()):
        return None, None, error(400, "body must be JSON with agent (the agent's name)")
    text = body.get("text")
    if need_text and (not isinstance(text, str) or not text.strip()):
        return None, None, error(400, "text must be a non-empty string")
    return body["agent"].strip(), (text or "").strip(), None


@agents.get("/")
async def queue(request: Request) -> HTTPResponse:
    denied = authorised(request)
    if denied:
        return denied
    store = request.app.ctx.gateway.store
    rows = store.handoff_queue(include_resolved=request.args.get("all") == "1")
    return json({"handoffs": [handoff_json(h) for h in rows]})


@agents.get("/<handoff_id:int>")
async def detail(request: Request, handoff_id: int) -> HTTPResponse:
    denied = authorised(request)
    if denied:
        return denied
    store = request.app.ctx.gateway.store
    handoff = store.handoff(handoff_id)
    if handoff is None:
        return error(404, f"no handoff {handoff_id}")
    transcript = store.transcript(handoff["conversation_id"])
    conversation = store.conversation(handoff["conversation_id"])
    return json({**handoff_json(handoff),
                 "customer_name": conversation["customer_name"] if conversation else None,
                 "channel": conversation["channel"] if conversation else None,
                 "transcript": [message_json(m) for m in transcript]})


@agents.post("/<handoff_id:int>/reply")
async def reply(request: Request, handoff_id: int) -> HTTPResponse:
    denied = authorised(request)
    if denied:
        return denied
    agent, text, problem = agent_and_text(request, need_text=True)
    if problem:
        return problem
    try:
        message_id = await request.app.ctx.gateway.agent_reply(handoff_id, agent, text)
    except LookupError as missing:
        return error(404, str(missing))
    request.app.ctx.inbox_events.changed()
    return json({"message_id": message_id}, status=202)


@agents.post("/<handoff_id:int>/claim")
async def claim(request: Request, handoff_id: int) -> HTTPResponse:
    return await _simple(request, handoff_id, "claim")


@agents.post("/<handoff_id:int>/resolve")
async def resolve(request: Request, handoff_id: int) -> HTTPResponse:
    return await _simple(request, handoff_id, "resolve")


@agents.post("/<handoff_id:int>/notes")
async def note(request: Request, handoff_id: int) -> HTTPResponse:
    return await _simple(request, handoff_id, "note")


async def _simple(request: Request, handoff_id: int, what: str) -> HTTPResponse:
    denied = authorised(request)
    if denied:
        return denied
    agent, text, problem = agent_and_text(request, need_text=what == "note")
    if problem:
        return problem
    gateway = request.app.ctx.gateway
    handoff = gateway.store.handoff(handoff_id)
    if handoff is None:
        return error(404, f"no handoff {handoff_id}")
    if what == "claim":
        gateway.store.claim_handoff(handoff_id, agent)
    elif what == "note":
        gateway.store.add_note(handoff_id, agent, text)
    elif handoff["status"] == "resolved":
        return error(409, f"handoff {handoff_id} is already resolved")
    else:
        await gateway.resolve(handoff_id, agent)
    request.app.ctx.inbox_events.changed()
    return json(handoff_json(gateway.store.handoff(handoff_id)))
