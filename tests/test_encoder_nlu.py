"""The pretrained sentence encoder and the intent classifier built on it.

The classifier is trained through Rasa on the small trainer fixture (seconds),
so the featurizer, the classifier and the FAQ answer shape are exercised the
way `rasa train` and the running bot use them.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bot.brand import PROJECT_ROOT
from bot.nlu.encoder import DIMENSIONS, shared_encoder

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "trainer"


def test_sentences_that_mean_the_same_are_closest():
    vectors = shared_encoder().encode([
        "my parcel still hasn't arrived",
        "the package I ordered never turned up",
        "what's the weather like in Leeds tomorrow",
    ])
    assert vectors.shape == (3, DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    same, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert same > unrelated + 0.2


def test_encoding_is_deterministic_and_handles_empty_and_long_text():
    encoder = shared_encoder()
    first = encoder.encode(["hello there", "", "word " * 2000])
    again = encoder.encode(["hello there"])
    assert np.array_equal(first[0], again[0])
    assert np.isfinite(first).all()


@pytest.fixture(scope="module")
def fixture_agent(tmp_path_factory):
    from rasa.core.agent import Agent

    from bot.trainer.evaluate import train_nlu_model

    out = tmp_path_factory.mktemp("encoder-model")
    model = train_nlu_model(FIXTURE / "config.yml", FIXTURE / "domain.yml",
                            FIXTURE / "data" / "nlu", out)
    return Agent.load(str(model))


def parse(agent, text):
    return asyncio.run(agent.parse_message(text))


def test_the_classifier_understands_phrasings_it_was_not_given(fixture_agent):
    result = parse(fixture_agent, "could you look into where my delivery has got to")
    assert result["intent"]["name"] == "order_status"
    ranking = result["intent_ranking"]
    assert ranking[0]["name"] == "order_status"
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0, abs=0.02)


def test_the_faq_answer_comes_with_the_intent_in_the_response_selector_shape(fixture_agent):
    result = parse(fixture_agent, "what time do you open on saturdays")
    assert result["intent"]["name"] == "faq"
    selected = result["response_selector"]["faq"]["response"]
    assert selected["intent_response_key"] == "faq/opening_hours"
    assert selected["utter_action"] == "utter_faq/opening_hours"
    assert result["response_selector"]["all_retrieval_intents"] == ["faq"]
    ranking = result["response_selector"]["faq"]["ranking"]
    assert ranking[0]["intent_response_key"] == "faq/opening_hours"


def test_a_message_unlike_anything_trained_is_not_answered_confidently(fixture_agent):
    known = parse(fixture_agent, "where is my order")
    novel = parse(fixture_agent, "how many moons does jupiter have")
    assert known["intent"]["confidence"] > 0.5
    # Scaled down by the novelty gate: the fallback catches it.
    assert novel["intent"]["name"] == "nlu_fallback"


def test_every_parse_still_carries_sentiment(fixture_agent):
    result = parse(fixture_agent, "you useless idiots, where is my refund")
    assert result["sentiment"]["label"] == "hostile"
