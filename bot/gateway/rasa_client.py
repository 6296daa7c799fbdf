"""Talking to the Rasa server: customers' messages through our own channel
(``bot/rasa_channel.py``: each message one turn, however often it is sent),
the hand-back after a handoff through its HTTP API (``--enable-api``).

Timeout: Rasa's worst case for one message is its wait for the action server
(rasa.utils.endpoints DEFAULT_REQUEST_TIMEOUT, 300 s) on top of the NLU, so
the client waits longer (``RASA_TIMEOUT_SECONDS``, 330 s) and Rasa gives up
first. A model is loaded before Rasa takes messages (and a new one is swapped
in behind the old), so loading never adds to a call. Should a call still time
out, its retry is safe: the channel finds the message in the tracker.

Several Rasa processes (``RASA_URL=http://a:5005,http://b:5005``, sharing
trackers in PostgreSQL and locks in Redis): a conversation always goes to the
same one (by a stable hash of its id), and to the next one while that one
cannot be reached or is still loading its model (a 503 saying so: the message
was not taken in). The gateway sends one message of a conversation at a time,
and Rasa's Redis lock store serialises whatever a failover overlaps.

The HTTP API is guarded by Rasa's ``--auth-token``. Rasa 3.6 reads that token
only from the ``token`` query parameter (``requires_auth`` in rasa/server.py;
``Authorization: Bearer`` is for JWTs), so it goes there, on API calls only;
the gateway's logging redacts ``token=`` (``bot.gateway.logs``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import httpx

from bot.gateway.conversation_ids import is_addressable, path_segment
from bot.gateway.messages import OutboundMessage
from bot.handoff_contract import NOT_READY_ERROR, RESOLVED_INTENT, HandoffPayload


@dataclass
class RasaReply:
    messages: List[OutboundMessage]
    handoff: Optional[HandoffPayload] = None  # from action_escalate: a person takes over


class RasaUnavailableError(RuntimeError):
    """Rasa did not answer (down, overloaded or erroring): try again later."""


class RasaUnreachableError(RasaUnavailableError):
    """No connection at all: the message surely did not arrive, so another Rasa may take it."""


class UnaddressableConversationError(RasaUnavailableError):
    """Rasa's HTTP API cannot address this id (see bot.gateway.conversation_ids).

    A kind of RasaUnavailableError so that a resolve leaves the conversation
    with the agent, as for any hand-back Rasa cannot take.
    """


DEFAULT_TIMEOUT_SECONDS = 330.0


class RasaClient:
    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 token: Optional[str] = None) -> None:
        self.bases = [u.strip().rstrip("/") for u in url.split(",") if u.strip()]
        if not self.bases:
            raise ValueError("RASA_URL names no Rasa server")
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))
        self._api_params = {"token": token} if token else {}
        self._channel_headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def send(self, conversation_id: str, text: str,
                   metadata: Optional[Dict[str, Any]] = None, message_id: str = "",
                   retry: bool = False) -> RasaReply:
        """One customer message in; the bot's replies, and a handoff request if any.

        ``message_id`` is the gateway's, unique per message; ``retry`` says this
        message may have reached Rasa before, so Rasa looks it up first.
        """
        body = {"sender": conversation_id, "message": text, "metadata": metadata or {},
                "message_id": message_id, "retry": retry}
        replies = await self._post_routed(conversation_id, "/webhooks/gateway/webhook", body,
                                          headers=self._channel_headers)
        if not isinstance(replies, list) or not all(isinstance(r, dict) for r in replies):
            raise RasaUnavailableError("Rasa's answer is not a list of messages")
        handoff = next((payload for payload in (HandoffPayload.from_custom(r.get("custom"))
                                                for r in replies) if payload), None)
        return RasaReply(_messages(replies), handoff)

    async def hand_back(self, conversation_id: str) -> List[OutboundMessage]:
        """A person is done: Rasa takes the conversation back; returns what the bot says.

        Rasa's pause is lifted first (a paused conversation runs no actions),
        then the hand-back event (``RESOLVED_INTENT``) is triggered; its action clears the handoff's
        slots and asks for a rating, in the brand's words from domain.yml.
        """
        if not is_addressable(conversation_id):
            raise UnaddressableConversationError(
                f"conversation id {conversation_id!r} cannot be addressed in Rasa's HTTP API")
        conversation = f"/conversations/{path_segment(conversation_id)}"
        api = {**self._api_params, "include_events": "NONE"}
        # Messages logged during the pause have no action_listen before them;
        # one here makes the hand-back a normal turn that Rasa's rules match.
        await self._post_routed(
            conversation_id, f"{conversation}/tracker/events",
            [{"event": "resume"}, {"event": "action", "name": "action_listen"}], params=api)
        triggered = await self._post_routed(conversation_id, f"{conversation}/trigger_intent",
                                            {"name": RESOLVED_INTENT}, params=api)
        return _messages(triggered.get("messages") or [])

    def route(self, conversation_id: str) -> List[str]:
        """The Rasa servers to try for this conversation, its own first."""
        first = zlib.crc32(conversation_id.encode()) % len(self.bases)
        return self.bases[first:] + self.bases[:first]

    async def _post_routed(self, conversation_id: str, path: str, body: Any,
                           **options: Any) -> Any:
        """POST to the conversation's Rasa; to the next one only if it cannot be reached."""
        servers = self.route(conversation_id)
        for base in servers[:-1]:
            try:
                return await self._post(base + path, body, **options)
            except RasaUnreachableError:
                continue
        return await self._post(servers[-1] + path, body, **options)

    async def _post(self, url: str, body: Any, params: Optional[Dict[str, str]] = None,
                    headers: Optional[Dict[str, str]] = None) -> Any:
        """Rasa's JSON answer; RasaUnavailableError when there is none to be had."""
        try:
            response = await self._client.post(url, json=body, params=params, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise RasaUnreachableError(f"{type(error).__name__}: {error}") from None
        except httpx.HTTPError as error:
            raise RasaUnavailableError(f"{type(error).__name__}: {error}") from None
        if response.status_code == 503 and _says(response, NOT_READY_ERROR):
            # Still loading its model (e.g. just restarted): it took nothing in.
            raise RasaUnreachableError(f"HTTP 503: {NOT_READY_ERROR}")
        if response.status_code >= 400:
            raise RasaUnavailableError(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError:
            raise RasaUnavailableError(f"not JSON: {response.text[:200]!r}") from None

    async def close(self) -> None:
        await self._client.aclose()


def _says(response: httpx.Response, error: str) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") == error


def _messages(replies: List[Dict[str, Any]]) -> List[OutboundMessage]:
    """What the customer sees of Rasa's replies (custom payloads are for the gateway)."""
    return [OutboundMessage.from_rasa(r) for r in replies if r.get("text") or r.get("image")]
