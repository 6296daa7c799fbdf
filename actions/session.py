"""Start of a conversation session: load brand facts and the customer's name."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import (
    ActionExecuted,
    ConversationPaused,
    EventType,
    SessionStarted,
    SlotSet,
)
from rasa_sdk.executor import CollectingDispatcher

from actions.customer import first_name
from actions.escalation import RESET_ON_RESUME
from bot.brand import brand

# Kept when a new session starts: who the customer is, not their last case.
CARRIED_OVER = ("customer_name", "name_known", "email")


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        events: List[EventType] = [SessionStarted()]
        # A new session resets Rasa's pause; a person still has this
        # conversation, so the handoff and its pause carry over too.
        handed_over = tracker.is_paused()
        for slot in CARRIED_OVER + (RESET_ON_RESUME if handed_over else ()):
            value = tracker.get_slot(slot)
            if value is not None:
                events.append(SlotSet(slot, value))
        # Brand slots are refreshed each session so an edited brand.yml applies.
        events.extend(SlotSet(k, v) for k, v in brand().template_values().items())
        name = first_name(tracker.get_slot("session_started_metadata"))
        if name:
            events.extend([SlotSet("customer_name", name), SlotSet("name_known", True)])
        if handed_over:
            events.append(ConversationPaused())
        events.append(ActionExecuted("action_listen"))
        return events
