"""Turning Rasa's handoff request into a record to store, with its SLA due time."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from bot.brand import BrandProfile
from bot.gateway.store import HandoffRequest
from bot.handoff_contract import HandoffPayload


def handoff_request(payload: HandoffPayload, profile: BrandProfile,
                    now: Optional[datetime] = None) -> HandoffRequest:
    """The record for ``payload``: due within the brand's SLA, in business minutes."""
    now = now or datetime.now(timezone.utc)
    due = profile.opening_hours.add_business_minutes(now, profile.sla_minutes[payload.priority])
    return HandoffRequest(reason=payload.reason, priority=payload.priority,
                          summary=payload.summary, sla_due_at=due.timestamp(),
                          context=payload.context)


# Handoffs the gateway opens itself, when it has given up on a message.
BOT_FAILED = "bot_failed"  # Rasa (or the store) failed a customer message for too long
DELIVERY_FAILED = "delivery_failed"  # a reply could not be delivered to the customer
# A person answered the customer on the channel itself (a Telegram Business account's
# owner typing in the chat): the conversation is theirs until the handoff is resolved.
TAKEN_OVER = "taken_over"


def taken_over_handoff(summary: str, profile: BrandProfile,
                       now: Optional[datetime] = None) -> HandoffRequest:
    """The (already claimed) handoff for a person who took the conversation over."""
    return handoff_request(HandoffPayload(reason=TAKEN_OVER, priority="normal",
                                          summary=summary), profile, now)


def failure_handoff(reason: str, summary: str, profile: BrandProfile,
                    now: Optional[datetime] = None) -> HandoffRequest:
    """A high-priority handoff for a message the gateway gave up on."""
    return handoff_request(HandoffPayload(reason=reason, priority="high", summary=summary),
                           profile, now)
