"""The gateway's view of a message, independent of the channel it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from bot.gateway.conversation_ids import ALLOWED, is_addressable
from bot.text_rules import first_name


class InvalidMessageError(ValueError):
    """An inbound message is missing something it needs; the text says what."""


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
        for name in ("channel", "external_id", "channel_message_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidMessageError(f"{name} must be a non-empty string")
        if not is_addressable(self.conversation_id):  # Rasa's HTTP API could not reach it
            raise InvalidMessageError(f"the conversation id may only hold {ALLOWED}")
        if not isinstance(self.text, str) or not (self.text.strip() or self.payload):
            raise InvalidMessageError("text must be a non-empty string")
        if len(self.text) > 10_000:
            raise InvalidMessageError("text is longer than 10000 characters")

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


@dataclass(frozen=True)
class OutboundMessage:
    """Something to send a customer: the acknowledgement or a bot reply."""

    text: str
    buttons: List[Button] = field(default_factory=list)
    image: Optional[str] = None

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
                            image=message.image if i == len(parts) - 1 else None)
            for i, part in enumerate(parts)]
