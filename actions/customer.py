"""Who the customer is, as far as the channel tells us."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet

from bot.text_rules import first_name as clean_first_name

# Keys channels use for the sender's name in message metadata.
_NAME_KEYS = ("first_name", "sender_name", "name")


def first_name(metadata: Optional[Dict[str, Any]]) -> Optional[str]:
    """The customer's first name from channel metadata, if it gives one."""
    for key in _NAME_KEYS:
        value = (metadata or {}).get(key)
        if isinstance(value, str) and value.strip():
            return clean_first_name(value)
    return None


def name_events(tracker: Tracker, metadata: Optional[Dict[str, Any]] = None) -> List[EventType]:
    """Slot events that record the customer's name when it is newly known."""
    if metadata is None:
        metadata = tracker.latest_message.get("metadata")
    name = first_name(metadata)
    if not name or name == tracker.get_slot("customer_name"):
        return []
    return [SlotSet("customer_name", name), SlotSet("name_known", True)]
