"""Benchmark: how long customers wait while `make deploy-model` switches the live model.

    python -m bench.model_switch [--users 5] [--direct] [--after 5]

Starts the project's Rasa as the Procfile does, under bot.rasa_supervisor
(with --direct: a bare bot.rasa_server, whose own PUT /model loads the model
inside the serving process, as before the supervisor), with its action
server and SQLite tracker store (bench/servers.py). A closed loop of
``--users`` customers talks to the REST channel; after a steady spell,
bot.trainer.deploy switches to a copy of the trained model (another file
name, so it is not skipped as already live), and the load goes on until
``--after`` seconds after the deploy has returned (under the supervisor: the
old Rasa has stopped).

Reports the longest wait of any message that was in flight during the switch
(target: at most 2 s), p50/p99 of those messages, p50/p99 before it, the
switch's duration, and the peak memory of Rasa's process tree. Figures go to
stdout and reports/bench.json (model_switch_*; with --direct
model_switch_direct_*).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import httpx

from bench.load import SCRIPTS, percentile, say, script_texts, tree_rss_mb
from bench.report import merge_report
from bench.servers import BIN, project_endpoints, start, stop_all, wait_until_up, work_folder
from bot.brand import PROJECT_ROOT
from bot.trainer import deploy
from tests.gateway_support import free_port

TARGET_MAX_WAIT_S = 2.0


@dataclass
class Turn:
    started: float  # time.monotonic()
    seconds: float
    answered: bool
    error: str = ""

    @property
    def ended(self) -> float:
        return self.started + self.seconds


async def customers(url: str, users: int, stop: asyncio.Event, turns: List[Turn]) -> None:
    """``users`` customers, each one message at a time, until ``stop``."""
    run = uuid.uuid4().hex[:8]
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def customer(number: int) -> None:
            conversation = 0
            while not stop.is_set():
                script = SCRIPTS[(number + conversation) % len(SCRIPTS)]
                sender = f"switch-{run}-{number}-{conversation}"
                for text in script_texts(script, hash(sender)):
                    started = time.monotonic()
                    try:
                        milliseconds, answered = await say(client, url, sender, text)
                        turns.append(Turn(started, milliseconds / 1000, answered))
                    except httpx.HTTPError as error:
                        turns.append(Turn(started, time.monotonic() - started, False,
                                          f"{type(error).__name__}: {error}"))
                    if stop.is_set():
                        return
                conversation += 1

        await asyncio.gather(*(customer(n) for n in range(users)))


async def watch_memory(pid: int, stop: asyncio.Event, peak: List[float]) -> None:
    """The peak resident memory of ``pid`` and its descendants, sampled twice a second."""
    while not stop.is_set():
        peak[0] = max(peak[0], tree_rss_mb(pid))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def watch_live_model(url: str, token: str, stop: asyncio.Event,
                           seen: List[Tuple[float, Optional[str]]]) -> None:
    """When the live model changed, as GET /status tells (a blocked Rasa answers late)."""
    async with httpx.AsyncClient(timeout=600, params={"token": token}) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError, ValueError):
                answer = await client.get(f"{url}/status")
                seen.append((time.monotonic(), answer.json().get("model_file")))
            await asyncio.sleep(0.2)


def _ms(values: List[float], q: float) -> int:
    return round(1000 * percentile(values, q))


async def measure(users: int, direct: bool, steady: float, after: float) -> Dict[str, Any]:
    from bot.train import train

    model = train()
    work = work_folder()
    token = secrets.token_urlsafe(24)
    rasa_port, actions_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "RASA_TOKEN": token,
           "RASA_HOST": "127.0.0.1"}
    endpoints = project_endpoints(work, actions_port)
    candidate = work / "juniper-lane-switched.tar.gz"
    shutil.copyfile(model, candidate)
    actions = start("actions", [str(BIN / "rasa"), "run", "actions", "--port",
                                str(actions_port), "--actions", "actions"],
                    PROJECT_ROOT, {**env, "SANIC_HOST": "127.0.0.1",
                                   "SANIC_KEEP_ALIVE_TIMEOUT": "75"}, work / "actions.log")
    module = "bot.rasa_server" if direct else "bot.rasa_supervisor"
    rasa = start("rasa", [sys.executable, "-m", module, "--enable-api", "--port",
                          str(rasa_port), "--endpoints", str(endpoints), "--credentials",
                          "credentials.yml", "--model", str(model)],
                 PROJECT_ROOT, env, work / "rasa.log")
    url = f"http://127.0.0.1:{rasa_port}"
    try:
        await wait_until_up(f"http://127.0.0.1:{actions_port}/health", actions)
        await wait_until_up(f"{url}/status?token={token}", rasa, timeout=600)
        supervisor_mb = None if direct else tree_rss_mb(rasa.pid) - sum(
            tree_rss_mb(child) for child in _children(rasa.pid))
        print(f"{module} up (log: {work / 'rasa.log'}); {users} customers talking...",
              file=sys.stderr)

        stop, watch_stop = asyncio.Event(), asyncio.Event()
        turns: List[Turn] = []
        peak = [0.0]
        statuses: List[Tuple[float, Optional[str]]] = []
        load = asyncio.create_task(customers(url, users, stop, turns))
        watchers = [asyncio.create_task(watch_memory(rasa.pid, watch_stop, peak)),
                    asyncio.create_task(watch_live_model(url, token, watch_stop, statuses))]
        await asyncio.sleep(steady)
        before_rss = tree_rss_mb(rasa.pid)

        admin = deploy.RasaAdmin(url, token=token, load_timeout=1200)
        switch_started = time.monotonic()
        try:
            await asyncio.to_thread(deploy.deploy, candidate, admin, sys.stderr)
        finally:
            admin.close()
        switch_ended = time.monotonic()
        await asyncio.sleep(after)
        stop.set()
        await load
        watch_stop.set()
        await asyncio.gather(*watchers)
    finally:
        stop_all([rasa, actions])

    before = [t.seconds for t in turns if t.ended < switch_started]
    during = [t for t in turns if t.ended >= switch_started and t.started <= switch_ended]
    waits = [t.seconds for t in during]
    worst = max(during, key=lambda t: t.seconds)
    live_at = next((at for at, name in statuses
                    if at > switch_started and name == candidate.name), None)
    for turn in sorted(during, key=lambda t: -t.seconds)[:5]:
        print(f"  long wait {turn.seconds:.2f}s, sent {turn.started - switch_started:+.1f}s "
              "after the switch began", file=sys.stderr)
    prefix = "model_switch_direct_" if direct else "model_switch_"
    figures = {
        "max_wait_s": round(worst.seconds, 2),
        "p50_ms": _ms(waits, 0.5),
        "p99_ms": _ms(waits, 0.99),
        "duration_s": round(switch_ended - switch_started, 1),
        "new_model_live_after_s": round(live_at - switch_started, 1) if live_at else None,
        "worst_wait_started_after_s": round(worst.started - switch_started, 1),
        "messages_during": len(during),
        "messages": len(turns),
        "errors": sum(1 for t in turns if t.error),
        "unanswered": sum(1 for t in turns if not t.answered),
        "before_p50_ms": _ms(before, 0.5),
        "before_p99_ms": _ms(before, 0.99),
        "users": users,
        "rasa_rss_mb_before": round(before_rss),
        "rasa_rss_mb_peak": round(peak[0]),
    }
    if supervisor_mb is not None:
        figures["supervisor_rss_mb"] = round(supervisor_mb)
    if not direct:
        figures["target_max_wait_s"] = TARGET_MAX_WAIT_S
    return {prefix + key: value for key, value in figures.items()}


def _children(pid: int) -> List[int]:
    found: List[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_switch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=5, help="customers at once (default 5)")
    parser.add_argument("--direct", action="store_true",
                        help="bare Rasa and its own PUT /model: the figure before the "
                             "supervisor")
    parser.add_argument("--steady", type=float, default=15.0,
                        help="seconds of load before the switch (default 15)")
    parser.add_argument("--after", type=float, default=5.0,
                        help="seconds of load after the switch is over (default 5)")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.users, args.direct, args.steady, args.after))
    merge_report(figures)
    width = max(len(key) for key in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.direct:
        return 0
    return 0 if figures["model_switch_max_wait_s"] <= TARGET_MAX_WAIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
