"""Talking to the Rasa server through its REST channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import httpx

from bot.gateway.messages import OutboundMessage
from bot.handoff_contract import HandoffPayload


@dataclass
class RasaReply:
    messages: List[OutboundMessage]
    handoff: Optional[HandoffPayload] = None  # from action_escalate: a person takes over


class RasaUnavailableError(RuntimeError):
    """Rasa did not answer (down, overloaded or erroring): try again later."""


class RasaClient:
    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.base = url.rstrip("/")
        self.webhook = self.base + "/webhooks/rest/webhook"
        self._client = httpx.AsyncClient(timeout=timeout)

    async def send(self, conversation_id: str, text: str,
                   metadata: Optional[Dict[str, Any]] = None) -> RasaReply:
        """One customer message in; the bot's replies, and a handoff request if any."""
        body = {"sender": conversation_id, "message": text, "metadata": metadata or {}}
        try:
            response = await self._client.post(self.webhook, json=body)
        except httpx.HTTPError as error:
            raise RasaUnavailableError(f"{type(error).__name__}: {error}") from None
        if response.status_code >= 400:
            raise RasaUnavailableError(f"HTTP {response.status_code}: {response.text[:200]}")
        replies: List[Dict[str, Any]] = response.json()
        handoff = next((payload for payload in (HandoffPayload.from_custom(r.get("custom"))
                                                for r in replies) if payload), None)
        messages = [OutboundMessage.from_rasa(r) for r in replies
                    if r.get("text") or r.get("image")]
        return RasaReply(messages, handoff)

    async def resume(self, conversation_id: str, reset_slots: List[str]) -> None:
        """Hand a paused conversation back to the bot (Rasa's HTTP API, --enable-api)."""
        events = [{"event": "resume"}] + [
            {"event": "slot", "name": slot, "value": None} for slot in reset_slots] + [
            # The bot waits for the customer, so their next message starts a normal turn.
            {"event": "action", "name": "action_listen"}]
        url = f"{self.base}/conversations/{conversation_id}/tracker/events"
        try:
            response = await self._client.post(url, json=events)
        except httpx.HTTPError as error:
            raise RasaUnavailableError(f"{type(error).__name__}: {error}") from None
        if response.status_code >= 400:
            raise RasaUnavailableError(f"HTTP {response.status_code}: {response.text[:200]}")

    async def close(self) -> None:
        await self._client.aclose()
