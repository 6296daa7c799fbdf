"""Checking an agent's sign-in: throttled, the same speed for every username, off the loop.

- Failed attempts are counted per account and per client address in a
  sliding window; past the limit the answer is 429 with Retry-After, even for
  the right password, so guessing gains nothing. Counts live in this process
  (each gateway replica counts its own).
- Unknown usernames and disabled accounts are checked against a dummy hash,
  so the time taken does not tell which usernames exist.
- scrypt runs in its own two threads: thirty sign-ins at once queue there,
  not in the pool the store's calls use, so acknowledgements never wait.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Deque, Dict, Optional

from bot.gateway.agents.accounts import check_password, hash_password

_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="password-hash")


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


class TooManyAttemptsError(Exception):
    """Too many failed sign-ins; try again after ``retry_after`` seconds."""

    status = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__("Too many attempts. Wait a few minutes, then try again.")
        self.retry_after = max(1, int(retry_after + 0.999))


@dataclass
class LoginThrottle:
    per_account: int = 5
    per_address: int = 20
    window_seconds: float = 900.0

    def __post_init__(self) -> None:
        self._failures: Dict[str, Deque[float]] = collections.defaultdict(collections.deque)

    def check(self, username: str, address: str, now: Optional[float] = None) -> None:
        """Raise TooManyAttemptsError while either count is over its limit."""
        now = time.monotonic() if now is None else now
        waits = [self._wait(f"account:{username}", self.per_account, now),
                 self._wait(f"address:{address}", self.per_address, now)]
        longest = max(waits)
        if longest > 0:
            raise TooManyAttemptsError(longest)

    def failed(self, username: str, address: str, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        for key in (f"account:{username}", f"address:{address}"):
            self._failures[key].append(now)

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"account:{username}", None)

    def _wait(self, key: str, limit: int, now: float) -> float:
        failures = self._failures.get(key)
        if not failures:
            return 0.0
        while failures and failures[0] <= now - self.window_seconds:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return 0.0
        return failures[0] + self.window_seconds - now if len(failures) >= limit else 0.0


async def verify(account: Optional[Dict[str, Any]], password: str) -> bool:
    """True for an enabled account's right password; as slow for any other case."""
    usable = account is not None and not account.get("disabled")
    loop = asyncio.get_running_loop()
    stored = (account["password_hash"] if usable
              else await loop.run_in_executor(_HASHING, _dummy_hash))  # made once, off the loop
    right = await loop.run_in_executor(_HASHING, check_password, password, stored)
    return usable and right
