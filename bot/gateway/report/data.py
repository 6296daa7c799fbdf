"""The desk report's numbers, read from the gateway's store and nothing else.

Read-only queries over the gateway's tables (store/schema.py), then plain
Python: a week of a busy desk is a few thousand rows, and the definitions
below are easier to check in Python than in two SQL dialects.

Definitions (the page repeats them, so a lead reads what a number means):
- **Period**: whole days in the brand's time zone, ``since`` to ``until``
  inclusive. Inbound messages, handoffs and marks count by when they were
  stored; ratings by when the handoff they rate was resolved.
- **First response**: a customer starts waiting with a message written while
  no bot reply is owed (messages written meanwhile do not restart the clock)
  and stops when the bot's first reply is sent (delivered to the channel).
  Messages written while a person has the conversation are the person's to
  answer: they count under time-to-human, not here.
- **Acknowledgement**: the message it acknowledges stored -> the ack sent.
- **Time to human**: handoff opened -> the first agent reply written. A
  handoff meets its target when that reply came by its due time (the brand's
  ``sla_minutes`` for its priority, counted in opening hours); it misses when
  the reply came later, or none came and the due time has passed.
- **Containment**: conversations with a customer message in the period and
  no handoff opened in it: the bot closed them without a person.
- **Agents**: a handoff's replies are credited to the agent who claimed it.
- Percentiles are nearest-rank (p90 of ten values is the ninth smallest).

Intents: the gateway does not store Rasa's reading of every message; a
handoff's context carries every customer turn with its intent and confidence
(action_escalate's turn log). So top intents are those of conversations that
reached a person. Misunderstood messages are the agents' "bot misunderstood"
marks, masked with ``bot.privacy.to_placeholders`` like the trainers' export.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.gateway.store.schema import (
    SENT,
    conversations,
    handoffs,
    messages,
    misunderstood_marks,
)
from bot.handoff_contract import PRIORITIES
from bot.privacy import to_placeholders

DEFAULT_DAYS = 7
MAX_DAYS = 366  # bounded work for one request
EARLIEST, LATEST = date(1970, 1, 2), date(9998, 12, 30)  # timestamps exist either side
TOP = 10  # rows of the intents and misunderstood tables
SHOWN_TEXT = 160  # characters of a masked message shown


class PeriodError(ValueError):
    """``since``/``until`` cannot make a period; the text says why (shown to the user)."""


@dataclass(frozen=True)
class Period:
    """Whole days ``since``..``until`` (inclusive) in ``zone``."""

    since: date
    until: date
    zone: ZoneInfo

    @functools.cached_property
    def start(self) -> float:
        return datetime.combine(self.since, time(), self.zone).timestamp()

    @functools.cached_property
    def end(self) -> float:
        """The first moment after the period (midnight ending ``until``)."""
        return datetime.combine(self.until + timedelta(days=1), time(), self.zone).timestamp()

    @property
    def days(self) -> List[date]:
        return [self.since + timedelta(days=n) for n in range((self.until - self.since).days + 1)]

    def day_of(self, timestamp: float) -> date:
        return datetime.fromtimestamp(timestamp, self.zone).date()

    def contains(self, timestamp: Optional[float]) -> bool:
        return timestamp is not None and self.start <= timestamp < self.end


def _day(name: str, raw: str) -> date:
    if len(raw) != 10:  # YYYY-MM-DD and nothing else (no times, no week dates)
        raise PeriodError(f"{name} must be a date like 2026-12-01.")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise PeriodError(f"{name} must be a date like 2026-12-01.") from None
    if not EARLIEST <= value <= LATEST:
        raise PeriodError(f"{name} must be between {EARLIEST} and {LATEST}.")
    return value


def parse_period(since: Optional[str], until: Optional[str], zone: ZoneInfo,
                 today: date) -> Period:
    """The period the query asks for; the last ``DEFAULT_DAYS`` days up to ``today``
    when neither is given, a week from ``since`` or up to ``until`` when one is.

    Raises PeriodError for anything else: not a date, ``since`` after ``until``,
    more than ``MAX_DAYS`` days.
    """
    since = (since or "").strip() or None
    until = (until or "").strip() or None
    first = _day("since", since) if since else None
    last = _day("until", until) if until else None
    if last is None:
        last = min(first + timedelta(days=DEFAULT_DAYS - 1), max(today, first)) if first \
            else today
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise PeriodError(f"since ({first}) must not be after until ({last}).")
    if (last - first).days + 1 > MAX_DAYS:
        raise PeriodError(f"A report covers at most {MAX_DAYS} days; "
                          f"{first} to {last} is {(last - first).days + 1}.")
    return Period(first, last, zone)


# --- the numbers ------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> Optional[float]:
    """Nearest-rank percentile: the smallest value at least ``p``% of values are <= to."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Spread:
    """How long something took, in seconds, over ``count`` cases."""

    count: int
    p50: Optional[float]
    p90: Optional[float]
    p99: Optional[float]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(len(values), percentile(values, 50), percentile(values, 90),
                   percentile(values, 99))


