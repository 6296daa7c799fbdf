"""The quick ways Rasa's per-message work is done give exactly what the slow ways gave.

On the trained model (its real components), over varied customer messages.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytestmark = pytest.mark.model

MESSAGES = ["hi there", "where is my parcel?", "my order number is JL-204815",
            "do you take paypal", "I want a refund for the blue candle", "ok", "asdf qwer",
            "you useless clowns!!!", "I am FURIOUS about this", "thanks so much, lovely",
            "can i change the address on my order", "how do i reset my password?"]


def component(agent, kind):
    nodes = agent.processor.graph_runner._instantiated_nodes.values()
    return next(n._component for n in nodes if isinstance(getattr(n, "_component", None), kind))


def test_the_intent_classifier_scores_one_message_as_the_batch_path_does(agent):
    from rasa.shared.nlu.training_data.message import Message

    from bot.nlu.intent_classifier import EncoderIntentClassifier

    classifier = component(agent, EncoderIntentClassifier)
    model = classifier._model
    seen = []
    nodes = agent.processor.graph_runner._instantiated_nodes.values()
    node = next(n for n in nodes if getattr(n, "_component", None) is classifier)
    run = node._fn

    def compare(self, messages):
        message: Message = messages[0]
        dense, fast = classifier._one_message(message)
        batch_dense = classifier._dense([message])
        slow = model.classifier.predict_proba(classifier._features(
            [message], batch_dense, model.sparse_weight, model.dense_weight))
        seen.append((np.abs(fast - slow).max(), np.abs(dense - batch_dense).max()))
        return run(self, messages)

    node._fn = compare
    try:
        loop = asyncio.new_event_loop()
        for text in MESSAGES:
            loop.run_until_complete(agent.parse_message(text))
        loop.close()
    finally:
        node._fn = run
    assert len(seen) == len(MESSAGES)
    assert max(max(pair) for pair in seen) < 1e-6


def test_sentiment_scores_block_by_block_as_on_the_stacked_features(agent):
    from bot.nlu.sentiment import SentimentAnalyzer

    model = component(agent, SentimentAnalyzer)._model
    stacked = model.classifier.predict_proba(model._features(MESSAGES))
    assert np.abs(model._probabilities(MESSAGES) - stacked).max() < 1e-9
    for text in MESSAGES:
        assert np.abs(model._probabilities([text])
                      - model.classifier.predict_proba(model._features([text]))).max() < 1e-9


def test_remembered_ted_answers_are_teds_own(agent):
    from rasa.core.policies.ted_policy import TEDPolicy
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.policies.remembering_ted import RememberingTEDPolicy

    ted = component(agent, RememberingTEDPolicy)
    domain = agent.domain
    histories = [
        [ActionExecuted("action_listen"), UserUttered("hi", {"name": "greet"})],
        [ActionExecuted("action_listen"), UserUttered("where", {"name": "order_status"}),
         ActionExecuted("action_open_case")],
        [ActionExecuted("action_listen"), UserUttered("thanks", {"name": "thank_you"}),
         ActionExecuted("action_reply_to_thanks")],
    ]
    for events in histories:
        tracker = DialogueStateTracker.from_events("t", events, slots=domain.slots)
        network = TEDPolicy.predict_action_probabilities(ted, tracker, domain)
        first = ted.predict_action_probabilities(tracker, domain)
        hits = ted.hits
        again = ted.predict_action_probabilities(tracker, domain)
        assert ted.hits == hits + 1
        assert first.probabilities == again.probabilities == network.probabilities
        again.probabilities[0] = 1.0  # Rasa's ensemble edits predictions in place
        assert ted.predict_action_probabilities(tracker, domain).probabilities == \
            network.probabilities
