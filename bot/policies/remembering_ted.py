"""TED, remembering its answer for each dialogue state it has already scored.

TED is Rasa's neural dialogue policy. Trained on intents (not on message
text, as here: no end-to-end stories), its prediction is a pure function of
the last ``max_history`` dialogue states: previous action, intent, entities,
slots that influence the conversation, active form. Customer-service
conversations walk the same few paths over and over, so the same states
recur constantly, yet Rasa runs the network (TensorFlow, a fifth of its CPU
per message in `make bench`) for every prediction.

This subclass computes the states as TED does, and answers from memory when
it has scored exactly those states before. The answer is the same one TED
gave then (the network has no randomness at inference), so dialogue
behaviour does not change; a model with end-to-end (text) features, whose
input includes the message text, is never remembered. Memory is bounded
(least recently used states are forgotten) and belongs to the loaded model,
so a new model starts afresh.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Dict, Optional

from rasa.core.constants import POLICY_MAX_HISTORY
from rasa.core.featurizers.precomputation import MessageContainerForCoreFeaturization
from rasa.core.featurizers.single_state_featurizer import SingleStateFeaturizer
from rasa.core.policies.policy import PolicyPrediction
from rasa.core.policies.ted_policy import TEDPolicy
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import TEXT

from bot.policies.dialogue_states import IncrementalStatesFeaturizer

# Distinct state windows remembered: a few kB each.
DEFAULT_REMEMBERED = 4096


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITH_END_TO_END_SUPPORT, is_trainable=True)
class RememberingTEDPolicy(TEDPolicy):
    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {**TEDPolicy.get_default_config(), "remembered_states": DEFAULT_REMEMBERED}

    def _standard_featurizer(self) -> IncrementalStatesFeaturizer:
        """TED's own featurizer, on dialogue states remembered with the conversation."""
        return IncrementalStatesFeaturizer(SingleStateFeaturizer(),
                                           max_history=self.config.get(POLICY_MAX_HISTORY))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remembered: OrderedDict[str, PolicyPrediction] = OrderedDict()
        self.hits = self.misses = 0

    def _rememberable(self) -> bool:
        """Only a model whose input is the states alone (no message text)."""
        return self.model is not None and TEXT not in self.fake_features

    def predict_action_probabilities(
            self, tracker: DialogueStateTracker, domain: Domain,
            rule_only_data: Optional[Dict[str, Any]] = None,
            precomputations: Optional[MessageContainerForCoreFeaturization] = None,
            **kwargs: Any) -> PolicyPrediction:
        if not self._rememberable():
            return super().predict_action_probabilities(
                tracker, domain, rule_only_data, precomputations, **kwargs)
        states = self._prediction_states(tracker, domain, rule_only_data=rule_only_data)
        key = json.dumps(states, sort_keys=True, default=list)
        remembered = self._remembered.get(key)
        if remembered is not None:
            self.hits += 1
            self._remembered.move_to_end(key)
            return _copy(remembered)
        self.misses += 1
        prediction = super().predict_action_probabilities(
            tracker, domain, rule_only_data, precomputations, **kwargs)
        if not prediction.events and not prediction.optional_events:
            self._remembered[key] = _copy(prediction)
            if len(self._remembered) > int(self.config.get("remembered_states",
                                                           DEFAULT_REMEMBERED)):
                self._remembered.popitem(last=False)
        return prediction


def _copy(prediction: PolicyPrediction) -> PolicyPrediction:
    """A prediction of its own: Rasa's ensemble edits probabilities in place."""
    return PolicyPrediction(
        list(prediction.probabilities), prediction.policy_name, prediction.policy_priority,
        is_end_to_end_prediction=prediction.is_end_to_end_prediction,
        is_no_user_prediction=prediction.is_no_user_prediction,
        hide_rule_turn=prediction.hide_rule_turn,
        action_metadata=prediction.action_metadata)
