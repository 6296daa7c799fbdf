"""Benchmark: the project's brain against a vanilla `rasa init` bot, same machine, same run.

    python -m bench.brain [--levels 1,10,50] [--long-turns 200]

Both are loaded by the same closed-loop script (bench/load.py) on Rasa's REST
channel, one after the other at each level, so drift in the machine hits
both. Then one long conversation of ordinary questions measures what a
message costs at turn 200 against turn 1, and the resident memory of every
process is read. Prints a table; the figures go to reports/bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from typing import Dict, List

from bench.load import closed_loop, cost_ratio, long_conversation, tree_rss_mb
from bench.report import merge_report
from bench.servers import Brain, project_brain, vanilla_rasa, work_folder
from bot.train import train

# Conversations per user at each level: enough messages for a p99 (>= 40).
CONVERSATIONS = {1: 10, 10: 5, 50: 2}
# A long conversation of ordinary questions, each one the bot answers itself.
LONG_TEXTS = ("do you deliver to ireland?", "how do returns work?",
              "which payment methods do you take?", "how can i reach you by phone?",
              "thanks!", "what does it cost to cancel?", "how do i reset my password?",
              "can i get the newsletter less often?", "how do i place an order?",
              "thank you so much")


async def measure(brain: Brain, levels: List[int]) -> Dict[int, dict]:
    await closed_loop(brain.rasa.url, 2, 1)  # warm up: first calls build caches
    results = {}
    for users in levels:
        result = await closed_loop(brain.rasa.url, users, CONVERSATIONS.get(users, 2))
        results[users] = result.summary()
        print(f"  {brain.rasa.name:>12} {users:>3} users: {results[users]}", file=sys.stderr)
    return results


async def run(levels: List[int], long_turns: int) -> dict:
    model = train()
    work = work_folder()
    token = secrets.token_urlsafe(24)
    async with vanilla_rasa(work) as vanilla, project_brain(work, model, token) as project:
        figures: Dict[str, Dict[int, dict]] = {"vanilla": {}, "project": {}}
        for users in levels:  # interleaved: both see the same machine
            figures["vanilla"].update(await measure(vanilla, [users]))
            figures["project"].update(await measure(project, [users]))
        long_project = await long_conversation(project.rasa.url, LONG_TEXTS, long_turns)
        long_vanilla = await long_conversation(vanilla.rasa.url, LONG_TEXTS, long_turns)
        memory = {server.name: round(tree_rss_mb(server.process.pid))
                  for server in [*vanilla.servers, *project.servers]}
    rss_stack = sum(mb for name, mb in memory.items() if name != "vanilla rasa")
    result = {
        "levels": {str(u): {"vanilla": figures["vanilla"][u], "project": figures["project"][u],
                            "ratio": round(figures["project"][u]["msgs_per_s"]
                                           / figures["vanilla"][u]["msgs_per_s"], 2)}
                   for u in levels},
        "rss_mb": memory,
        "rss_mb_stack": rss_stack,
        "long_conversation": {"turns": long_turns,
                              "project_turn1_ms": round(sorted(long_project[:10])[5]),
                              "project_last_ms": round(sorted(long_project[-10:])[5]),
                              "vanilla_ratio": round(cost_ratio(long_vanilla), 2)},
        "turn200_over_turn1": round(cost_ratio(long_project), 2),
    }
    for users in (10, 50):
        if users in levels:
            result[f"ratio_vs_vanilla_u{users}"] = result["levels"][str(users)]["ratio"]
    if 10 in levels:
        result["p99_ms_u10"] = figures["project"][10]["p99_ms"]
    return result


def table(result: dict) -> str:
    lines = ["", "| users | vanilla msgs/s | p50 / p99 ms | project msgs/s | p50 / p99 ms "
                 "| ratio |", "|---|---|---|---|---|---|"]
    for users, row in result["levels"].items():
        v, p = row["vanilla"], row["project"]
        lines.append(f"| {users} | {v['msgs_per_s']} | {v['p50_ms']} / {v['p99_ms']} | "
                     f"{p['msgs_per_s']} | {p['p50_ms']} / {p['p99_ms']} | {row['ratio']}x |")
    lines.append("")
    lines.append("resident memory (MB): " + ", ".join(
        f"{name} {mb}" for name, mb in result["rss_mb"].items())
        + f"; project stack {result['rss_mb_stack']}")
    long = result["long_conversation"]
    lines.append(f"turn {long['turns']} over turn 1: project {result['turn200_over_turn1']}x "
                 f"({long['project_turn1_ms']} -> {long['project_last_ms']} ms), "
                 f"vanilla {long['vanilla_ratio']}x")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,10,50",
                        help="concurrent users, comma-separated (default 1,10,50)")
    parser.add_argument("--long-turns", type=int, default=200)
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",") if level.strip()]
    result = asyncio.run(run(levels, args.long_turns))
    print(table(result))
    merge_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
