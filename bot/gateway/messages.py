"""The gateway's view of a message, independent of the channel it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from bot.text_rules import first_name


class InvalidMessageError(ValueError):
    """An inbound message is missing something it needs; the text says what."""


# What ids may hold: enough for every platform's (Telegram's -100123, callback:42,
# UUIDs, +447700900123, Instagram's long numbers), nothing that can break a URL,
# a log line or a database column, and nothing that reads back differently.
CHANNEL_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")
ID_PATTERN = re.compile(r"[A-Za-z0-9._:@+=-]{1,128}")
TEXT_MAX = 10_000
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")  # NUL and lone surrogates


def check_id(name: str, value: Any, pattern: re.Pattern = ID_PATTERN) -> str:
    """``value`` if it is a well-formed id, else InvalidMessageError saying what is allowed."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidMessageError(f"{name} must be a non-empty string")
    if not pattern.fullmatch(value):
        allowed = ("1-32 lowercase letters, digits, - or _" if pattern is CHANNEL_PATTERN
                   else "1-128 letters, digits or . _ : @ + = -")
        raise InvalidMessageError(f"{name} must be {allowed}")
    return value


def is_storable(value: str) -> bool:
    """No NUL and no unpaired surrogate: what every database stores as it was sent."""
    return not _UNSTORABLE.search(value)


def check_text(name: str, value: str, limit: int = TEXT_MAX) -> str:
    """``value`` if a database can store it as sent and it is not over ``limit``."""
    if len(value) > limit:
        raise InvalidMessageError(f"{name} is longer than {limit} characters")
    if not is_storable(value):
        raise InvalidMessageError(f"{name} holds a NUL or an unpaired surrogate; send UTF-8 text")
    return value


# Where a customer wrote: in private (a DM, the default) or in public (a comment or
# mention on a public post; metadata then holds the post_id).
PRIVATE, PUBLIC = "private", "public"


def is_public(message: InboundMessage) -> bool:
    """Posted where anyone can read it: answer there briefly, carry on in private."""
    return message.metadata.get("visibility") == PUBLIC


@dataclass(frozen=True)
class InboundMessage:
    """A customer's message, normalised from any channel."""

    channel: str
    external_id: str  # the conversation on that channel (Telegram chat id, ...)
    channel_message_id: str  # unique per conversation; redeliveries repeat it
    text: str
    sender_name: Optional[str] = None
    # What to send Rasa instead of the text, e.g. a button's "/intent" payload.
    payload: Optional[str] = None
    metadata: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_id("channel", self.channel, CHANNEL_PATTERN)
        check_id("external_id", self.external_id)
        check_id("channel_message_id", self.channel_message_id)
        if not isinstance(self.text, str) or not (self.text.strip() or self.payload):
            raise InvalidMessageError("text must be a non-empty string")
        check_text("text", self.text)
        if self.payload is not None:
            check_text("payload", self.payload, limit=1000)
        if self.sender_name is not None:
            check_text("sender_name", self.sender_name, limit=200)
        visibility = self.metadata.get("visibility", PRIVATE)
        if visibility not in (PRIVATE, PUBLIC):
            raise InvalidMessageError("visibility must be 'private' or 'public'")
        if visibility == PUBLIC or self.metadata.get("post_id") is not None:
            check_id("post_id", self.metadata.get("post_id"))

    @property
    def conversation_id(self) -> str:
        return conversation_id(self.channel, self.external_id)

    @property
    def first_name(self) -> Optional[str]:
        return first_name(self.sender_name)  # the module function, not this property


def conversation_id(channel: str, external_id: str) -> str:
    return f"{channel}:{external_id}"


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


# How urgently a channel should send an outbound message, when it has to choose
# (Telegram's rate limit: channels/telegram_priority.py). Not part of the content.
ACK = "ack"  # the acknowledgement: the customer's first sign they were heard
ANSWER = "answer"  # everything else: the bot's replies, agents' replies, notices


@dataclass(frozen=True)
class OutboundMessage:
    """Something to send a customer: the acknowledgement or a bot reply."""

    text: str
    buttons: List[Button] = field(default_factory=list)
    image: Optional[str] = None
    # ACK or ANSWER; left out of equality (and so of hashing): the same words are
    # the same message however urgently they are sent.
    priority: str = field(default=ANSWER, compare=False)

    @classmethod
    def from_rasa(cls, reply: Dict[str, Any]) -> OutboundMessage:
        buttons = [
            Button(title=str(b.get("title", "")), payload=str(b.get("payload", "")))
            for b in reply.get("buttons") or []
        ]
        return cls(text=reply.get("text") or "", buttons=buttons, image=reply.get("image"))


def split_text(text: str, limit: int) -> List[str]:
    """Split at paragraph, then line, then word boundaries; never mid-word if avoidable."""
    parts: List[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        if cut < limit // 2:
            cut = limit  # one enormous word: hard split
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest.strip() or not parts:
        parts.append(rest)
    return parts


def split_message(message: OutboundMessage, limit: Optional[int]) -> List[OutboundMessage]:
    """A message as parts a channel accepts; buttons go with the last part."""
    if not limit or len(message.text) <= limit:
        return [message]
    parts = split_text(message.text, limit)
    return [OutboundMessage(text=part, buttons=message.buttons if i == len(parts) - 1 else [],
                            image=message.image if i == len(parts) - 1 else None,
                            priority=message.priority)
            for i, part in enumerate(parts)]
