"""Benchmark: many customers DM at once; how soon does each get a first response?

Starts the real stack (Rasa server, action server, gateway) as `make run` does,
with Telegram pointed at a loopback fake Bot API server, then pushes one DM
from each of N customers at the same instant and records, per customer, the
time from the update leaving "Telegram" to the first message back (the
acknowledgement) and to the bot's real answer.

    python -m bench.dm_burst [--customers 40] [--waves 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Dict, List

from bot.train import train
from tests.fake_telegram import FakeTelegram
from tests.stack import running_stack

MESSAGES = ["hi, where is my order?", "do you ship to canada?", "i want a refund",
            "what are your opening hours", "can i talk to a person"]


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def arrival_times(fake: FakeTelegram, chats: List[int], base: Dict[int, int],
                        count: int, timeout: float) -> Dict[int, List[float]]:
    """When each chat's next ``count`` messages (after ``base``) arrive, 5 ms resolution."""
    seen: Dict[int, List[float]] = {c: [] for c in chats}
    deadline = time.perf_counter() + timeout
    while any(len(seen[c]) < count for c in chats):
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"not all {len(chats)} customers answered within {timeout}s")
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
    async with running_stack(model, fake):
        print(f"stack up in {time.monotonic() - started:.0f}s", file=sys.stderr)
        chats = [7_000_000 + i for i in range(customers)]
        result: Dict[str, object] = {"customers": customers, "waves": []}
        for wave in range(waves):
            base = {c: len(fake.sent(c)) for c in chats}
            # The first wave is acknowledged (ack, then answer); later ones just answered.
            expected = 2 if wave == 0 else 1
            t0 = time.perf_counter()
            for i, chat in enumerate(chats):
                fake.push_update(fake.text_update(chat, MESSAGES[(i + wave) % len(MESSAGES)],
                                                  first_name=f"Customer{i}"))
            seen = await arrival_times(fake, chats, base, expected, timeout=300)
            first = [seen[c][0] - t0 for c in chats]
            answer = [seen[c][-1] - t0 for c in chats]
            result["waves"].append({
                "acknowledged": wave == 0,
                "first_response_p50_ms": round(1000 * percentile(first, 0.5)),
                "first_response_p99_ms": round(1000 * percentile(first, 0.99)),
                "answer_p50_ms": round(1000 * percentile(answer, 0.5)),
                "answer_p99_ms": round(1000 * percentile(answer, 0.99)),
                "answer_mean_ms": round(1000 * statistics.mean(answer)),
            })
            await asyncio.sleep(3)  # let multi-message replies finish before the next wave
    await fake.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description="DM burst benchmark")
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--waves", type=int, default=2,
                        help="bursts; the first gets acknowledgements, later ones only answers")
    args = parser.parse_args()
    result = asyncio.run(run(args.customers, args.waves))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
