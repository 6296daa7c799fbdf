"""The instant acknowledgement sent before any NLU work.

Customers on social media expect an answer in seconds; Rasa may take longer
under load, or be down. This reply needs nothing but the brand profile.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from bot.brand import BrandProfile


def acknowledgement(profile: BrandProfile, first_name: Optional[str],
                    now: Optional[datetime] = None) -> str:
    """'Hi Amara, thanks for your message! ...', honest about business hours."""
    now = now or datetime.now(timezone.utc)
    hello = f"Hi {first_name}, thanks for your message!" if first_name else (
        "Hi, thanks for your message!")
    who = f"I'm {profile.assistant_name}, {profile.name}'s assistant"
    hours = profile.opening_hours
    if hours.is_open(now):
        return f"{hello} {who}, and I'm looking at it now."
    return (f"{hello} {who}. Our team is offline right now and back "
            f"{hours.describe_return(now)}, but I can help with most things straight away.")


# What a photo, sticker, voice note or other non-text message gets, without NLU
# (Telegram, Messenger, Instagram).
UNSUPPORTED_REPLY = (
    "Thanks for sending that! I can only read text messages here, so could you tell "
    "me in words what you need? If it's about a damaged or wrong item, describe it and "
    "our team can ask for photos when they pick it up."
)


def slow_down(first_name: Optional[str]) -> str:
    """Once per burst, to a customer sending faster than the bot takes messages in."""
    name = f", {first_name}" if first_name else ""
    return (f"I've got your messages{name}, and nothing you sent is lost. You're writing "
            "faster than I can keep up, so I'll answer your latest message once you "
            "pause for a moment. Our team can see everything you've sent.")


def passed_to_team(first_name: Optional[str]) -> str:
    """When the bot could not answer for too long and a person takes over."""
    name = f", {first_name}" if first_name else ""
    return (f"Sorry for the wait{name}. I'm having trouble answering right now, so I've "
            "passed your message to our team, and a person will reply here.")


def public_reply(first_name: Optional[str]) -> str:
    """The one line the bot says in public about a public post: calm, and nothing
    private in it (no order numbers, emails or case details, whatever was posted)."""
    name = f", {first_name}" if first_name else ""
    return (f"Thanks for flagging this{name}. We've sent you a private message so we can "
            "look into it with you there.")
