"""`rasa run` with its HTTP API locked: loopback by default, a token always.

    python -m bot.rasa_server [rasa run options...]   (the Procfile's `rasa:` line)

Rasa's HTTP API (``--enable-api``) can read and rewrite any conversation and
replace the model, so this adds ``--interface $RASA_HOST`` (default
127.0.0.1) and ``--auth-token $RASA_TOKEN``, and refuses to start without a
token. The token is given to Rasa's command-line parser inside this process,
so it never appears in the process list (``ps``) as an argument would.
"""

from __future__ import annotations

import os
import sys
from typing import List, Mapping, Optional, Sequence

DEFAULT_HOST = "127.0.0.1"


class MissingTokenError(SystemExit):
    """No RASA_TOKEN: Rasa's HTTP API would be open to anyone who reaches it."""


def rasa_run_argv(options: Sequence[str], env: Mapping[str, str] = os.environ) -> List[str]:
    """The argv for Rasa's CLI: ``rasa run`` with interface and token from ``env``."""
    token = env.get("RASA_TOKEN", "").strip()
    if not token:
        raise MissingTokenError("error: RASA_TOKEN is not set; `make run` makes one "
                                "(var/rasa-token), or set it to the gateway's RASA_TOKEN")
    host = env.get("RASA_HOST", "").strip() or DEFAULT_HOST
    # A token may begin with "-" (token_urlsafe makes one in 64 so): given as a separate
    # argument, argparse would take it for an option and Rasa would not start.
    auth = [f"--auth-token={token}"] if token.startswith("-") else ["--auth-token", token]
    return ["rasa", "run", "--interface", host, *options, *auth]


def main(argv: Optional[Sequence[str]] = None) -> None:
    from rasa.__main__ import main as rasa_main

    from bot import schema_check_once

    schema_check_once.install()  # half of Rasa's CPU per message, otherwise
    sys.argv = rasa_run_argv(sys.argv[1:] if argv is None else argv)
    rasa_main()


if __name__ == "__main__":
    main()
