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
import functools
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, Optional

from bot.gateway.agents.accounts import check_password, hash_password
from bot.gateway.rate_limits import RateLimitedError, SlidingWindow

_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="password-hash")


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def too_many_attempts(retry_after: float) -> RateLimitedError:
    return RateLimitedError("Too many attempts. Wait a few minutes, then try again.",
                            retry_after)


@dataclass
class LoginThrottle:
    per_account: int = 5
    per_address: int = 20
    window_seconds: float = 900.0

    def __post_init__(self) -> None:
        self._accounts = SlidingWindow(self.per_account, self.window_seconds)
        self._addresses = SlidingWindow(self.per_address, self.window_seconds)

    def check(self, username: str, address: str, now: Optional[float] = None) -> None:
        """Raise RateLimitedError while either count of failures is at its limit."""
        now = time.monotonic() if now is None else now
        longest = max(self._accounts.wait(username, now), self._addresses.wait(address, now))
        if longest > 0:
            raise too_many_attempts(longest)

    def failed(self, username: str, address: str, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        self._accounts.add(username, now)
        self._addresses.add(address, now)

    def succeeded(self, username: str) -> None:
        self._accounts.forget(username)


async def verify(account: Optional[Dict[str, Any]], password: str) -> bool:
    """True for an enabled account's right password; as slow for any other case."""
    usable = account is not None and not account.get("disabled")
    loop = asyncio.get_running_loop()
    stored = (account["password_hash"] if usable
              else await loop.run_in_executor(_HASHING, _dummy_hash))  # made once, off the loop
    right = await loop.run_in_executor(_HASHING, check_password, password, stored)
    return usable and right
