"""The store for code on the event loop: every call runs in a worker thread.

The store is synchronous SQLAlchemy. Sanic handlers, workers and agent
surfaces use this facade (``await db.handoff(1)``), so a slow disk or a
busy PostgreSQL never stalls the loop that acknowledges customers.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Awaitable, Callable

from bot.gateway.store import Store


class AsyncStore:
    """``Store``'s methods, awaitable: ``await AsyncStore(store).transcript(cid)``."""

    def __init__(self, store: Store) -> None:
        self.sync = store

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.sync, name)
        if not callable(method) or name.startswith("_"):
            raise AttributeError(name)

        @functools.wraps(method)
        async def off_the_loop(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return off_the_loop
