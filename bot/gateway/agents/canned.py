"""Canned replies: the brand's saved answers, filled with one conversation's data.

The brand edits ``canned_replies.yml`` (``CANNED_REPLIES`` points elsewhere);
it is read and checked when the gateway starts, so a typo in a placeholder
fails loudly at start-up rather than reaching a customer as ``{frist_name}``.
The placeholders are filled on the server, with what the store knows about
the open conversation, and the agent edits the result before sending it.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

import yaml

from bot.brand import PROJECT_ROOT, BrandProfile

DEFAULT_FILE = PROJECT_ROOT / "canned_replies.yml"
PLACEHOLDERS = ("first_name", "order_number", "brand", "phone", "email", "website", "agent")
# What an unknown value becomes: a friendly word, or a gap the agent sees and fills.
FALLBACKS = {"first_name": "there", "order_number": "[order number]"}
KEY = re.compile(r"^[a-z0-9_]{1,40}$")
TITLE_MAX, TEXT_MAX = 60, 2000


class CannedRepliesError(ValueError):
    """The canned replies file cannot be used as it is (which entry, and why)."""


@dataclass(frozen=True)
class CannedReply:
    key: str
    title: str
    text: str


def _placeholders(text: str) -> List[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as error:  # a lone "{" or "}"
        raise CannedRepliesError(str(error)) from None


def parse_canned_replies(raw: Any, where: str = "canned replies") -> List[CannedReply]:
    """A list of ``{key, title, text}`` mappings, checked: unique keys, known placeholders."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CannedRepliesError(f"{where}: must be a list of replies")
    replies: List[CannedReply] = []
    for number, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict) or set(entry) != {"key", "title", "text"}:
            raise CannedRepliesError(f"{where} #{number}: give exactly key, title and text")
        key, title, text = (str(entry[name]).strip() for name in ("key", "title", "text"))
        if not KEY.match(key) or any(r.key == key for r in replies):
            raise CannedRepliesError(f"{where} #{number}: key {key!r} must be unique, "
                                     "lower case letters, digits and _")
        if not title or len(title) > TITLE_MAX or not text or len(text) > TEXT_MAX:
            raise CannedRepliesError(f"{where} {key}: title (up to {TITLE_MAX} characters) "
                                     f"and text (up to {TEXT_MAX}) must not be empty")
        try:
            unknown = sorted(set(_placeholders(text)) - set(PLACEHOLDERS))
        except CannedRepliesError as error:
            raise CannedRepliesError(f"{where} {key}: {error}") from None
        if unknown:
            raise CannedRepliesError(f"{where} {key}: unknown placeholder(s) {unknown}; "
                                     f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        replies.append(CannedReply(key, title, text))
    return replies


def load_canned_replies(path: Optional[os.PathLike] = None) -> List[CannedReply]:
    """Read and check the brand's canned replies; a missing file is no replies."""
    path = Path(path or os.environ.get("CANNED_REPLIES") or DEFAULT_FILE)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except yaml.YAMLError as error:
        raise CannedRepliesError(f"{path} is not valid YAML: {error}") from None
    return parse_canned_replies(raw, str(path))


def conversation_values(profile: BrandProfile, customer_name: Optional[str], agent: str,
                        details: Mapping[str, Any], customer_texts: Iterable[str]
                        ) -> Dict[str, str]:
    """The placeholders' values for one conversation (unknown ones left out).

    The order number is the case's (what the bot collected), else the newest
    one the customer wrote.
    """
    values = {"brand": profile.name, "phone": profile.contacts.phone,
              "email": profile.contacts.email, "website": str(profile.website).rstrip("/"),
              "agent": (agent.split() or [agent])[0]}
    first = (customer_name or "").split()
    if first:
        values["first_name"] = first[0]
    order = profile.order_number.normalise(str(details.get("order_id") or ""))
    for text in reversed(list(customer_texts)):
        if order:
            break
        order = profile.order_number.find(text)
    if order:
        values["order_number"] = order
    return values


def fill(reply: CannedReply, values: Mapping[str, str]) -> str:
    """The reply's text with every placeholder filled (a fallback where a value is unknown)."""
    known = {name: values.get(name) or FALLBACKS.get(name, "") for name in PLACEHOLDERS}
    return reply.text.format(**known)
