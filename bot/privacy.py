"""Personal data, kept out of sight: the one place it is found and masked.

Three audiences, three strengths:
- **Everyone, on arrival** (``mask_cards``): a payment card number is never
  needed to help, so it is cut to its last four digits before the gateway
  stores it, Rasa reads it or an agent sees it.
- **Places less private than the inbox** (``redact_contacts``), such as the
  agents' Telegram group: emails and phone numbers keep only enough to be
  recognised. The signed-in web inbox shows them whole; agents need them.
- **Files that leave the database** (``to_placeholders``), such as review
  exports read by trainers: emails, phones, cards and order numbers become
  <email>, <phone>, <card> and <order_number>. ``unmask`` turns a labelled
  line back into a training example with obviously fictional values
  (example.com, Ofcom's drama range 07700 900xxx), so the model still learns
  where those details sit in a sentence.
The bot itself repeats an email as ``mask_email`` does.
"""

from __future__ import annotations

import hashlib
import re
from typing import List, Pattern, Tuple

from bot.brand import brand
from bot.text_rules import EMAIL as EMAIL_PATTERN

CARD, EMAIL, ORDER, PHONE = "<card>", "<email>", "<order_number>", "<phone>"
PLACEHOLDERS = (CARD, EMAIL, ORDER, PHONE)

# 13-19 digits, in groups separated by spaces or dashes: the shape of any payment card.
CARD_PATTERN = re.compile(r"(?<![\w+])(?:\d[ -]?){12,18}\d(?!\w)")
# Phone numbers: international or national, with common separators.
PHONE_PATTERN = re.compile(r"(?<![\w#])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,5}\)[\s.-]?)?"
                           r"\d{2,5}(?:[\s.-]?\d{2,5}){1,3}(?!\w)")
_MIN_PHONE_DIGITS = 7


def mask_email(email: str) -> str:
    """``priya.n@example.com`` -> ``p***@example.com``."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_cards(text: str) -> str:
    """Card numbers -> ``•••• 4242``; other long numbers (phones, ids) stay.

    Only digit runs that pass the Luhn check are cards, so a 14-digit phone
    number with its country code is left alone.
    """
    def last_four(match: re.Match) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return f"•••• {digits[-4:]}" if _luhn_valid(digits) else match.group(0)

    return CARD_PATTERN.sub(last_four, text)


def redact_contacts(text: str) -> str:
    """Emails -> ``p***@example.com``, phones -> ``•••• 321``: recognisable, not usable."""
    text = EMAIL_PATTERN.sub(lambda m: mask_email(m.group(0)), text)

    def phone(match: re.Match) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return f"•••• {digits[-3:]}" if len(digits) >= _MIN_PHONE_DIGITS else match.group(0)

    return PHONE_PATTERN.sub(phone, text)


# Order matters: a card number contains phone-shaped runs, an email may hold digits.
_PLACEHOLDER_RULES: List[Tuple[Pattern[str], str]] = [
    (EMAIL_PATTERN, EMAIL),
    (CARD_PATTERN, CARD),
    # The brand's order numbers (brand.yml's format): JL-123456, JL 123456, #123456.
    (brand().order_number.in_text, ORDER),
    (PHONE_PATTERN, PHONE),
]


def to_placeholders(text: str) -> str:
    """The text with every email, card, order and phone number replaced by a placeholder."""
    for pattern, placeholder in _PLACEHOLDER_RULES:
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
    orders = brand().order_number
    smallest = 10 ** (orders.digits - 1)
    values = {
        ORDER: f"[{orders.canonical(str(smallest + seed % (9 * smallest)))}](order_id)",
        EMAIL: f"[customer{seed % 1000}@example.com](email)",
        PHONE: f"[07700 900{seed % 1000:03d}](phone)",
        CARD: "4000 0000 0000 0002",  # a well-known test card number; no entity
    }
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0
