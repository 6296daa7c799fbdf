"""Closed-loop load on a Rasa server's REST channel, and what a process tree holds in memory.

Each simulated user holds one conversation at a time and waits for the bot's
answer before sending its next message, as a customer in a chat does; so
throughput is what the server sustains, not what a client can fire at it.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import httpx

# Two ordinary conversations, alternated between users: one of quick
# questions, one that opens a case (a form, validated by the action server).
# Each step has several wordings and the order numbers vary, so, as with real
# customers, few messages repeat word for word and no cache flatters the figures.
SCRIPTS: Sequence[Sequence[Sequence[str]]] = (
    (("hi there", "hello!", "hey, good morning", "hiya", "good afternoon", "hi, quick one"),
     ("do you deliver to ireland?", "how long does shipping take?",
      "what are the delivery options", "can you ship to france", "is next day delivery possible?",
      "how much is postage?"),
     ("how can i pay for an order?", "do you take paypal", "can i pay with apple pay?",
      "which cards do you accept?", "is klarna an option", "can i pay by bank transfer"),
     ("thanks, bye", "cheers, that's all", "great, thank you!", "ok thanks a lot",
      "brilliant, bye for now", "thank you, have a nice day")),
    (("hello", "hi", "hey there", "morning!", "good evening", "hi again"),
     ("where is my parcel?", "my order hasn't arrived yet", "can you track my order",
      "where's my delivery", "order still not here", "when will my package arrive?"),
     ("my order number is JL-{n}", "it's JL-{n}", "order JL-{n}", "JL-{n}",
      "the number is JL-{n}", "ref JL-{n}"),
     ("thank you", "thanks!", "cheers", "thanks so much", "many thanks", "ta")),
)


def script_texts(script: Sequence[Sequence[str]], seed: int) -> List[str]:
    """One conversation's messages: a wording per step, picked by ``seed``."""
    chooser = random.Random(seed)
    return [chooser.choice(wordings).format(n=chooser.randint(100000, 999999))
            for wordings in script]


@dataclass(frozen=True)
class LoadResult:
    users: int
    messages: int
    seconds: float
    latencies_ms: List[float]
    unanswered: int = 0  # messages the bot said nothing to (a broken bot answers fast)

    @property
    def throughput(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def summary(self) -> dict:
        return {"users": self.users, "messages": self.messages,
                "msgs_per_s": round(self.throughput, 2),
                "p50_ms": round(self.percentile(0.5)), "p99_ms": round(self.percentile(0.99)),
                "unanswered": self.unanswered}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def say(client: httpx.AsyncClient, url: str, sender: str, text: str
              ) -> Tuple[float, bool]:
    """One message to the REST channel: milliseconds until the whole answer came back,
    and whether the bot said anything."""
    started = time.perf_counter()
    response = await client.post(f"{url}/webhooks/rest/webhook",
                                 json={"sender": sender, "message": text})
    response.raise_for_status()
    return 1000 * (time.perf_counter() - started), bool(response.json())


async def closed_loop(url: str, users: int, conversations_per_user: int,
                      timeout: float = 120.0) -> LoadResult:
    """``users`` customers at once, each holding ``conversations_per_user`` conversations
    (SCRIPTS, alternated) one after another."""
    run = uuid.uuid4().hex[:8]
    latencies: List[float] = []
    silent = 0
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)

    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        async def user(number: int) -> None:
            nonlocal silent
            for conversation in range(conversations_per_user):
                script = SCRIPTS[(number + conversation) % len(SCRIPTS)]
                sender = f"bench-{run}-{number}-{conversation}"
                for text in script_texts(script, hash(sender)):
                    milliseconds, answered = await say(client, url, sender, text)
                    latencies.append(milliseconds)
                    silent += not answered

        started = time.perf_counter()
        await asyncio.gather(*(user(n) for n in range(users)))
        seconds = time.perf_counter() - started
    return LoadResult(users, len(latencies), seconds, latencies, silent)


async def long_conversation(url: str, texts: Sequence[str], turns: int) -> List[float]:
    """One conversation of ``turns`` messages (``texts`` in turn); each one's latency in ms."""
    sender = f"bench-long-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=120.0) as client:
        return [(await say(client, url, sender, texts[i % len(texts)]))[0]
                for i in range(turns)]


def cost_ratio(latencies: Sequence[float], window: int = 10) -> float:
    """Median latency of the last ``window`` turns over that of the first ``window``."""
    first = statistics.median(latencies[:window])
    return statistics.median(latencies[-window:]) / first if first else 0.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (Linux /proc)."""
    children: dict = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += _rss_kb(current)
        todo.extend(children.get(current, []))
    return total / 1024


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
