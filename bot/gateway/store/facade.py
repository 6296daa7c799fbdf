"""The store for code on the event loop: every call runs in a worker thread.

The store is synchronous SQLAlchemy. Sanic handlers, workers and agent
surfaces use this facade (``await db.handoff(1)``), so a slow disk or a
busy PostgreSQL never stalls the loop that acknowledges customers.

Each facade has a thread pool of its own rather than asyncio's default one,
which everything else in the process shares (password hashing, for one):
sized to the connection pool, its calls wait for a connection in a thread,
not in a queue behind unrelated work. The gateway gives lease renewals a
small facade of their own, so a backlog of message work can never delay a
renewal until the lease expires and another replica takes the conversation.

Calls made at a priority (store/priority.py: a DM's acknowledgement, its
receipt) run on small pools of their own, so they never queue behind less
urgent calls waiting for a thread; the call's context goes with it into the
thread, where SQLite's writer lock serves the most urgent call first.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable

from bot.gateway.store import Store
from bot.gateway.store.priority import NORMAL, PRIORITIES, current_priority

# PostgreSQL's pool holds 10 connections (store/base.py); SQLite writes one at a time.
DEFAULT_THREADS = 10
# For each of the urgent priorities: a burst's acknowledgements, its receipts.
URGENT_THREADS = 2


class AsyncStore:
    """``Store``'s methods, awaitable: ``await AsyncStore(store).transcript(cid)``."""

    def __init__(self, store: Store, threads: int = DEFAULT_THREADS, name: str = "store") -> None:
        self.sync = store
        # (its idle threads end when the facade is garbage-collected)
        self._threads = {
            priority: ThreadPoolExecutor(
                max_workers=threads if priority == NORMAL else URGENT_THREADS,
                thread_name_prefix=name if priority == NORMAL else f"{name}-p{priority}")
            for priority in PRIORITIES}

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.sync, name)
        if not callable(method) or name.startswith("_"):
            raise AttributeError(name)

        @functools.wraps(method)
        async def off_the_loop(*args: Any, **kwargs: Any) -> Any:
            threads = self._threads[current_priority()]
            context = contextvars.copy_context()  # the priority, for the writer lock
            return await asyncio.get_running_loop().run_in_executor(
                threads, functools.partial(context.run, method, *args, **kwargs))

        return off_the_loop
