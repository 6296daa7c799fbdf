"""Flood control for customer messages: what a sender may send, and what happens past it.

Two limits, per conversation (a DM conversation is one sender):

* a rate, ``per_minute`` messages in any 60 seconds (SENDER_MESSAGES_PER_MINUTE);
* a cap, ``queue_cap`` messages waiting for Rasa at once, when Rasa is slow or
  down (QUEUED_MESSAGES_PER_CONVERSATION).

Past either, a channel that can tell its client to retry (the DM API, the web
chat) refuses with 429 and Retry-After, storing nothing. Telegram cannot be
asked to wait, so there the message is stored but *held*: kept from Rasa,
visible to agents. The first held message of a burst gets one polite "slow
down"; when the burst passes, the newest held message goes to Rasa and the
older ones are marked skipped, so one answer serves the flood.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Set

from bot.gateway.rate_limits import SlidingWindow

# How long a client is asked to wait when the conversation's queue is full:
# long enough for Rasa to answer a few of the waiting messages.
QUEUE_FULL_RETRY_SECONDS = 10.0


@dataclass
class FloodControl:
    per_minute: int = 20
    queue_cap: int = 20
    window_seconds: float = 60.0  # "per minute"; shorter only in tests
    sent: SlidingWindow = field(init=False)
    warned: Set[str] = field(default_factory=set)  # told to slow down in this burst
    holding: Set[str] = field(default_factory=set)  # have held messages (this process)

    def __post_init__(self) -> None:
        self.sent = SlidingWindow(self.per_minute, self.window_seconds)

    def wait(self, conversation_id: str) -> float:
        """Seconds until this sender is under its rate again (0: it is now)."""
        return self.sent.wait(conversation_id)

    def counted(self, conversation_id: str) -> None:
        """A message of this sender was stored (held ones count: a flood stays a flood)."""
        self.sent.add(conversation_id)

    def calm(self, conversation_id: str) -> None:
        """The burst passed and what it held was released."""
        self.holding.discard(conversation_id)
        self.warned.discard(conversation_id)
