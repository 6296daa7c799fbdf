"""Customer-facing wording shared by several actions."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from bot.brand import BrandProfile

# What each request is, in the customer's words (buttons, summaries).
INTENT_LABELS = {
    "order_status": "Check on an order",
    "cancel_order": "Cancel an order",
    "change_order": "Change an order",
    "place_order": "Place an order",
    "delivery_info": "Delivery options",
    "change_shipping_address": "Change a delivery address",
    "return_policy": "Returns",
    "request_refund": "Get a refund",
    "refund_status": "Check on a refund",
    "payment_methods": "Ways to pay",
    "payment_problem": "A payment problem",
    "invoice_request": "Get an invoice",
    "account_create": "Create an account",
    "account_delete": "Close an account",
    "account_edit": "Update account details",
    "password_reset": "Reset a password",
    "registration_problem": "Trouble signing up",
    "newsletter": "Emails and texts",
    "cancellation_fee": "Cancellation fees",
    "contact_info": "Contact details",
    "complaint": "Make a complaint",
    "give_feedback": "Give feedback",
}


def duration(minutes: int) -> str:
    """240 -> '4 hours', 60 -> 'an hour', 30 -> '30 minutes'."""
    if minutes < 60:
        return f"{minutes} minutes"
    if minutes == 60:
        return "an hour"
    if minutes < 1440:
        hours = round(minutes / 60)
        return f"{hours} hours"
    days = round(minutes / 1440)
    return "a day" if days == 1 else f"{days} days"


def reply_eta(profile: BrandProfile, priority: str, now: Optional[datetime] = None) -> str:
    """When a person will answer, honestly: 'within about 4 hours' or 'when ... back'."""
    now = now or datetime.now(timezone.utc)
    hours = profile.opening_hours
    if hours.is_open(now):
        return f"within about {duration(profile.sla_minutes[priority])}"
    return f"when the team is back {hours.describe_return(now)}"
