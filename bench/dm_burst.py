"""Benchmark: many customers DM at once; how soon does each get a first response?

Starts the real stack (Rasa server, action server, gateway) as `make run` does,
with Telegram pointed at a loopback fake Bot API server, then pushes one DM
from each of N customers at the same instant and records, per customer, the
time from the update leaving "Telegram" to the first message back (the
acknowledgement) and to the bot's real answer.

Telegram's rate limit (30 messages a second) alone keeps a burst of more than
30 acknowledgements from arriving at once. The floor is what that limit costs
by itself: the production rate limiter (same class and parameters) letting one
acknowledgement per customer through with a no-op callback, nothing else sent.
``ack_p99_over_floor`` is the first wave's acknowledgement p99 over the floor's
p99: 1.0 means acknowledgements wait for nothing but Telegram's limit.
Writes ``ack_p99_ms``, ``ack_floor_p99_ms`` and ``ack_p99_over_floor`` into
reports/bench.json.

    python -m bench.dm_burst [--customers 40] [--waves 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from typing import Dict, List, Set

import httpx

from bench.report import merge_report
from bot.gateway.channels.telegram import default_rate_limiter
from bot.gateway.channels.telegram_priority import Priority
from bot.train import train
from tests.fake_telegram import FakeTelegram
from tests.stack import running_stack

MESSAGES = ["hi, where is my order?", "do you ship to canada?", "i want a refund",
            "what are your opening hours", "can i talk to a person"]
# For the agent API, which says whose conversations are with a person now.
AGENT_API_TOKEN = secrets.token_urlsafe(24)


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def ack_floor(customers: int) -> List[float]:
    """Seconds each of ``customers`` acknowledgements, all asked for at once, waits for
    the production rate limiter alone (a no-op callback instead of Telegram)."""
    limiter = default_rate_limiter()
    await limiter.initialize()
    waited: List[float] = []
    t0 = time.perf_counter()

    async def no_op() -> bool:
        waited.append(time.perf_counter() - t0)
        return True

    try:
        await asyncio.gather(*(
            limiter.process_request(no_op, (), {}, "sendMessage",
                                    {"chat_id": 7_000_000 + i, "text": "Hi"},
                                    {"priority": Priority.ACK})
            for i in range(customers)))
    finally:
        await limiter.shutdown()
    return waited


async def with_a_person(gateway_url: str) -> Set[int]:
    """Chats handed over to a person: the bot stays quiet there, so no answer is awaited."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        answer = await client.get("/api/v1/handoffs/",
                                  headers={"Authorization": f"Bearer {AGENT_API_TOKEN}"})
        answer.raise_for_status()
    return {int(h["conversation_id"].split(":", 1)[1]) for h in answer.json()["handoffs"]
            if h["conversation_id"].startswith("telegram:")}


async def arrival_times(fake: FakeTelegram, chats: List[int], base: Dict[int, int],
                        count: int, timeout: float) -> Dict[int, List[float]]:
    """When each chat's next ``count`` messages (after ``base``) arrive, 5 ms resolution."""
    seen: Dict[int, List[float]] = {c: [] for c in chats}
    deadline = time.perf_counter() + timeout
    while any(len(seen[c]) < count for c in chats):
        now = time.perf_counter()
        if now > deadline:
            short = {c: [m.get("text", "")[:60] for m in fake.sent(c)[base[c]:]]
                     for c in chats if len(seen[c]) < count}
            raise TimeoutError(f"{len(short)} of {len(chats)} customers did not get {count} "
                               f"message(s) within {timeout}s; what they got: {short}")
        for chat in chats:
            arrived = len(fake.sent(chat)) - base[chat]
            while len(seen[chat]) < min(arrived, count):
                seen[chat].append(now)
        await asyncio.sleep(0.005)
    return seen


async def run(customers: int, waves: int) -> Dict[str, object]:
    model = train()
    fake = FakeTelegram()
    await fake.start()
    started = time.monotonic()
    async with running_stack(model, fake, {"AGENT_API_TOKEN": AGENT_API_TOKEN}) as stack:
        print(f"stack up in {time.monotonic() - started:.0f}s", file=sys.stderr)
        chats = [7_000_000 + i for i in range(customers)]
        result: Dict[str, object] = {"customers": customers, "waves": []}
        acknowledged: List[float] = []  # the first wave's first responses: acknowledgements
        for wave in range(waves):
            base = {c: len(fake.sent(c)) for c in chats}
            # Those who asked for a person in an earlier wave still write, but the bot
            # leaves them to the person: only the others are waited for.
            quiet = await with_a_person(stack.gateway_url) if wave else set()
            answered = [c for c in chats if c not in quiet]
            # The first wave is acknowledged (ack, then answer); later ones just answered.
            expected = 2 if wave == 0 else 1
            t0 = time.perf_counter()
            for i, chat in enumerate(chats):
                fake.push_update(fake.text_update(chat, MESSAGES[(i + wave) % len(MESSAGES)],
                                                  first_name=f"Customer{i}"))
            seen = await arrival_times(fake, answered, base, expected, timeout=300)
            first = [seen[c][0] - t0 for c in answered]
            answer = [seen[c][-1] - t0 for c in answered]
            if wave == 0:
                acknowledged = first
            print(f"wave {wave + 1}: {len(answered)} answered", file=sys.stderr)
            result["waves"].append({
                "acknowledged": wave == 0,
                "answered_by_the_bot": len(answered),
                "first_response_p50_ms": round(1000 * percentile(first, 0.5)),
                "first_response_p99_ms": round(1000 * percentile(first, 0.99)),
                "answer_p50_ms": round(1000 * percentile(answer, 0.5)),
                "answer_p99_ms": round(1000 * percentile(answer, 0.99)),
                "answer_mean_ms": round(1000 * statistics.mean(answer)),
            })
            await asyncio.sleep(3)  # let multi-message replies finish before the next wave
    await fake.stop()
    ack_p99 = percentile(acknowledged, 0.99)
    floor_p99 = percentile(await ack_floor(customers), 0.99)
    result.update(ack_p99_ms=round(1000 * ack_p99), ack_floor_p99_ms=round(1000 * floor_p99),
                  ack_p99_over_floor=round(ack_p99 / floor_p99, 3))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description="DM burst benchmark")
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--waves", type=int, default=2,
                        help="bursts; the first gets acknowledgements, later ones only answers")
    args = parser.parse_args()
    result = asyncio.run(run(args.customers, args.waves))
    print(json.dumps(result, indent=2))
    merge_report({key: result[key]
                  for key in ("ack_p99_ms", "ack_floor_p99_ms", "ack_p99_over_floor")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
