"""Rasa's SQL tracker store, with failures the gateway channel can see.

Rasa 3.6 wraps every tracker store in a FailSafeTrackerStore: when the
database is unreachable it logs the error and carries on, retrieving *no*
tracker (the turn runs on a conversation started afresh) and saving into
memory (the turn is answered but never recorded). Behind the gateway a failed
turn is better, because the gateway retries it once the database is back.

This store (``type: bot.rasa_tracker_store.FailClosedSQLTrackerStore`` in
the endpoints files, a Rasa extension point) notes any failure of its own in
the gateway turn's report (``bot/rasa_turn.py``) before the wrapper swallows
it, and does not save a gateway turn during which a custom action failed: the
gateway channel (``bot/rasa_channel.py``) answers 500 for both, and the
gateway's retry runs the turn afresh.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker

from bot.rasa_turn import current_turn

log = logging.getLogger(__name__)


def _note_store_failure() -> None:
    turn = current_turn()
    if turn is not None:
        turn.store_failed = True


class FailClosedSQLTrackerStore(SQLTrackerStore):
    async def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        try:
            return await super().retrieve(sender_id)
        except Exception:
            _note_store_failure()
            raise

    async def save(self, tracker: DialogueStateTracker) -> None:
        turn = current_turn()
        if turn is not None and turn.action_failed:
            log.warning("not saving a turn of %s during which a custom action failed; "
                        "the gateway will run it again", tracker.sender_id)
            return
        try:
            await super().save(tracker)
        except Exception:
            _note_store_failure()
            raise

    async def keys(self) -> Any:
        try:
            return await super().keys()
        except Exception:
            _note_store_failure()
            raise
