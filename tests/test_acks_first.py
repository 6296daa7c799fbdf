"""Acknowledgements first under a burst: the store, Rasa's turns and the Telegram batch.

``make bench`` (dm_burst) measures how soon 40 customers at once are
acknowledged; these tests hold the mechanisms that make it so: urgent store
work is served first, Rasa's turns let acknowledgements go first (but never
wait long), and a burst arriving in one getUpdates batch is stored chats at
once while each chat stays in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import SimpleNamespace
from typing import Callable, ContextManager, List, Optional

from telegram import Update

from bot.gateway import acks_first
from bot.gateway.acks_first import AcksFirst
from bot.gateway.channels.telegram import TelegramChannel
from bot.gateway.store.facade import AsyncStore
from bot.gateway.store.priority import (
    ACKNOWLEDGE,
    NORMAL,
    RECEIVE,
    PriorityLock,
    acknowledging,
    current_priority,
    ordinary,
    receiving,
)
from tests.fake_telegram import FakeTelegram


def test_the_writer_lock_goes_to_the_most_urgent_waiter_then_the_oldest():
    lock = PriorityLock()
    order: List[str] = []
    lock.acquire()  # a write in progress while the others queue up

    def write(name: str, at: Callable[[], ContextManager[None]]) -> None:
        with at():
            with lock:
                order.append(name)

    waiters = []
    for name, at in [("rasa turn 1", contextlib.nullcontext),
                     ("rasa turn 2", contextlib.nullcontext),
                     ("receipt", receiving), ("acknowledgement", acknowledging)]:
        thread = threading.Thread(target=write, args=(name, at))
        thread.start()
        waiters.append(thread)
        time.sleep(0.05)  # arrive in this order
    lock.release()
    for thread in waiters:
        thread.join(5)
    assert order == ["acknowledgement", "receipt", "rasa turn 1", "rasa turn 2"]


class _Probe:
    """A store stand-in whose call reports the priority its worker thread saw."""

    def priority(self) -> int:
        return current_priority()


async def test_a_store_calls_priority_reaches_its_worker_thread():
    db = AsyncStore(_Probe())
    assert await db.priority() == NORMAL
    with receiving():
        assert await db.priority() == RECEIVE
    with acknowledging():
        assert await db.priority() == ACKNOWLEDGE
        with ordinary():  # an outbox whose acknowledgement is out: its answers wait in line
            assert await db.priority() == NORMAL
    assert await db.priority() == NORMAL


async def test_rasa_waits_until_stored_acknowledgements_are_on_their_way():
    acks = AcksFirst()
    await asyncio.wait_for(acks.before_rasa(), 0.1)  # nothing due: no wait at all
    acks.stored("telegram:1")
    acks.stored("telegram:2")
    turn = asyncio.ensure_future(acks.before_rasa())
    await asyncio.sleep(0.05)
    acks.handed("telegram:1")
    await asyncio.sleep(0.05)
    assert not turn.done()  # one still waits to be handed to its channel
    assert acks.is_due("telegram:1")  # handed, not yet sent: its outbox is still urgent
    acks.done("telegram:2")
    await asyncio.wait_for(turn, 0.5)
    acks.done("telegram:1")
    assert not acks.is_due("telegram:1")


async def test_rasa_never_waits_long_for_an_acknowledgement_that_cannot_go(monkeypatch):
    monkeypatch.setattr(acks_first, "MAX_WAIT", 0.2)
    acks = AcksFirst()
    acks.stored("telegram:1")  # its outbox never runs (another replica has it, say)
    started = time.monotonic()
    await asyncio.wait_for(acks.before_rasa(), 2)
    assert 0.15 < time.monotonic() - started < 1.5


def _updates(*chats_and_texts) -> List[Update]:
    fake = FakeTelegram()
    return [Update.de_json({**fake.text_update(chat, text), "update_id": number}, None)
            for number, (chat, text) in enumerate(chats_and_texts, start=1)]


async def test_a_burst_batch_is_stored_chats_at_once_each_chat_in_order():
    """Chat 2's message is stored while chat 1's first one is still being stored; chat 1's
    second message waits for its first, and is left alone when the first fails."""
    channel = TelegramChannel.__new__(TelegramChannel)  # only _process_batch is used here
    channel.gateway = SimpleNamespace(acks_first=AcksFirst())
    processed: List[str] = []
    chat_two_stored = asyncio.Event()

    async def process(update: Update) -> Optional[BaseException]:
        text = update.effective_message.text
        if text == "one":  # the first message of chat 1 waits for chat 2's
            await asyncio.wait_for(chat_two_stored.wait(), 2)
        processed.append(text)
        if text == "hello":
            chat_two_stored.set()
        return RuntimeError("store down") if text == "one" else None

    channel._process = process
    batch = _updates((1, "one"), (1, "two"), (2, "hello"))
    errors = await channel._process_batch(batch)
    assert processed == ["hello", "one"]  # "two" is not stored before "one" is
    assert [str(e) if e else None for e in errors] == ["store down", "store down", None]


async def test_a_batch_without_failures_stores_everything():
    channel = TelegramChannel.__new__(TelegramChannel)
    channel.gateway = SimpleNamespace(acks_first=AcksFirst())
    seen: List[str] = []

    async def process(update: Update) -> Optional[BaseException]:
        seen.append(update.effective_message.text)
        return None

    channel._process = process
    errors = await channel._process_batch(_updates((1, "a"), (2, "b"), (1, "c")))
    assert errors == [None, None, None]
    assert seen.index("a") < seen.index("c") and sorted(seen) == ["a", "b", "c"]
