"""Rasa's conversation history (its tracker store), for the tools that read or erase it.

Opened from endpoints.yml (or endpoints.production.yml) exactly as Rasa opens
it. Erasing goes through the SQL tracker store's own table model, since
Rasa's TrackerStore API has no delete; other store types are refused
clearly rather than silently skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import sqlalchemy as sa


class UnsupportedTrackerStoreError(RuntimeError):
    """This tracker store type cannot be erased from here; the text says what to do."""


def open_tracker_store(endpoints: Path) -> Optional[Any]:
    """The configured tracker store; None when it keeps nothing (in memory, or no file yet)."""
    from rasa.core.tracker_store import TrackerStore
    from rasa.core.utils import AvailableEndpoints

    config = AvailableEndpoints.read_endpoints(str(endpoints)).tracker_store
    if config is None:
        return None  # in memory: nothing outlives the Rasa process
    if (config.kwargs.get("dialect") == "sqlite"
            and not Path(config.kwargs.get("db") or "").exists()):
        print(f"note: no Rasa conversations yet ({config.kwargs.get('db')} does not exist)")
        return None
    return TrackerStore.create(config)


async def conversation_events(store: Optional[Any], sender: str) -> List[Dict[str, Any]]:
    """Every event Rasa keeps for one conversation, all sessions, as JSON-ready dicts."""
    from rasa.shared.core.trackers import EventVerbosity

    tracker = await store.retrieve_full_tracker(sender) if store is not None else None
    if tracker is None:
        return []
    return tracker.current_state(EventVerbosity.ALL)["events"]


def erase_conversation(store: Optional[Any], sender: str) -> int:
    """Delete one conversation's events; how many were removed."""
    if store is None:
        return 0
    events = _sql_events(store)
    with store.session_scope() as session:
        removed = session.query(events).filter(events.sender_id == sender).delete()
        session.commit()
    return removed


def idle_conversations(store: Optional[Any], before: float) -> List[str]:
    """Conversations whose newest event is older than ``before`` (epoch seconds)."""
    if store is None:
        return []
    events = _sql_events(store)
    with store.session_scope() as session:
        rows = (session.query(events.sender_id).group_by(events.sender_id)
                .having(sa.func.max(events.timestamp) < before).all())
    return sorted(sender for (sender,) in rows)


def _sql_events(store: Any) -> Any:
    from rasa.core.tracker_store import SQLTrackerStore

    if not isinstance(store, SQLTrackerStore):
        raise UnsupportedTrackerStoreError(
            f"erasing from a {type(store).__name__} is not supported; use the SQL tracker "
            "store (endpoints.yml, endpoints.production.yml) or erase it with its own tools")
    return store.SQLEvent
