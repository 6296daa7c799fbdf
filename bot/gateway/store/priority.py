"""Store work for acknowledgements goes first.

Under a burst of DMs the gateway's store is the queue everything waits in:
each message costs about ten store calls (its receipt, the leases, Rasa's
turn, the replies), and SQLite takes one write at a time. First come, first
served, the acknowledgement of the fortieth customer waited behind the Rasa
turns of the first thirty-nine (`make bench`, dm_burst: half the
acknowledgements took over 1.2 s while Telegram's own limit allows 1.0 s for
the last of 40).

So store calls carry a priority, set by the code that makes them and carried
into the store's worker thread in a context variable: ``acknowledging()``
while delivering a DM's acknowledgement, ``receiving()`` while storing a
DM, ordinary otherwise. Delivering goes before receiving: an
acknowledgement already stored should not wait for the rest of the burst to
be stored.

- ``AsyncStore`` runs each priority's calls on threads of its own, so an
  urgent call never queues behind less urgent ones waiting for a thread;
- ``PriorityLock``, SQLite's writer lock, goes to the most urgent waiter
  when it frees (the oldest first among equals).

Nothing else changes: the same calls, in the same order for each
conversation; only who waits when the store is busy.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import threading
from typing import Any, ContextManager, Iterator, List, Tuple

ACKNOWLEDGE = 0  # delivering the acknowledgement of a DM already stored
RECEIVE = 1  # storing a DM, so that it can be acknowledged
NORMAL = 2  # everything else
PRIORITIES = (ACKNOWLEDGE, RECEIVE, NORMAL)

_priority: contextvars.ContextVar[int] = contextvars.ContextVar("store_priority",
                                                                default=NORMAL)


@contextlib.contextmanager
def _at(priority: int) -> Iterator[None]:
    token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(token)


def acknowledging() -> ContextManager[None]:
    """Store calls made inside (in this task, or a thread it starts) go first."""
    return _at(ACKNOWLEDGE)


def ordinary() -> ContextManager[None]:
    """Store calls made inside wait their turn (undoes an enclosing priority)."""
    return _at(NORMAL)


def receiving() -> ContextManager[None]:
    """Store calls made inside go before everything but acknowledging()."""
    return _at(RECEIVE)


def current_priority() -> int:
    return _priority.get()


class PriorityLock:
    """A mutex that goes to its most urgent waiter when it frees (then the oldest)."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._held = False
        self._waiting: List[Tuple[int, int]] = []  # a heap of (priority, arrival)
        self._arrivals = itertools.count()

    def acquire(self) -> None:
        with self._condition:
            if not self._held and not self._waiting:
                self._held = True
                return
            ticket = (_priority.get(), next(self._arrivals))
            heapq.heappush(self._waiting, ticket)
            while self._held or self._waiting[0] != ticket:
                self._condition.wait()
            heapq.heappop(self._waiting)
            self._held = True

    def release(self) -> None:
        with self._condition:
            if not self._held:
                raise RuntimeError("release of an unlocked PriorityLock")
            self._held = False
            self._condition.notify_all()

    def __enter__(self) -> PriorityLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
