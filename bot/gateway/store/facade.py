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
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable

from bot.gateway.store import Store

# PostgreSQL's pool holds 10 connections (store/base.py); SQLite writes one at a time.
DEFAULT_THREADS = 10


class AsyncStore:
    """``Store``'s methods, awaitable: ``await AsyncStore(store).transcript(cid)``."""

    def __init__(self, store: Store, threads: int = DEFAULT_THREADS, name: str = "store") -> None:
        self.sync = store
        # (its idle threads end when the facade is garbage-collected)
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.sync, name)
        if not callable(method) or name.startswith("_"):
            raise AttributeError(name)

        @functools.wraps(method)
        async def off_the_loop(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.get_running_loop().run_in_executor(
                self._threads, functools.partial(method, *args, **kwargs))

        return off_the_loop
