"""Rasa's SQL tracker store, with failures the gateway channel can see, made cheap per turn.

Failing closed. Rasa 3.6 wraps every tracker store in a FailSafeTrackerStore:
when the database is unreachable it logs the error and carries on, retrieving
*no* tracker (the turn runs on a conversation started afresh) and saving into
memory (the turn is answered but never recorded). Behind the gateway a failed
turn is better, because the gateway retries it once the database is back.
This store (``type: bot.rasa_tracker_store.FailClosedSQLTrackerStore`` in
the endpoints files, a Rasa extension point) notes any failure of its own in
the gateway turn's report (``bot/rasa_turn.py``) before the wrapper swallows
it, and does not save a gateway turn during which a custom action failed: the
gateway channel (``bot/rasa_channel.py``) answers 500 for both, and the
gateway's retry runs the turn afresh.

Cheap per turn. Rasa's SQL store rebuilds the whole conversation on every
message: it reads every event of the session, parses its JSON and replays it
into a new tracker, so a message costs more the longer the conversation (a
fifth of Rasa's CPU per message in `make bench`, growing with each turn).
Here a tracker this process has just saved is kept (``TrackedConversations``)
and handed back on the next retrieve after one indexed query shows that the
database still ends with the event it saved last. Another Rasa process that
wrote to the conversation meanwhile, `make forget`, or a purge change that
last event, and the tracker is read from the database as before. A tracker
leaves the cache when it is handed out, and only a saved one goes back in, so
a turn that fails or is not saved never leaves its events behind.

On SQLite (the local default) the store keeps one connection in WAL mode
instead of opening the file anew for each query (Rasa's default), with
``synchronous=FULL`` so a saved turn survives a power cut as before.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections import OrderedDict
from typing import Any, Dict, Iterator, Optional, Tuple

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker

from bot.rasa_turn import current_turn

log = logging.getLogger(__name__)

# Conversations kept per Rasa process: the ones being talked in now. A tracker
# of a few dozen turns is tens of kB, so this stays well under 50 MB.
DEFAULT_CACHE_SIZE = 1000


def _note_store_failure() -> None:
    turn = current_turn()
    if turn is not None:
        turn.store_failed = True


class TrackedConversations:
    """Trackers just saved, by sender, with the id of the last event they end with."""

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        self.size = size
        self._trackers: OrderedDict[str, Tuple[int, DialogueStateTracker]] = OrderedDict()
        self.hits = self.misses = 0

    def take(self, sender_id: str, last_event_id: Optional[int]
             ) -> Optional[DialogueStateTracker]:
        """The kept tracker if the database still ends where it did; it leaves the cache."""
        kept = self._trackers.pop(sender_id, None)
        if kept is not None and last_event_id is not None and kept[0] == last_event_id:
            self.hits += 1
            return kept[1]
        self.misses += 1
        return None

    def keep(self, sender_id: str, last_event_id: Optional[int],
             tracker: DialogueStateTracker) -> None:
        self._trackers.pop(sender_id, None)
        if last_event_id is None or self.size <= 0:
            return
        self._trackers[sender_id] = (last_event_id, tracker)
        while len(self._trackers) > self.size:
            self._trackers.popitem(last=False)

    def forget(self, sender_id: str) -> None:
        self._trackers.pop(sender_id, None)

    def clear(self) -> None:
        self._trackers.clear()


class FailClosedSQLTrackerStore(SQLTrackerStore):
    def __init__(self, *args: Any, cache_size: int = DEFAULT_CACHE_SIZE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conversations = TrackedConversations(int(cache_size))
        # sender -> (tracker handed out, how many of its events the database holds)
        self._stored: Dict[str, Tuple[weakref.ref, int]] = {}
        if self.engine.dialect.name == "sqlite":
            self._use_one_wal_connection()

    @property
    def domain(self) -> Any:
        return self._domain

    @domain.setter
    def domain(self, domain: Any) -> None:
        """A new model's domain: trackers kept were built with the old one's slots."""
        self._domain = domain
        conversations = getattr(self, "conversations", None)
        if conversations is not None:
            conversations.clear()

    def _use_one_wal_connection(self) -> None:
        """One connection per thread, in WAL mode (Rasa opens the file for every query)."""
        engine = sa.create_engine(self.engine.url, poolclass=sa.pool.SingletonThreadPool)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=5000")  # another process writing now
            cursor.close()

        self.engine.dispose()
        self.engine = engine
        self.sessionmaker = sa.orm.session.sessionmaker(bind=engine)

    def _last_event_id(self, sender_id: str) -> Optional[int]:
        with self.session_scope() as session:
            return session.query(sa.func.max(self.SQLEvent.id)).filter(
                self.SQLEvent.sender_id == sender_id).scalar()

    def _keep_if_whole(self, tracker: DialogueStateTracker) -> None:
        """Keep what a retrieve would read back: the saved tracker, or its latest session.

        A retrieve reads the events since the latest session start (Rasa's save
        counts from there too), so a tracker that also holds what came before
        (``action_session_start`` just before the start, or a whole earlier
        session) is kept as the tracker of its last ``count`` events, as Rasa
        would rebuild it from the database.
        """
        with self.session_scope() as session:
            count, last_id = self._event_query(session, tracker.sender_id, False).order_by(
                None).with_entities(
                sa.func.count(self.SQLEvent.id), sa.func.max(self.SQLEvent.id)).one()
        extra = len(tracker.events) - count
        if count and extra > 0 and isinstance(tracker.events[extra], SessionStarted):
            # The session start resets everything the events before it set, so
            # dropping them leaves the state a rebuild would give, without one.
            for _ in range(extra):
                tracker.events.popleft()
        elif count and extra > 0:
            tracker = DialogueStateTracker.from_events(
                tracker.sender_id, list(tracker.events)[extra:], self.domain.slots)
        if count and count == len(tracker.events):
            self.conversations.keep(tracker.sender_id, last_id, tracker)
            self._stored[tracker.sender_id] = (weakref.ref(tracker), count)

    def _forget_dropped_trackers(self) -> None:
        """Trackers read but never saved (exports, the HTTP API) leave entries behind."""
        for sender, (tracker, _) in list(self._stored.items()):
            if tracker() is None:
                del self._stored[sender]

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator:
        """The events to save: after those the database holds, known without a count query
        for a tracker this store handed out (Rasa counts them on every save)."""
        known = self._stored.pop(tracker.sender_id, None)
        if known is not None and known[0]() is tracker:
            return itertools.islice(tracker.events, known[1], None)
        return super()._additional_events(session, tracker)

    async def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        try:
            tracker = self.conversations.take(sender_id, self._last_event_id(sender_id))
            if tracker is None:
                tracker = await super().retrieve(sender_id)
            if tracker is not None:  # as read from the database: all of it is stored
                if len(self._stored) > 2 * max(self.conversations.size, 1):
                    self._forget_dropped_trackers()
                self._stored[sender_id] = (weakref.ref(tracker), len(tracker.events))
            return tracker
        except Exception:
            _note_store_failure()
            raise

    async def retrieve_full_tracker(self, conversation_id: str
                                    ) -> Optional[DialogueStateTracker]:
        self.conversations.forget(conversation_id)  # exports and erasure read it all
        return await super().retrieve_full_tracker(conversation_id)

    async def save(self, tracker: DialogueStateTracker) -> None:
        turn = current_turn()
        if turn is not None and turn.action_failed:
            log.warning("not saving a turn of %s during which a custom action failed; "
                        "the gateway will run it again", tracker.sender_id)
            return
        self.conversations.forget(tracker.sender_id)
        try:  # (the save pops this tracker's entry in self._stored)
            await super().save(tracker)
            self._keep_if_whole(tracker)
        except Exception:
            _note_store_failure()
            raise

    async def keys(self) -> Any:
        try:
            return await super().keys()
        except Exception:
            _note_store_failure()
            raise
