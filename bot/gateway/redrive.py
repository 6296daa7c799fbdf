"""Dead letters: list them, or queue them again once the cause is fixed (``make redrive``).

    python -m bot.gateway.redrive list
    python -m bot.gateway.redrive run [--conversation telegram:5551001]

A dead letter is a customer message Rasa could not answer, or a reply the
channel would not take, for longer than the retry policy allows; a person
was alerted with a handoff. ``run`` queues them again, with a fresh retry
period; a running gateway picks them up within seconds (its sweep).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import List, Optional

from bot.gateway.settings import Settings
from bot.gateway.store import Store


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="make redrive", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["list", "run"])
    parser.add_argument("--conversation", help="only this conversation's dead letters")
    args = parser.parse_args(argv)
    store = Store(Settings.from_env().database_url)
    try:
        if args.action == "list":
            dead = [m for m in store.dead_letters()
                    if args.conversation in (None, m.conversation_id)]
            for message in dead:
                when = datetime.fromtimestamp(message.created_at, timezone.utc)
                direction = "customer message" if message.direction == "in" else "reply"
                print(f"{message.id}\t{message.conversation_id}\t{direction}\t"
                      f"{when:%Y-%m-%d %H:%M}Z\t{(message.last_error or '')[:100]}")
            print(f"{len(dead)} dead letter(s)")
            return 0
        conversations = store.redrive(args.conversation)
        print(f"queued again: dead letters of {len(conversations)} conversation(s)")
        return 0
    finally:
        store.engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
