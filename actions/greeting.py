"""Greeting the customer, by first name when the channel gives it."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.customer import name_events


class ActionGreet(Action):
    def name(self) -> str:
        return "action_greet"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        events = name_events(tracker)
        new_name = next((e["value"] for e in events if e.get("name") == "customer_name"), None)
        name = new_name or tracker.get_slot("customer_name")
        if name:
            dispatcher.utter_message(response="utter_greet_named", customer_name=name)
        else:
            dispatcher.utter_message(response="utter_greet")
        return events
