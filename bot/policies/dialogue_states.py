"""Dialogue states remembered with the conversation, so a message costs the same at turn 200.

Rasa's dialogue policies decide from the conversation's *states*: one per bot
action, each the previous action, the customer's intent and entities, the
slots and the active form at that moment. Rasa rebuilds the whole list for
every prediction, several times per message (each policy, before and after
each action): it replays every applied event of the session into a fresh
tracker and describes the tracker after each action. At turn 200 that was 60%
of Rasa's CPU per message (py-spy, `make bench`'s long conversation), and it
made a message cost 1.8x what it cost at turn 1.

What is said stays said, so its states do not change as the conversation goes
on. This module keeps them with the tracker (Rasa's tracker store hands this
process the same tracker object back each turn, bot/rasa_tracker_store.py) and
describes only what is new:

- ``applied_events(tracker)`` is ``DialogueStateTracker.applied_events()``,
  extended as events arrive instead of recomputed from the first event;
- ``past_states(tracker, domain, ...)`` is ``Domain.states_for_tracker_history``,
  likewise;
- ``IncrementalStatesFeaturizer`` is Rasa's ``MaxHistoryTrackerFeaturizer``
  built on them, set as the featurizer of each dialogue policy in config.yml
  (Rasa's documented ``featurizer`` option).

Rasa rewrites the end of the applied events as a conversation goes on (a
form's turns fold into one, a reverted message is taken back), so the
remembered states stop two customer turns short of the end and the rest is
described afresh, on a copy, each time. A restart, a new session, a form name
seen for the first time or events that do not continue the ones seen start
the description from the first event, exactly as Rasa would.
tests/test_dialogue_states.py holds the results equal to Rasa's own.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, Dict, List, Optional, Tuple

from rasa.core.featurizers.tracker_featurizers import (
    MaxHistoryTrackerFeaturizer,
    TrackerFeaturizer,
)
from rasa.shared.core.constants import PREVIOUS_ACTION
from rasa.shared.core.domain import Domain, State
from rasa.shared.core.events import (
    ActionExecuted,
    ActionReverted,
    ActiveLoop,
    Event,
    Restarted,
    SessionStarted,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

# Where the memory lives on a tracker: it lives and dies with the tracker.
_MEMORY = "_dialogue_states_memory"
# Customer turns at the end that Rasa may still rewrite (a form folds the previous
# turn into the current one; a reverted message takes back one turn).
UNSETTLED_TURNS = 2


class _AppliedEvents:
    """``tracker.applied_events()`` for one tracker, extended as its events grow."""

    def __init__(self) -> None:
        self.seen = 0  # events of the tracker read so far
        self.last: Optional[Event] = None  # the last of them
        self.loop_names: set = set()
        self.events: List[Event] = []
        # Bumped whenever the list is rebuilt from the first event: states
        # remembered for an older generation no longer line up with it.
        self.generation = 0

    def update(self, tracker: DialogueStateTracker) -> List[Event]:
        """The applied events now (the list itself: callers must not change it)."""
        events = tracker.events
        continues = len(events) >= self.seen and (
            self.seen == 0 or events[self.seen - 1] is self.last)
        new = list(itertools.islice(events, self.seen, None)) if continues else None
        # Rasa decides which form executions fold away by the forms named anywhere in
        # the conversation, so a form named for the first time changes earlier decisions.
        if new is None or any(isinstance(event, ActiveLoop) and event.name
                              and event.name not in self.loop_names for event in new):
            self.generation += 1
            self.loop_names = {event.name for event in events
                               if isinstance(event, ActiveLoop) and event.name}
            self.events = []
            new = list(events)
        for event in new:
            self._apply(tracker, event)
        self.seen = len(events)
        self.last = events[-1] if events else None
        return self.events

    def _apply(self, tracker: DialogueStateTracker, event: Event) -> None:
        """One event, as DialogueStateTracker.applied_events() treats it."""
        applied = self.events
        if isinstance(event, Restarted | SessionStarted):
            self.events = []
        elif isinstance(event, ActionReverted):
            tracker._undo_till_previous(ActionExecuted, applied)
        elif isinstance(event, UserUtteranceReverted):
            tracker._undo_till_previous(UserUttered, applied)
            tracker._undo_till_previous(ActionExecuted, applied)
        elif (isinstance(event, ActionExecuted) and event.action_name in self.loop_names
              and not tracker._first_loop_execution_or_unhappy_path(event.action_name,
                                                                     applied)):
            tracker._undo_till_previous_loop_execution(event.action_name, applied)
        else:
            applied.append(event)


class _StatesSoFar:
    """The states of the first ``length`` applied events, and the tracker replayed to there.

    ``describe`` is one step of Domain.states_for_tracker_history, with its
    running variables kept here so the description can stop and go on later.
    """

    def __init__(self, tracker: DialogueStateTracker, domain: Domain, generation: int,
                 omit_unset_slots: bool, ignore_rule_only_turns: bool,
                 rule_only_data: Optional[Dict[str, Any]]) -> None:
        self.tracker = tracker
        self.domain = domain
        self.generation = generation
        self.omit_unset_slots = omit_unset_slots
        self.ignore_rule_only_turns = ignore_rule_only_turns
        self.rule_only_data = rule_only_data
        self.length = 0
        self.anchor: Optional[Event] = None  # the applied event at length - 1
        self.states: List[State] = []
        self.last_ml_action_sub_state: Optional[Dict[str, Any]] = None
        self.turn_was_hidden = False

    def still_fits(self, applied: List[Event], domain: Domain, generation: int) -> bool:
        """The applied events still begin with the ones described.

        Rasa only ever drops applied events after the last one it keeps and
        appends new ones, so the same event at the same place means the same
        events before it.
        """
        return (domain is self.domain and generation == self.generation
                and self.length <= len(applied)
                and (self.length == 0 or applied[self.length - 1] is self.anchor))

    def extend(self, applied: List[Event], end: int) -> None:
        """Describe the applied events up to ``end`` (generate_all_prior_trackers' loop)."""
        for event in applied[self.length:end]:
            if isinstance(event, ActionExecuted):
                self.describe(event.hide_rule_turn)
            self.tracker.update(event)
        self.length = end
        self.anchor = applied[end - 1] if end else None

    def describe(self, hide_rule_turn: bool) -> None:
        """The state of the tracker now, as states_for_tracker_history adds it."""
        tracker, domain = self.tracker, self.domain
        if self.ignore_rule_only_turns:
            if not self.turn_was_hidden:
                self.last_ml_action_sub_state = domain._get_prev_action_sub_state(tracker)
            if (not tracker.followup_action
                    and not tracker.latest_action_name == tracker.active_loop_name):
                self.turn_was_hidden = hide_rule_turn
            if self.turn_was_hidden:
                return
        state = domain.get_active_state(tracker, omit_unset_slots=self.omit_unset_slots)
        if self.ignore_rule_only_turns:
            domain._remove_rule_only_features(state, self.rule_only_data)
            if self.states:
                domain._substitute_rule_only_user_input(state, self.states[-1])
            if self.last_ml_action_sub_state:
                state[PREVIOUS_ACTION] = self.last_ml_action_sub_state
        self.states.append(domain._clean_state(state))

    def copy(self) -> _StatesSoFar:
        """An independent continuation: the states list and the tracker are copied."""
        twin = copy.copy(self)
        twin.tracker = _tracker_copy(self.tracker)
        twin.states = list(self.states)
        return twin


def _tracker_copy(tracker: DialogueStateTracker) -> DialogueStateTracker:
    """The tracker's state without its events (which states never read), cheaply.

    Events replace the tracker's attributes rather than change them, except
    slots and the active loop, which are copied.
    """
    twin = copy.copy(tracker)
    twin.events = tracker._create_events([])
    twin.slots = {name: copy.copy(slot) for name, slot in tracker.slots.items()}
    twin.active_loop = copy.copy(tracker.active_loop)
    return twin


def _memory(tracker: DialogueStateTracker) -> Tuple[_AppliedEvents, Dict[Any, _StatesSoFar]]:
    memory = tracker.__dict__.get(_MEMORY)
    if memory is None:
        memory = (_AppliedEvents(), {})
        setattr(tracker, _MEMORY, memory)
    return memory


def applied_events(tracker: DialogueStateTracker) -> List[Event]:
    """``tracker.applied_events()``, from what was worked out for it last time."""
    if isinstance(tracker, TrackerWithCachedStates):  # training: Rasa caches these itself
        return tracker.applied_events()
    return list(_memory(tracker)[0].update(tracker))


def _settled_length(applied: List[Event]) -> int:
    """How many applied events Rasa will not rewrite: those before the listen that
    precedes the UNSETTLED_TURNS-th last customer message (0 in a short conversation)."""
    turns = 0
    for index in range(len(applied) - 1, -1, -1):
        if isinstance(applied[index], UserUttered):
            turns += 1
            if turns == UNSETTLED_TURNS:
                return max(0, index - 1)
    return 0


def past_states(tracker: DialogueStateTracker, domain: Domain, omit_unset_slots: bool = False,
                ignore_rule_only_turns: bool = False,
                rule_only_data: Optional[Dict[str, Any]] = None) -> List[State]:
    """``domain.states_for_tracker_history(tracker, ...)``, describing only what is new.

    The states are shared with later calls: copy one before changing it.
    """
    if isinstance(tracker, TrackerWithCachedStates):
        return tracker.past_states(domain, omit_unset_slots=omit_unset_slots,
                                   ignore_rule_only_turns=ignore_rule_only_turns,
                                   rule_only_data=rule_only_data)
    applied_memory, described = _memory(tracker)
    applied = applied_memory.update(tracker)
    key = (omit_unset_slots, ignore_rule_only_turns,
           tuple(sorted((name, tuple(values)) for name, values in (rule_only_data or {}).items())))
    so_far = described.get(key)
    if so_far is None or not so_far.still_fits(applied, domain, applied_memory.generation):
        so_far = described[key] = _StatesSoFar(
            tracker.init_copy(), domain, applied_memory.generation, omit_unset_slots,
            ignore_rule_only_turns, rule_only_data)
    so_far.extend(applied, max(so_far.length, _settled_length(applied)))
    now = so_far.copy()
    now.extend(applied, len(applied))
    now.describe(hide_rule_turn=False)  # the tracker as it is: generate_all_prior_trackers' last
    return now.states


def _own_copy(state: State) -> State:
    """A state the featurizer may change (it deletes keys of the sub-states)."""
    return {key: dict(sub_state) for key, sub_state in state.items()}


# Registered under its own name, so a trained model loads this class back (Rasa
# persists a featurizer by its registered type); the policies' modules import this one.
@TrackerFeaturizer.register("IncrementalStatesFeaturizer")
class IncrementalStatesFeaturizer(MaxHistoryTrackerFeaturizer):
    """Rasa's MaxHistoryTrackerFeaturizer, predicting from remembered states (past_states)."""

    def prediction_states(self, trackers: List[DialogueStateTracker], domain: Domain,
                          use_text_for_last_user_input: bool = False,
                          ignore_rule_only_turns: bool = False,
                          rule_only_data: Optional[Dict[str, Any]] = None,
                          ignore_action_unlikely_intent: bool = False) -> List[List[State]]:
        trackers_as_states = []
        for tracker in trackers:
            states = past_states(tracker, domain, ignore_rule_only_turns=ignore_rule_only_turns,
                                 rule_only_data=rule_only_data)
            if ignore_action_unlikely_intent:  # before slicing, as Rasa does
                states = self._remove_action_unlikely_intent_from_states(states)
            trackers_as_states.append(
                [_own_copy(state) for state in self.slice_state_history(states, self.max_history)])
        self._choose_last_user_input(trackers_as_states, use_text_for_last_user_input)
        return trackers_as_states
