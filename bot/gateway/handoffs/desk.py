"""The handoff desk: reply, claim, note, resolve and rate, with their rules, once.

Every agent surface calls these and nothing else, so the rules hold the same
everywhere: an unknown handoff is ``HandoffNotFoundError``; acting on a resolved
one is ``AlreadyResolvedError`` (notes excepted: they are internal records); a
resolve Rasa cannot take is ``BotUnavailableError``, with nothing changed. After
each change every surface is told (``AgentSurfaces.publish``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from bot.brand import BrandProfile
from bot.gateway.handoffs.errors import (
    AlreadyResolvedError,
    BotUnavailableError,
    HandoffNotFoundError,
    UnstorableInputError,
)
from bot.gateway.handoffs.events import AgentSurface, AgentSurfaces, HandoffChange
from bot.gateway.handoffs.intake import taken_over_handoff
from bot.gateway.messages import InvalidMessageError, OutboundMessage, check_text
from bot.gateway.metrics import NO_METRICS, Metrics
from bot.gateway.rasa_client import RasaClient, RasaUnavailableError
from bot.gateway.store import StoredMessage
from bot.gateway.store.facade import AsyncStore
from bot.gateway.store.schema import is_row_id

Fit = Callable[[str, List[OutboundMessage]], List[OutboundMessage]]


class HandoffDesk:
    """Agents' actions on handoffs.

    ``deliver(conversation_id)`` wakes the outbox; ``fit(channel, messages)``
    splits messages to the channel's length limit.
    """

    def __init__(self, db: AsyncStore, rasa: RasaClient, profile: BrandProfile,
                 deliver: Callable[[str], None], fit: Fit,
                 metrics: Metrics = NO_METRICS) -> None:
        self.db = db
        self.metrics = metrics
        self.rasa = rasa
        self.profile = profile
        self.surfaces = AgentSurfaces()
        self._deliver = deliver
        self._fit = fit

    def add_surface(self, surface: AgentSurface) -> None:
        self.surfaces.add(surface)

    # --- reading -----------------------------------------------------------
    async def handoff(self, handoff_id: int) -> Dict[str, Any]:
        handoff = await self.db.handoff(handoff_id) if is_row_id(handoff_id) else None
        if handoff is None:
            raise HandoffNotFoundError(handoff_id)
        return handoff

    async def queue(self, include_resolved: bool = False) -> List[Dict[str, Any]]:
        """Most urgent first, then longest waiting."""
        return await self.db.handoff_queue(include_resolved=include_resolved)

    async def _open(self, handoff_id: int) -> Dict[str, Any]:
        handoff = await self.handoff(handoff_id)
        if handoff["status"] == "resolved":
            raise AlreadyResolvedError(handoff_id)
        return handoff

    # --- agents' actions -----------------------------------------------------
    async def reply(self, handoff_id: int, agent: str, text: str, via: str) -> int:
        """Send an agent's words to the customer, signed; claims an open handoff."""
        _storable(agent=agent, text=text)
        handoff = await self._open(handoff_id)
        self.metrics.agent_replied(handoff)
        if handoff["status"] == "open":
            await self.db.claim_handoff(handoff_id, agent)
            await self.surfaces.publish(HandoffChange(handoff_id, "claimed", agent, via))
        signed = OutboundMessage(self.profile.signed(text, agent))
        message_id = await self.db.queue_outbound(handoff["conversation_id"], "agent", signed)
        self._deliver(handoff["conversation_id"])
        await self.surfaces.publish(HandoffChange(handoff_id, "replied", agent, via, text))
        return message_id

    async def claim(self, handoff_id: int, agent: str, via: str) -> Dict[str, Any]:
        _storable(agent=agent)
        await self._open(handoff_id)
        await self.db.claim_handoff(handoff_id, agent)
        await self.surfaces.publish(HandoffChange(handoff_id, "claimed", agent, via))
        return await self.handoff(handoff_id)

    async def taken_over(self, channel: str, external_id: str, agent: str, via: str,
                         summary: str, text: Optional[str] = None,
                         channel_message_id: Optional[str] = None) -> Optional[int]:
        """A person answered the customer on the channel itself, outside every agent
        surface (a Telegram Business account's owner typing in the chat).

        The conversation is then theirs as if an agent had claimed it: its open
        handoff is claimed (one is opened when there is none), so the bot stays
        quiet until it is resolved; ``text`` goes into the transcript as their
        reply, already delivered. Returns the handoff's id (None: a redelivery).
        """
        _storable(agent=agent, text=text or "")
        done = await self.db.take_over(channel, external_id,
                                       taken_over_handoff(summary, self.profile), agent,
                                       text, channel_message_id)
        if done.duplicate:
            return None
        if done.opened:
            await self.surfaces.publish(HandoffChange(done.handoff_id, "opened"))
        if done.claimed:
            await self.surfaces.publish(HandoffChange(done.handoff_id, "claimed", agent, via))
        if text:
            await self.surfaces.publish(HandoffChange(done.handoff_id, "replied", agent, via,
                                                      text))
        return done.handoff_id

    async def note(self, handoff_id: int, agent: str, text: str, via: str) -> Dict[str, Any]:
        """An internal note: agents see it, the customer never does."""
        _storable(agent=agent, text=text)
        await self.handoff(handoff_id)
        await self.db.add_note(handoff_id, agent, text)
        await self.surfaces.publish(HandoffChange(handoff_id, "noted", agent, via, text))
        return await self.handoff(handoff_id)

    async def resolve(self, handoff_id: int, agent: str, via: str) -> Dict[str, Any]:
        """Give the conversation back to the bot, which asks how we did.

        Rasa is told first: if it cannot take the conversation back, nothing
        here changes and the agent keeps it (``BotUnavailableError``). What
        the bot says then (the rating question) is queued with the resolve.
        """
        _storable(agent=agent)
        handoff = await self._open(handoff_id)
        try:
            said = await self.rasa.hand_back(handoff["conversation_id"])
        except RasaUnavailableError as error:
            raise BotUnavailableError() from error
        conversation = await self.db.conversation(handoff["conversation_id"]) or {}
        said = self._fit(conversation.get("channel", ""), said)
        if not await self.db.resolve_handoff(handoff_id, agent, said):
            raise AlreadyResolvedError(handoff_id)  # another agent resolved it a moment ago
        self._deliver(handoff["conversation_id"])
        await self.surfaces.publish(HandoffChange(handoff_id, "resolved", agent, via))
        return await self.handoff(handoff_id)

    async def mark_misunderstood(self, handoff_id: int, message_id: int, marked: bool,
                                 agent: str, note: str, via: str) -> None:
        """Flag (or unflag) a customer's message the bot misread, for the NLU review.

        ValueError when the message is not a customer's.
        """
        _storable(agent=agent, text=note)
        await self.handoff(handoff_id)
        if not is_row_id(message_id):
            raise ValueError(f"There is no message {message_id}.")
        if marked:
            await self.db.mark_misunderstood(message_id, agent, note)
        else:
            await self.db.unmark_misunderstood(message_id)
        await self.surfaces.publish(HandoffChange(handoff_id, "marked", agent, via))

    # --- what the pipeline reports -----------------------------------------------
    async def opened(self, handoff_id: int) -> None:
        await self.surfaces.publish(HandoffChange(handoff_id, "opened"))

    async def customer_wrote(self, conversation_id: str, message: StoredMessage) -> None:
        """Tell agents when the customer writes while a person handles the conversation."""
        handoff = await self.db.open_handoff_for(conversation_id)
        if handoff is not None:
            await self.surfaces.publish(HandoffChange(handoff["id"], "customer_wrote",
                                                      message=message))

    async def record_csat(self, conversation_id: str, score: int) -> Optional[int]:
        """Store a rating on the conversation's latest resolved handoff."""
        handoff_id = await self.db.record_csat(conversation_id, score)
        if handoff_id is not None:  # agents hear of it without delaying the customer's ack
            self.surfaces.publish_soon(HandoffChange(handoff_id, "rated", text=str(score)))
        return handoff_id


# As the columns that keep it (handoffs.claimed_by, misunderstood_marks.agent, accounts'
# display_name): a longer name is a 400 here, not a database error on PostgreSQL.
AGENT_NAME_MAX = 100


def _storable(agent: str, text: str = "") -> None:
    """Every surface's agent input is checked here, once: 400, not a database error."""
    try:
        check_text("the agent's name", agent, AGENT_NAME_MAX)
        check_text("the text", text)
    except InvalidMessageError as problem:
        raise UnstorableInputError(str(problem)) from None
