"""What went wrong during one gateway turn that Rasa itself would carry on past.

Rasa 3.6 finishes a turn whatever happens on the way:

- a tracker store that fails is swallowed by Rasa's fail-safe wrapper (the
  turn runs on an empty conversation and is saved nowhere);
- a custom action that fails (the action server killed mid-call, restarting,
  or answering 500) is logged as "the actions events are lost", its events are
  dropped, and the turn goes on and is saved as if the action had run: the
  customer usually gets no reply at all, and a retry would find the turn done.

Behind the gateway both are better as a failed turn that the gateway retries.
The gateway channel (``bot/rasa_channel.py``) opens a ``TurnReport`` for each
turn in a context variable, so it follows that turn's task and no other. The
fail-closed tracker store (``bot/rasa_tracker_store.py``) notes its own
failures there, and ``LostActionHandler`` notes the action failures Rasa logs.
A turn whose action failed is not saved (the store skips it), so the retry
runs it afresh instead of finding half a turn in the tracker.

Turns that come in any other way (REST, the HTTP API) have no report and
behave exactly as Rasa's own.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass
from typing import Optional


@dataclass
class TurnReport:
    store_failed: bool = False  # the tracker could not be read or saved
    action_failed: bool = False  # a custom action failed; Rasa dropped its events


CURRENT_TURN: contextvars.ContextVar[Optional[TurnReport]] = contextvars.ContextVar(
    "gateway_turn", default=None)


def current_turn() -> Optional[TurnReport]:
    return CURRENT_TURN.get()


# (logger, words in the message): where Rasa 3.6 says it went on without an action.
LOST_ACTION_SIGNS = (
    # MessageProcessor._run_action, for any exception from a custom action
    ("rasa.core.processor", "the actions events are lost"),
    # ActionExtractSlots, when a custom slot-mapping action fails
    ("rasa.core.actions.action", "Failed to execute custom action"),
)


class LostActionHandler(logging.Handler):
    """Marks the current gateway turn when Rasa logs that it lost an action's events.

    Rasa offers no hook for a failed action; its log line is the one place it
    says so. The handler runs synchronously in the logging call, so in the
    turn's own context.
    """

    def __init__(self, words: str) -> None:
        super().__init__(logging.WARNING)
        self.words = words

    def emit(self, record: logging.LogRecord) -> None:
        turn = current_turn()
        if turn is not None and self.words in record.getMessage():
            turn.action_failed = True


def watch_for_lost_actions() -> None:
    """Attach the handlers once per process (idempotent)."""
    for logger_name, words in LOST_ACTION_SIGNS:
        logger = logging.getLogger(logger_name)
        if not any(isinstance(h, LostActionHandler) for h in logger.handlers):
            logger.addHandler(LostActionHandler(words))
