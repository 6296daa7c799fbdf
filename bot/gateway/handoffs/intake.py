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
