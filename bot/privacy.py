"""Masking personal data before the bot repeats it back.

Customers sometimes DM from shared screens or forward screenshots; the bot
confirms details without spelling them out in full.
"""

from __future__ import annotations


def mask_email(email: str) -> str:
    """``priya.n@example.com`` -> ``p***@example.com``."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"
