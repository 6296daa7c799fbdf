"""What the inbox's layout shows around a conversation, as plain values: time left on a
reply target, who is waiting on an answer, a customer's earlier cases, canned replies.

Pure functions with the clock passed in (``now``), so the badges are tested
without waiting; inbox.py fetches, inbox_pages.py renders.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence

from bot.gateway.agents.canned import CannedReply, fill
from bot.handoff_contract import PRIORITIES

SOON_SECONDS = 10 * 60  # a reply target this close is "due soon"
Values = Dict[str, Any]


def duration(seconds: float) -> str:
    """'4 min', '3 h', '2 days': how agents read a wait at a glance."""
    minutes = max(0, int(seconds // 60))
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"


def sla_badge(due_at: Optional[float], status: str, now: float) -> Values:
    """The reply target as a badge: ``state`` is overdue, soon, ok, or none (resolved)."""
    if status == "resolved" or not due_at:
        return {"state": "none", "text": ""}
    left = due_at - now
    if left < 0:
        return {"state": "overdue", "text": f"overdue {duration(-left)}"}
    return {"state": "soon" if left <= SOON_SECONDS else "ok",
            "text": f"{duration(left)} left"}


def priority_class(priority: str) -> str:
    """A CSS class for the priority's colour (unknown priorities look like the lowest)."""
    return f"prio-{priority if priority in PRIORITIES else PRIORITIES[-1]}"


def unread(handoff: Mapping[str, Any], awaiting: Mapping[str, int]) -> bool:
    """New from the customer: they wrote after the last agent reply (in any handoff of the
    conversation), and the handoff is still being worked."""
    return handoff["status"] != "resolved" and handoff["conversation_id"] in awaiting


def history(handoffs: Sequence[Mapping[str, Any]], current_id: int,
            zone) -> List[Values]:  # noqa: ANN001 - a ZoneInfo
    """The conversation's other handoffs, newest first, for the side panel."""
    def day(timestamp: Optional[float]) -> str:
        return datetime.fromtimestamp(timestamp, zone).strftime("%d %b %Y %H:%M") \
            if timestamp else ""

    return [{"id": h["id"], "reason": h["reason"], "priority": h["priority"],
             "summary": h["summary"] or "", "status": h["status"],
             "opened": day(h["created_at"]), "resolved": day(h["resolved_at"]),
             "agent": h["claimed_by"] or "", "csat": h["csat"]}
            for h in handoffs if h["id"] != current_id]


def canned_choices(replies: Sequence[CannedReply], values: Mapping[str, str]) -> List[Values]:
    """Each canned reply, filled for this conversation; the first nine get a number key."""
    return [{"key": r.key, "title": r.title, "text": fill(r, values),
             "shortcut": str(number) if number <= 9 else ""}
            for number, r in enumerate(replies, start=1)]
