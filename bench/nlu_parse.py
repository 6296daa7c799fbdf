"""Benchmark: in-process NLU parse time of the trained model, one message at a time.

    python -m bench.nlu_parse

Parses every hand-written test message (tests/nlu/) once, with the sentence
encoder's cache emptied first, so each figure includes the encoder's cost as a
new message would. Prints p50/p99 in milliseconds and writes
reports/bench_nlu.json.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

from bench.report import write_report
from bot.brand import PROJECT_ROOT
from bot.trainer.datasets import labelled, load_training_data, nlu_files

REPORT = PROJECT_ROOT / "reports" / "bench_nlu.json"


async def measure(model: Path, texts: list[str]) -> list[float]:
    from rasa.core.agent import Agent
    from rasa.utils.common import configure_logging_and_warnings

    from bot.nlu.encoder import shared_encoder

    # As `rasa run` does by default: no per-message debug lines in the timing.
    configure_logging_and_warnings(logging.INFO)

    agent = Agent.load(str(model))
    for text in texts[:20]:  # warm up: first calls build caches and threads
        await agent.parse_message(text)
    shared_encoder()._cache.clear()
    timings = []
    for text in texts:
        start = time.perf_counter()
        await agent.parse_message(text)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> int:
    from bot.train import train

    model = train()
    texts = list(dict.fromkeys(e.text for e in labelled(
        load_training_data(nlu_files(PROJECT_ROOT / "tests" / "nlu")))))
    timings = sorted(asyncio.run(measure(model, texts)))
    result = {
        "messages": len(timings),
        "parse_ms_p50": round(statistics.median(timings), 2),
        "parse_ms_p99": round(timings[int(0.99 * (len(timings) - 1))], 2),
        "parse_ms_max": round(timings[-1], 2),
    }
    write_report(REPORT, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
