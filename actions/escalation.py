"""Handing a conversation to a person, honestly and with context, and taking it back.

action_escalate records the handoff on the tracker (reason, priority,
summary), pauses the bot and sends the gateway the handoff payload; the
gateway opens the agents' handoff from it. When a person resolves it, the
gateway triggers ``RESOLVED_INTENT`` and action_resume_after_handoff clears
what this conversation's case left behind and asks for a rating.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import (
    ActiveLoop,
    ConversationPaused,
    ConversationResumed,
    EventType,
    SlotSet,
)
from rasa_sdk.executor import CollectingDispatcher

from actions.wording import INTENT_LABELS, reply_eta
from bot.brand import brand
from bot.escalation_rules import other_language_code
from bot.handoff_contract import (
    TRIGGER_DETAIL_SLOT,
    TRIGGER_PRIORITY_SLOT,
    TRIGGER_SLOT,
    HandoffPayload,
    is_external,
)
from bot.language import LANGUAGE

# Priority of the reasons decided by rules and actions; the escalation policy
# sends its own (from escalation.yml) with its trigger.
REASON_PRIORITY = {
    "customer_request": "normal",
    "low_confidence": "normal",
    "complaint": "high",
}
# What a handed-back conversation forgets: the handoff's record and the case a
# person has now dealt with. Who the customer is (name, email) stays.
RESET_ON_RESUME = ("escalated", "escalation_reason", "escalation_priority",
                   "escalation_summary", TRIGGER_SLOT, TRIGGER_PRIORITY_SLOT,
                   TRIGGER_DETAIL_SLOT, "case_topic", "case_description", "case_reference")
# Reasons whose message starts by acknowledging the customer's feelings.
UPSET = {"hostile", "negative_trajectory", "repeated_request", "form_abandoned"}


def escalation_reason(tracker: Tracker) -> str:
    """Why we hand over now: the policy's trigger, or read from the conversation."""
    trigger = tracker.get_slot(TRIGGER_SLOT)
    if trigger:
        return trigger
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


CASE_SLOTS = ("case_topic", "order_id", "email", "phone", "product", "case_description",
              "case_reference")


def case_details(tracker: Tracker) -> Dict[str, Any]:
    """The case details collected so far (unknowns left out)."""
    details = {slot: tracker.get_slot(slot) for slot in CASE_SLOTS}
    return {k: v for k, v in details.items() if v not in (None, "", "unknown")}


def turn_log(tracker: Tracker) -> List[Dict[str, Any]]:
    """Every customer turn with how the NLU read it: intent, confidence, sentiment, language."""
    turns = []
    for event in tracker.events:
        if event.get("event") != "user" or is_external(event.get("metadata")):
            continue  # the customer's words only, not the gateway's signals
        parse = event.get("parse_data") or {}
        intent = parse.get("intent") or {}
        sentiment = parse.get("sentiment") or {}
        turns.append({
            "text": event.get("text"), "at": event.get("timestamp"),
            "intent": intent.get("name"), "confidence": round(intent.get("confidence") or 0, 3),
            "sentiment": sentiment.get("label"), "sentiment_score": sentiment.get("score"),
            "language": (parse.get(LANGUAGE) or {}).get("code"),
        })
    return turns


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
    priority = (tracker.get_slot(TRIGGER_PRIORITY_SLOT) if reason ==
                tracker.get_slot(TRIGGER_SLOT) else None) or REASON_PRIORITY.get(
                    reason, "normal")
    now = now or datetime.now(timezone.utc)
    eta = reply_eta(profile, priority, now)
    detail = tracker.get_slot(TRIGGER_DETAIL_SLOT)
    language = other_language_code(reason, detail)
    in_their_language = profile.other_language_reply(language)
    if in_their_language:  # honest, in their words, and nothing they cannot read
        dispatcher.utter_message(text=in_their_language)
    else:
        if reason == "sensitive:self_harm":
            dispatcher.utter_message(response="utter_escalation_safety")
        elif reason in UPSET:
            dispatcher.utter_message(response="utter_escalation_empathy")
        elif language:
            dispatcher.utter_message(response="utter_language_not_understood")
        if profile.opening_hours.is_open(now):
            dispatcher.utter_message(response="utter_escalated_open", eta=eta)
        else:
            dispatcher.utter_message(response="utter_escalated_closed", eta=eta)
    summary = case_summary(tracker)
    # For the gateway, not the customer: it opens the handoff record from this.
    dispatcher.utter_message(json_message=HandoffPayload(
        reason=reason, priority=priority, summary=summary, detail=detail,
        details=case_details(tracker), turns=turn_log(tracker), language=language,
    ).as_message())
    return [
        ActiveLoop(None),  # a form in progress stops: a person takes it from here
        SlotSet("escalated", True),
        SlotSet("escalation_reason", reason),
        SlotSet("escalation_priority", priority),
        SlotSet("escalation_summary", summary),
        # The bot stays quiet while a person handles it; the tracker keeps
        # recording, and resolving the handoff resumes it.
        ConversationPaused(),
    ]


class ActionEscalate(Action):
    def name(self) -> str:
        return "action_escalate"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        return escalate(dispatcher, tracker, escalation_reason(tracker))


class ActionResumeAfterHandoff(Action):
    """A person handed the conversation back: the bot listens again and asks how we did."""

    def name(self) -> str:
        return "action_resume_after_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        dispatcher.utter_message(response="utter_ask_csat")
        return [ConversationResumed()] + [SlotSet(slot, None) for slot in RESET_ON_RESUME]
