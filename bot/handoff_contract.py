"""The handoff contract: what crosses between Rasa's side and the gateway, typed, once.

Out: the payload action_escalate sends the gateway crosses three processes
(action server → Rasa → gateway) as the ``custom`` part of a bot message.
Back: resolving a handoff is an external event (``RESOLVED_INTENT``) that
Rasa's action_resume_after_handoff handles, and the satisfaction buttons it
sends carry ``rating_payload`` payloads the gateway reads the score from.
Both ends import this module, so a field renamed on one side is renamed on
the other, and the priority list is the same wherever it is used:
escalation.yml, brand.yml's SLA targets, the policy, the gateway's queue
order and the agents' badges.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Literal, Mapping, Optional

Priority = Literal["urgent", "high", "normal", "low"]
# Most urgent first: the agents' queue is ordered by this list.
PRIORITIES: tuple = ("urgent", "high", "normal", "low")
DEFAULT_PRIORITY: Priority = "normal"
DEFAULT_REASON = "customer_request"
# One colour per priority, for the agents' badges (web inbox, Telegram card).
PRIORITY_COLOURS: Dict[str, str] = {"urgent": "🔴", "high": "🟠", "normal": "🟡", "low": "⚪"}

# The key of the bot message's custom JSON that carries the payload.
HANDOFF_KEY = "handoff"

# Slots the escalation policy sets for action_escalate: the trigger travels with them.
TRIGGER_SLOT = "escalation_trigger"
TRIGGER_PRIORITY_SLOT = "escalation_trigger_priority"
TRIGGER_DETAIL_SLOT = "escalation_trigger_detail"


# What the gateway channel answers (503) while its Rasa has no model loaded: the
# message surely was not handled, so the gateway may send it to another Rasa at once.
NOT_READY_ERROR = "no model loaded yet"

# A person handed the conversation back (Rasa's trigger_intent: not the customer's words).
RESOLVED_INTENT = "EXTERNAL_handoff_resolved"
# A tap on a satisfaction button: '/rate_service{"csat_score": 4}'.
RATING_INTENT = "rate_service"
RATING_ENTITY = "csat_score"
RATING_SCALE = range(1, 6)
_RATING = re.compile(rf"/{RATING_INTENT}(\{{.*\}})")


def rating_payload(score: int) -> str:
    """The button payload for one satisfaction score (domain.yml's utter_ask_csat)."""
    return f"/{RATING_INTENT}{json.dumps({RATING_ENTITY: score})}"


def rating_from_payload(payload: Optional[str]) -> Optional[int]:
    """The score a satisfaction button carries, or None when ``payload`` is not one."""
    match = _RATING.fullmatch((payload or "").strip())
    if not match:
        return None
    try:
        score = json.loads(match.group(1)).get(RATING_ENTITY)
    except (ValueError, AttributeError):
        return None
    if isinstance(score, str) and score.isdigit():
        score = int(score)
    valid = isinstance(score, int) and not isinstance(score, bool) and score in RATING_SCALE
    return score if valid else None


def is_external(metadata: Optional[Mapping]) -> bool:
    """True for a user event Rasa made from an external trigger, not a customer message."""
    return bool((metadata or {}).get("is_external"))


def priority_rank(priority: str) -> int:
    """0 for the most urgent; unknown priorities sort last."""
    return PRIORITIES.index(priority) if priority in PRIORITIES else len(PRIORITIES)


def badge(priority: str, upper: bool = False) -> str:
    """'🟠 high' (or '🟠 HIGH'): how agents see a priority."""
    colour = PRIORITY_COLOURS.get(priority)
    label = priority.upper() if upper else priority
    return f"{colour} {label}" if colour else label


@dataclass(frozen=True)
class HandoffPayload:
    """Why and how urgently a person should take over, with the context to act on.

    ``details`` are the case details collected so far; ``turns`` every customer
    turn with intent, confidence, sentiment and language; ``detail`` the
    trigger's own words (e.g. which sensitive pattern matched); ``language``
    the language of a message the bot could not read.
    """

    reason: str = DEFAULT_REASON
    priority: str = DEFAULT_PRIORITY
    summary: str = ""
    detail: Optional[str] = None
    details: Dict[str, Any] = field(default_factory=dict)
    turns: List[Dict[str, Any]] = field(default_factory=list)
    # The language the customer wrote in, when the bot could not read it ("fr").
    language: Optional[str] = None

    def as_message(self) -> Dict[str, Any]:
        """The ``json_message`` for the dispatcher (actions side)."""
        return {HANDOFF_KEY: asdict(self)}

    @property
    def context(self) -> Dict[str, Any]:
        """What the gateway stores with the handoff record besides its columns."""
        return {"details": self.details, "turns": self.turns, "detail": self.detail,
                "language": self.language}

    @classmethod
    def from_custom(cls, custom: Any) -> Optional[HandoffPayload]:
        """The payload in a bot message's custom JSON, checked; None when there is none.

        Anything malformed falls back to a safe value instead of failing: a
        customer asking for a person must reach one.
        """
        if not isinstance(custom, Mapping) or not isinstance(custom.get(HANDOFF_KEY), Mapping):
            return None
        raw = custom[HANDOFF_KEY]
        priority = raw.get("priority")
        details = raw.get("details")
        turns = raw.get("turns")
        return cls(
            reason=str(raw.get("reason") or DEFAULT_REASON),
            priority=priority if priority in PRIORITIES else DEFAULT_PRIORITY,
            summary=str(raw.get("summary") or ""),
            detail=str(raw["detail"]) if raw.get("detail") else None,
            details=dict(details) if isinstance(details, Mapping) else {},
            turns=[t for t in turns if isinstance(t, Mapping)] if isinstance(turns, list) else [],
            language=_language_code(raw.get("language")),
        )


def _language_code(value: Any) -> Optional[str]:
    """A language code as sent ("fr", "zh-Hant"), or None for anything else."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})?", value):
        return value
    return None
