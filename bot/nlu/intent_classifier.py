"""Rasa intent classifier over the sentence encoder, with confidence that means something.

Why not DIET: trained from scratch on a few thousand examples written by us,
DIET learns our wording, not our customers', and is most confident exactly
when it is wrong, so the fallback threshold cannot catch its mistakes. This
classifier reads the pretrained encoder's vector (bot/nlu/featurizer.py) and
the pipeline's sparse word and character n-gram features, and fits a
regularised logistic regression, whose probabilities are far better
calibrated. It trains in seconds.

Two more choices that matter on text nobody wrote for us:

- Every FAQ is its own class (``faq/opening_hours`` …), and the intent's
  probability is the sum of its classes. Trained as one ``faq`` blob of 26
  topics, it swallowed every "how do I …" question. The same prediction picks
  the FAQ answer, so the intent and the answer never disagree (this replaces
  the ResponseSelector; its output has the same shape).
- Knowing what it does not know: a message far from every training example in
  the encoder's space (cosine similarity of its nearest in-scope neighbours
  below ``novelty_floor``) has its confidence scaled down, so the
  FallbackClassifier after this component clarifies or the off-topic answer
  is given instead of a confident wrong answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import scipy.sparse
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, INTENT, INTENT_RESPONSE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from bot.nlu.linear import linear_probabilities
from bot.nlu.stored_model import StoredModelComponent

OUT_OF_SCOPE = "out_of_scope"
RETRIEVAL_INTENT = "faq"


@dataclass
class FittedModel:
    """What training produces; saved with joblib."""

    classifier: LogisticRegression
    keys: List[str]  # class labels: intent, or faq/<name>
    anchors: np.ndarray  # encoder vectors of the in-scope training examples
    responses: Dict[str, List[Dict[str, Any]]]  # utter_faq/<name> -> responses
    sparse_weight: float
    dense_weight: float


def _intent_of(key: str) -> str:
    return key.split("/", 1)[0]


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class EncoderIntentClassifier(StoredModelComponent[FittedModel], IntentClassifier):
    """Logistic regression on encoder + n-gram features, per FAQ, with a novelty gate."""

    MODEL_FILE = "encoder_intent_classifier.joblib"

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            # Inverse regularisation strength of the logistic regression.
            "C": 32.0,
            # How much each feature family counts (rows are L2-normalised first).
            "dense_weight": 1.0,
            "sparse_weight": 1.0,
            # Mean similarity of the k nearest in-scope examples: at or above
            # novelty_ceiling confidence is untouched; at novelty_floor or below
            # it is multiplied by novelty_min_factor; linear in between.
            "novelty_k": 3,
            "novelty_floor": 0.35,
            "novelty_ceiling": 0.6,
            "novelty_min_factor": 0.3,
            "ranking_length": 10,
            "random_seed": 1,
        }

    # -- features ---------------------------------------------------------------

    def _dense(self, messages: List[Message]) -> np.ndarray:
        rows = []
        for message in messages:
            _, sentence = message.get_dense_features(TEXT)
            if sentence is None:
                raise ValueError("EncoderIntentClassifier needs bot.nlu.featurizer."
                                 "SentenceEncoderFeaturizer before it in the pipeline")
            rows.append(np.asarray(sentence.features, dtype=np.float32).reshape(-1))
        return np.vstack(rows)

    @staticmethod
    def _sparse(messages: List[Message]) -> Optional[scipy.sparse.csr_matrix]:
        rows = []
        for message in messages:
            _, sentence = message.get_sparse_features(TEXT)
            if sentence is None:
                return None
            rows.append(scipy.sparse.csr_matrix(sentence.features))
        # Counts are squashed (log) and rows normalised, so long rants do not
        # dominate and the two feature families stay on one scale.
        matrix = scipy.sparse.vstack(rows).tocsr().astype(np.float32)
        matrix.data = np.log1p(matrix.data)
        return normalize(matrix)

    def _features(self, messages: List[Message], dense: np.ndarray,
                  sparse_weight: float, dense_weight: float) -> scipy.sparse.csr_matrix:
        parts = [scipy.sparse.csr_matrix(dense * dense_weight)]
        sparse = self._sparse(messages)
        if sparse is not None and sparse_weight:
            parts.append(sparse * sparse_weight)
        return scipy.sparse.hstack(parts).tocsr()

    # -- training -----------------------------------------------------------------

    def train(self, training_data: TrainingData) -> Resource:
        examples = [m for m in training_data.intent_examples if m.get(TEXT)]
        keys = [m.get(INTENT_RESPONSE_KEY) or m.get(INTENT) for m in examples]
        if len(set(keys)) < 2:
            raise ValueError("EncoderIntentClassifier needs at least two intents to train")
        dense = self._dense(examples)
        features = self._features(examples, dense, self._config["sparse_weight"],
                                  self._config["dense_weight"])
        classifier = LogisticRegression(C=self._config["C"], max_iter=5000,
                                        random_state=self._config["random_seed"])
        classifier.fit(features, keys)
        in_scope = np.array([_intent_of(k) != OUT_OF_SCOPE for k in keys])
        return self._save(FittedModel(
            classifier=classifier, keys=list(classifier.classes_), anchors=dense[in_scope],
            responses={name: list(value) for name, value in training_data.responses.items()
                       if name.startswith(f"utter_{RETRIEVAL_INTENT}/")},
            sparse_weight=self._config["sparse_weight"],
            dense_weight=self._config["dense_weight"]))

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    # -- prediction ----------------------------------------------------------------

    def novelty_factor(self, dense: np.ndarray) -> np.ndarray:
        """Per message, the factor (novelty_min_factor..1) its confidence is scaled by."""
        model = self._model
        if model is None or not len(model.anchors):
            return np.ones(len(dense))
        k = min(self._config["novelty_k"], len(model.anchors))
        similarity = dense @ model.anchors.T
        nearest = -np.sort(-similarity, axis=1)[:, :k].mean(axis=1)
        floor, ceiling = self._config["novelty_floor"], self._config["novelty_ceiling"]
        share = np.clip((nearest - floor) / max(ceiling - floor, 1e-6), 0.0, 1.0)
        low = self._config["novelty_min_factor"]
        return low + (1.0 - low) * share

    def process(self, messages: List[Message]) -> List[Message]:
        todo = [m for m in messages if m.get(TEXT)]
        if self._model is None or not todo:
            return messages
        if len(todo) == 1:  # a customer's message: no scipy matrices to build
            dense, probabilities = self._one_message(todo[0])
        else:
            model = self._model
            dense = self._dense(todo)
            probabilities = model.classifier.predict_proba(
                self._features(todo, dense, model.sparse_weight, model.dense_weight))
        factors = self.novelty_factor(dense)
        for message, row, factor in zip(todo, probabilities, factors, strict=True):
            self._annotate(message, row, float(factor))
        return messages

    def _one_message(self, message: Message) -> Tuple[np.ndarray, np.ndarray]:
        """(dense row, class probabilities) for one message, as ``_features`` and
        ``predict_proba`` give them, from the features' own arrays.

        Building scipy matrices (Rasa combining the featurizers' outputs, then
        ``_sparse`` and ``_features`` stacking them) was two thirds of this
        component's time for a single message; the arithmetic is the same.
        """
        model = self._model
        assert model is not None
        dense = [f.features.reshape(-1) for f in message.features
                 if f.attribute == TEXT and f.type == FEATURE_TYPE_SENTENCE and not f.is_sparse()]
        sparse = [f.features for f in message.features
                  if f.attribute == TEXT and f.type == FEATURE_TYPE_SENTENCE and f.is_sparse()]
        if not dense:
            raise ValueError("EncoderIntentClassifier needs bot.nlu.featurizer."
                             "SentenceEncoderFeaturizer before it in the pipeline")
        row = np.concatenate(dense).astype(np.float32)
        coef = model.classifier.coef_
        scores = coef[:, :len(row)] @ (row * np.float32(model.dense_weight)).astype(np.float64)
        if sparse and model.sparse_weight:
            offsets = np.cumsum([0] + [m.shape[1] for m in sparse])[:-1]
            columns = np.concatenate([m.tocoo().col + offset
                                      for m, offset in zip(sparse, offsets, strict=True)])
            values = np.log1p(np.concatenate([m.tocoo().data for m in sparse])
                              .astype(np.float32))
            norm = np.sqrt(np.sum(values * values, dtype=np.float32))
            if norm:
                values = values / norm
            values = (values * np.float32(model.sparse_weight)).astype(np.float64)
            scores = scores + coef[:, len(row) + columns] @ values
        probabilities = linear_probabilities(model.classifier,
                                             scores + model.classifier.intercept_)
        return row.reshape(1, -1), probabilities.reshape(1, -1)

    def _annotate(self, message: Message, row: np.ndarray, factor: float) -> None:
        model = self._model
        assert model is not None
        by_intent: Dict[str, float] = {}
        for key, p in zip(model.keys, row, strict=True):
            by_intent[_intent_of(key)] = by_intent.get(_intent_of(key), 0.0) + float(p)
        # Far from everything we know: less sure of every in-scope answer.
        ranking = sorted(((name, p if name == OUT_OF_SCOPE else p * factor)
                          for name, p in by_intent.items()), key=lambda kv: -kv[1])
        top_name, top_confidence = ranking[0]
        message.set(INTENT, {"name": top_name, "confidence": round(top_confidence, 4)},
                    add_to_output=True)
        message.set("intent_ranking",
                    [{"name": n, "confidence": round(p, 4)}
                     for n, p in ranking[:self._config["ranking_length"]]],
                    add_to_output=True)
        self._select_response(message, row, by_intent.get(RETRIEVAL_INTENT, 0.0))

    def _select_response(self, message: Message, row: np.ndarray, faq_total: float) -> None:
        """The FAQ answer, in the ResponseSelector's output shape (read by utter_faq)."""
        model = self._model
        assert model is not None
        faq = sorted(((k, float(p)) for k, p in zip(model.keys, row, strict=True)
                      if _intent_of(k) == RETRIEVAL_INTENT), key=lambda kv: -kv[1])
        if not faq:
            return
        total = max(faq_total, 1e-9)
        best, p_best = faq[0]
        utter = f"utter_{best}"
        message.set("response_selector", {
            "all_retrieval_intents": [RETRIEVAL_INTENT],
            RETRIEVAL_INTENT: {
                "response": {"responses": model.responses.get(utter, []),
                             "confidence": round(p_best / total, 4),
                             "intent_response_key": best, "utter_action": utter},
                "ranking": [{"confidence": round(p / total, 4), "intent_response_key": k}
                            for k, p in faq[:self._config["ranking_length"]]],
            },
        }, add_to_output=True)
