"""Abuse limits: how many events one key (a sender, a bridge, an address) may cause.

One sliding-window counter serves every limit: sign-in failures, customer
messages per sender, DM API calls per bridge, web chat sessions per address.
Counts live in this process, so each gateway replica counts its own (a limit
of N per replica); that bounds a flood without a shared store on the hot path.
A limit of 0 turns that limit off.
"""

from __future__ import annotations

import collections
import time
from typing import Deque, Dict, Optional


class RateLimitedError(Exception):
    """Over a limit: try again after ``retry_after`` whole seconds (HTTP 429)."""

    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


class SlidingWindow:
    """At most ``limit`` events per key in any ``window_seconds``."""

    def __init__(self, limit: int, window_seconds: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_keys = max_keys  # past this, keys with no recent events are swept
        self._events: Dict[str, Deque[float]] = collections.defaultdict(collections.deque)

    def wait(self, key: str, now: Optional[float] = None) -> float:
        """Seconds until one more event for ``key`` fits (0: it fits now)."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        events = self._events.get(key)
        if not events:
            return 0.0
        self._expire(events, now)
        if not events:
            del self._events[key]
            return 0.0
        if len(events) < self.limit:
            return 0.0
        return events[-self.limit] + self.window_seconds - now

    def add(self, key: str, now: Optional[float] = None) -> None:
        """Count one event for ``key``, whether or not it was within the limit."""
        if self.limit <= 0:
            return
        now = time.monotonic() if now is None else now
        if key not in self._events and len(self._events) >= self.max_keys:
            self._sweep(now)
        events = self._events[key]
        events.append(now)
        while len(events) > self.limit:  # older ones no longer decide anything
            events.popleft()

    def take(self, key: str, now: Optional[float] = None) -> float:
        """Count an event if it fits and return 0; else count nothing and return the wait."""
        now = time.monotonic() if now is None else now
        wait = self.wait(key, now)
        if wait <= 0:
            self.add(key, now)
        return wait

    def forget(self, key: str) -> None:
        self._events.pop(key, None)

    def _expire(self, events: Deque[float], now: float) -> None:
        while events and events[0] <= now - self.window_seconds:
            events.popleft()

    def _sweep(self, now: float) -> None:
        for key in list(self._events):
            self._expire(self._events[key], now)
            if not self._events[key]:
                del self._events[key]
