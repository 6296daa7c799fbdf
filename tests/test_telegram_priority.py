"""Telegram's rate limit spent acknowledgements first (bot/gateway/channels/telegram_priority.py).

The limiter is driven directly with a callback that records when Telegram would
have been called, with small windows so each test takes well under 2 s; one
test runs a burst through the gateway, python-telegram-bot and the fake Bot API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import pytest
from telegram.error import NetworkError, RetryAfter

from bot.brand import brand
from bot.gateway.channels.telegram import TelegramChannel
from bot.gateway.channels.telegram_priority import Priority, PriorityRateLimiter
from bot.gateway.messages import ACK, ANSWER, InboundMessage, OutboundMessage
from bot.gateway.pipeline import Gateway
from bot.gateway.rasa_client import RasaClient
from bot.gateway.store import Store
from tests.fake_telegram import FakeTelegram
from tests.gateway_support import FAST_RETRY, RasaStandIn, eventually, gateway_settings

LIMITER_LOG = "bot.gateway.channels.telegram_priority"

# How far a timer may run late on a busy test machine (other tests, benchmarks).
LATE = 0.25
# Telegram is called a moment after the limiter's grant, not always the same moment.
JITTER = 0.005


class Telegram:
    """Stands in for PTB's HTTP call: records (label, loop time) of every call."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, float]] = []

    def callback(self, label: str, fail: Optional[BaseException] = None):  # noqa: ANN201
        async def call() -> bool:
            self.calls.append((label, asyncio.get_running_loop().time()))
            if fail is not None:
                raise fail
            return True
        return call

    @property
    def order(self) -> List[str]:
        return [label for label, _ in self.calls]

    def at(self, label: str) -> float:
        return next(when for name, when in self.calls if name == label)


def request(limiter: PriorityRateLimiter, telegram: Telegram, label: str, chat_id: Any,
            priority: Optional[Priority] = None, endpoint: str = "sendMessage",
            fail: Optional[BaseException] = None) -> asyncio.Task:
    """One bot call through the limiter, as ExtBot makes it, running as a task."""
    data: Dict[str, Any] = {"text": label}
    if chat_id is not None:
        data["chat_id"] = chat_id
    args = {"priority": priority} if priority is not None else None
    return asyncio.ensure_future(limiter.process_request(
        telegram.callback(label, fail), (), {}, endpoint, data, args))


