"""Reading case details out of what customers type.

Pure functions, so the rules for what counts as an order number, an email or
a usable description are easy to test and to change in one place.
"""

from __future__ import annotations

import re
from typing import Optional

from bot.brand import OrderNumberFormat
from bot.text_rules import EMAIL as _EMAIL

UNKNOWN = "unknown"

# "I don't know", "no idea", "can't find it", "deleted the email", ...
_DONT_KNOW = re.compile(
    r"\b(?:(?:i\s+)?(?:do\s*n[o']?t|dont|don't|dnt)\s+(?:know|have)|no\s+(?:idea|clue)"
    r"|not\s+sure|dunno|idk|can'?t\s+(?:find|remember|recall)|cannot\s+(?:find|remember)"
    r"|forg[oe]t+(?:en)?|deleted|lost\s+it|no\s+clue)\b",
    re.IGNORECASE,
)


def says_dont_know(text: str) -> bool:
    return bool(_DONT_KNOW.search(text or ""))


def find_order_id(text: str, order_format: OrderNumberFormat) -> Optional[str]:
    """The canonical order number in ``text``, or None (the brand's rule)."""
    return order_format.find(text)


def find_email(text: str) -> Optional[str]:
    match = _EMAIL.search(text or "")
    return match.group(0).lower() if match else None


def usable_description(text: str) -> Optional[str]:
    """A description worth passing on: at least two words, trimmed and capped."""
    cleaned = " ".join((text or "").split())
    if len(cleaned.split()) < 2 or says_dont_know(cleaned) and len(cleaned.split()) < 6:
        return None
    return cleaned[:1000]
