"""Escalation as a dialogue decision: a Rasa policy that hands over to a person.

Right after each customer message it reads the whole conversation (intent,
confidence and sentiment of every turn) and, when a trigger in
escalation.yml fires, predicts ``action_escalate`` with full confidence at a
priority above the rules. The trigger and its priority travel with the
prediction as slot events, so action_escalate records exactly why.

While a person has the conversation it keeps the bot quiet: Rasa's pause
does that normally, and this policy as well whenever the ``escalated`` slot is
still set without a pause (e.g. the handoff's resume reached Rasa but the
hand-back event did not), until the hand-back event arrives.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, List, Optional

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from bot.escalation_rules import NOT_ANSWERS, EscalationRules, Turn
from bot.handoff_contract import (
    RESOLVED_INTENT,
    TRIGGER_DETAIL_SLOT,
    TRIGGER_PRIORITY_SLOT,
    TRIGGER_SLOT,
    is_external,
)
from bot.language import LANGUAGE
from bot.policies.dialogue_states import applied_events

ESCALATE = "action_escalate"


def turns_from_tracker(tracker: DialogueStateTracker) -> List[Turn]:
    """The customer's turns in the current session, as the NLU read them.

    Only those since a person last handed the conversation back: what came
    before, that person has dealt with.
    """
    turns: List[Turn] = []
    previous: Optional[str] = None
    first_reply_pending = False  # the latest turn has had no bot action yet
    for event in applied_events(tracker):
        if isinstance(event, ActionExecuted) and event.action_name not in (
                None, ACTION_LISTEN_NAME):
            previous = event.action_name
            if first_reply_pending and turns:
                # What the bot did first tells whether it answered the turn itself.
                turns[-1] = replace(turns[-1], answered=previous not in NOT_ANSWERS)
            first_reply_pending = False
        elif isinstance(event, UserUttered) and is_external(event.metadata):
            if event.intent_name == RESOLVED_INTENT:
                turns, previous = [], None
        elif isinstance(event, UserUttered):
            parse = event.parse_data or {}
            sentiment = parse.get("sentiment") or {}
            turns.append(Turn(
                text=event.text or "", intent=event.intent_name,
                confidence=float((event.intent or {}).get("confidence") or 0.0),
                sentiment=sentiment.get("label"),
                sentiment_score=float(sentiment.get("score") or 0.0),
                previous_bot_action=previous,
                language=parse.get(LANGUAGE),
            ))
            first_reply_pending = True
    return turns


def _last_turn_event(tracker: DialogueStateTracker) -> Optional[Event]:
    """The latest customer message or bot action (slot and loop events skipped)."""
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered | ActionExecuted):
            return event
    return None


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT], is_trainable=False)
class EscalationPolicy(Policy):
    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        # Above RulePolicy (6): a hostile or sensitive message overrides any rule.
        return {"priority": 7, "config": None}

    def __init__(self, config: Dict[str, Any], model_storage: ModelStorage,
                 resource: Resource, execution_context: ExecutionContext,
                 featurizer: Any = None) -> None:
        super().__init__(config, model_storage, resource, execution_context, featurizer)
        self.rules = EscalationRules.load(config.get("config"))

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain,
              **kwargs: Any) -> Resource:
        return self._resource  # nothing to learn: the triggers are configuration

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain,
                                     rule_only_data: Optional[Dict[str, Any]] = None,
                                     **kwargs: Any) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        last = _last_turn_event(tracker)
        if isinstance(last, ActionExecuted) and last.action_name == ESCALATE:
            # The handoff ends the bot's turn (Rasa pauses the conversation).
            probabilities[domain.index_for_action(ACTION_LISTEN_NAME)] = 1.0
            return self._prediction(probabilities)
        # After a pause there is no action_listen before the customer's message.
        just_spoke = isinstance(last, UserUttered)
        if (just_spoke and tracker.get_slot("escalated") and not tracker.is_paused()
                and last.intent_name != RESOLVED_INTENT):
            # A person has it still: listen, whatever the rules would say.
            probabilities[domain.index_for_action(ACTION_LISTEN_NAME)] = 1.0
            return self._prediction(probabilities)
        if (not just_spoke or tracker.is_paused() or tracker.get_slot("escalated")
                or ESCALATE not in domain.action_names_or_texts):
            return self._prediction(probabilities)
        decision = self.rules.decide(turns_from_tracker(tracker))
        if decision is None:
            return self._prediction(probabilities)
        probabilities[domain.index_for_action(ESCALATE)] = 1.0
        return self._prediction(probabilities, events=[
            SlotSet(TRIGGER_SLOT, decision.reason),
            SlotSet(TRIGGER_PRIORITY_SLOT, decision.priority),
            SlotSet(TRIGGER_DETAIL_SLOT, decision.detail),
        ])

    @classmethod
    def load(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> EscalationPolicy:
        return cls(config, model_storage, resource, execution_context)
