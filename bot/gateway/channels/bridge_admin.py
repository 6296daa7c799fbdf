"""Create, list and revoke DM API bridge credentials (``make bridge``).

    python -m bot.gateway.channels.bridge_admin add insta --channels instagram [--signed]
    python -m bot.gateway.channels.bridge_admin list
    python -m bot.gateway.channels.bridge_admin revoke insta

``add`` prints the secret once: the store keeps only its SHA-256 digest, so
a lost secret cannot be shown again; revoke the bridge and add it anew.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Iterable, List, Optional

from bot.gateway.channels.bridges import NAME
from bot.gateway.channels.dm_api import API_CHANNELS
from bot.gateway.credentials import digest, new_secret
from bot.gateway.settings import Settings
from bot.gateway.store import Store


def create_bridge(store: Store, name: str, channels: Iterable[str],
                  signed: bool = False) -> str:
    """Record a bridge for ``channels`` (DM API channels only); return its secret."""
    wanted = sorted({c.strip().lower() for c in channels if c.strip()})
    if not NAME.fullmatch(name):
        raise ValueError("name must be 1-64 lowercase letters, digits, - or _")
    if not wanted:
        raise ValueError(f"give at least one channel, from {', '.join(API_CHANNELS)}")
    unknown = [c for c in wanted if c not in API_CHANNELS]
    if unknown:
        raise ValueError(f"not DM API channel(s): {', '.join(unknown)}; "
                         f"use {', '.join(API_CHANNELS)}")
    secret = new_secret()
    store.add_bridge(name, wanted, digest(secret), signs=signed)
    return secret


def _when(timestamp: Optional[float]) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Manage DM API bridge credentials")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create a bridge and print its secret once")
    add.add_argument("name")
    add.add_argument("--channels", required=True,
                     help=f"comma-separated, from {','.join(API_CHANNELS)}")
    add.add_argument("--signed", action="store_true",
                     help="may also sign requests with HMAC (see bridges.py for the trade-off)")
    commands.add_parser("list", help="bridges, their channels and state (never secrets)")
    revoke = commands.add_parser("revoke", help="stop a bridge's secret working, at once")
    revoke.add_argument("name")
    args = parser.parse_args(argv)
    store = Store(Settings.from_env().database_url)

    if args.command == "add":
        try:
            secret = create_bridge(store, args.name, args.channels.split(","), args.signed)
        except ValueError as problem:  # BridgeExistsError included
            print(f"error: {problem}", file=sys.stderr)
            return 2
        print(f"Bridge {args.name} created. Its secret, shown only this once:\n\n  {secret}\n\n"
              "Send it as 'Authorization: Bearer <secret>'"
              + (", or sign requests (README, DM API)." if args.signed else "."))
        return 0
    if args.command == "list":
        print(f"{'name':<20} {'channels':<28} {'auth':<13} {'created':<21} revoked")
        for b in store.bridges():
            auth = "bearer+hmac" if b.signs else "bearer"
            print(f"{b.name:<20} {','.join(sorted(b.channels)):<28} {auth:<13} "
                  f"{_when(b.created_at):<21} {_when(b.revoked_at)}")
        return 0
    if not store.revoke_bridge(args.name):
        print(f"error: no active bridge {args.name!r}", file=sys.stderr)
        return 2
    print(f"Bridge {args.name} revoked; its secret no longer works.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
