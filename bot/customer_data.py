"""One customer's data, on request: export it, erase it; and forget old conversations.

    python -m bot.customer_data export CONVERSATION [--out FILE]
    python -m bot.customer_data forget CONVERSATION
    python -m bot.customer_data purge [--days N]      (default: RETENTION_DAYS)

CONVERSATION is the gateway's id, e.g. ``telegram:5551001`` (the inbox and
the agent API show it). Both stores are covered: the gateway's (DATABASE_URL)
and Rasa's tracker store (``--endpoints``, endpoints.yml by default). The
output names what was found or removed, never the data itself, so it can go
in a ticket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from bot.brand import PROJECT_ROOT
from bot.gateway.messages import InvalidMessageError, check_id
from bot.gateway.settings import Settings
from bot.gateway.store import Store
from bot.rasa_trackers import (
    UnsupportedTrackerStoreError,
    conversation_events,
    erase_conversation,
    idle_conversations,
    open_tracker_store,
)

DEFAULT_ENDPOINTS = PROJECT_ROOT / "endpoints.yml"
DEFAULT_RETENTION_DAYS = 365


async def export(store: Store, trackers: Optional[Any], conversation: str) -> Dict[str, Any]:
    """Everything both stores hold about one conversation ({} parts when none)."""
    return {"conversation_id": conversation,
            "gateway": store.export_conversation(conversation),
            "rasa_events": await conversation_events(trackers, conversation)}


def forget(store: Store, trackers: Optional[Any], conversation: str) -> Dict[str, int]:
    """Erase one conversation from both stores; rows removed per place."""
    removed = store.forget_conversation(conversation)
    removed["rasa_events"] = erase_conversation(trackers, conversation)
    return removed


async def purge(store: Store, trackers: Optional[Any], days: float,
                now: Optional[float] = None) -> List[str]:
    """Forget every conversation quiet for ``days`` in both stores; the ids forgotten.

    Quiet everywhere, since Rasa may hold turns the gateway never saw (and back).
    """
    before = (now or time.time()) - days * 86400
    gateway_idle = set(store.conversations_idle_since(before))
    rasa_idle = set(idle_conversations(trackers, before))
    rasa_known = set(await trackers.keys()) if trackers is not None else set()
    forgotten = []
    for conversation in sorted(gateway_idle | rasa_idle):
        quiet_in_gateway = (conversation in gateway_idle
                            or store.conversation(conversation) is None)
        quiet_in_rasa = conversation in rasa_idle or conversation not in rasa_known
        if quiet_in_gateway and quiet_in_rasa:
            forget(store, trackers, conversation)
            forgotten.append(conversation)
    return forgotten


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=Path, default=DEFAULT_ENDPOINTS,
                        help="Rasa's endpoints file, for its tracker store")
    commands = parser.add_subparsers(dest="command", required=True)
    out = commands.add_parser("export", help="write one conversation's data as JSON")
    out.add_argument("conversation")
    out.add_argument("--out", type=Path, help="file to write (default: standard output)")
    commands.add_parser("forget", help="erase one conversation").add_argument("conversation")
    old = commands.add_parser("purge", help="erase conversations idle for N days")
    old.add_argument("--days", type=float,
                     default=float(os.environ.get("RETENTION_DAYS") or DEFAULT_RETENTION_DAYS))
    args = parser.parse_args(argv)
    conversation = getattr(args, "conversation", None)
    if conversation is not None:
        channel, _, external_id = conversation.partition(":")
        try:
            check_id("channel", channel)
            check_id("conversation", external_id)
        except InvalidMessageError:
            print(f"error: {conversation!r} is not a conversation id like telegram:5551001",
                  file=sys.stderr)
            return 2
    store = Store(Settings.from_env().database_url)
    trackers = open_tracker_store(args.endpoints)
    try:
        if args.command == "export":
            data = asyncio.run(export(store, trackers, conversation))
            text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
            if args.out:
                args.out.write_text(text, encoding="utf-8")
                os.chmod(args.out, 0o600)  # personal data: the requester's eyes only
            else:
                print(text)
            found = len(data["gateway"].get("messages", [])), len(data["rasa_events"])
            print(f"Exported {conversation}: {found[0]} gateway message(s), "
                  f"{found[1]} Rasa event(s).", file=sys.stderr)
        elif args.command == "forget":
            removed = forget(store, trackers, conversation)
            print(f"Forgot {conversation}: " + ", ".join(f"{n} {table}"
                                                          for table, n in removed.items()))
        else:
            forgotten = asyncio.run(purge(store, trackers, args.days))
            print(f"Forgot {len(forgotten)} conversation(s) idle for {args.days:g} days.")
    except UnsupportedTrackerStoreError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
