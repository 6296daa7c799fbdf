"""Benchmark: what synchronous=FULL costs the gateway's SQLite store per message.

    python -m bench.store_sync [--messages 400]

The gateway acknowledges a DM once ``Store.receive`` has committed it. With
WAL, synchronous=NORMAL may lose the last commits on power loss; FULL (the
setting the store uses) syncs the WAL on every commit. This stores the same
messages, one ``receive`` at a time as the gateway does, under each setting,
in a database under var/ (the disk the gateway uses; /tmp may be memory),
in rounds that take turns, and prints messages/s (of time spent in receive)
and ms per receive. Writes reports/bench_store.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from bench.report import write_report
from bot.brand import PROJECT_ROOT
from bot.gateway.messages import InboundMessage, OutboundMessage
from bot.gateway.store import Store, engine_for

REPORT = PROJECT_ROOT / "reports" / "bench_store.json"
SETTINGS = ("NORMAL", "FULL")
PRAGMA_VALUE = {"NORMAL": 1, "FULL": 2}


def measure(url: str, synchronous: str, first: int, count: int) -> List[float]:
    """ms of each of ``count`` receives (20 conversations; each first one acknowledged)."""
    store = Store(url)
    store.engine.dispose()
    store.engine = engine_for(url, synchronous)  # the same schema, the setting under test
    with store.engine.connect() as db:
        assert db.exec_driver_sql("PRAGMA synchronous").scalar() == PRAGMA_VALUE[synchronous]
    ack = OutboundMessage(text="Hi Amara, thanks for your message!")
    timings: List[float] = []
    for n in range(first, first + count):
        message = InboundMessage(channel="api", external_id=f"c{n % 20}",
                                 channel_message_id=f"m{n}", text=f"where is my order {n}",
                                 sender_name="Amara Okafor")
        before = time.perf_counter()
        store.receive(message, ack=ack)
        timings.append((time.perf_counter() - before) * 1000)
    store.engine.dispose()
    return timings


def summary(timings: List[float]) -> Dict[str, float]:
    ordered = sorted(timings)
    return {"messages": len(ordered),
            "messages_per_s": round(1000 * len(ordered) / sum(ordered), 1),
            "receive_ms_mean": round(statistics.fmean(ordered), 3),
            "receive_ms_p50": round(statistics.median(ordered), 3),
            "receive_ms_p99": round(ordered[int(0.99 * (len(ordered) - 1))], 3)}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_sync")
    parser.add_argument("--messages", type=int, default=200, help="per round and setting")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds, the settings taking turns (other load evens out)")
    args = parser.parse_args(argv)
    (PROJECT_ROOT / "var").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-store-", dir=PROJECT_ROOT / "var"))
    timings: Dict[str, List[float]] = {setting: [] for setting in SETTINGS}
    try:
        measure(f"sqlite:///{folder / 'warm-up.db'}", "NORMAL", 0, 20)  # imports, caches
        for round_ in range(args.rounds):
            for setting in SETTINGS:
                url = f"sqlite:///{folder / f'{setting.lower()}.db'}"
                timings[setting] += measure(url, setting, round_ * args.messages,
                                            args.messages)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result: Dict[str, object] = {setting: summary(timings[setting]) for setting in SETTINGS}
    result["full_extra_ms_per_receive"] = round(
        result["FULL"]["receive_ms_mean"] - result["NORMAL"]["receive_ms_mean"], 3)
    write_report(REPORT, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
