"""Escalation triggers (escalation.yml) and the Rasa policy that applies them."""

from __future__ import annotations

import pytest

from bot.brand import PROJECT_ROOT
from bot.escalation_rules import EscalationConfigError, EscalationRules, Turn
from tests.policy_support import escalation_policy

RULES = EscalationRules.load()


def turn(text="hello", intent="greet", sentiment="neutral", score=0.9, previous=None):
    return Turn(text=text, intent=intent, confidence=0.9, sentiment=sentiment,
                sentiment_score=score, previous_bot_action=previous)


def test_a_calm_conversation_stays_with_the_bot():
    assert RULES.decide([turn(), turn("where is my order", "order_status")]) is None


def test_a_hostile_message_goes_to_a_person_at_high_priority():
    decision = RULES.decide([turn("you useless clowns", "complaint", "hostile", 0.93)])
    assert (decision.reason, decision.priority) == ("hostile", "high")


def test_an_unsure_hostile_reading_is_not_enough():
    assert RULES.decide([turn("ugh you lot", "complaint", "hostile", 0.3)]) is None


def test_three_negative_turns_in_a_row_are_a_souring_conversation():
    sour = [turn("late again", "complaint", "negative"),
            turn("still nothing", "order_status", "negative"),
            turn("this is so frustrating", "complaint", "negative")]
    assert RULES.decide(sour[:2]) is None
    assert RULES.decide(sour).reason == "negative_trajectory"
    recovered = [sour[0], turn("ok thanks", "thank_you", "positive"), *sour[1:]]
    assert RULES.decide(recovered) is None


def test_the_same_request_twice_means_the_bot_did_not_solve_it():
    turns = [turn("where is my order", "order_status"), turn("JL-204815", "inform"),
             turn("where is my order?? still nothing", "order_status")]
    assert RULES.decide(turns).reason == "repeated_request"
    chat = [turn("hi"), turn("thanks", "thank_you"), turn("thanks again", "thank_you")]
    assert RULES.decide(chat) is None


def test_two_off_topic_messages_hand_over():
    turns = [turn("weather?", "out_of_scope"), turn("tell me a joke", "out_of_scope")]
    assert RULES.decide(turns[:1]) is None
    assert RULES.decide(turns).reason == "repeated_out_of_scope"


def test_a_dropped_form_followed_by_a_new_request_hands_over():
    turns = [turn("cancel my order", "cancel_order"), turn("no", "deny"),
             turn("yes", "affirm"),
             turn("ok then i want a refund", "request_refund", previous="utter_case_stopped")]
    assert RULES.decide(turns).reason == "form_abandoned"


@pytest.mark.parametrize(("text", "topic"), [
    ("sort it or I'm taking legal action", "legal"),
    ("the candle caught fire on my table", "safety"),
    ("I think my account was hacked, there are orders I didn't make", "data_breach"),
    ("honestly I just want to end my life", "self_harm"),
])
def test_sensitive_topics_go_straight_to_a_person_at_top_priority(text, topic):
    decision = RULES.decide([turn(text, "complaint", "negative")])
    assert (decision.reason, decision.priority) == (f"sensitive:{topic}", "urgent")


def test_each_trigger_can_be_switched_off(tmp_path):
    config = (PROJECT_ROOT / "escalation.yml").read_text().replace(
        "hostile:\n  enabled: true", "hostile:\n  enabled: false")
    path = tmp_path / "escalation.yml"
    path.write_text(config)
    rules = EscalationRules.load(path)
    assert rules.decide([turn("you useless clowns", "complaint", "hostile", 0.99)]) is None


@pytest.mark.parametrize(("change", "message"), [
    (("priority: urgent", "priority: asap"), "sensitive.priority 'asap'"),
    (("'\\b(lawyer", "'\\b((lawyer"), "bad pattern"),
])
def test_a_broken_config_names_the_problem(tmp_path, change, message):
    path = tmp_path / "escalation.yml"
    path.write_text((PROJECT_ROOT / "escalation.yml").read_text().replace(*change))
    with pytest.raises(EscalationConfigError, match=message):
        EscalationRules.load(path)


def test_the_policy_predicts_escalation_with_its_reason():
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    policy, domain = escalation_policy()

    def tracker(sentiment):
        parse = {"intent": {"name": "complaint", "confidence": 0.9},
                 "sentiment": {"label": sentiment, "score": 0.95}}
        return DialogueStateTracker.from_events("t", [
            ActionExecuted("action_listen"),
            UserUttered("you are useless", {"name": "complaint", "confidence": 0.9},
                        parse_data=parse),
        ], slots=domain.slots)

    calm = policy.predict_action_probabilities(tracker("negative"), domain)
    assert max(calm.probabilities) == 0.0
    angry = policy.predict_action_probabilities(tracker("hostile"), domain)
    assert domain.action_names_or_texts[angry.max_confidence_index] == "action_escalate"
    assert angry.policy_priority == 7
    assert {e.key: e.value for e in angry.events}["escalation_trigger"] == "hostile"


def test_asking_again_what_the_bot_answered_is_not_a_failure():
    answered = turn("how long is delivery", "delivery_info")
    answered = Turn(**{**answered.__dict__, "answered": True})
    again = turn("sorry, how long was delivery?", "delivery_info")
    assert RULES.decide([answered, turn("thanks", "thank_you"), again]) is None
    unanswered = turn("how long is delivery", "delivery_info")
    assert RULES.decide([unanswered, again]).reason == "repeated_request"


def test_the_policy_counts_a_request_as_answered_only_when_the_bot_answered_it():
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.policies.escalation import turns_from_tracker

    policy, domain = escalation_policy()

    def customer(text, intent):
        parse = {"intent": {"name": intent, "confidence": 0.95},
                 "sentiment": {"label": "neutral", "score": 0.9}}
        return UserUttered(text, {"name": intent, "confidence": 0.95}, parse_data=parse)

    def next_action(events):
        tracker = DialogueStateTracker.from_events("t", events, slots=domain.slots)
        prediction = policy.predict_action_probabilities(tracker, domain)
        if max(prediction.probabilities) == 0.0:
            return None
        return domain.action_names_or_texts[prediction.max_confidence_index]

    listen = ActionExecuted("action_listen")
    faq_twice = [listen, customer("how long is delivery", "delivery_info"),
                 ActionExecuted("utter_delivery_info"), listen,
                 customer("how long was delivery again?", "delivery_info")]
    assert next_action(faq_twice) is None  # the rules answer it again
    turns = turns_from_tracker(DialogueStateTracker.from_events("t", faq_twice,
                                                                slots=domain.slots))
    assert [t.answered for t in turns] == [True, False]
    # A case goes to the team: asking for it again means it is not solved yet.
    case_twice = [listen, customer("where is my order", "order_status"),
                  ActionExecuted("action_open_case"), ActionExecuted("case_form"), listen,
                  customer("where is my order??", "order_status")]
    assert next_action(case_twice) == "action_escalate"
    # So does a question the bot only asked to have rephrased.
    unclear_twice = [listen, customer("delivery??", "delivery_info"),
                     ActionExecuted("action_clarify"), listen,
                     customer("delivery time?", "delivery_info")]
    assert next_action(unclear_twice) == "action_escalate"
