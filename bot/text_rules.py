"""Text rules the gateway, the actions and the trainers' tools share: names and emails.

Order numbers follow the brand's format, so their rule lives with it
(``bot.brand.OrderNumberFormat``).
"""

from __future__ import annotations

import re
from typing import Optional

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
FIRST_NAME_MAX = 40


def first_name(full_name: Optional[str]) -> Optional[str]:
    """The first word of a sender's name, printable and at most 40 characters; or None."""
    if not isinstance(full_name, str) or not full_name.strip():
        return None
    name = "".join(ch for ch in full_name.strip().split()[0] if ch.isprintable())
    return name[:FIRST_NAME_MAX] or None