@dataclass(frozen=True)
class PriorityTarget:
    """Time to human for one priority, against the brand's target."""

    priority: str
    target_minutes: int
    handoffs: int
    answered: int
    spread: Spread
    met: int
    missed: int
    pending: int  # unanswered, not yet due

    @property
    def verdict(self) -> str:
        if self.missed:
            return "missed"
        return "met" if self.met else "no data"


@dataclass(frozen=True)
class AgentTimes:
    agent: str
    handoffs: int
    replies: int
    median_first_reply: Optional[float]


@dataclass(frozen=True)
class Misread:
    text: str  # masked
    count: int
    bot_read: str  # "intent (0.42)" when the handoff's turn log has the message, else ""


@dataclass
class Report:
    period: Period
    inbound: int = 0
    by_hour: List[int] = field(default_factory=lambda: [0] * 24)
    by_channel: List[Tuple[str, int]] = field(default_factory=list)
    first_response: Spread = Spread(0, None, None, None)
    first_response_seconds: List[float] = field(default_factory=list)
    unanswered: int = 0  # waits with no bot reply sent (yet)
    ack: Spread = Spread(0, None, None, None)
    time_to_human: Spread = Spread(0, None, None, None)
    targets: List[PriorityTarget] = field(default_factory=list)
    conversations: int = 0
    contained: int = 0
    escalations: List[Tuple[str, int]] = field(default_factory=list)
    csat: Dict[int, int] = field(default_factory=lambda: {n: 0 for n in range(1, 6)})
    csat_by_day: List[Tuple[date, int, Optional[float]]] = field(default_factory=list)
    intents: List[Tuple[str, int]] = field(default_factory=list)
    intent_turns: int = 0
    misunderstood: List[Misread] = field(default_factory=list)
    agents: List[AgentTimes] = field(default_factory=list)

    @property
    def containment(self) -> Optional[float]:
        return self.contained / self.conversations if self.conversations else None

    @property
    def ratings(self) -> int:
        return sum(self.csat.values())

    @property
    def csat_mean(self) -> Optional[float]:
        total = self.ratings
        return sum(n * c for n, c in self.csat.items()) / total if total else None


def build_report(engine: Engine, period: Period, sla_minutes: Dict[str, int],
                 now: float) -> Report:
    """Every number of the report for ``period``; ``now`` decides what is overdue."""
    report = Report(period)
    in_period = sa.and_(messages.c.created_at >= period.start, messages.c.created_at < period.end)
    written = sa.and_(messages.c.direction == "in", messages.c.kind == "message", in_period)
    opened_in = sa.and_(handoffs.c.created_at >= period.start, handoffs.c.created_at < period.end)
    # Subqueries, not lists of ids: a busy week outgrows SQLite's bound parameters.
    touched = sa.union(sa.select(messages.c.conversation_id).where(written),
                       sa.select(handoffs.c.conversation_id).where(opened_in))
    marked = (sa.select(misunderstood_marks.c.conversation_id, messages.c.text)
              .join(messages, messages.c.id == misunderstood_marks.c.message_id)
              .where(in_period))
    with engine.connect() as db:
        inbound = db.execute(
            sa.select(messages.c.conversation_id, messages.c.created_at, conversations.c.channel)
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .where(written)).all()
        opened = [_handoff(row) for row in db.execute(
            sa.select(handoffs).where(opened_in).order_by(handoffs.c.id)).mappings()]
        # Every handoff of those conversations: a person holding one mutes the bot.
        held = _by_conversation(_handoff(row) for row in db.execute(
            sa.select(handoffs.c.conversation_id, handoffs.c.created_at, handoffs.c.resolved_at)
            .where(handoffs.c.conversation_id.in_(touched))).mappings())
        timeline = _by_conversation(db.execute(
            sa.select(messages.c.id, messages.c.conversation_id, messages.c.direction,
                      messages.c.kind, messages.c.status, messages.c.created_at,
                      messages.c.done_at)
            .where(messages.c.conversation_id.in_(touched),
                   messages.c.created_at >= period.start)
            .order_by(messages.c.conversation_id, messages.c.id)), key=_conversation_of)
        rated = db.execute(sa.select(handoffs.c.csat, handoffs.c.resolved_at).where(
            handoffs.c.csat.is_not(None), handoffs.c.resolved_at >= period.start,
            handoffs.c.resolved_at < period.end)).all()
        marks = db.execute(marked).all()
        marked_turns = _by_conversation(_handoff(row) for row in db.execute(
            sa.select(handoffs.c.conversation_id, handoffs.c.context).where(
                handoffs.c.conversation_id.in_(
                    sa.select(marked.subquery().c.conversation_id)))).mappings())
    active = {row.conversation_id for row in inbound}

    _volume(report, inbound)
    _responses(report, timeline, held)
    _humans(report, opened, timeline, sla_minutes, now)
    report.conversations = len(active)
    report.contained = len(active - {h["conversation_id"] for h in opened})
    report.escalations = Counter(h["reason"] for h in opened).most_common()
    _ratings(report, rated)
    _intents(report, opened)
    _misreads(report, marks, marked_turns)
    return report


