"""Remembered dialogue states are exactly Rasa's own, and describing them does not grow.

bot/policies/dialogue_states.py keeps the states of what a conversation has
already said instead of rebuilding them for every prediction. Any difference
from Rasa's own description would change what the bot does, so these tests
grow trackers one event at a time (real conversations through the model and
action server, every training story and rule, and those with reverts,
restarts, session starts and forms mixed in) and compare after every event.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Iterator, List

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActionReverted,
    ActiveLoop,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot.policies.dialogue_states import UNSETTLED_TURNS, applied_events, past_states
from tests.test_live_conversations import Customer

pytestmark = pytest.mark.model

# The two ways the policies ask: RulePolicy (everything), the ML policies (rule-only
# turns, slots and loops left out).
RULE_ONLY_DATA = {"rule_only_slots": ["escalated", "case_topic"], "rule_only_loops": []}
ASKS = [dict(), dict(ignore_rule_only_turns=True, rule_only_data=RULE_ONLY_DATA),
        dict(omit_unset_slots=True)]


@pytest.fixture(scope="module")
def domain(project_root: Path) -> Domain:
    return Domain.load(str(project_root / "domain.yml"))


@pytest.fixture(scope="module")
def story_events(project_root: Path, domain: Domain) -> List[List[Event]]:
    """The events of every training story and rule, as Rasa's trainer generates them."""
    from rasa.shared.core.generator import TrainingDataGenerator
    from rasa.shared.importers.importer import TrainingDataImporter

    importer = TrainingDataImporter.load_from_config(
        str(project_root / "config.yml"), str(project_root / "domain.yml"),
        [str(project_root / "data")])
    trackers = TrainingDataGenerator(importer.get_stories(), domain,
                                     augmentation_factor=0).generate()
    return [list(tracker.events) for tracker in trackers]


def grown(events: List[Event], domain: Domain) -> Iterator[DialogueStateTracker]:
    """One tracker, after each of ``events`` in turn."""
    tracker = DialogueStateTracker("grown", domain.slots)
    for event in events:
        tracker.update(copy.copy(event) if isinstance(event, UserUttered) else event)
        yield tracker


def assert_same_as_rasa(events: List[Event], domain: Domain) -> None:
    for step, tracker in enumerate(grown(events, domain)):
        assert applied_events(tracker) == tracker.applied_events(), f"after event {step}"
        for ask in ASKS:
            ours = past_states(tracker, domain, **ask)
            theirs = domain.states_for_tracker_history(tracker, **ask)
            assert ours == theirs, f"after event {step} ({events[step]}), asked {ask}"


def test_every_story_and_rule_is_described_as_rasa_does(story_events, domain):
    assert len(story_events) > 50
    for events in story_events:
        assert_same_as_rasa(events, domain)


def test_reverts_restarts_sessions_and_new_forms_are_followed_as_rasa_does(story_events, domain):
    """Rasa rewrites the applied events on these; the memory must notice every time."""
    chooser = random.Random(14)
    disruptions = [lambda: UserUtteranceReverted(), lambda: ActionReverted(),
                   lambda: Restarted(), lambda: SessionStarted(),
                   lambda: ActiveLoop("case_form"), lambda: ActiveLoop(None),
                   lambda: ActionExecuted("case_form"), lambda: SlotSet("escalated", True)]
    for _ in range(150):
        events = list(chooser.choice(story_events)) + list(chooser.choice(story_events))[1:]
        for _ in range(chooser.randint(1, 4)):
            events.insert(chooser.randint(1, len(events)), chooser.choice(disruptions)())
        assert_same_as_rasa(events, domain)


def conversation(live_agent, messages: List[str]) -> List[Event]:
    customer = Customer(live_agent, "Robin")
    for text in messages:
        customer.say(text)
    tracker = customer.loop.run_until_complete(live_agent.tracker_store.retrieve(customer.sender))
    return list(tracker.events)


def test_real_conversations_are_described_as_rasa_does(live_agent, domain):
    """Forms with interruptions, refusals, thanks and a handover, as the model ran them
    (with the flags on each action that only a real prediction sets)."""
    talks = [
        ["hi", "where is my parcel?", "how do returns work?", "JL-204815", "thanks!"],
        ["hello", "i want a refund", "no", "yes", "do you deliver to ireland?", "thank you"],
        ["hey", "my order hasn't arrived", "i don't know", "it never came, box was empty",
         "can i talk to a person"],
        ["hi there", "what is this?", "asdf qwerty", "ok"],
    ]
    for messages in talks:
        events = conversation(live_agent, messages)
        assert any(isinstance(e, ActionExecuted) and e.hide_rule_turn for e in events)
        assert_same_as_rasa(events, domain)


def test_a_long_conversation_costs_no_more_to_describe_at_turn_200(live_agent, domain,
                                                                  monkeypatch):
    """Only the unsettled end is described again, however long the conversation."""
    one_turn = conversation(live_agent, ["hi", "how do returns work?", "thanks!"])
    start = next(i for i, e in enumerate(one_turn) if isinstance(e, UserUttered))
    first = next(i for i, e in enumerate(one_turn[start + 1:], start + 1)
                 if isinstance(e, UserUttered))
    turn = one_turn[first - 1:]  # action_listen, the customer's message, the bot's answer

    described = []
    describe = domain.get_active_state
    monkeypatch.setattr(domain, "get_active_state",
                        lambda *a, **k: described.append(1) or describe(*a, **k))

    def describing_cost(tracker: DialogueStateTracker) -> int:
        described.clear()
        past_states(tracker, domain)
        return len(described)

    tracker = DialogueStateTracker("long", domain.slots)
    costs = []
    for event in one_turn[:first - 1]:
        tracker.update(event)
    for _ in range(200):
        for event in turn:
            tracker.update(copy.deepcopy(event))
        costs.append(describing_cost(tracker))
    per_turn = sum(isinstance(e, ActionExecuted) for e in turn)
    assert costs[-1] == costs[19] <= per_turn * (UNSETTLED_TURNS + 1) + 1
    monkeypatch.undo()
    assert past_states(tracker, domain) == domain.states_for_tracker_history(tracker)


def test_slots_that_steer_the_dialogue_are_described_as_rasa_does():
    """Our domain's slots do not influence the dialogue; a bot whose slots do must be
    described right too (each state carries the slot values of its moment)."""
    domain = Domain.from_yaml("""
intents: [greet, inform, thank]
entities: [mood]
slots:
  mood:
    type: categorical
    values: [happy, sad]
    influence_conversation: true
    mappings: [{type: custom}]
  done:
    type: bool
    influence_conversation: true
    mappings: [{type: custom}]
actions: [action_check]
responses:
  utter_hi: [{text: hi}]
  utter_ok: [{text: ok}]
""")
    chooser = random.Random(7)
    events: List[Event] = [ActionExecuted("action_listen")]
    for turn in range(30):
        events.append(UserUttered(f"m{turn}", {"name": chooser.choice(["greet", "inform",
                                                                       "thank"]),
                                               "confidence": 1.0}))
        events.append(ActionExecuted(chooser.choice(["utter_hi", "utter_ok", "action_check"])))
        if chooser.random() < 0.6:
            events.append(SlotSet(chooser.choice(["mood", "done"]),
                                  chooser.choice(["happy", "sad", True, False, None])))
        if chooser.random() < 0.1:
            events.append(chooser.choice([UserUtteranceReverted(), ActionReverted()]))
        events.append(ActionExecuted("action_listen"))
    assert_same_as_rasa(events, domain)
