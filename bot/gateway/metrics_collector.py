"""The desk's state, read from the store when Prometheus scrapes: nothing per message.

Open handoffs and how old the oldest is, handoffs waiting past their reply-due
time, the queues, dead letters, and how recent conversations ended. These come
from the shared database, so every replica reports the same fleet-wide value
(aggregate them with ``max``, not ``sum``). Each scrape runs a handful of
queries on one connection: the queues' on the messages' queue index, the
handoffs' on that small table; containment, which reads the conversations
table, is recomputed at most once a minute.

A store that cannot be read makes ``gateway_store_up`` 0 and leaves the rest
out, rather than failing the scrape: the in-process counters still arrive.

Containment, precisely. A conversation's *session* starts with the message
the gateway acknowledged last (``conversations.last_ack_at``: the first, or
the first after ACK_GAP_MINUTES of silence); it is *closed* once the customer
has been silent for ACK_GAP_MINUTES. Each conversation closed in the last 24
hours (its last customer message between 24 h + the gap and the gap ago)
counts once, as ``escalated`` if a handoff was opened during the session or
is still unresolved, else ``contained`` if the bot sent it at least one reply
in the session, else ``unanswered``.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.gateway.store import Store
from bot.gateway.store.schema import DEAD, QUEUED, SENT, conversations, handoffs, messages
from bot.handoff_contract import PRIORITIES

log = logging.getLogger(__name__)

CONTAINMENT_WINDOW_SECONDS = 24 * 3600
CONTAINMENT_REFRESH_SECONDS = 60.0
OUTCOMES = ("contained", "escalated", "unanswered")
DIRECTIONS = ("in", "out")


class StoreCollector(Collector):
    """Scrape-time gauges over ``store``; ``clock`` is "now" (tests pass their own)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._containment: Optional[Tuple[float, Dict[str, int]]] = None

    def describe(self) -> List:
        return []  # the families are dynamic; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        up = GaugeMetricFamily("gateway_store_up", "1 when the store could be read for "
                               "this scrape, else 0 (and the store's gauges are left out)")
        try:
            families = self._read(now)
        except Exception as error:  # noqa: BLE001 - a scrape reports an outage, never fails
            log.warning("metrics: the store could not be read (%s)", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self, now: float) -> List[GaugeMetricFamily]:
        with self.store.engine.connect() as db:
            open_rows = db.execute(
                sa.select(handoffs.c.priority, handoffs.c.status, sa.func.count(),
                          sa.func.min(handoffs.c.created_at))
                .where(handoffs.c.status != "resolved")
                .group_by(handoffs.c.priority, handoffs.c.status)).all()
            past_due = db.execute(self._past_due(now)).all()
            # (direction, status) leads the messages' queue index: a range read, not a scan
            queued = sa.and_(messages.c.direction.in_(DIRECTIONS), messages.c.status == QUEUED)
            depth = dict(db.execute(
                sa.select(messages.c.direction, sa.func.count()).where(queued)
                .group_by(messages.c.direction)).all())
            oldest_queued = dict(db.execute(
                sa.select(messages.c.direction, sa.func.min(
                    sa.func.coalesce(messages.c.queued_at, messages.c.created_at)))
                .where(queued).group_by(messages.c.direction)).all())
            dead = dict(db.execute(
                sa.select(messages.c.direction, sa.func.count()).where(
                    messages.c.direction.in_(DIRECTIONS), messages.c.status == DEAD)
                .group_by(messages.c.direction)).all())
            containment = self._containment_now(db, now)

        opened = GaugeMetricFamily("gateway_handoffs_open", "Handoffs not resolved yet, by "
                                   "priority and status (open: unclaimed; claimed)",
                                   labels=["priority", "status"])
        oldest = GaugeMetricFamily("gateway_handoff_oldest_open_age_seconds", "Age of the "
                                   "oldest handoff not resolved yet, by priority (0: none)",
                                   labels=["priority"])
        counts = {(p, s): 0 for p in PRIORITIES for s in ("open", "claimed")}
        first: Dict[str, float] = {}
        for priority, status, count, created in open_rows:
            counts[(priority, status)] = counts.get((priority, status), 0) + count
            first[priority] = min(first.get(priority, created), created)
        for (priority, status), count in sorted(counts.items()):
            opened.add_metric([priority, status], count)
        for priority in sorted({p for p, _ in counts}):
            age = now - first[priority] if priority in first else 0.0
            oldest.add_metric([priority], max(0.0, age))

        due = GaugeMetricFamily("gateway_handoffs_past_due", "Handoffs not resolved, with no "
                                "agent reply yet, past their reply-due time (SLA breached "
                                "now)", labels=["priority"])
        late = {p: 0 for p in PRIORITIES}
        late.update({priority: count for priority, count in past_due})
        for priority, count in sorted(late.items()):
            due.add_metric([priority], count)

        queue = GaugeMetricFamily("gateway_queue_depth", "Messages queued: in, waiting for "
                                  "Rasa; out, waiting to be delivered", labels=["direction"])
        waiting = GaugeMetricFamily("gateway_queue_oldest_age_seconds", "How long the oldest "
                                    "queued message has waited (0: none)", labels=["direction"])
        letters = GaugeMetricFamily("gateway_dead_letters_waiting", "Dead letters not "
                                    "redriven yet (make redrive)", labels=["direction"])
        for direction in DIRECTIONS:
            queue.add_metric([direction], depth.get(direction, 0))
            since = oldest_queued.get(direction)
            waiting.add_metric([direction], max(0.0, now - since) if since else 0.0)
            letters.add_metric([direction], dead.get(direction, 0))

        closed = GaugeMetricFamily("gateway_conversations_closed_24h", "Conversations closed "
                                   "in the last 24 hours, by outcome (contained: answered by "
                                   "the bot without a person)", labels=["outcome"])
        for outcome in OUTCOMES:
            closed.add_metric([outcome], containment.get(outcome, 0))
        return [opened, oldest, due, queue, waiting, letters, closed]

    @staticmethod
    def _past_due(now: float) -> sa.Select:
        """Unresolved handoffs past due that no agent has answered since they opened."""
        answered = sa.exists().where(
            messages.c.conversation_id == handoffs.c.conversation_id,
            messages.c.direction == "out", messages.c.kind == "agent",
            messages.c.created_at >= handoffs.c.created_at)
        return (sa.select(handoffs.c.priority, sa.func.count())
                .where(handoffs.c.status != "resolved", handoffs.c.sla_due_at < now,
                       ~answered)
                .group_by(handoffs.c.priority))

    def _containment_now(self, db: sa.engine.Connection, now: float) -> Dict[str, int]:
        cached = self._containment
        if cached is not None and 0 <= now - cached[0] < CONTAINMENT_REFRESH_SECONDS:
            return cached[1]
        result = containment(db, now, self.store.ack_gap_seconds)
        self._containment = (now, result)
        return result


def containment(db: sa.engine.Connection, now: float, gap_seconds: float) -> Dict[str, int]:
    """Conversations closed in the last 24 h, by outcome (the module's docstring defines it)."""
    session = conversations.c.last_ack_at
    escalated = sa.exists().where(
        handoffs.c.conversation_id == conversations.c.id,
        sa.or_(handoffs.c.created_at >= session, handoffs.c.status != "resolved"))
    answered = sa.exists().where(
        messages.c.conversation_id == conversations.c.id, messages.c.direction == "out",
        messages.c.kind == "reply", messages.c.status == SENT,
        messages.c.created_at >= session)
    outcome = sa.case((escalated, "escalated"), (answered, "contained"),
                      else_="unanswered").label("outcome")
    closed = (sa.select(outcome).where(
        conversations.c.last_inbound_at <= now - gap_seconds,
        conversations.c.last_inbound_at > now - gap_seconds - CONTAINMENT_WINDOW_SECONDS)
        .subquery())
    rows = db.execute(sa.select(closed.c.outcome, sa.func.count())
                      .group_by(closed.c.outcome)).all()
    return {outcome: count for outcome, count in rows}
