"""Handing a conversation to a person, honestly and with context.

For now the handoff is recorded on the tracker (reason, priority, summary);
the gateway's agent queue reads it once it exists.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.wording import INTENT_LABELS, reply_eta
from bot.brand import brand

# Why a conversation is handed over, and how urgently a person should pick it up.
REASON_PRIORITY = {
    "customer_request": "normal",
    "low_confidence": "normal",
    "complaint": "high",
}


def escalation_reason(tracker: Tracker) -> str:
    """Why we hand over now, read from the conversation so far."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    if intent == "request_human":
        return "customer_request"
    if intent == "nlu_fallback":
        return "low_confidence"
    if tracker.get_slot("case_topic") == "complaint":
        return "complaint"
    return "customer_request"


def case_summary(tracker: Tracker) -> str:
    """One line an agent can act on: what the customer wants and the details we have."""
    topic = tracker.get_slot("case_topic")
    parts = [f"Wants: {INTENT_LABELS.get(topic, 'help from a person')}"] if topic else []
    for slot, label in (
        ("order_id", "order"),
        ("email", "email"),
        ("phone", "phone"),
        ("product", "product"),
        ("case_description", "details"),
    ):
        value = tracker.get_slot(slot)
        if value and value != "unknown":
            parts.append(f"{label}: {value}")
    last_text = tracker.latest_message.get("text")
    if not parts and last_text:
        parts.append(f"Last message: {last_text[:300]}")
    return "; ".join(parts) or "No details yet"


def escalate(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    reason: str,
    now: Optional[datetime] = None,
) -> List[EventType]:
    """Tell the customer a person is taking over and record the handoff."""
    profile = brand()
    if tracker.get_slot("escalated"):
        dispatcher.utter_message(response="utter_already_escalated")
        return []
    priority = REASON_PRIORITY.get(reason, "normal")
    now = now or datetime.now(timezone.utc)
    eta = reply_eta(profile, priority, now)
    if profile.opening_hours.is_open(now):
        dispatcher.utter_message(response="utter_escalated_open", eta=eta)
    else:
        dispatcher.utter_message(response="utter_escalated_closed", eta=eta)
    return [
        SlotSet("escalated", True),
        SlotSet("escalation_reason", reason),
        SlotSet("escalation_priority", priority),
        SlotSet("escalation_summary", case_summary(tracker)),
    ]


class ActionEscalate(Action):
    def name(self) -> str:
        return "action_escalate"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        return escalate(dispatcher, tracker, escalation_reason(tracker))
