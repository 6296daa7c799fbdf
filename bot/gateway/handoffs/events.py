"""One event for every change to a handoff, so every agent surface shows the same thing.

The desk and the pipeline publish a ``HandoffChange``; each ``AgentSurface``
(web inbox, Telegram group) reacts to all of them, whichever surface the
change came from. That is what keeps the inbox and the Telegram card in step.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import List, Literal, Optional, Protocol, Set

from bot.gateway.store import StoredMessage

log = logging.getLogger(__name__)

ChangeKind = Literal["opened", "customer_wrote", "claimed", "replied", "noted", "resolved",
                     "rated", "marked",
                     # follow_ups.py: the SLA nearly or already missed, the customer's
                     # update sent (priority raised), their answer to a check-back
                     "due_soon", "overdue", "followed_up", "checked_back"]


@dataclass(frozen=True)
class HandoffChange:
    """Something happened to a handoff: who did what, and through which surface."""

    handoff_id: int
    kind: ChangeKind
    agent: Optional[str] = None
    via: Optional[str] = None  # "inbox", "api", "telegram"; None for the customer or bot
    text: Optional[str] = None  # the reply or note, for surfaces that show it
    message: Optional[StoredMessage] = None  # the customer's message, for customer_wrote


class AgentSurface(Protocol):
    """Somewhere agents work (web inbox, Telegram group): told about every change."""

    async def on_handoff_change(self, change: HandoffChange) -> None:
        """Show the change to the agents working here."""


class AgentSurfaces:
    """Every surface, told in turn; one failing never keeps the others uninformed."""

    def __init__(self) -> None:
        self._surfaces: List[AgentSurface] = []
        self._pending: Set[asyncio.Task] = set()

    def add(self, surface: AgentSurface) -> None:
        self._surfaces.append(surface)

    async def publish(self, change: HandoffChange) -> None:
        for surface in self._surfaces:
            try:
                await surface.on_handoff_change(change)
            except Exception:  # noqa: BLE001 - one surface failing must not stop others
                log.exception("agent surface %s failed on %s", type(surface).__name__,
                              change.kind)

    def publish_soon(self, change: HandoffChange) -> None:
        """Publish without making the caller wait (the customer's receive path)."""
        task = asyncio.get_running_loop().create_task(self.publish(change))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for changes still being published (on shutdown)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
