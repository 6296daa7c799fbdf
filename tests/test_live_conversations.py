"""Whole conversations through the model and a real action server process.

These check what the customer actually reads: brand facts filled in, their
name used, details validated, and honest handover messages.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Dict, List

import pytest

from bot.brand import brand

pytestmark = pytest.mark.model


class Customer:
    """One customer DMing the bot; `say` returns the bot's replies."""

    def __init__(self, agent, first_name: str | None = None):
        self.agent = agent
        self.sender = f"test-{uuid.uuid4().hex[:8]}"
        self.metadata = {"first_name": first_name} if first_name else {}
        self.loop = asyncio.new_event_loop()

    def say(self, text: str) -> List[Dict]:
        from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

        channel = CollectingOutputChannel()
        message = UserMessage(text, channel, self.sender, metadata=self.metadata)
        self.loop.run_until_complete(self.agent.handle_message(message))
        return channel.messages

    def texts(self, text: str) -> str:
        replies = self.say(text)
        joined = "\n".join(r.get("text") or "" for r in replies)
        assert "None" not in joined and "{" not in joined, f"unfilled template: {joined}"
        return joined

    def slot(self, name: str):
        tracker = self.loop.run_until_complete(
            self.agent.tracker_store.retrieve(self.sender))
        return tracker.get_slot(name)


def test_greets_by_first_name_and_says_what_it_can_do(live_agent):
    reply = Customer(live_agent, "Amara").texts("hello")
    assert reply.startswith("Hi Amara")
    assert brand().assistant_name in reply and brand().name in reply


def test_brand_facts_come_from_the_profile(live_agent):
    customer = Customer(live_agent)
    contact = customer.texts("what's your phone number?")
    assert brand().contacts.phone in contact and brand().contacts.email in contact
    returns = customer.texts("how do returns work")
    assert f"{brand().returns.window_days} days" in returns


def test_faq_answer_is_specific(live_agent):
    reply = Customer(live_agent).texts("what are your opening hours?")
    assert brand().opening_hours.describe() in reply


def test_order_check_validates_and_confirms_without_exposing_the_email(live_agent):
    customer = Customer(live_agent, "Sam")
    assert "order number" in customer.texts("where is my order").lower()
    again = customer.texts("the blue one")
    assert "doesn't look like one of our order numbers" in again
    assert "email" in customer.texts("jl 204815").lower()
    done = customer.texts("sam.okafor@example.com")
    assert "JL-204815" in done and "Your reference is C-" in done
    assert customer.slot("order_id") == "JL-204815"


def test_dont_know_the_order_number_moves_on(live_agent):
    customer = Customer(live_agent)
    customer.texts("has my order shipped yet")
    reply = customer.texts("i don't know my order number")
    assert "find the order from your email" in reply


def test_topic_change_mid_form_is_answered_then_the_form_resumes(live_agent):
    customer = Customer(live_agent)
    customer.texts("i need to cancel my order")
    reply = customer.texts("do you sell gift cards?")
    assert "gift card" in reply.lower()
    assert "order number" in reply.lower()  # asked again


def test_asking_for_a_person_records_a_handoff(live_agent):
    customer = Customer(live_agent)
    reply = customer.texts("let me talk to a human")
    assert "reply right here" in reply and brand().contacts.email in reply
    assert customer.slot("escalated") is True
    assert customer.slot("escalation_reason") == "customer_request"


def test_an_angry_complaint_gets_empathy_and_a_person(live_agent):
    customer = Customer(live_agent, "Rob")
    reply = customer.texts(
        "this is the worst f***ing service ever, 3 weeks and my parcel still isn't here")
    assert "sorry, Rob" in reply
    if not customer.slot("escalated"):  # read as a complaint: its details come first
        customer.texts("rob.t@example.com")
    assert customer.slot("escalation_reason") in {"complaint", "hostile"}
    assert customer.slot("escalation_priority") == "high"
    assert "3 weeks" in (customer.slot("escalation_summary") or "") or (
        customer.slot("escalation_reason") == "hostile")


@pytest.mark.parametrize(
    ("opening", "email", "description"),
    [
        # Descriptions that, out of context, read as requests of their own.
        # Opened as a button press would, so the test is about the answers.
        ("/payment_problem", "tom.hale@mail.example",
         "it says payment failed every time i try"),
        ("/registration_problem", "nina.w@example.com",
         "waited an hour and checked spam too"),
    ],
)
def test_free_text_answers_fill_the_form_whatever_they_sound_like(
        live_agent, opening, email, description):
    customer = Customer(live_agent)
    customer.texts(opening)
    customer.texts(email)
    done = customer.texts(description)
    assert "Your reference is C-" in done
    assert customer.slot("case_description") == description
    assert customer.slot("email") == email


