"""Live metrics for the desk: what happens to messages and handoffs, counted as it happens.

Cheap on purpose: no database query per message. Events are counted in this
process (prometheus_client counters and histograms, a few microseconds each)
by one-line hooks in the pipeline and the handoff desk; everything that is a
state rather than an event (open handoffs, queue depth, dead letters,
containment) is read from the store when Prometheus scrapes
(``metrics_collector.py``), so it is the same fleet-wide figure on every replica.

Counters here are per gateway process: Prometheus sums them over replicas.
Each app has its own ``CollectorRegistry`` (tests build many apps in one
process; the global registry would refuse the second). ``METRICS=off`` gives
``NullMetrics``: the hooks do nothing (``bench/metrics_cost.py`` compares).

Every metric is described in the README's "Monitoring" section. Labels never
carry a customer's id or words: channels, message kinds, priorities, reasons,
scores.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

from prometheus_client import CollectorRegistry, Counter, Histogram

# Seconds. Acknowledgements should take well under a second; answers wait for Rasa.
ACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
ANSWER_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
# A person's first reply: minutes to hours (SLAs are 15 min to a working day).
AGENT_BUCKETS = (60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
                 86400.0)
# Bounds on what this process remembers between events, so that neither a flood of
# conversations nor answers that are never sent (another replica sends them) grows it.
REMEMBERED = 10_000
# A reason or kind is a label: anything not shaped like our own names is "other", so
# a surprising value cannot create unbounded series.
_LABEL = re.compile(r"[a-z][a-z0-9_]{0,39}")


def label(value: Any) -> str:
    """``value`` as a label value when it looks like one of our names, else "other"."""
    return value if isinstance(value, str) and _LABEL.fullmatch(value) else "other"


class Metrics:
    """The gateway's in-process counters and histograms, and the hooks that feed them.

    ``clock`` gives the time the latencies end at (tests pass their own).
    """

    enabled = True

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._received = Counter("gateway_messages_received", "Customer messages stored "
                                 "(redeliveries not counted)", ["channel"], registry=r)
        self._sent = Counter("gateway_messages_sent", "Messages delivered to customers, by "
                             "kind (ack, reply, agent, csat, public_reply)",
                             ["channel", "kind"], registry=r)
        self._ack_latency = Histogram(
            "gateway_ack_latency_seconds", "From a customer message stored to its "
            "acknowledgement sent", ["channel"], buckets=ACK_BUCKETS, registry=r)
        self._answer_latency = Histogram(
            "gateway_first_answer_latency_seconds", "From a customer message stored to the "
            "first of the bot's replies to it sent", ["channel"], buckets=ANSWER_BUCKETS,
            registry=r)
        self._agent_latency = Histogram(
            "gateway_handoff_first_reply_seconds", "From a handoff opened to its first "
            "agent reply", ["priority"], buckets=AGENT_BUCKETS, registry=r)
        self._breached = Counter("gateway_handoff_sla_breaches", "Handoffs whose first agent "
                                 "reply came after their reply-due time", ["priority"],
                                 registry=r)
        self._escalations = Counter("gateway_escalations", "Handoffs opened by the bot or the "
                                    "gateway", ["reason", "priority"], registry=r)
        self._csat = Counter("gateway_csat_answers", "Satisfaction answers, by score",
                             ["score"], registry=r)
        self._rasa_errors = Counter("gateway_rasa_errors", "Calls to Rasa that failed",
                                    registry=r)
        self._rasa_retries = Counter("gateway_rasa_retries", "Calls to Rasa repeated after a "
                                     "failure", registry=r)
        self._dead = Counter("gateway_dead_letters", "Messages given up on (dead letters), "
                             "by direction (in: Rasa, out: delivery)", ["direction"],
                             registry=r)
        # Customer messages whose replies are queued, by conversation: when each was stored.
        self._awaiting_answer: Dict[str, float] = {}
        # Handoffs (claimed before anyone replied) already given their first reply here.
        self._replied: Dict[int, None] = {}
        self.watched: List[Any] = []  # scrape-time collectors (tests set their clocks)

    def watch(self, collector: Any) -> None:
        """Serve ``collector``'s scrape-time metrics (the store's) from this registry too."""
        self.registry.register(collector)
        self.watched.append(collector)

    # --- hooks: each called from one line where the event happens -----------------------
    def received(self, channel: str, csat_score: Optional[int] = None) -> None:
        """A customer message was stored (not a redelivery); a rating carries its score."""
        self._received.labels(channel).inc()
        if csat_score is not None:
            self._csat.labels(str(csat_score)).inc()

    def rasa_call(self, attempt: int) -> None:
        """About to send a message to Rasa, for the ``attempt``-th time."""
        if attempt > 1:
            self._rasa_retries.inc()

    def rasa_failed(self) -> None:
        self._rasa_errors.inc()

    def answered(self, message: Any, replies: list) -> None:
        """Rasa's ``replies`` to a customer ``message`` (a StoredMessage) are queued."""
        if replies:
            remember(self._awaiting_answer, message.conversation_id, message.created_at)

    def escalated(self, handoff: Any) -> None:
        """A handoff was opened (a HandoffRequest: reason and priority)."""
        self._escalations.labels(label(handoff.reason), label(handoff.priority)).inc()

    def dead_lettered(self, direction: str, handoff: Any = None) -> None:
        """A message was given up on; ``handoff``, the one opened for it, if any."""
        self._dead.labels(direction).inc()
        if handoff is not None:
            self.escalated(handoff)

    def sent(self, message: Any) -> None:
        """An outbound message (a StoredMessage) was delivered."""
        now = self.clock()
        kind = label(message.kind)
        self._sent.labels(message.channel, kind).inc()
        if kind == "ack":  # queued with the customer's message, in the same transaction
            self._ack_latency.labels(message.channel).observe(max(0.0, now - message.created_at))
        elif kind == "reply":
            stored = self._awaiting_answer.pop(message.conversation_id, None)
            if stored is not None:
                self._answer_latency.labels(message.channel).observe(max(0.0, now - stored))
        elif kind != "public_reply":  # a person (or the hand-back) spoke first: not the bot's
            self._awaiting_answer.pop(message.conversation_id, None)

    def agent_replied(self, handoff: Mapping[str, Any]) -> None:
        """An agent is replying on ``handoff`` (the desk's record, before the reply claims it).

        The first reply is certain when the handoff is still unclaimed (the reply
        claims it, on whichever replica); for one claimed first, this process
        remembers which handoffs it saw a reply on.
        """
        if handoff["status"] == "open":
            first = True
        else:
            first = handoff["id"] not in self._replied
        remember(self._replied, handoff["id"], None)
        if not first:
            return
        now = self.clock()
        priority = label(handoff["priority"])
        self._agent_latency.labels(priority).observe(max(0.0, now - handoff["created_at"]))
        if now > handoff["sla_due_at"]:
            self._breached.labels(priority).inc()


class NullMetrics(Metrics):
    """METRICS=off: every hook does nothing, and /metrics is not served."""

    enabled = False

    def __init__(self) -> None:  # noqa: D107 - nothing to count, nothing to serve
        self.registry = CollectorRegistry(auto_describe=True)
        self.watched = []

    def watch(self, collector: Any) -> None:
        return None

    def received(self, channel: str, csat_score: Optional[int] = None) -> None:
        return None

    def rasa_call(self, attempt: int) -> None:
        return None

    def rasa_failed(self) -> None:
        return None

    def answered(self, message: Any, replies: list) -> None:
        return None

    def escalated(self, handoff: Any) -> None:
        return None

    def dead_lettered(self, direction: str, handoff: Any = None) -> None:
        return None

    def sent(self, message: Any) -> None:
        return None

    def agent_replied(self, handoff: Mapping[str, Any]) -> None:
        return None


NO_METRICS = NullMetrics()


def remember(memory: Dict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``key`` (its first value wins) and at most REMEMBERED keys, oldest dropped."""
    if key in memory:
        return
    if len(memory) >= REMEMBERED:
        del memory[next(iter(memory))]
    memory[key] = value
