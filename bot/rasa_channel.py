"""The gateway's way into Rasa: each customer message is one turn, however often it is sent.

    POST /webhooks/gateway/webhook          Authorization: Bearer $RASA_TOKEN
    {"sender": "telegram:42", "message": "hi", "message_id": "gw-17",
     "metadata": {...}, "retry": false}
    -> 200 [{"recipient_id", "text", "buttons", "image", "custom", ...}]   (as REST)

Why a channel of our own (registered in credentials.yml, a Rasa extension
point): the gateway must retry a message when it cannot know whether Rasa got
it (it crashed or restarted mid-call, or the call timed out). Rasa's REST
channel would run that turn twice, which can fill form slots twice and trip
"same request twice". Here the gateway's id travels as Rasa's ``message_id``
and, when the gateway marks a send as a ``retry``, the tracker is checked for
that id *under the conversation's lock*: the same ticket lock Rasa's Agent
takes (``Agent.handle_message``), so a retry that arrives while the original
is still running waits for it, then finds it. A message already handled is
answered from the tracker with the replies that turn produced; it is not run
again. First sends skip the lookup, so the usual path costs nothing more.

Unlike the REST channel this one needs RASA_TOKEN (fails closed without it)
and answers 500 when the turn fails, so the gateway retries instead of taking
half an answer for a whole one. That includes what Rasa itself carries on past
(``bot/rasa_turn.py``): a turn during which the tracker store failed, which
Rasa would answer from an empty conversation and never record; and a turn
during which a custom action failed (the action server killed or restarting),
which Rasa would save without the action's events, usually with no reply. That
turn is not saved, so the retry runs it afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.core.lock_store import LOCK_LIFETIME
from rasa.shared.core.events import BotUttered, UserUttered
from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

from bot.handoff_contract import NOT_READY_ERROR
from bot.rasa_turn import CURRENT_TURN, TurnReport, watch_for_lost_actions

log = logging.getLogger(__name__)

NAME = "gateway"


class GatewayInput(InputChannel):
    def __init__(self, token: Optional[str]) -> None:
        self.token = token

    @classmethod
    def name(cls) -> str:
        return NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        return cls(token=os.environ.get("RASA_TOKEN", "").strip() or None)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("gateway_webhook", __name__)

        @webhook.get("/")
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.post("/webhook")
        async def receive(request: Request) -> HTTPResponse:
            if not self._authorised(request):
                return response.json({"error": "missing or wrong token"}, status=401)
            body = _body(request)
            if isinstance(body, str):
                return response.json({"error": body}, status=400)
            agent = request.app.ctx.agent
            if agent is None or not agent.is_ready():
                return response.json({"error": NOT_READY_ERROR}, status=503)
            try:
                return response.json(await handle_once(agent, body))
            except Exception:  # noqa: BLE001 - the gateway retries; the log has the cause
                log.exception("gateway channel: the turn failed for message %s",
                              body["message_id"])
                return response.json({"error": "the turn failed; retry"}, status=500)

        return webhook

    def _authorised(self, request: Request) -> bool:
        if not self.token:
            log.error("gateway channel: RASA_TOKEN is not set, so every call is refused")
            return False
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode("utf-8", "backslashreplace"),
                                   self.token.encode())


def _body(request: Request) -> Any:
    """The validated body, or what is wrong with it."""
    try:
        body = request.json
    except Exception:  # noqa: BLE001 - Sanic raises on a body that is not JSON
        return "body must be JSON"
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for field in ("sender", "message", "message_id"):
        if not isinstance(body.get(field), str) or not body[field]:
            return f"{field} must be a non-empty string"
    if not isinstance(body.get("metadata", {}), dict):
        return "metadata must be an object"
    return body


class TrackerStoreFailedError(RuntimeError):
    """The tracker store failed during the turn (and Rasa carried on without it)."""


class ActionFailedError(RuntimeError):
    """A custom action failed during the turn; the turn was not saved."""


class LockWaitTimeoutError(RuntimeError):
    """The conversation's lock was not ours within LOCK_WAIT_SECONDS: the gateway retries."""


# Rasa's ticket lock lets a waiter wait for ever when its ticket is lost (the Redis
# store's read-modify-write between two Rasa processes, e.g. around a kill -9):
# past one ticket lifetime and a margin, give up; the gateway retries with a new ticket.
LOCK_WAIT_SECONDS = float(LOCK_LIFETIME) + 15.0


@contextlib.asynccontextmanager
async def bounded_lock(lock_store: Any, sender: str,
                       wait: float = LOCK_WAIT_SECONDS) -> AsyncIterator[None]:
    """Rasa's conversation lock, waited for at most ``wait`` seconds (cancelling the
    wait runs Rasa's own cleanup of the ticket)."""
    held = lock_store.lock(sender)
    try:
        await asyncio.wait_for(held.__aenter__(), wait)
    except asyncio.TimeoutError:
        raise LockWaitTimeoutError(f"no lock for the conversation within {wait:.0f}s") from None
    try:
        yield
    except BaseException as error:  # noqa: BLE001 - passed on to Rasa's context, re-raised
        if not await held.__aexit__(type(error), error, error.__traceback__):
            raise
    else:
        await held.__aexit__(None, None, None)


async def handle_once(agent: Any, body: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Run the turn, unless a retry finds it already ran: then its replies again.

    TrackerStoreFailedError when the tracker could not be read or saved: the
    turn's answer would rest on a conversation that is not the customer's.
    ActionFailedError when a custom action failed: the turn was not saved.
    """
    watch_for_lost_actions()  # once per process; a no-op after that
    report = TurnReport()
    token = CURRENT_TURN.set(report)  # for this turn only: reset below
    try:
        replies = await _handle(agent, body, report)
    finally:
        CURRENT_TURN.reset(token)
    if report.store_failed:
        raise TrackerStoreFailedError("the tracker store failed during the turn")
    if report.action_failed:
        raise ActionFailedError("a custom action failed during the turn")
    return replies


async def _handle(agent: Any, body: Dict[str, Any], report: TurnReport
                  ) -> List[Dict[str, Any]]:
    sender, message_id = body["sender"], body["message_id"]
    collector = CollectingOutputChannel()
    async with bounded_lock(agent.lock_store, sender):
        if body.get("retry"):
            earlier = await replies_to(agent, sender, message_id)
            if report.store_failed:
                raise TrackerStoreFailedError("could not read the tracker")
            if earlier is not None:
                log.info("gateway channel: message %s was already handled; replaying "
                         "its replies", message_id)
                return earlier
        await agent.processor.handle_message(UserMessage(
            body["message"], collector, sender, input_channel=NAME, message_id=message_id,
            metadata=body.get("metadata") or {}))
    return collector.messages


async def replies_to(agent: Any, sender: str, message_id: str) -> Optional[List[Dict[str, Any]]]:
    """What the bot said in reply to ``message_id``, or None if Rasa never had it."""
    tracker = await agent.tracker_store.retrieve(sender)
    events = list(tracker.events) if tracker is not None else []
    start = next((i for i, e in enumerate(events)
                  if isinstance(e, UserUttered) and e.message_id == message_id), None)
    if start is None:
        return None
    collector = CollectingOutputChannel()  # the same rendering as the live turn
    for event in events[start + 1:]:
        if isinstance(event, UserUttered):
            break
        if isinstance(event, BotUttered):
            await collector.send_response(sender, event.message())
    return collector.messages