def test_unclear_twice_clarifies_once_then_hands_over(live_agent):
    # The payloads are what Rasa produces for a low-confidence message.
    customer = Customer(live_agent)
    clarify = customer.say("/nlu_fallback")
    assert clarify[-1]["buttons"][-1] == {"title": "Talk to a person",
                                          "payload": "/request_human"}
    handover = customer.texts("/nlu_fallback")
    assert "reply right here" in handover
    assert customer.slot("escalation_reason") == "low_confidence"


def test_a_no_mid_form_asks_before_dropping_the_request(live_agent):
    customer = Customer(live_agent)
    customer.texts("i want to cancel an order")
    assert "drop this request" in customer.texts("no")
    assert "I've dropped that request" in customer.texts("yes")


def test_hostility_goes_to_a_person_with_empathy_first(live_agent):
    customer = Customer(live_agent, "Rob")
    reply = customer.texts("you are useless f*cking clowns, where is my parcel")
    assert reply.startswith("I'm sorry, Rob")
    assert "reply right here" in reply
    assert customer.slot("escalation_reason") == "hostile"
    assert customer.slot("escalation_priority") == "high"


def test_a_cry_for_help_is_met_with_safety_numbers_and_a_person(live_agent):
    customer = Customer(live_agent)
    reply = customer.texts("honestly i just want to end my life")
    assert "999" in reply and "116 123" in reply
    assert customer.slot("escalation_reason") == "sensitive:self_harm"
    assert customer.slot("escalation_priority") == "urgent"


# --- replies that fit how the customer feels (actions/mood.py) ---------------

def test_sarcastic_thanks_gets_an_apology_not_a_youre_welcome(live_agent):
    reply = Customer(live_agent, "Priya").texts("oh thanks for nothing, really helpful 🙄")
    assert "sorry" in reply.lower()
    assert "welcome" not in reply.lower() and "so kind" not in reply.lower()


def test_an_angry_great_job_is_not_taken_as_praise(live_agent):
    reply = Customer(live_agent).texts("great job guys, lost my parcel AGAIN. brilliant.")
    assert "so kind" not in reply.lower() and "welcome" not in reply.lower()
    assert "sorry" in reply.lower()


def test_a_complaint_about_another_companys_service_is_not_pulled_into_our_form(live_agent):
    customer = Customer(live_agent, "Dev")
    reply = customer.texts("my flight to madrid was cancelled and the airline won't refund me, "
                           "this is a disgrace")
    assert "order number" not in reply.lower() and "email" not in reply.lower()
    assert "sorry" in reply.lower()
    assert customer.slot("case_topic") is None


def test_an_upset_customer_with_an_order_problem_hears_sorry_before_the_question(live_agent):
    customer = Customer(live_agent, "Jo")
    reply = customer.texts("ugh, where is my order?? it's been ages and I'm so fed up")
    # Read as a late order or as a complaint: either way, sorry comes first.
    assert reply.startswith(("I'm sorry for the trouble, Jo", "I'm really sorry, Jo"))
    assert customer.slot("requested_slot") in {"order_id", "case_description"}


def test_a_message_in_another_language_goes_to_a_person_answered_in_that_language(live_agent):
    customer = Customer(live_agent, "Élodie")
    replies = customer.say("Bonjour, ma commande n'est toujours pas arrivée, pouvez-vous "
                           "m'aider ?")
    said = [r["text"] for r in replies if r.get("text")]
    assert said == [brand().other_language_reply("fr")]
    [handoff] = [r["custom"]["handoff"] for r in replies if r.get("custom")]
    assert (handoff["reason"], handoff["language"]) == ("other_language", "fr")
    assert handoff["turns"][-1]["language"] == "fr"
    assert customer.slot("escalated") is True


def test_a_language_without_a_line_is_answered_honestly_in_english(live_agent):
    replies = Customer(live_agent).say("Merhaba, siparişim hâlâ gelmedi, yardım eder misiniz?")
    said = "\n".join(r["text"] for r in replies if r.get("text"))
    assert "I can only read English so far" in said and "reply right here" in said
    [handoff] = [r["custom"]["handoff"] for r in replies if r.get("custom")]
    assert handoff["language"] == "tr"


def test_english_with_a_foreign_word_stays_with_the_bot(live_agent):
    replies = Customer(live_agent).say("merci! where is my order please")
    assert not [r for r in replies if r.get("custom")]
