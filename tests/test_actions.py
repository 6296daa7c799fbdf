"""Custom actions, run with rasa-sdk's Tracker and CollectingDispatcher."""

from datetime import datetime, timezone

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.cases import CASE_DETAILS, ActionOpenCase, ActionSubmitCase, ValidateCaseForm
from actions.clarify import ActionClarify
from actions.escalation import ActionEscalate, escalate
from actions.greeting import ActionGreet
from actions.session import ActionSessionStart
from bot.brand import brand
from tests.actions_support import DOMAIN, slots_set, tracker

OPEN = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)  # Monday, 10am UK
CLOSED = datetime(2026, 11, 21, 18, 0, tzinfo=timezone.utc)  # Saturday, 6pm UK


async def run(action, t, domain=DOMAIN):
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, domain)
    return dispatcher.messages, events


async def test_session_start_loads_brand_facts_and_the_customers_name():
    t = tracker(slots={"session_started_metadata": {"first_name": "Amara Okafor"}})
    _, events = await run(ActionSessionStart(), t)
    slots = slots_set(events)
    assert events[0]["event"] == "session_started"
    assert (events[-1]["event"], events[-1]["name"]) == ("action", "action_listen")
    assert slots["brand_name"] == brand().name
    assert slots["brand_phone"] == brand().contacts.phone
    assert slots["customer_name"] == "Amara"
    assert slots["name_known"] is True


async def test_session_start_keeps_who_the_customer_is_but_not_their_last_case():
    t = tracker(slots={"customer_name": "Leo", "name_known": True, "email": "leo@example.com",
                       "order_id": "JL-111111"})
    _, events = await run(ActionSessionStart(), t)
    slots = slots_set(events)
    assert slots["customer_name"] == "Leo" and slots["email"] == "leo@example.com"
    assert "order_id" not in slots


async def test_greeting_uses_the_first_name_from_the_channel():
    messages, events = await run(ActionGreet(), tracker(metadata={"first_name": "Sofia"}))
    assert messages[0]["response"] == "utter_greet_named"
    assert messages[0]["customer_name"] == "Sofia"
    assert slots_set(events) == {"customer_name": "Sofia", "name_known": True}


async def test_greeting_without_a_name_stays_friendly():
    messages, events = await run(ActionGreet(), tracker())
    assert messages[0]["response"] == "utter_greet"
    assert events == []


async def test_opening_a_case_forgets_an_old_order_number_but_keeps_a_new_one():
    t = tracker(intent="cancel_order", text="cancel JL-204815 please",
                slots={"order_id": "JL-111111"},
                entities=[{"entity": "order_id", "value": "JL-204815"}])
    _, events = await run(ActionOpenCase(), t)
    slots = slots_set(events)
    assert slots["case_topic"] == "cancel_order"
    assert "order_id" not in slots  # the new one, just extracted, stays

    _, events = await run(ActionOpenCase(), tracker(intent="refund_status", text="refund?",
                                                     slots={"order_id": "JL-111111"}))
    assert slots_set(events)["order_id"] is None


async def test_a_long_opening_message_already_describes_the_case():
    text = "I ordered the green hoodie in M but need an L, can you swap it before it ships?"
    _, events = await run(ActionOpenCase(), tracker(intent="change_order", text=text))
    assert slots_set(events)["case_description"] == text


@pytest.mark.parametrize("topic", sorted(CASE_DETAILS))
async def test_the_form_asks_only_what_the_request_needs(topic):
    form = ValidateCaseForm()
    required = await form.required_slots(
        ["order_id", "email", "case_description"], CollectingDispatcher(),
        tracker(slots={"case_topic": topic}), DOMAIN)
    assert required == CASE_DETAILS[topic]
    assert set(required) <= set(DOMAIN["forms"]["case_form"]["required_slots"])


def validate(slot, value, topic="order_status"):
    form = ValidateCaseForm()
    dispatcher = CollectingDispatcher()
    method = getattr(form, f"validate_{slot}")
    result = method(value, dispatcher, tracker(slots={"case_topic": topic}), DOMAIN)
    return result[slot], [m.get("response") for m in dispatcher.messages]


def test_form_accepts_order_numbers_however_they_are_written():
    assert validate("order_id", "it's jl 204815") == ("JL-204815", [])


def test_form_reasks_a_bad_order_number_with_the_format():
    assert validate("order_id", "the blue one") == (None, ["utter_invalid_order_id"])


def test_form_moves_on_when_the_customer_does_not_know_the_order_number():
    assert validate("order_id", "no idea, deleted the email") == (
        "unknown", ["utter_order_id_unknown"])


def test_form_checks_emails():
    assert validate("email", "Sam@Example.com") == ("sam@example.com", [])
    assert validate("email", "sam at example") == (None, ["utter_invalid_email"])
    assert validate("email", "i can't remember") == ("unknown", ["utter_email_unknown"])


def test_form_wants_a_real_description():
    assert validate("case_description", "ok", "change_order") == (
        None, ["utter_invalid_description"])
    assert validate("case_description", "size L instead of M", "change_order")[0]


async def test_validation_runs_through_the_sdk_form_machinery():
    t = tracker(intent="inform", text="jl204815",
                slots={"case_topic": "order_status", "requested_slot": "order_id",
                       "order_id": "jl204815"}, active_loop="case_form")
    t.events = [{"event": "slot", "name": "order_id", "value": "jl204815"}]
    _, events = await run(ValidateCaseForm(), t)
    assert slots_set(events)["order_id"] == "JL-204815"


