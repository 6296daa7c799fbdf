"""When a conversation should go to a person: the triggers, as pure logic.

The escalation policy (bot/policies/escalation.py) turns a Rasa tracker into
a list of Turns and asks ``EscalationRules.decide``. Settings come from
``escalation.yml`` (or ``ESCALATION_CONFIG``), the one place to tune them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Pattern, Tuple

import yaml

from bot.brand import PROJECT_ROOT
from bot.handoff_contract import PRIORITIES, RATING_INTENT
from bot.language import language_name

DEFAULT_CONFIG = PROJECT_ROOT / "escalation.yml"
NEGATIVE = {"negative", "hostile"}
# Turns that are conversation, not a request: repeating them is not a failure.
NOT_REQUESTS = {"greet", "goodbye", "thank_you", "affirm", "deny", "inform", "bot_challenge",
                "praise", "give_feedback", "nlu_fallback", "out_of_scope", "request_human",
                "faq", "complaint", RATING_INTENT, None}
FORM_DROPPED = "utter_case_stopped"
# Bot actions that do not answer what the customer asked: listening, clarifying,
# starting or running the case form (the team answers a case, not the bot),
# dropping it, or handing over. A request followed by any other action was
# answered by the bot itself, so asking it again is asking again, not a failure.
NOT_ANSWERS = {"action_listen", "action_clarify", "action_default_fallback",
               "action_two_stage_fallback", "utter_ask_rephrase", "action_open_case",
               "case_form", "validate_case_form", "action_submit_case",
               "action_deactivate_loop", "utter_ask_stop_case", "utter_keep_going",
               FORM_DROPPED, "utter_complaint_empathy", "action_escalate",
               "action_session_start", "action_restart", "action_back",
               "action_unlikely_intent", None}


@dataclass(frozen=True)
class Turn:
    """One customer message as the NLU read it."""

    text: str
    intent: Optional[str]
    confidence: float = 0.0
    sentiment: Optional[str] = None
    sentiment_score: float = 0.0
    previous_bot_action: Optional[str] = None
    # The bot answered it itself (its next action was an answer, see NOT_ANSWERS).
    answered: bool = False
    # The NLU's reading of its language (bot/nlu/language.py): code, score, reliable.
    language: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class Decision:
    reason: str  # e.g. "hostile", "sensitive:legal", "repeated_request"
    priority: str
    detail: str


OTHER_LANGUAGE = "other_language"


def other_language_code(reason: Optional[str], detail: Optional[str]) -> Optional[str]:
    """The language an ``other_language`` handoff was for ("fr"), from its detail."""
    if reason != OTHER_LANGUAGE or not detail:
        return None
    return detail.split(" ", 1)[0] or None


class EscalationConfigError(ValueError):
    """escalation.yml is malformed; the message says where."""


TRIGGERS = ("hostile", "negative_trajectory", "repeated_failure", "sensitive", OTHER_LANGUAGE)


@dataclass
class EscalationRules:
    hostile: Dict[str, Any] = field(default_factory=dict)
    negative_trajectory: Dict[str, Any] = field(default_factory=dict)
    repeated_failure: Dict[str, Any] = field(default_factory=dict)
    sensitive: Dict[str, Any] = field(default_factory=dict)
    other_language: Dict[str, Any] = field(default_factory=dict)
    topics: List[Tuple[str, Pattern]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Optional[os.PathLike] = None) -> EscalationRules:
        path = Path(path or os.environ.get("ESCALATION_CONFIG") or DEFAULT_CONFIG)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise EscalationConfigError(f"{path}: {error}") from None
        rules = cls(**{key: raw.get(key) or {} for key in
                       TRIGGERS})
        for name in TRIGGERS:
            priority = getattr(rules, name).get("priority", "normal")
            if priority not in PRIORITIES:
                raise EscalationConfigError(f"{path}: {name}.priority {priority!r} is not one "
                                            f"of {PRIORITIES}")
        for topic, patterns in (rules.sensitive.get("topics") or {}).items():
            for pattern in patterns:
                try:
                    rules.topics.append((topic, re.compile(pattern, re.IGNORECASE)))
                except re.error as error:
                    raise EscalationConfigError(
                        f"{path}: sensitive.topics.{topic}: bad pattern {pattern!r}: {error}"
                    ) from None
        return rules

    def decide(self, turns: List[Turn]) -> Optional[Decision]:
        """Whether the latest customer turn should hand the conversation over."""
        if not turns:
            return None
        latest = turns[-1]
        # A message we cannot read is not hostile, repeated or anything else to us.
        for check in (self._sensitive, self._other_language, self._hostile,
                      self._negative_trajectory, self._repeated_failure):
            decision = check(turns, latest)
            if decision:
                return decision
        return None

    def _on(self, settings: Dict[str, Any]) -> bool:
        return bool(settings) and settings.get("enabled", True)

    def _sensitive(self, turns: List[Turn], latest: Turn) -> Optional[Decision]:
        if not self._on(self.sensitive):
            return None
        for topic, pattern in self.topics:
            match = pattern.search(latest.text or "")
            if match:
                return Decision(f"sensitive:{topic}", self.sensitive.get("priority", "urgent"),
                                f"mentions {match.group(0)!r}")
        return None

    def _other_language(self, turns: List[Turn], latest: Turn) -> Optional[Decision]:
        settings = self.other_language
        reading = latest.language or {}
        if not self._on(settings) or not reading.get("reliable"):
            return None
        understood = settings.get("understood") or ["en"]
        code, score = reading.get("code"), float(reading.get("score") or 0.0)
        if code in understood or score < float(settings.get("min_score", 0.8)):
            return None
        # The detail starts with the code: action_escalate answers in that language.
        return Decision(OTHER_LANGUAGE, settings.get("priority", "normal"),
                        f"{code} (written in {language_name(code)}, score {score:.2f})")

    def _hostile(self, turns: List[Turn], latest: Turn) -> Optional[Decision]:
        if not self._on(self.hostile) or latest.sentiment != "hostile":
            return None
        if latest.sentiment_score < float(self.hostile.get("min_score", 0.5)):
            return None
        return Decision("hostile", self.hostile.get("priority", "high"),
                        f"hostile message (score {latest.sentiment_score:.2f})")

    def _negative_trajectory(self, turns: List[Turn], latest: Turn) -> Optional[Decision]:
        if not self._on(self.negative_trajectory):
            return None
        count = int(self.negative_trajectory.get("turns_in_a_row", 3))
        recent = turns[-count:]
        if len(recent) == count and all(t.sentiment in NEGATIVE for t in recent):
            return Decision("negative_trajectory",
                            self.negative_trajectory.get("priority", "high"),
                            f"{count} negative messages in a row")
        return None

    def _repeated_failure(self, turns: List[Turn], latest: Turn) -> Optional[Decision]:
        settings = self.repeated_failure
        if not self._on(settings):
            return None
        priority = settings.get("priority", "normal")
        same = int(settings.get("same_request", 2))
        if latest.intent not in NOT_REQUESTS:
            # Asked again after the bot answered it is a new question, answered again.
            asked = 1 + sum(t.intent == latest.intent and not t.answered for t in turns[:-1])
            if asked >= same:
                return Decision("repeated_request", priority,
                                f"asked for {latest.intent} {asked} times")
        off_topic = int(settings.get("out_of_scope", 2))
        if latest.intent == "out_of_scope" and sum(
                t.intent == "out_of_scope" for t in turns) >= off_topic:
            return Decision("repeated_out_of_scope", priority,
                            f"{off_topic} or more off-topic messages")
        dropped = any(t.previous_bot_action == FORM_DROPPED for t in turns)
        if settings.get("form_abandoned", True) and dropped and latest.intent not in NOT_REQUESTS:
            return Decision("form_abandoned", priority,
                            "dropped a request earlier and is still asking for help")
        return None
