"""Gathering the details of a request the team has to act on.

One form (case_form) serves every such request; the case topic decides which
details it asks for, so adding a request type means one line in CASE_DETAILS.
"""

from __future__ import annotations

import secrets
from typing import Any, Dict, List, Optional

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.case_details import (
    UNKNOWN,
    find_email,
    find_order_id,
    says_dont_know,
    usable_description,
)
from actions.escalation import escalate
from actions.mood import is_upset
from actions.wording import reply_eta
from bot.brand import brand
from bot.privacy import mask_email

# The details each kind of request needs, in the order we ask for them.
CASE_DETAILS: Dict[str, List[str]] = {
    "order_status": ["order_id", "email"],
    "cancel_order": ["order_id", "email"],
    "change_order": ["order_id", "email", "case_description"],
    "change_shipping_address": ["order_id", "email", "case_description"],
    "request_refund": ["order_id", "email", "case_description"],
    "refund_status": ["order_id", "email"],
    "payment_problem": ["email", "case_description"],
    "invoice_request": ["order_id", "email"],
    "account_delete": ["email"],
    "account_edit": ["email", "case_description"],
    "registration_problem": ["email", "case_description"],
    "complaint": ["case_description", "email"],
    # Anything else the team must handle (e.g. a button payload we don't map).
    "other": ["case_description", "email"],
}

# An opening message this long already says what happened: don't ask again.
DESCRIPTIVE_WORDS = 10


class ActionOpenCase(Action):
    """Starts a case for the request just made, keeping only still-valid details."""

    def name(self) -> str:
        return "action_open_case"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        topic = (tracker.latest_message.get("intent") or {}).get("name")
        if topic not in CASE_DETAILS:
            topic = "other"
        # Upset about a real problem: say sorry before the first form question.
        # (Complaints get their own apology from the rule that opens them.)
        if topic != "complaint" and is_upset(tracker):
            dispatcher.utter_message(response="utter_sorry_for_trouble")
        text = tracker.latest_message.get("text") or ""
        entities = {e.get("entity") for e in tracker.latest_message.get("entities", [])}
        events: List[EventType] = [
            SlotSet("case_topic", topic),
            SlotSet("case_reference", None),
        ]
        # An order number from an earlier case must not silently carry over.
        if "order_id" not in entities:
            events.append(SlotSet("order_id", None))
        description = (
            usable_description(text) if len(text.split()) >= DESCRIPTIVE_WORDS else None
        )
        events.append(SlotSet("case_description", description))
        return events


class ValidateCaseForm(FormValidationAction):
    def name(self) -> str:
        return "validate_case_form"

    async def required_slots(
        self,
        domain_slots: List[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[str]:
        return CASE_DETAILS.get(tracker.get_slot("case_topic"), domain_slots)

    def validate_order_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        text = value if isinstance(value, str) else ""
        order_id = find_order_id(text, brand().order_number)
        if order_id:
            return {"order_id": order_id}
        if says_dont_know(text):
            dispatcher.utter_message(response="utter_order_id_unknown")
            return {"order_id": UNKNOWN}
        dispatcher.utter_message(response="utter_invalid_order_id")
        return {"order_id": None}

    def validate_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        text = value if isinstance(value, str) else ""
        email = find_email(text)
        if email:
            return {"email": email}
        if says_dont_know(text):
            dispatcher.utter_message(response="utter_email_unknown")
            return {"email": UNKNOWN}
        dispatcher.utter_message(response="utter_invalid_email")
        return {"email": None}

    def validate_case_description(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[str, Any]:
        description = usable_description(value if isinstance(value, str) else "")
        if description:
            return {"case_description": description}
        dispatcher.utter_message(response="utter_invalid_description")
        return {"case_description": None}


def _order_phrase(order_id: Optional[str]) -> str:
    return f"order {order_id}" if order_id and order_id != UNKNOWN else "your order"


class ActionSubmitCase(Action):
    """Confirms the request with what happens next; complaints go to a person."""

    def name(self) -> str:
        return "action_submit_case"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        topic = tracker.get_slot("case_topic") or "other"
        reference = f"C-{secrets.token_hex(3).upper()}"
        events: List[EventType] = [SlotSet("case_reference", reference)]
        if topic == "complaint":
            return events + escalate(dispatcher, tracker, "complaint")
        email = tracker.get_slot("email")
        dispatcher.utter_message(
            response=f"utter_case_{topic}",
            reference=reference,
            order=_order_phrase(tracker.get_slot("order_id")),
            email_masked=mask_email(email) if email and email != UNKNOWN else "your email",
            eta=reply_eta(brand(), "normal"),
        )
        return events
