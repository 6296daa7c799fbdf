"""Replies that fit how the customer feels (actions/mood.py, clarify, case opening)."""

import pytest

from actions.cases import ActionOpenCase
from actions.clarify import ActionClarify
from actions.mood import ActionDeclineOffTopic, ActionReplyToThanks
from tests.actions_support import DOMAIN, tracker
from tests.test_actions import run


@pytest.mark.parametrize(("intent", "sentiment", "response"), [
    ("thank_you", "positive", "utter_you_are_welcome"),
    ("thank_you", None, "utter_you_are_welcome"),
    ("praise", "positive", "utter_praise_thanks"),
    # "thanks for nothing", an angry "great job, guys": not thanks, not praise.
    ("thank_you", "negative", "utter_sorry_we_let_you_down"),
    ("praise", "hostile", "utter_sorry_we_let_you_down"),
])
async def test_thanks_and_praise_are_welcomed_only_when_meant(intent, sentiment, response):
    messages, _ = await run(ActionReplyToThanks(), tracker(intent=intent, sentiment=sentiment))
    assert [m["response"] for m in messages] == [response]


@pytest.mark.parametrize(("sentiment", "response"), [
    ("neutral", "utter_out_of_scope"),
    ("negative", "utter_other_company"),
    ("hostile", "utter_other_company"),
])
async def test_a_grievance_about_something_we_dont_do_is_met_kindly(sentiment, response):
    messages, _ = await run(ActionDeclineOffTopic(),
                            tracker(intent="out_of_scope", sentiment=sentiment))
    assert [m["response"] for m in messages] == [response]


async def test_an_upset_customer_gets_an_apology_with_the_menu_not_a_bare_menu():
    ranking = [{"name": "nlu_fallback", "confidence": 0.45},
               {"name": "order_status", "confidence": 0.4}]
    calm, _ = await run(ActionClarify(), tracker(intent="nlu_fallback", ranking=ranking))
    upset, _ = await run(ActionClarify(), tracker(intent="nlu_fallback", ranking=ranking,
                                                  sentiment="negative"))
    assert calm[0]["response"] == "utter_clarify"
    assert upset[0]["response"] == "utter_clarify_upset"
    assert upset[0]["buttons"] == calm[0]["buttons"]


async def test_an_upset_customer_hears_sorry_before_the_first_form_question():
    calm, _ = await run(ActionOpenCase(), tracker(intent="order_status", text="where is it"))
    upset, _ = await run(ActionOpenCase(), tracker(intent="order_status", text="where is it",
                                                   sentiment="negative"))
    assert calm == []
    assert [m["response"] for m in upset] == ["utter_sorry_for_trouble"]
    # A complaint already opens with its own apology: not twice.
    complaint, _ = await run(ActionOpenCase(), tracker(intent="complaint", sentiment="hostile"))
    assert complaint == []


def test_every_mood_response_exists_with_and_without_the_name():
    for name in ("utter_clarify_upset", "utter_sorry_for_trouble",
                 "utter_sorry_we_let_you_down", "utter_other_company"):
        variants = DOMAIN["responses"][name]
        assert any("{customer_name}" in v["text"] for v in variants), name
        assert any("condition" not in v and "{customer_name}" not in v["text"]
                   for v in variants), name