async def test_submitting_a_case_confirms_with_reference_and_masked_email():
    t = tracker(slots={"case_topic": "invoice_request", "order_id": "JL-204815",
                       "email": "priya.n@example.com"})
    messages, events = await run(ActionSubmitCase(), t)
    reference = slots_set(events)["case_reference"]
    assert reference.startswith("C-") and len(reference) == 8
    assert messages[0]["response"] == "utter_case_invoice_request"
    assert messages[0]["order"] == "order JL-204815"
    assert messages[0]["email_masked"] == "p***@example.com"
    assert "utter_case_invoice_request" in DOMAIN["responses"]


def test_every_case_topic_has_a_confirmation_response():
    for topic in CASE_DETAILS:
        if topic != "complaint":
            assert f"utter_case_{topic}" in DOMAIN["responses"], topic


async def test_a_submitted_complaint_goes_to_a_person_at_high_priority():
    t = tracker(intent="inform", slots={"case_topic": "complaint",
                                        "case_description": "parcel arrived crushed"})
    messages, events = await run(ActionSubmitCase(), t)
    slots = slots_set(events)
    assert slots["escalated"] is True
    assert slots["escalation_reason"] == "complaint"
    assert slots["escalation_priority"] == "high"
    assert "parcel arrived crushed" in slots["escalation_summary"]


async def test_asking_for_a_person_escalates_with_the_reason():
    messages, events = await run(ActionEscalate(), tracker(intent="request_human",
                                                           text="human please"))
    assert slots_set(events)["escalation_reason"] == "customer_request"
    assert messages[0]["response"] in {"utter_escalated_open", "utter_escalated_closed"}


def test_escalation_tells_the_truth_about_when_a_person_answers():
    dispatcher = CollectingDispatcher()
    escalate(dispatcher, tracker(intent="request_human"), "customer_request", now=OPEN)
    assert dispatcher.messages[0]["response"] == "utter_escalated_open"
    assert dispatcher.messages[0]["eta"] == "within about 4 hours"

    dispatcher = CollectingDispatcher()
    escalate(dispatcher, tracker(intent="request_human"), "customer_request", now=CLOSED)
    assert dispatcher.messages[0]["response"] == "utter_escalated_closed"
    assert dispatcher.messages[0]["eta"] == "when the team is back on Monday at 8am"


async def test_escalation_summary_carries_the_case_details():
    t = tracker(intent="nlu_fallback", text="the thing with the stuff",
                slots={"case_topic": "request_refund", "order_id": "JL-204815",
                       "email": "a@example.com", "case_description": "boots leak"})
    _, events = await run(ActionEscalate(), t)
    slots = slots_set(events)
    assert slots["escalation_reason"] == "low_confidence"
    assert slots["escalation_summary"] == (
        "Wants: Get a refund; order: JL-204815; email: a@example.com; details: boots leak")


async def test_no_second_handoff_when_already_with_a_person():
    messages, events = await run(ActionEscalate(), tracker(intent="request_human",
                                                           slots={"escalated": True}))
    assert events == []
    assert messages[0]["response"] == "utter_already_escalated"


async def test_clarifying_offers_the_likeliest_meanings_and_a_person():
    ranking = [{"name": "nlu_fallback", "confidence": 0.45},
               {"name": "refund_status", "confidence": 0.4},
               {"name": "faq", "confidence": 0.3},
               {"name": "request_refund", "confidence": 0.2},
               {"name": "order_status", "confidence": 0.1}]
    messages, _ = await run(ActionClarify(), tracker(intent="nlu_fallback", ranking=ranking))
    assert messages[0]["response"] == "utter_clarify"
    assert [b["payload"] for b in messages[0]["buttons"]] == [
        "/refund_status", "/request_refund", "/request_human"]


async def test_escalation_hands_the_gateway_full_context_and_pauses_the_bot():
    t = tracker(intent="request_human", text="human please",
                slots={"case_topic": "request_refund", "order_id": "JL-204815",
                       "email": "unknown"})
    t.events = [{"event": "user", "text": "i want a refund", "timestamp": 1.0,
                 "parse_data": {"intent": {"name": "request_refund", "confidence": 0.91},
                                "sentiment": {"label": "negative", "score": 0.8}}},
                {"event": "action", "name": "action_listen"}]
    messages, events = await run(ActionEscalate(), t)
    handoff = [m["custom"]["handoff"] for m in messages if m.get("custom")][0]
    assert handoff["reason"] == "customer_request"
    assert handoff["details"] == {"case_topic": "request_refund", "order_id": "JL-204815"}
    assert handoff["turns"] == [{"text": "i want a refund", "at": 1.0,
                                 "intent": "request_refund", "confidence": 0.91,
                                 "sentiment": "negative", "sentiment_score": 0.8,
                                 "language": None}]
    assert {"event": "pause", "timestamp": None} in events
    assert any(e.get("event") == "active_loop" and e.get("name") is None for e in events)


async def test_a_policy_trigger_sets_reason_priority_and_the_empathy_line():
    t = tracker(intent="complaint", text="you useless lot",
                slots={"escalation_trigger": "hostile", "escalation_trigger_priority": "high"})
    messages, events = await run(ActionEscalate(), t)
    assert messages[0]["response"] == "utter_escalation_empathy"
    slots = slots_set(events)
    assert (slots["escalation_reason"], slots["escalation_priority"]) == ("hostile", "high")
