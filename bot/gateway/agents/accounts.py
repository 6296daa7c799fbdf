"""Agent accounts for the web inbox: hashed passwords, and the CLI that runs them.

    python -m bot.gateway.agents.accounts add USERNAME --name "Sam Patel"
        (asks for the password, or reads it with --password-stdin; for an
        existing agent, sets the new name and password and signs them out)
    python -m bot.gateway.agents.accounts disable USERNAME | enable USERNAME
    python -m bot.gateway.agents.accounts sign-out [USERNAME]   (everyone without one)
    python -m bot.gateway.agents.accounts list
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import secrets
import sys
from typing import List, Optional

from bot.gateway.settings import Settings
from bot.gateway.store import Store

SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **SCRYPT)
    return hmac.compare_digest(candidate.hex(), digest)


def add_agent(store: Store, username: str, display_name: str, password: str) -> None:
    if not username.strip() or not username.replace("-", "").replace("_", "").isalnum():
        raise ValueError("username must be letters, digits, - or _")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password must be at least {MIN_PASSWORD} characters")
    store.save_agent(username.strip().lower(), display_name.strip() or username,
                     hash_password(password))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Manage web inbox agent accounts")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create an agent, or reset their password")
    add.add_argument("username")
    add.add_argument("--name", required=True, help="shown to customers as the first name")
    add.add_argument("--password-stdin", action="store_true")
    for command, what in (("disable", "stop an agent signing in, and sign them out"),
                          ("enable", "let a disabled agent sign in again")):
        commands.add_parser(command, help=what).add_argument("username")
    sign_out = commands.add_parser("sign-out", help="end an agent's sessions (or everyone's)")
    sign_out.add_argument("username", nargs="?")
    commands.add_parser("list", help="the accounts, whether enabled, open sessions")
    args = parser.parse_args(argv)
    store = Store(Settings.from_env().database_url)
    username = (getattr(args, "username", None) or "").strip().lower() or None
    if args.command == "add":
        password = (sys.stdin.readline().rstrip("\n") if args.password_stdin
                    else getpass.getpass("Password: "))
        try:
            add_agent(store, args.username, args.name, password)
        except ValueError as problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        print(f"Agent {args.username} saved. They can sign in at /inbox/.")
    elif args.command in ("disable", "enable"):
        if not store.set_agent_disabled(username, args.command == "disable"):
            print(f"error: no agent {username!r}", file=sys.stderr)
            return 2
        print(f"Agent {username} {args.command}d.")
    elif args.command == "sign-out":
        print(f"{store.end_sessions(username)} session(s) ended.")
    else:
        for agent in store.agents():
            state = "disabled" if agent["disabled"] else "enabled"
            print(f"{agent['username']:<20} {agent['display_name']:<24} {state:<9} "
                  f"{agent['sessions']} session(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
