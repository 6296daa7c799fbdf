"""What follow-ups say: to the customer (on-brand, honest about when) and to agents.

Customers read these, so they follow brand.yml's voice: warm, plain, British
spelling, at most one emoji, their first name when we know it, and no promise
we cannot keep (a person replies "as soon as they can", or when the team is
back, never "in 5 minutes").
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Optional

from bot.brand import BrandProfile
from bot.handoff_contract import badge


def _name(first_name: Optional[str]) -> str:
    return f", {first_name}" if first_name else ""


def _when_a_person_replies(profile: BrandProfile, now: float) -> str:
    moment = datetime.fromtimestamp(now, timezone.utc)
    hours = profile.opening_hours
    if hours.is_open(moment):
        return "as soon as they can"
    return f"when our team is back {hours.describe_return(moment)}"


def still_waiting(profile: BrandProfile, first_name: Optional[str], moved_up: bool,
                  now: float) -> str:
    """The one update to a customer whose promised reply time has passed unanswered."""
    queue = ("We've moved you up our queue, and a person" if moved_up
             else "You're still in our queue, and a person")
    return (f"Still with us{_name(first_name)}? Sorry, this is taking longer than we said. "
            f"{queue} will reply right here {_when_a_person_replies(profile, now)}. "
            f"If it's urgent, you can call us on {profile.contacts.phone} or email "
            f"{profile.contacts.email}.")


def check_back_question(profile: BrandProfile, first_name: Optional[str]) -> str:
    hello = f"Hi {first_name}" if first_name else "Hi"
    return (f"{hello}, it's {profile.assistant_name} from {profile.name}, just checking in "
            "on what our team helped you with. Did that sort it out?")


YES_TITLE, NO_TITLE = "Yes, all sorted", "No, not yet"


def sorted_reply(first_name: Optional[str]) -> str:
    return (f"That's great to hear{_name(first_name)}, thanks for letting us know! "
            "I'm here if you need anything else.")


def not_sorted_reply(profile: BrandProfile, first_name: Optional[str], with_person: bool,
                     now: float) -> str:
    if with_person:
        return (f"Thanks for letting us know{_name(first_name)}. Someone from our team "
                "already has your conversation and will reply right here.")
    return (f"Sorry it's not sorted yet{_name(first_name)}. I've passed it back to our team "
            "with everything so far, so you won't need to explain again, and a person will "
            f"reply right here {_when_a_person_replies(profile, now)}.")


def already_answered(first_name: Optional[str]) -> str:
    return f"Thanks{_name(first_name)}, we've already got your answer."


# --- agents ------------------------------------------------------------------
def _who(handoff: Dict[str, Any], name: str) -> str:
    return (f"handoff #{handoff['id']} · {badge(handoff['priority'])} · {name} · "
            f"{handoff['reason']}")


def due_soon_alert(handoff: Dict[str, Any], name: str, now: float) -> str:
    minutes = max(1, round((handoff["sla_due_at"] - now) / 60))
    return f"⏰ Due in {minutes} min: {_who(handoff, name)}. Nobody has replied yet."


def overdue_alert(handoff: Dict[str, Any], name: str, zone) -> str:  # noqa: ANN001 - a ZoneInfo
    due = datetime.fromtimestamp(handoff["sla_due_at"], zone).strftime("%a %H:%M")
    return f"🔴 Overdue: {_who(handoff, name)}. The reply was due {due}; nobody has replied yet."


def followed_up_line(priority: str, raised: bool) -> str:
    change = f"priority raised to {badge(priority)}" if raised else f"still {badge(priority)}"
    return ("The promised reply time passed, so the customer was sent an update "
            f"(with our phone and email) and the {change}.")


def checked_back_line(answer: str, new_handoff_id: Optional[int]) -> str:
    if answer == "yes":
        return "Check-back: the customer says it's sorted 👍"
    if new_handoff_id is not None:
        return ("Check-back: the customer says it's NOT sorted. Reopened as handoff "
                f"#{new_handoff_id}.")
    return "Check-back: the customer says it's NOT sorted (a person already has the conversation)."
