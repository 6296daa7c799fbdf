"""Talk to the running bot from a terminal, as a customer would.

Connects to the Rasa server started by `make run` through its REST channel,
so it exercises the same stack customers reach. Buttons are numbered: type
the number to press one.

    python -m bot.shell [--url URL] [--name FIRST_NAME] [--conversation ID]
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from typing import Any, Dict, List, Optional, TextIO

import requests

DEFAULT_URL = f"http://localhost:{os.environ.get('RASA_PORT', '5005')}/webhooks/rest/webhook"
QUIT = {"/quit", "/exit", "quit", "exit"}


class BotUnavailableError(RuntimeError):
    """The Rasa server did not answer."""


def send(url: str, conversation: str, text: str, name: Optional[str]) -> List[Dict[str, Any]]:
    """Send one customer message; returns the bot's replies."""
    payload: Dict[str, Any] = {"sender": conversation, "message": text}
    if name:
        payload["metadata"] = {"first_name": name}
    try:
        response = requests.post(url, json=payload, timeout=60)
        response.raise_for_status()
    except requests.RequestException as error:
        raise BotUnavailableError(
            f"could not reach the bot at {url} ({error.__class__.__name__}). "
            "Is it running? Start it with `make run` in another terminal."
        ) from None
    return response.json()


def render(replies: List[Dict[str, Any]], out: TextIO) -> List[Dict[str, str]]:
    """Print replies; returns the buttons offered last, numbered from 1."""
    buttons: List[Dict[str, str]] = []
    for reply in replies:
        if reply.get("text"):
            out.write(f"bot> {reply['text']}\n")
        if reply.get("image"):
            out.write(f"bot> [image] {reply['image']}\n")
        if reply.get("buttons"):
            buttons = reply["buttons"]
            for number, button in enumerate(buttons, 1):
                out.write(f"     {number}. {button['title']}\n")
    return buttons


def resolve_input(text: str, buttons: List[Dict[str, str]]) -> str:
    """A number picks the matching button's payload; anything else is sent as typed."""
    if text.isdigit() and 1 <= int(text) <= len(buttons):
        return buttons[int(text) - 1]["payload"]
    return text


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Talk to the running bot.")
    parser.add_argument("--url", default=DEFAULT_URL, help="Rasa REST webhook URL")
    parser.add_argument("--name", default=os.environ.get("SHELL_NAME"), help="your first name")
    parser.add_argument("--conversation", default=f"shell-{uuid.uuid4().hex[:8]}")
    args = parser.parse_args(argv)
    print(f"Talking to {args.url} as conversation {args.conversation}. /quit to leave.")
    buttons: List[Dict[str, str]] = []
    while True:
        try:
            text = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not text:
            continue
        if text in QUIT:
            return 0
        try:
            replies = send(args.url, args.conversation, resolve_input(text, buttons), args.name)
        except BotUnavailableError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        buttons = render(replies, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
