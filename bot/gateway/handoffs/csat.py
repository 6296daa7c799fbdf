"""The one-tap satisfaction question asked when a handoff is resolved, and its answer."""

from __future__ import annotations

import re
from typing import Optional

from bot.gateway.messages import Button, OutboundMessage

CSAT_PAYLOAD = "/csat_"
CSAT_THANKS = "Thank you for letting us know! It really helps us get better."


def csat_score(payload: Optional[str]) -> Optional[int]:
    """1-5 when ``payload`` is a rating button's, else None."""
    match = re.fullmatch(rf"{re.escape(CSAT_PAYLOAD)}([1-5])", payload or "")
    return int(match.group(1)) if match else None


def csat_question(customer_name: Optional[str]) -> OutboundMessage:
    thanks = (f"Thanks for bearing with us, {customer_name}! " if customer_name
              else "Thanks for bearing with us! ")
    return OutboundMessage(thanks + "How did we do? Tap a number from 1 (poor) to 5 (great).",
                           buttons=[Button(str(n), f"{CSAT_PAYLOAD}{n}") for n in range(1, 6)])


def csat_thanks() -> OutboundMessage:
    return OutboundMessage(CSAT_THANKS)
