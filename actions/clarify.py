"""The first stage of fallback: ask once, offering the likeliest meanings.

If the next message is still unclear, data/rules.yml hands over to a person.
An upset customer gets an apology before the menu, never a bare one.
"""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.mood import is_upset
from actions.wording import INTENT_LABELS

MAX_SUGGESTIONS = 2


def suggestions(tracker: Tracker) -> List[str]:
    """The likeliest intents that have a button label, best first."""
    ranking = tracker.latest_message.get("intent_ranking") or []
    names = [r.get("name") for r in ranking]
    return [n for n in names if n in INTENT_LABELS][:MAX_SUGGESTIONS]


class ActionClarify(Action):
    def name(self) -> str:
        return "action_clarify"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        buttons = [{"title": INTENT_LABELS[n], "payload": f"/{n}"} for n in suggestions(tracker)]
        buttons.append({"title": "Talk to a person", "payload": "/request_human"})
        response = "utter_clarify_upset" if is_upset(tracker) else "utter_clarify"
        dispatcher.utter_message(response=response, buttons=buttons)
        return []
