"""The token that guards Rasa's HTTP API, for `make run` and `make deploy-model`.

    python -m bot.rasa_token COMMAND [ARG...]

Runs COMMAND with RASA_TOKEN in its environment: the caller's RASA_TOKEN when
set (several hosts share one), otherwise a random token kept in
var/rasa-token (mode 0600, created on first use, reused on every run so that
`make deploy-model` reaches the Rasa that `make run` started). The token is
never printed: it reaches Rasa (`--auth-token "$RASA_TOKEN"` in the
Procfile), the gateway and the deploy tool through the environment only.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import List, Mapping, Optional

from bot.brand import PROJECT_ROOT

TOKEN_PATH = PROJECT_ROOT / "var" / "rasa-token"
ENV_NAME = "RASA_TOKEN"


def rasa_token(env: Mapping[str, str] = os.environ, path: Path = TOKEN_PATH) -> str:
    """RASA_TOKEN from ``env``, else the one stored at ``path`` (made if missing)."""
    given = env.get(ENV_NAME, "").strip()
    if given:
        return given
    try:
        stored = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        path.chmod(0o600)  # an older or hand-made file: keep it private too
        return stored
    return _create(path)


def _create(path: Path) -> str:
    """A new token, written so that no other user can ever read the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    try:
        os.link(temporary, path)  # fails if another run made one meanwhile: use that
    except FileExistsError:
        token = path.read_text(encoding="ascii").strip()
    finally:
        temporary.unlink()
    return token


def main(argv: Optional[List[str]] = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("usage: python -m bot.rasa_token COMMAND [ARG...]", file=sys.stderr)
        return 2
    env = {**os.environ, ENV_NAME: rasa_token()}
    os.execvpe(command[0], command, env)
    return 0  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main())
