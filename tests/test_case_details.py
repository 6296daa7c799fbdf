"""What counts as an order number, an email, 'I don't know' and a description."""

import pytest

from actions.case_details import find_email, find_order_id, says_dont_know, usable_description
from bot.brand import load_brand
from bot.privacy import mask_email

FORMAT = load_brand().order_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("JL-204815", "JL-204815"),
        ("it's jl 551203 thanks", "JL-551203"),
        ("order #778210", "JL-778210"),
        ("778210", "JL-778210"),
        ("JL-12345", None),
        ("my order from tuesday", None),
        ("call me on 07700 900123", None),
    ],
)
def test_order_numbers_are_found_in_what_customers_type(text, expected):
    assert find_order_id(text, FORMAT) == expected


def test_emails_are_found_and_lowercased():
    assert find_email("it's Priya.N@Example.com ok") == "priya.n@example.com"
    assert find_email("priya at example dot com") is None


@pytest.mark.parametrize(
    "text",
    ["i don't know", "I dont know my order number", "no idea sorry", "dunno", "can't find it",
     "I've forgotten", "not sure tbh", "deleted the email"],
)
def test_dont_know_is_recognised(text):
    assert says_dont_know(text)


@pytest.mark.parametrize("text", ["JL-204815", "the zip broke", "yes"])
def test_answers_are_not_mistaken_for_dont_know(text):
    assert not says_dont_know(text)


def test_descriptions_need_substance():
    assert usable_description("  the zip   broke ") == "the zip broke"
    assert usable_description("ok") is None
    assert usable_description("no idea") is None
    assert len(usable_description("word " * 500)) == 1000


def test_emails_are_masked_when_repeated_back():
    assert mask_email("priya.n@example.com") == "p***@example.com"
    assert mask_email("garbage") == "***"
