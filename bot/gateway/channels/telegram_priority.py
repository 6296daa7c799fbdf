"""Telegram's rate limits, spent on what matters most first.

python-telegram-bot's ``AIORateLimiter`` serves requests first come, first
served, so under a burst of DMs the acknowledgements queue behind answers and
"typing…" indicators that were asked for earlier. ``PriorityRateLimiter`` is a
``telegram.ext.BaseRateLimiter`` (PTB's extension point for this) that keeps
the same limits but, whenever a slot frees, lets the waiting request with the
best priority go: acknowledgements, then answers, then typing indicators;
first come, first served within a priority. So under a burst the
acknowledgements take the first slots Telegram's limit allows.

The limits (Telegram's "about 30 messages a second" overall and "20 a minute"
per group, the numbers AIORateLimiter uses) are sliding windows over the
moments requests were let through: at most ``overall_max_rate`` in any
``overall_time_period``, and per group or channel (a negative chat id, or an
``@username``) at most ``group_max_rate`` in any ``group_time_period``.
Private chats have no limit of their own beyond the overall one. A request
waiting for a full group does not hold up requests for other chats.

Which requests count: as in AIORateLimiter, those with a ``chat_id``
(messages, photos, chat actions, edits). Requests without one (getMe,
setWebhook, deleteWebhook, answerCallbackQuery, …) are not messages to a
chat, do not count against Telegram's message limits and pass straight
through, even during a 429 pause; getUpdates never reaches a rate limiter
(PTB's ExtBot skips it).

Priority comes from the ``rate_limit_args`` that PTB passes on from every bot
method: ``{"priority": Priority.ACK}`` (or a bare Priority); none means
ANSWER. A typing indicator is only worth sending at once: one that has waited
``typing_max_wait`` seconds is dropped (process_request returns True without
calling Telegram), and so is one still waiting when a message to the same chat
goes out (the message ends Telegram's typing status; a later indicator would
claim the bot is typing after it spoke).

A 429 (RetryAfter) holds every counted request for ``retry_after`` seconds and
is raised to the caller at once: never retried here (AIORateLimiter's
``max_retries=0``), since the gateway's outbox already waits
``error.retry_after`` before sending that row again; raising only after the
pause would make it wait twice.

Waiting uses one future per request and one timer for the whole queue (the
next moment a slot frees or the pause ends), so nothing polls. A request
cancelled while waiting takes nothing; one cancelled after its slot was
granted but before it reached Telegram gives the slot back.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable, Coroutine, Deque, Dict, List, Optional, Set, Union

from telegram import constants
from telegram.error import NetworkError, RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

JSONResult = Union[bool, Dict[str, Any], List[Dict[str, Any]]]
# Wake a millisecond after a slot frees: a loop timer may fire a hair early.
_TIMER_SLACK = 0.001


class Priority(IntEnum):
    """Lower goes first."""

    ACK = 0
    ANSWER = 1
    TYPING = 2


def priority_of(rate_limit_args: Any) -> Priority:
    """The priority a bot call asked for: ``{"priority": ...}``, a Priority, or ANSWER."""
    value = rate_limit_args.get("priority") if isinstance(rate_limit_args, dict) \
        else rate_limit_args
    if value is None:
        return Priority.ANSWER
    try:
        return Priority(value)
    except ValueError:
        log.warning("unknown rate limit priority %r; sending as an answer", value)
        return Priority.ANSWER


def group_key(chat_id: Any) -> Optional[Union[int, str]]:
    """The chat a per-group limit applies to (groups, supergroups, channels), else None."""
    with contextlib.suppress(ValueError, TypeError):
        chat_id = int(chat_id)
    if isinstance(chat_id, bool):
        return None
    if isinstance(chat_id, int):
        return chat_id if chat_id < 0 else None
    return chat_id if isinstance(chat_id, str) else None  # "@channelname"


@dataclass(eq=False)
class _Waiter:
    """One request waiting for a slot; its future's result is the grant time or None
    (dropped)."""

    priority: Priority
    seq: int
    chat: Any
    group: Optional[Union[int, str]]
    future: asyncio.Future
    expiry: Optional[asyncio.TimerHandle] = field(default=None, repr=False)

    def __lt__(self, other: _Waiter) -> bool:
        return (self.priority, self.seq) < (other.priority, other.seq)


class PriorityRateLimiter(BaseRateLimiter[Dict[str, Any]]):
    """Telegram's flood limits with acknowledgements first (see the module docstring)."""

    def __init__(self, overall_max_rate: int = constants.FloodLimit.MESSAGES_PER_SECOND,
                 overall_time_period: float = 1.0,
                 group_max_rate: int = constants.FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP,
                 group_time_period: float = 60.0, typing_max_wait: float = 1.0) -> None:
        """A rate or period of 0 switches that limit off, as in AIORateLimiter; a negative
        ``typing_max_wait`` lets typing indicators wait as long as it takes."""
        self.overall_max_rate = int(overall_max_rate) if overall_time_period else 0
        self.overall_time_period = float(overall_time_period)
        self.group_max_rate = int(group_max_rate) if group_time_period else 0
        self.group_time_period = float(group_time_period)
        self.typing_max_wait = float(typing_max_wait)
        self._queue: List[_Waiter] = []  # a heap: best priority, then oldest, on top
        self._seq = itertools.count()
        self._sent: Deque[float] = deque()  # grant times inside the overall window
        self._group_sent: Dict[Union[int, str], Deque[float]] = {}
        self._typing: Dict[Any, Set[_Waiter]] = {}  # waiting typing indicators by chat
        self._paused_until = 0.0
        self._timer: Optional[asyncio.TimerHandle] = None

    # --- BaseRateLimiter -------------------------------------------------
    async def initialize(self) -> None:
        """Nothing to set up: timers go on the running loop when needed."""

    async def shutdown(self) -> None:
        """Release whoever still waits (with NetworkError, which the outbox retries later),
        so stopping never hangs on a slot that will not come."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._queue = self._queue, []
        for waiter in waiting:
            self._settle(waiter)
            if not waiter.future.done():
                waiter.future.set_exception(NetworkError("the rate limiter was shut down"))
        self._typing.clear()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: Dict[str, Any],
        endpoint: str,
        data: Dict[str, Any],
        rate_limit_args: Optional[Dict[str, Any]],
    ) -> JSONResult:
        """Call Telegram once a slot is free for this request's priority and chat."""
        chat_id = data.get("chat_id")
        if chat_id is None:  # not a message to a chat: not counted (module docstring)
            return await callback(*args, **kwargs)
        priority = priority_of(rate_limit_args)
        queued = self._running_loop().time()
        granted = await self._slot(priority, chat_id)
        if granted is None:
            log.debug("%s to chat %s dropped: the typing indicator is stale", endpoint, chat_id)
            return True
        log.debug("%s %s to chat %s let through after %.3fs", priority.name, endpoint, chat_id,
                  granted - queued)
        try:
            return await callback(*args, **kwargs)
        except RetryAfter as error:
            self.pause(_seconds(error.retry_after))
            raise

    # --- the queue -------------------------------------------------------
    def pause(self, seconds: float) -> None:
        """Hold every counted request for ``seconds`` (Telegram answered 429)."""
        loop = self._running_loop()
        until = loop.time() + max(0.0, seconds)
        if until > self._paused_until:
            log.warning("Telegram asked to slow down: holding requests for %.1fs", seconds)
            self._paused_until = until
        self._dispatch()

    def waiting(self, priority: Optional[Priority] = None) -> int:
        """Requests waiting for a slot, of one priority or all (for tests and logs)."""
        return sum(1 for waiter in self._queue if not waiter.future.done()
                   and (priority is None or waiter.priority == priority))

    async def _slot(self, priority: Priority, chat_id: Any) -> Optional[float]:
        """Wait for a slot; the grant time, or None when a typing indicator was dropped."""
        loop = self._running_loop()
        waiter = _Waiter(priority, next(self._seq), chat_id, group_key(chat_id),
                         loop.create_future())
        heapq.heappush(self._queue, waiter)
        if priority >= Priority.TYPING:
            self._typing.setdefault(chat_id, set()).add(waiter)
            if self.typing_max_wait >= 0:
                waiter.expiry = loop.call_later(self.typing_max_wait, self._drop, waiter)
        self._dispatch()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._settle(waiter)
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None \
                    and future.result() is not None:
                self._give_back(waiter, future.result())  # granted, never used
            raise

    def _drop(self, waiter: _Waiter) -> None:
        """A typing indicator waited too long: answer it without calling Telegram."""
        self._settle(waiter)
        if not waiter.future.done():
            waiter.future.set_result(None)

    def _settle(self, waiter: _Waiter) -> None:
        """Forget a waiter's side records (its expiry timer, the typing index)."""
        if waiter.expiry is not None:
            waiter.expiry.cancel()
            waiter.expiry = None
        typing = self._typing.get(waiter.chat)
        if typing is not None:
            typing.discard(waiter)
            if not typing:
                del self._typing[waiter.chat]

    def _grant(self, waiter: _Waiter, now: float) -> None:
        if self.overall_max_rate:
            self._sent.append(now)
        if waiter.group is not None and self.group_max_rate:
            self._group_sent.setdefault(waiter.group, deque()).append(now)
        self._settle(waiter)
        waiter.future.set_result(now)
        if waiter.priority < Priority.TYPING:  # a message ends the chat's typing status
            for stale in list(self._typing.get(waiter.chat, ())):
                self._drop(stale)

    def _give_back(self, waiter: _Waiter, granted: float) -> None:
        """Undo a grant whose request never reached Telegram (its caller was cancelled)."""
        with contextlib.suppress(ValueError):
            if self.overall_max_rate:
                self._sent.remove(granted)
        window = self._group_sent.get(waiter.group) if waiter.group is not None else None
        if window is not None:
            with contextlib.suppress(ValueError):
                window.remove(granted)
        self._dispatch()

    def _dispatch(self) -> None:
        """Grant every slot that is free now, best waiter first; set the timer for the next."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = self._running_loop()
        now = loop.time()
        if now < self._paused_until:
            if any(not waiter.future.done() for waiter in self._queue):
                self._timer = loop.call_at(self._paused_until + _TIMER_SLACK, self._dispatch)
            return
        _expire(self._sent, now - self.overall_time_period)
        blocked: List[_Waiter] = []  # waiting for their group's window only
        wake: Optional[float] = None
        while self._queue:
            waiter = self._queue[0]
            if waiter.future.done():  # cancelled or dropped meanwhile
                heapq.heappop(self._queue)
                continue
            if self.overall_max_rate and len(self._sent) >= self.overall_max_rate:
                # Everything below waits too: the overall window is shared.
                wake = _earliest(wake, self._sent[0] + self.overall_time_period)
                break
            if waiter.group is not None and self.group_max_rate:
                window = self._group_window(waiter.group, now)
                if len(window) >= self.group_max_rate:
                    blocked.append(heapq.heappop(self._queue))
                    wake = _earliest(wake, window[0] + self.group_time_period)
                    continue
            heapq.heappop(self._queue)
            self._grant(waiter, now)
        for waiter in blocked:
            heapq.heappush(self._queue, waiter)
        if wake is not None:
            self._timer = loop.call_at(wake + _TIMER_SLACK, self._dispatch)

    def _group_window(self, group: Union[int, str], now: float) -> Deque[float]:
        window = self._group_sent.setdefault(group, deque())
        _expire(window, now - self.group_time_period)
        if len(self._group_sent) > 512:  # forget groups that have gone quiet
            for key in [k for k, sent in self._group_sent.items()
                        if k != group and (not sent or sent[-1] <= now - self.group_time_period)]:
                del self._group_sent[key]
        return window

    @staticmethod
    def _running_loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()


def _expire(window: Deque[float], before: float) -> None:
    while window and window[0] <= before:
        window.popleft()


def _earliest(a: Optional[float], b: float) -> float:
    return b if a is None else min(a, b)


def _seconds(value: Any) -> float:
    """RetryAfter.retry_after: int seconds in PTB 22, a timedelta in later versions."""
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)
