"""Rasa's side of a handoff ending: the hand-back event, the rating, and the quiet before.

The gateway only triggers ``RESOLVED_INTENT`` and reads scores from button
payloads (bot/handoff_contract.py); everything said and reset is here.
"""

from __future__ import annotations

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.escalation import RESET_ON_RESUME, ActionResumeAfterHandoff
from actions.session import ActionSessionStart
from bot.handoff_contract import (
    RATING_SCALE,
    RESOLVED_INTENT,
    rating_from_payload,
    rating_payload,
)
from tests.actions_support import DOMAIN, slots_set, tracker
from tests.policy_support import escalation_policy


async def run(action, t):
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, DOMAIN)
    return dispatcher.messages, events


def test_every_rating_button_in_the_domain_carries_a_score_the_gateway_reads():
    variants = DOMAIN["responses"]["utter_ask_csat"]
    assert len(variants) == 2  # with the customer's name, and without
    for variant in variants:
        scores = [rating_from_payload(b["payload"]) for b in variant["buttons"]]
        assert scores == list(RATING_SCALE)
        assert [b["title"] for b in variant["buttons"]] == [str(n) for n in RATING_SCALE]


@pytest.mark.parametrize("payload", [
    None, "", "/rate_service", "/rate_service{}", '/rate_service{"csat_score": 0}',
    '/rate_service{"csat_score": 6}', '/rate_service{"csat_score": true}',
    '/rate_service{"csat_score": 4', '/affirm{"csat_score": 4}', "5",
])
def test_anything_but_a_rating_button_is_not_a_score(payload):
    assert rating_from_payload(payload) is None


def test_a_rating_payload_round_trips_and_fits_a_telegram_button():
    for score in RATING_SCALE:
        assert rating_from_payload(rating_payload(score)) == score
        assert len(rating_payload(score).encode()) <= 64  # Telegram's callback_data limit


async def test_taking_the_conversation_back_clears_the_case_and_asks_for_a_rating():
    t = tracker(intent=RESOLVED_INTENT, slots={
        "escalated": True, "escalation_reason": "hostile", "case_topic": "order_status",
        "customer_name": "Amara", "email": "a@example.com"})
    messages, events = await run(ActionResumeAfterHandoff(), t)
    assert [m["response"] for m in messages] == ["utter_ask_csat"]
    assert events[0]["event"] == "resume"
    cleared = slots_set(events)
    assert set(cleared) == set(RESET_ON_RESUME)
    assert all(value is None for value in cleared.values())
    assert "customer_name" not in cleared and "email" not in cleared  # who they are stays


async def test_a_session_that_expires_while_a_person_has_it_stays_with_the_person():
    t = tracker(slots={"escalated": True, "escalation_reason": "customer_request",
                       "escalation_priority": "normal", "case_topic": "order_status"})
    t._paused = True
    _, events = await run(ActionSessionStart(), t)
    carried = slots_set(events)
    assert carried["escalated"] is True and carried["case_topic"] == "order_status"
    assert [e["event"] for e in events][-2:] == ["pause", "action"]


async def test_a_session_that_expires_with_the_bot_forgets_the_last_case():
    _, events = await run(ActionSessionStart(), tracker(slots={"case_topic": "order_status"}))
    assert "case_topic" not in slots_set(events)
    assert all(e["event"] != "pause" for e in events)


# --- the escalation policy around a hand-back -------------------------------------

@pytest.fixture(scope="module")
def policy_and_domain():
    return escalation_policy()


def customer(text, intent, sentiment="neutral"):
    from rasa.shared.core.events import UserUttered

    parse = {"intent": {"name": intent, "confidence": 0.95},
             "sentiment": {"label": sentiment, "score": 0.9}}
    return UserUttered(text, {"name": intent, "confidence": 0.95}, parse_data=parse)


def predicted(policy_and_domain, events):
    from rasa.shared.core.trackers import DialogueStateTracker

    policy, domain = policy_and_domain
    tracker = DialogueStateTracker.from_events("t", events, slots=domain.slots)
    prediction = policy.predict_action_probabilities(tracker, domain)
    if max(prediction.probabilities) == 0.0:
        return None
    return domain.action_names_or_texts[prediction.max_confidence_index]


def test_the_bot_stays_quiet_while_a_person_has_it_even_unpaused(policy_and_domain):
    from rasa.shared.core.events import ActionExecuted, ConversationResumed, SlotSet

    with_a_person = [ActionExecuted("action_listen"), SlotSet("escalated", True),
                     ConversationResumed(), customer("where is my order", "order_status")]
    assert predicted(policy_and_domain, with_a_person) == "action_listen"
    with_the_bot = [ActionExecuted("action_listen"),
                    customer("where is my order", "order_status")]
    assert predicted(policy_and_domain, with_the_bot) is None


def test_the_hand_back_event_is_left_to_its_rule(policy_and_domain):
    from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered

    events = [ActionExecuted("action_listen"), SlotSet("escalated", True),
              UserUttered.create_external(RESOLVED_INTENT)]
    assert predicted(policy_and_domain, events) is None


def test_what_a_person_dealt_with_does_not_count_against_the_bot_after(policy_and_domain):
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.policies.escalation import turns_from_tracker

    before = [ActionExecuted("action_listen"), customer("where is my order", "order_status"),
              ActionExecuted("action_escalate"), UserUttered.create_external(RESOLVED_INTENT),
              ActionExecuted("action_resume_after_handoff"), ActionExecuted("action_listen")]
    again = before + [customer("and where is my other order", "order_status")]
    # Asked twice, but the first was before a person handled it: no "same request twice".
    assert predicted(policy_and_domain, again) is None
    turns = turns_from_tracker(DialogueStateTracker.from_events(
        "t", again, slots=policy_and_domain[1].slots))
    assert [t.text for t in turns] == ["and where is my other order"]


def test_rating_twice_is_not_the_same_request_twice(policy_and_domain):
    from rasa.shared.core.events import ActionExecuted

    events = [ActionExecuted("action_listen"), customer(rating_payload(2), "rate_service"),
              ActionExecuted("utter_thanks_for_rating"), ActionExecuted("action_listen"),
              customer(rating_payload(4), "rate_service")]
    assert predicted(policy_and_domain, events) is None
