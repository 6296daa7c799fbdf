"""Reading case details out of what customers type.

Pure functions, so the rules for what counts as an order number, an email or
a usable description are easy to test and to change in one place.
"""

from __future__ import annotations

import re
from typing import Optional

from bot.brand import OrderNumberFormat

UNKNOWN = "unknown"

# "I don't know", "no idea", "can't find it", "deleted the email", ...
_DONT_KNOW = re.compile(
    r"\b(?:(?:i\s+)?(?:do\s*n[o']?t|dont|don't|dnt)\s+(?:know|have)|no\s+(?:idea|clue)"
    r"|not\s+sure|dunno|idk|can'?t\s+(?:find|remember|recall)|cannot\s+(?:find|remember)"
    r"|forg[oe]t+(?:en)?|deleted|lost\s+it|no\s+clue)\b",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def says_dont_know(text: str) -> bool:
    return bool(_DONT_KNOW.search(text or ""))


def find_order_id(text: str, order_format: OrderNumberFormat) -> Optional[str]:
    """The canonical order number in ``text``, or None.

    ``JL-204815`` and ``#204815`` count anywhere in the text; bare digits only
    when they are the only number there (so a phone number is never one).
    """
    text = text or ""
    prefix = re.escape(order_format.prefix)
    digits = order_format.digits
    match = re.search(rf"(?:\b{prefix}[\s-]?|#)(\d{{{digits}}})\b", text, re.IGNORECASE)
    if not match:
        numbers = re.findall(r"\d+", text)
        if len(numbers) != 1 or len(numbers[0]) != digits:
            return None
        return f"{order_format.prefix.upper()}-{numbers[0]}"
    return f"{order_format.prefix.upper()}-{match.group(1)}"


def find_email(text: str) -> Optional[str]:
    match = _EMAIL.search(text or "")
    return match.group(0).lower() if match else None


def usable_description(text: str) -> Optional[str]:
    """A description worth passing on: at least two words, trimmed and capped."""
    cleaned = " ".join((text or "").split())
    if len(cleaned.split()) < 2 or says_dont_know(cleaned) and len(cleaned.split()) < 6:
        return None
    return cleaned[:1000]
