"""Replies that fit how the customer feels, read from the sentiment on every message.

The same words can need opposite answers: "thanks for nothing" is not thanks,
and an angry "great job, guys" is not praise. An upset customer is never met
with a bare menu or a bare form question: the bot acknowledges the feeling
first. A complaint about something we neither sell nor do gets a kind, honest
"that sounds like another company" instead of our own case form.
"""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

# Sentiment labels (bot/nlu/sentiment.py) that call for acknowledging the feeling.
UPSET = {"negative", "hostile"}


def is_upset(tracker: Tracker) -> bool:
    """Whether the latest message reads as negative or hostile."""
    sentiment = tracker.latest_message.get("sentiment") or {}
    return sentiment.get("label") in UPSET


class ActionReplyToThanks(Action):
    """Thanks and praise: welcomed when meant, apologised for when sarcastic."""

    def name(self) -> str:
        return "action_reply_to_thanks"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if is_upset(tracker):
            dispatcher.utter_message(response="utter_sorry_we_let_you_down")
        elif intent == "praise":
            dispatcher.utter_message(response="utter_praise_thanks")
        else:
            dispatcher.utter_message(response="utter_you_are_welcome")
        return []


class ActionDeclineOffTopic(Action):
    """Off-topic: say what we do; if it is a grievance, be kind about whose it is."""

    def name(self) -> str:
        return "action_decline_off_topic"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        if is_upset(tracker):
            dispatcher.utter_message(response="utter_other_company")
        else:
            dispatcher.utter_message(response="utter_out_of_scope")
        return []
