"""Talking to the Rasa server through its REST channel."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import httpx

from bot.gateway.messages import OutboundMessage


class RasaUnavailableError(RuntimeError):
    """Rasa did not answer (down, overloaded or erroring): try again later."""


class RasaClient:
    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.webhook = url.rstrip("/") + "/webhooks/rest/webhook"
        self._client = httpx.AsyncClient(timeout=timeout)

    async def send(self, conversation_id: str, text: str,
                   metadata: Optional[Dict[str, Any]] = None) -> List[OutboundMessage]:
        """One customer message in, the bot's replies out."""
        body = {"sender": conversation_id, "message": text, "metadata": metadata or {}}
        try:
            response = await self._client.post(self.webhook, json=body)
        except httpx.HTTPError as error:
            raise RasaUnavailableError(f"{type(error).__name__}: {error}") from None
        if response.status_code >= 400:
            raise RasaUnavailableError(f"HTTP {response.status_code}: {response.text[:200]}")
        replies: List[Dict[str, Any]] = response.json()
        return [OutboundMessage.from_rasa(r) for r in replies if r.get("text") or r.get("image")]

    async def close(self) -> None:
        await self._client.aclose()
