"""Rasa's SQL tracker store, with failures the gateway channel can see.

Rasa 3.6 wraps every tracker store in a FailSafeTrackerStore: when the
database is unreachable it logs the error and carries on, retrieving *no*
tracker (the turn runs on a conversation started afresh) and saving into
memory (the turn is answered but never recorded). Behind the gateway a failed
turn is better, because the gateway retries it once the database is back.

This store (``type: bot.rasa_tracker_store.FailClosedSQLTrackerStore`` in
the endpoints files, a Rasa extension point) notes any failure of its own in
a context variable before the wrapper swallows it; the gateway channel
(``bot/rasa_channel.py``) checks the note after the turn and answers 500.
"""

from __future__ import annotations

import contextvars
from typing import Any, Optional

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker

# True once the tracker store failed during the current turn (the channel's task).
STORE_FAILED: contextvars.ContextVar[bool] = contextvars.ContextVar("tracker_store_failed",
                                                                    default=False)


class FailClosedSQLTrackerStore(SQLTrackerStore):
    async def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        try:
            return await super().retrieve(sender_id)
        except Exception:
            STORE_FAILED.set(True)
            raise

    async def save(self, tracker: DialogueStateTracker) -> None:
        try:
            await super().save(tracker)
        except Exception:
            STORE_FAILED.set(True)
            raise

    async def keys(self) -> Any:
        try:
            return await super().keys()
        except Exception:
            STORE_FAILED.set(True)
            raise