def _handoff(row: Any) -> Dict[str, Any]:
    data = dict(row)
    if "context" in data:
        try:
            data["context"] = json.loads(data["context"] or "{}")
        except ValueError:
            data["context"] = {}
    return data


def _conversation_of(row: Any) -> str:
    return row.conversation_id


def _by_conversation(rows: Iterable[Any], key: Any = None) -> Dict[str, List[Any]]:
    """Rows grouped by conversation; dicts by default, or plain rows with ``key``
    (the long message timeline: a mapping per row costs a third of the report)."""
    grouped: Dict[str, List[Any]] = defaultdict(list)
    for row in rows:
        grouped[key(row) if key else row["conversation_id"]].append(row)
    return grouped


def _volume(report: Report, inbound: Sequence[Any]) -> None:
    report.inbound = len(inbound)
    channels: Counter = Counter()
    for row in inbound:
        report.by_hour[datetime.fromtimestamp(row.created_at, report.period.zone).hour] += 1
        channels[row.channel] += 1
    report.by_channel = sorted(channels.items(), key=lambda item: (-item[1], item[0]))


def _with_person(held: List[Dict[str, Any]], at: float) -> bool:
    return any(h["created_at"] <= at and (h["resolved_at"] is None or at < h["resolved_at"])
               for h in held)


def _responses(report: Report, timeline: Dict[str, List[Any]],
               held: Dict[str, List[Dict[str, Any]]]) -> None:
    """First response and acknowledgement times, walking each conversation in order."""
    waits, acks, unanswered = [], [], 0
    for conversation_id, rows in timeline.items():
        waiting_since: Optional[float] = None
        last_inbound: Optional[Any] = None
        for row in rows:
            if row.direction == "in":
                if row.kind != "message":
                    continue
                last_inbound = row
                if (waiting_since is None and report.period.contains(row.created_at)
                        and not _with_person(held.get(conversation_id, []), row.created_at)):
                    waiting_since = row.created_at
            elif row.status != SENT or row.done_at is None:
                continue  # not delivered (yet): it answered nobody
            elif row.kind == "ack":
                if last_inbound is not None and report.period.contains(last_inbound.created_at):
                    acks.append(max(0.0, row.done_at - last_inbound.created_at))
            elif row.kind == "reply" and waiting_since is not None:
                waits.append(max(0.0, row.done_at - waiting_since))
                waiting_since = None
        unanswered += waiting_since is not None
    report.first_response = Spread.of(waits)
    report.first_response_seconds = sorted(waits)
    report.unanswered = unanswered
    report.ack = Spread.of(acks)


