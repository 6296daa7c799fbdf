"""Per-key serial work: one conversation's messages in order, conversations in parallel."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Dict, Set

log = logging.getLogger(__name__)

# A drain that fails (e.g. the database is locked or down) runs again after
# this many seconds, doubling per failure in a row up to the cap: a store
# outage delays a conversation, it never strands it.
FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS = 0.5, 60.0


class ShuttingDownError(Exception):
    """Raised inside a drain when the workers stop: leave the work for the next run."""


class KeyedWorkers:
    """Runs ``drain(key)`` for each notified key, never twice at once for one key.

    ``drain`` processes everything queued for its key and returns. A notify
    that arrives while it runs makes it run again, so nothing is stranded; a
    drain that raises runs again after a backoff.
    """

    def __init__(self, drain: Callable[[str], Awaitable[None]], name: str) -> None:
        self._drain = drain
        self._name = name
        self._running: Dict[str, asyncio.Task] = {}
        self._dirty: Set[str] = set()
        self._failures: Dict[str, int] = {}
        self._retries: Dict[str, asyncio.TimerHandle] = {}
        self._stopping = False

    def notify(self, key: str) -> None:
        if self._stopping:
            return
        self._dirty.add(key)
        if key not in self._running:
            self._running[key] = asyncio.get_running_loop().create_task(
                self._run(key), name=f"{self._name}:{key}")

    async def _run(self, key: str) -> None:
        try:
            while key in self._dirty and not self._stopping:
                self._dirty.discard(key)
                try:
                    await self._drain(key)
                    self._failures.pop(key, None)
                except (asyncio.CancelledError, ShuttingDownError):
                    raise
                except Exception:  # noqa: BLE001 - keep serving other conversations
                    self._retry_later(key)
                    return
        except ShuttingDownError:
            pass
        finally:
            self._running.pop(key, None)

    def _retry_later(self, key: str) -> None:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (failures - 1))
        log.exception("%s worker for %s failed (%d in a row); retrying in %.1fs",
                      self._name, key, failures, delay)
        if key not in self._retries:
            self._retries[key] = asyncio.get_running_loop().call_later(delay, self._retry, key)

    def _retry(self, key: str) -> None:
        self._retries.pop(key, None)
        self.notify(key)

    @property
    def busy(self) -> int:
        return len(self._running)

    async def idle(self) -> None:
        """Wait until no key has work in progress (for shutdown and tests)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Take no new work; let work in progress finish for ``drain_seconds``, then cancel."""
        self._stopping = True
        for timer in self._retries.values():
            timer.cancel()
        running = list(self._running.values())
        if running and drain_seconds > 0:
            await asyncio.wait(running, timeout=drain_seconds)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