async def settle() -> None:
    """Let every task started so far take its first steps."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_later_ack_overtakes_queued_answers_and_typing() -> None:
    limiter = PriorityRateLimiter(overall_max_rate=2, overall_time_period=0.2,
                                  typing_max_wait=5)
    telegram = Telegram()
    full = [request(limiter, telegram, f"answer {n}", n) for n in (1, 2)]  # fills the window
    await settle()
    queued = [request(limiter, telegram, "typing 3", 3, Priority.TYPING),
              request(limiter, telegram, "answer 4", 4),
              request(limiter, telegram, "answer 5", 5, Priority.ANSWER)]
    await settle()
    ack = request(limiter, telegram, "ack 6", 6, Priority.ACK)
    await asyncio.gather(*full, *queued, ack)
    assert telegram.order == ["answer 1", "answer 2", "ack 6", "answer 4", "answer 5",
                              "typing 3"]
    assert 0.2 - JITTER <= telegram.at("ack 6") - telegram.at("answer 1") < 0.2 + LATE


async def test_never_more_than_the_limit_in_any_window() -> None:
    limit, period = 5, 0.1
    limiter = PriorityRateLimiter(overall_max_rate=limit, overall_time_period=period,
                                  typing_max_wait=5)
    telegram = Telegram()
    priorities = [Priority.ANSWER, Priority.ACK, Priority.TYPING, None]
    tasks = [request(limiter, telegram, f"r{n}", 1000 + n, priorities[n % 4]) for n in range(23)]
    await asyncio.gather(*tasks)
    times = sorted(when for _, when in telegram.calls)
    assert len(times) == 23
    for first, last in zip(times, times[limit:], strict=False):
        assert last - first >= period - JITTER  # the (limit+1)th starts a new window
    # ...and no slower than the windows require: 23 requests need four more windows.
    assert times[-1] - times[0] == pytest.approx(4 * period, abs=LATE)


async def test_a_stale_typing_indicator_is_dropped_not_sent() -> None:
    limiter = PriorityRateLimiter(overall_max_rate=1, overall_time_period=0.5,
                                  typing_max_wait=0.1)
    telegram = Telegram()
    await request(limiter, telegram, "answer", 1)  # the window is full for 0.5 s
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await request(limiter, telegram, "typing", 2, Priority.TYPING) is True
    # The loop's timers may fire a millisecond early; what matters: not the 0.5 s wait.
    assert 0.1 - 0.005 <= loop.time() - started < 0.1 + LATE
    answer = request(limiter, telegram, "next answer", 3)
    await answer  # the dropped indicator took no slot from it
    assert telegram.order == ["answer", "next answer"]
    assert limiter.waiting() == 0


async def test_typing_still_waiting_when_its_chat_gets_a_message_is_dropped() -> None:
    limiter = PriorityRateLimiter(overall_max_rate=1, overall_time_period=0.2,
                                  typing_max_wait=5)
    telegram = Telegram()
    await request(limiter, telegram, "answer 1", 1)
    typing = request(limiter, telegram, "typing 2", 2, Priority.TYPING)
    await settle()
    answer = request(limiter, telegram, "answer 2", 2)
    assert await typing is True  # answered as soon as the message to chat 2 went out
    await answer
    assert telegram.order == ["answer 1", "answer 2"]


async def test_typing_goes_at_once_when_nothing_waits() -> None:
    limiter = PriorityRateLimiter(overall_max_rate=30, overall_time_period=1)
    telegram = Telegram()
    await request(limiter, telegram, "typing", 1, Priority.TYPING, endpoint="sendChatAction")
    await request(limiter, telegram, "ack", 1, Priority.ACK)
    assert telegram.order == ["typing", "ack"]


async def test_retry_after_holds_everyone_then_is_raised() -> None:
    limiter = PriorityRateLimiter(overall_max_rate=30, overall_time_period=1)
    telegram = Telegram()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RetryAfter):  # raised to the caller at once, never retried here
        await request(limiter, telegram, "flooded", 1,
                      fail=RetryAfter(timedelta(seconds=0.5)))
    assert loop.time() - started < 0.25
    held = [request(limiter, telegram, "answer", 2),
            request(limiter, telegram, "ack", 3, Priority.ACK),
            request(limiter, telegram, "group post", -100123)]
    # Not a message to a chat: not counted, not held.
    assert await request(limiter, telegram, "getMe", None, endpoint="getMe") is True
    await asyncio.gather(*held)
    assert telegram.order == ["flooded", "getMe", "ack", "answer", "group post"]
    for label in ("ack", "answer", "group post"):
        assert 0.5 - JITTER <= telegram.at(label) - started < 0.5 + LATE


async def test_a_waiter_cancelled_in_the_queue_takes_no_slot() -> None:
    limiter = PriorityRateLimiter(overall_max_rate=1, overall_time_period=0.3)
    telegram = Telegram()
    await request(limiter, telegram, "first", 1)
    gone = request(limiter, telegram, "cancelled", 2, Priority.ACK)
    kept = request(limiter, telegram, "kept", 3)
    await settle()
    gone.cancel()
    await kept
    assert telegram.order == ["first", "kept"]
    # The next window, not the one after (which a slot kept by the cancelled one would mean).
    assert 0.3 - JITTER <= telegram.at("kept") - telegram.at("first") < 0.3 + LATE
    assert gone.cancelled()


async def test_a_waiter_cancelled_after_its_grant_gives_the_slot_back() -> None:
    """Granted in the same instant as another, cancelled before it could call Telegram."""
    limiter = PriorityRateLimiter(overall_max_rate=2, overall_time_period=0.4)
    telegram = Telegram()
    await asyncio.gather(*(request(limiter, telegram, f"fill {n}", n) for n in (1, 2)))
    tasks: Dict[str, asyncio.Task] = {}

    async def cancel_the_other() -> bool:
        telegram.calls.append(("canceller", asyncio.get_running_loop().time()))
        tasks["victim"].cancel()  # its slot is granted, its call not yet made
        return True

    tasks["canceller"] = asyncio.ensure_future(limiter.process_request(
        cancel_the_other, (), {}, "sendMessage", {"chat_id": 3}, None))
    tasks["victim"] = request(limiter, telegram, "victim", 4)
    tasks["next"] = request(limiter, telegram, "next", 5)
    await settle()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    assert tasks["victim"].cancelled()
    assert telegram.order == ["fill 1", "fill 2", "canceller", "next"]
    # "next" took the victim's slot in the same window, not the window after.
    assert telegram.at("next") - telegram.at("canceller") < 0.2


async def test_group_chats_have_their_own_limit_and_do_not_hold_up_others() -> None:
    limiter = PriorityRateLimiter(overall_max_rate=100, overall_time_period=1,
                                  group_max_rate=2, group_time_period=0.5)
    telegram = Telegram()
    group = [request(limiter, telegram, f"group {n}", -100900200) for n in range(3)]
    await settle()
    private = request(limiter, telegram, "private", 42)
    other_group = request(limiter, telegram, "other group", "@juniper_team")
    await asyncio.gather(*group, private, other_group)
    assert telegram.order == ["group 0", "group 1", "private", "other group", "group 2"]
    assert 0.5 - JITTER <= telegram.at("group 2") - telegram.at("group 0") < 0.5 + LATE
    assert telegram.at("other group") - telegram.at("group 0") < 0.25


async def test_shutdown_releases_whoever_waits() -> None:
    """Stopping the bot must not hang on a slot that will never come."""
    limiter = PriorityRateLimiter(overall_max_rate=1, overall_time_period=60)
    telegram = Telegram()
    await request(limiter, telegram, "sent", 1)
    waiting = request(limiter, telegram, "never sent", 2, Priority.ACK)
    await settle()
    await limiter.shutdown()
    with pytest.raises(NetworkError):
        await waiting
    assert telegram.order == ["sent"]


def test_acknowledgement_rows_carry_their_priority(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'gateway.db'}")
    message = InboundMessage(channel="telegram", external_id="5551001",
                             channel_message_id="1", text="hi")
    store.receive(message, ack=OutboundMessage("Hi Amara"))
    row = store.next_outbound(message.conversation_id)
    assert row.kind == "ack" and row.outbound.priority == ACK
    assert row.outbound == OutboundMessage("Hi Amara")  # priority is not part of equality
    assert OutboundMessage("x").priority == ANSWER


# --- through the gateway, python-telegram-bot and the fake Bot API ---------------------

@dataclass
class GatedRasa(RasaStandIn):
    """Rasa's stand-in, answering only once ``gate`` is set: then every message of the
    burst is stored (its acknowledgement queued) before any answer exists."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def _answer(self, body: Dict[str, Any]) -> Any:
        await self.gate.wait()
        return await super()._answer(body)


