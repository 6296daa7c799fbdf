"""Benchmark: what the metrics cost the gateway per message.

    python -m bench.metrics_cost [--messages 400] [--rounds 3]

Runs the gateway as `make run` does (``python -m bot.gateway``, its own
process, SQLite under var/) against a RasaStandIn on loopback, once with
METRICS=on and once with METRICS=off, rounds taking turns so that other load
on the machine evens out. Each round posts ``--messages`` DMs through the DM
API (30 conversations, 8 requests in flight), waits until every one is
answered and every acknowledgement and reply delivered (read from the
database by this process, not asked of the gateway), and takes the gateway
process's CPU time (user + system, /proc) over the round.

Reports, into reports/bench.json: the gateway's CPU µs per message with and
without metrics (medians over rounds), their ratio, the hooks' own cost per
message measured in-process (one message's hooks: received, rasa_call,
answered, two sends), and how long one /metrics scrape takes on the round's
database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional

import httpx
import sqlalchemy as sa

from bench.report import merge_report
from bench.servers import stop_all, wait_until_up
from bot.brand import PROJECT_ROOT
from bot.gateway.channels.bridge_admin import create_bridge
from bot.gateway.messages import OutboundMessage
from bot.gateway.metrics import Metrics
from bot.gateway.store import Store
from bot.gateway.store.schema import QUEUED, messages
from tests.gateway_support import RasaStandIn, free_port

CONVERSATIONS = 30
IN_FLIGHT = 8
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def settled(store: Store, answered: int, rasa: RasaStandIn) -> bool:
    """Rasa has answered ``answered`` messages and nothing waits in either queue."""
    if len(rasa.received) < answered:
        return False
    with store.engine.connect() as db:
        return db.execute(sa.select(sa.func.count()).select_from(messages)
                          .where(messages.c.status == QUEUED)).scalar_one() == 0


async def post_all(http: httpx.AsyncClient, first: int, count: int) -> None:
    numbers = iter(range(first, first + count))

    async def poster() -> None:
        for n in numbers:
            answer = await http.post("/api/v1/messages", json={
                "channel": "api", "conversation_id": f"c{n % CONVERSATIONS}",
                "sender_name": "Amara Okafor", "text": f"where is my order {n}?",
                "channel_message_id": f"m{n}"})
            answer.raise_for_status()

    await asyncio.gather(*(poster() for _ in range(IN_FLIGHT)))


async def until(check, timeout: float = 120.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise TimeoutError("the gateway did not finish the round in time")
        await asyncio.sleep(0.02)


async def one_round(metrics_on: bool, count: int, work: Path) -> Dict[str, float]:
    """CPU µs per message of a fresh gateway process, and a scrape's ms (metrics on)."""
    folder = Path(tempfile.mkdtemp(prefix="round-", dir=work))
    url = f"sqlite:///{folder / 'gateway.db'}"
    store = Store(url)
    secret = create_bridge(store, "bench", ["api"])
    rasa = RasaStandIn()
    await rasa.start()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "DATABASE_URL": url,
           "RASA_URL": rasa.url, "GATEWAY_PORT": str(port), "GATEWAY_HOST": "127.0.0.1",
           "METRICS": "on" if metrics_on else "off", "GATEWAY_LOG_LEVEL": "WARNING",
           "SENDER_MESSAGES_PER_MINUTE": "0", "QUEUED_MESSAGES_PER_CONVERSATION": "0",
           "BRIDGE_REQUESTS_PER_MINUTE": "0"}
    env.pop("METRICS_TOKEN", None)
    with open(folder / "gateway.log", "w") as log:
        gateway = subprocess.Popen([sys.executable, "-m", "bot.gateway"], cwd=PROJECT_ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(f"{base}/health", gateway, timeout=60)
        async with httpx.AsyncClient(base_url=base, timeout=30, headers={
                "Authorization": f"Bearer {secret}"}) as http:
            warm_up = CONVERSATIONS  # every conversation's first message: acknowledged
            await post_all(http, 0, warm_up)
            await until(lambda: settled(store, warm_up, rasa))
            before = cpu_seconds(gateway.pid)
            await post_all(http, warm_up, count)
            await until(lambda: settled(store, warm_up + count, rasa))
            used = cpu_seconds(gateway.pid) - before
            scrape_ms = 0.0
            if metrics_on:
                started = time.perf_counter()
                scraped = await http.get("/metrics")
                scrape_ms = (time.perf_counter() - started) * 1000
                scraped.raise_for_status()
        return {"cpu_us_per_message": used / count * 1e6, "scrape_ms": scrape_ms}
    except Exception:
        print((folder / "gateway.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        stop_all([gateway])
        await rasa.stop()
        store.engine.dispose()


def hooks_us_per_message(messages_: int = 20_000) -> float:
    """The hooks one answered message runs (received, rasa_call, answered, ack and reply
    sent), timed in this process: µs per message."""
    metrics = Metrics()
    replies = [OutboundMessage("echo")]
    rows = [SimpleNamespace(conversation_id=f"api:c{n % 300}", channel="api", kind="message",
                            created_at=time.time()) for n in range(messages_)]
    acks = [SimpleNamespace(**{**vars(r), "kind": "ack"}) for r in rows]
    answers = [SimpleNamespace(**{**vars(r), "kind": "reply"}) for r in rows]
    started = time.process_time()  # CPU time, as for the gateway: other load evens out
    for row, ack, answer in zip(rows, acks, answers, strict=True):
        metrics.received("api", None)
        metrics.sent(ack)
        metrics.rasa_call(1)
        metrics.answered(row, replies)
        metrics.sent(answer)
    return (time.process_time() - started) / messages_ * 1e6


async def run(count: int, rounds: int) -> Dict[str, object]:
    (PROJECT_ROOT / "var").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-metrics-", dir=PROJECT_ROOT / "var"))
    results: Dict[bool, List[Dict[str, float]]] = {True: [], False: []}
    try:
        for round_ in range(rounds):
            for metrics_on in ((True, False) if round_ % 2 == 0 else (False, True)):
                result = await one_round(metrics_on, count, work)
                results[metrics_on].append(result)
                print(f"round {round_ + 1}, metrics {'on' if metrics_on else 'off'}: "
                      f"{result['cpu_us_per_message']:.0f} µs CPU per message",
                      file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    on = statistics.median(r["cpu_us_per_message"] for r in results[True])
    off = statistics.median(r["cpu_us_per_message"] for r in results[False])
    return {
        "metrics_messages_per_round": count,
        "metrics_rounds": rounds,
        "metrics_on_cpu_us_per_message": round(on, 1),
        "metrics_off_cpu_us_per_message": round(off, 1),
        "metrics_cpu_ratio": round(on / off, 3),
        "metrics_hooks_us_per_message": round(hooks_us_per_message(), 2),
        "metrics_scrape_ms": round(statistics.median(r["scrape_ms"] for r in results[True]), 1),
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost")
    parser.add_argument("--messages", type=int, default=400, help="measured DMs per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each setting")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.messages, args.rounds))
    print(json.dumps(result, indent=2))
    merge_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