def _humans(report: Report, opened: List[Dict[str, Any]], timeline: Dict[str, List[Any]],
            sla_minutes: Dict[str, int], now: float) -> None:
    """Time to human per priority against its target, and per agent."""
    agent_lines = {cid: [r.created_at for r in rows if r.direction == "out" and r.kind == "agent"]
                   for cid, rows in timeline.items()}
    waits: Dict[str, List[float]] = defaultdict(list)
    counts: Dict[str, Counter] = defaultdict(Counter)
    per_agent: Dict[str, Dict[str, Any]] = defaultdict(lambda: {"handoffs": 0, "replies": 0,
                                                                "firsts": []})
    for h in opened:
        closed = h["resolved_at"] if h["resolved_at"] is not None else math.inf
        replies = [at for at in agent_lines.get(h["conversation_id"], [])
                   if h["created_at"] <= at <= closed]
        first = min(replies) if replies else None
        tally = counts[h["priority"]]
        tally["handoffs"] += 1
        if first is not None:
            tally["answered"] += 1
            waits[h["priority"]].append(first - h["created_at"])
            tally["met" if first <= h["sla_due_at"] else "missed"] += 1
        elif h["sla_due_at"] < (h["resolved_at"] if h["resolved_at"] is not None else now):
            tally["missed"] += 1
        elif h["resolved_at"] is None:
            tally["pending"] += 1
        if h["claimed_by"]:
            agent = per_agent[h["claimed_by"]]
            agent["handoffs"] += 1
            agent["replies"] += len(replies)
            if first is not None:
                agent["firsts"].append(first - h["created_at"])
    known = [p for p in PRIORITIES if p in sla_minutes]
    extra = sorted(p for p in counts if p not in known)
    report.targets = [
        PriorityTarget(p, sla_minutes.get(p, 0), counts[p]["handoffs"], counts[p]["answered"],
                       Spread.of(waits[p]), counts[p]["met"], counts[p]["missed"],
                       counts[p]["pending"]) for p in known + extra]
    report.time_to_human = Spread.of([w for ws in waits.values() for w in ws])
    report.agents = sorted(
        (AgentTimes(name, a["handoffs"], a["replies"], percentile(a["firsts"], 50))
         for name, a in per_agent.items()), key=lambda a: (-a.replies, a.agent))


def _ratings(report: Report, rated: Sequence[Any]) -> None:
    daily: Dict[date, List[int]] = defaultdict(list)
    for score, resolved_at in rated:
        if score in report.csat:
            report.csat[score] += 1
            daily[report.period.day_of(resolved_at)].append(score)
    report.csat_by_day = [(day, len(daily[day]),
                           sum(daily[day]) / len(daily[day]) if daily[day] else None)
                          for day in report.period.days]


def _turns(context: Dict[str, Any]) -> List[Dict[str, Any]]:
    turns = context.get("turns") if isinstance(context, dict) else None
    return [t for t in turns if isinstance(t, dict)] if isinstance(turns, list) else []


def _intents(report: Report, opened: List[Dict[str, Any]]) -> None:
    """Intents of the customer turns in the period, each turn counted once (a second
    handoff of a conversation carries its earlier turns again)."""
    seen, intents = set(), Counter()
    for h in opened:
        for turn in _turns(h["context"]):
            at = turn.get("at")
            if isinstance(at, int | float) and not report.period.contains(at):
                continue
            key = (h["conversation_id"], at, str(turn.get("text")))
            if key in seen:
                continue
            seen.add(key)
            if turn.get("intent"):
                intents[str(turn["intent"])] += 1
    report.intent_turns = sum(intents.values())
    report.intents = sorted(intents.items(), key=lambda item: (-item[1], item[0]))[:TOP]


def masked(text: str) -> str:
    """A customer's words fit to show a lead: contacts, cards and orders as placeholders."""
    shown = re.sub(r"\s+", " ", to_placeholders(text or "")).strip()
    return shown if len(shown) <= SHOWN_TEXT else shown[:SHOWN_TEXT - 1] + "…"


def _misreads(report: Report, marks: Sequence[Any],
              handoffs_of: Dict[str, List[Dict[str, Any]]]) -> None:
    groups: Dict[str, Dict[str, Any]] = {}
    for conversation_id, text in marks:
        shown = masked(text)
        group = groups.setdefault(shown.casefold(), {"text": shown, "count": 0, "read": ""})
        group["count"] += 1
        if not group["read"]:
            for h in handoffs_of.get(conversation_id, []):
                for turn in _turns(h["context"]):
                    if turn.get("text") == text and turn.get("intent"):
                        group["read"] = (f"{turn['intent']} "
                                         f"({float(turn.get('confidence') or 0):.2f})")
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["text"].casefold()))
    report.misunderstood = [Misread(g["text"], g["count"], g["read"]) for g in ordered[:TOP]]
