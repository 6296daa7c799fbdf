"""Benchmark: does a wave of inbox sign-ins slow the gateway for customers?

    python -m bench.login_load [--logins 30]

Starts the gateway alone (Rasa is not needed: /health and the DM API's
acknowledgement touch only the store), fires N sign-ins at once (half wrong,
from several addresses) and measures /health round trips meanwhile. scrypt
runs in its own two threads, so /health should stay in single-digit ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bot.gateway.agents.accounts import add_agent
from tests.gateway_support import gateway_settings, inbox_sign_in, running_gateway

PASSWORD = "correct horse battery"


async def run(logins: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        settings = gateway_settings(Path(folder), "http://127.0.0.1:9")  # no Rasa needed
        async with running_gateway(settings) as app:
            add_agent(app.ctx.gateway.store, "sam", "Sam Patel", PASSWORD)
            base = f"http://{settings.host}:{settings.port}"
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                health: list = []
                done = asyncio.Event()

                async def probe() -> None:
                    while not done.is_set():
                        start = time.perf_counter()
                        await http.get("/health")
                        health.append((time.perf_counter() - start) * 1000)
                        await asyncio.sleep(0.01)

                async def sign_in_once(n: int) -> int:
                    password = PASSWORD if n % 2 else f"wrong {n}"
                    answer = await inbox_sign_in(http, "sam" if n % 3 else f"user{n}", password)
                    return answer.status_code

                prober = asyncio.create_task(probe())
                start = time.perf_counter()
                statuses = await asyncio.gather(*(sign_in_once(n) for n in range(logins)))
                elapsed = time.perf_counter() - start
                done.set()
                await prober
    return {
        "logins": logins,
        "all_logins_s": round(elapsed, 2),
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "health_ms_median": round(statistics.median(health), 1),
        "health_ms_max": round(max(health), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=30)
    print(json.dumps(asyncio.run(run(parser.parse_args().logins)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