@contextlib.asynccontextmanager
async def telegram_gateway(tmp_path, rasa: RasaStandIn, fake: FakeTelegram,
                           limiter: PriorityRateLimiter) -> AsyncIterator[Gateway]:
    """The gateway with Telegram in polling mode, as app.py wires it, with ``limiter``."""
    settings = gateway_settings(tmp_path, rasa.url, telegram_bot_token=fake.token,
                                telegram_api_base_url=fake.base_url)
    gateway = Gateway(Store(settings.database_url), RasaClient(settings.rasa_url), brand(),
                      FAST_RETRY)
    channel = TelegramChannel(settings, gateway, rate_limiter=limiter)
    gateway.add_channel(channel)
    await channel.start()
    await gateway.start()
    try:
        yield gateway
    finally:
        await channel.stop()
        await gateway.stop()


async def test_a_burst_is_acknowledged_before_any_answer(tmp_path, fake_telegram,
                                                         caplog) -> None:
    fake = fake_telegram
    window = 5
    limiter = PriorityRateLimiter(overall_max_rate=window, overall_time_period=0.4)
    chats = [7_100_000 + n for n in range(window + 10)]
    for n, chat in enumerate(chats):  # waiting when polling starts: one getUpdates takes all
        fake.push_update(fake.text_update(chat, f"question {n}", first_name="Amara"))
    rasa = GatedRasa()
    await rasa.start()
    caplog.set_level(logging.DEBUG, logger=LIMITER_LOG)

    def let_through() -> List[str]:
        """The priorities of the messages the limiter let through, in order (the fake
        server may see a window's requests in any order, as they are concurrent)."""
        return [record.getMessage().split()[0] for record in caplog.records
                if record.name == LIMITER_LOG and "sendMessage" in record.getMessage()
                and "let through" in record.getMessage()]

    try:
        async with telegram_gateway(tmp_path, rasa, fake, limiter):
            # Every acknowledgement stored and handed to the limiter (sent, or waiting for
            # the window) before Rasa answers anyone: only the limiter orders them now.
            await eventually(lambda: let_through().count("ACK")
                             + limiter.waiting(Priority.ACK) == len(chats))
            rasa.gate.set()  # answers now queue while acknowledgements still wait
            await eventually(lambda: any(m["text"].startswith("echo: ") for m in fake.sent()))
    finally:
        await rasa.stop()
        await fake.stop()  # ends the long poll the stopped channel left behind
    assert let_through().count("ACK") == len(chats)
    assert "ANSWER" in let_through()
    assert let_through() == sorted(let_through(), key=["ACK", "ANSWER"].index)
    for chat in chats:
        assert "thanks for your message" in fake.sent(chat)[0]["text"]
