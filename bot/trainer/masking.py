"""Replacing personal data in customers' messages with placeholders, and back.

Review files leave the production database and are read by trainers, so
emails, phone numbers, card numbers and order numbers become <email>,
<phone>, <card> and <order_number>. When a labelled message is imported as a
training example, each placeholder becomes an annotated, obviously fictional
value (example.com, Ofcom's drama range 07700 900xxx), so the model still
learns where those details sit in a sentence.
"""

from __future__ import annotations

import hashlib
import re
from typing import List, Pattern, Tuple

from bot.brand import brand
from bot.text_rules import EMAIL as EMAIL_PATTERN

CARD, EMAIL, ORDER, PHONE = "<card>", "<email>", "<order_number>", "<phone>"
PLACEHOLDERS = (CARD, EMAIL, ORDER, PHONE)

# Order matters: a card number contains phone-shaped runs, an email may hold digits.
_RULES: List[Tuple[Pattern[str], str]] = [
    (EMAIL_PATTERN, EMAIL),
    # 13-19 digits, in groups separated by spaces or dashes: any payment card.
    (re.compile(r"(?<![\w+])(?:\d[ -]?){12,18}\d(?!\w)"), CARD),
    # The brand's order numbers (brand.yml's format): JL-123456, JL 123456, #123456.
    (brand().order_number.in_text, ORDER),
    # Phone numbers: international or national, with common separators.
    (re.compile(r"(?<![\w#])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,5}\)[\s.-]?)?\d{2,5}(?:[\s.-]?\d{2,5}){1,3}"
                r"(?!\w)"), PHONE),
]
_MIN_PHONE_DIGITS = 7


def mask(text: str) -> str:
    """The text with every email, card, order and phone number replaced by a placeholder."""
    for pattern, placeholder in _RULES:
        if placeholder == PHONE:
            text = pattern.sub(_phone_or_keep, text)
        else:
            text = pattern.sub(placeholder, text)
    return text


def _phone_or_keep(match: re.Match) -> str:
    """Short numbers (sizes, quantities, prices) stay; seven digits or more are a phone."""
    digits = sum(c.isdigit() for c in match.group(0))
    return PHONE if digits >= _MIN_PHONE_DIGITS else match.group(0)


def unmask(text: str) -> str:
    """Placeholders -> annotated fictional values, deterministic for the same text."""
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    values = {
        ORDER: f"[JL-{100000 + seed % 900000}](order_id)",
        EMAIL: f"[customer{seed % 1000}@example.com](email)",
        PHONE: f"[07700 900{seed % 1000:03d}](phone)",
        CARD: "4000 0000 0000 0002",  # a well-known test card number; no entity
    }
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text
