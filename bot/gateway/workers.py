"""Per-key serial work: one conversation's messages in order, conversations in parallel."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Dict, Set

log = logging.getLogger(__name__)


class KeyedWorkers:
    """Runs ``drain(key)`` for each notified key, never twice at once for one key.

    ``drain`` processes everything queued for its key and returns. A notify
    that arrives while it runs makes it run again, so nothing is stranded.
    """

    def __init__(self, drain: Callable[[str], Awaitable[None]], name: str) -> None:
        self._drain = drain
        self._name = name
        self._running: Dict[str, asyncio.Task] = {}
        self._dirty: Set[str] = set()

    def notify(self, key: str) -> None:
        self._dirty.add(key)
        if key not in self._running:
            self._running[key] = asyncio.get_running_loop().create_task(
                self._run(key), name=f"{self._name}:{key}")

    async def _run(self, key: str) -> None:
        try:
            while key in self._dirty:
                self._dirty.discard(key)
                try:
                    await self._drain(key)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - keep serving other conversations
                    log.exception("%s worker for %s failed; will retry on next notify",
                                  self._name, key)
        finally:
            self._running.pop(key, None)

    @property
    def busy(self) -> int:
        return len(self._running)

    async def idle(self) -> None:
        """Wait until no key has work in progress (for shutdown and tests)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*list(self._running.values()), return_exceptions=True)
