"""GET /metrics: what the desk's dashboards and alerts read, after real conversations.

Three customers through a running gateway (two on the DM API answered by the
bot, one on the web chat handed to a person, who replies and resolves, and the
customer rates us), one Rasa failure and its retry; then the scrape is parsed
and every figure checked. Who may scrape, the hooks' arithmetic on a clock of
our own, and the store's gauges on a real store are checked on their own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Dict, FrozenSet, Tuple

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from bot.gateway.messages import InboundMessage, OutboundMessage
from bot.gateway.metrics import REMEMBERED, Metrics, NullMetrics, label, remember
from bot.gateway.metrics_collector import OUTCOMES, StoreCollector
from bot.gateway.metrics_endpoint import refusal
from bot.gateway.settings import Settings
from bot.gateway.store import HandoffRequest, Store
from bot.handoff_contract import rating_payload
from tests.gateway_support import bridge_auth, client, eventually, gateway_settings, running_gateway

AGENT_TOKEN = "agent-token-for-metrics"
AGENT = {"Authorization": f"Bearer {AGENT_TOKEN}"}
METRICS_TOKEN = "metrics-token-7f3a9c2e5b1d"

Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(http: httpx.AsyncClient) -> Samples:
    answer = await http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def dm(conversation: str, text: str, n: int) -> dict:
    return {"channel": "api", "conversation_id": conversation, "sender_name": "Amara Okafor",
            "text": text, "channel_message_id": f"{conversation}-{n}"}


async def test_a_scripted_day_at_the_desk_is_counted_as_it_happened(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=AGENT_TOKEN)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        gateway = app.ctx.gateway
        [store_gauges] = app.ctx.metrics.watched
        # Rasa fails (a proxy's error page) until the gateway has seen it fail: then retries.
        rasa.answers_garbage = True
        assert (await http.post("/api/v1/messages", json=dm("c1", "where is my order?", 1))
                ).status_code == 202
        await eventually(lambda: scrape_errors(http))
        rasa.answers_garbage = False
        await http.post("/api/v1/messages", json=dm("c2", "do you ship to canada?", 1))
        # The third customer, on the web chat, asks for a person.
        chat = (await http.post("/chat/api/sessions")).json()
        chat_auth = {"Authorization": f"Bearer {chat['secret']}"}
        assert (await http.post("/chat/api/messages", headers=chat_auth, json={
            "session": chat["session"], "text": "human please", "name": "Bea"})).status_code == 202
        await eventually(lambda: len(rasa.received) == 3)
        await gateway.idle()

        waiting = await scrape(http)
        assert value(waiting, "gateway_handoffs_open", priority="high", status="open") == 1
        assert value(waiting, "gateway_handoffs_open", priority="normal", status="open") == 0
        assert value(waiting, "gateway_handoff_oldest_open_age_seconds", priority="high") >= 0
        assert value(waiting, "gateway_handoffs_past_due", priority="high") == 0
        handoff = (await http.get("/api/v1/handoffs/", headers=AGENT)).json()["handoffs"][0]
        # Nobody has answered by the reply-due time: breached now (the store's clock moved on).
        due = (await gateway.db.handoff(handoff["id"]))["sla_due_at"]
        store_gauges.clock = lambda: due + 60
        late = await scrape(http)
        assert value(late, "gateway_handoffs_past_due", priority="high") == 1
        assert value(late, "gateway_handoff_oldest_open_age_seconds", priority="high") > 60
        store_gauges.clock = time.time

        # An agent answers (in time), resolves; the customer taps 4.
        assert (await http.post(f"/api/v1/handoffs/{handoff['id']}/reply", headers=AGENT,
                                json={"agent": "Sam Patel", "text": "Hi Bea, I'm on it."})
                ).status_code == 202
        assert (await http.post(f"/api/v1/handoffs/{handoff['id']}/resolve", headers=AGENT,
                                json={"agent": "Sam Patel"})).status_code == 200
        await gateway.idle()
        assert (await http.post("/chat/api/messages", headers=chat_auth, json={
            "session": chat["session"], "text": "4", "payload": rating_payload(4)})
                ).status_code == 202
        await eventually(lambda: len(rasa.received) == 4)
        await gateway.idle()

        done = await scrape(http)
        # Customers' messages, and what they were sent, per channel and kind.
        assert value(done, "gateway_messages_received_total", channel="api") == 2
        assert value(done, "gateway_messages_received_total", channel="webchat") == 2
        expected_sent = {("api", "ack"): 1 + 1, ("api", "reply"): 2,
                         ("webchat", "ack"): 1, ("webchat", "reply"): 2,  # handoff line, echo
                         ("webchat", "agent"): 1, ("webchat", "csat"): 1}
        for (channel, kind), count in expected_sent.items():
            assert value(done, "gateway_messages_sent_total", channel=channel, kind=kind) == count
        # Latencies: one acknowledgement per new conversation, one answer per message answered.
        assert value(done, "gateway_ack_latency_seconds_count", channel="api") == 2
        assert value(done, "gateway_ack_latency_seconds_count", channel="webchat") == 1
        assert value(done, "gateway_ack_latency_seconds_bucket", channel="api", le="5.0") == 2
        assert value(done, "gateway_first_answer_latency_seconds_count", channel="api") == 2
        assert value(done, "gateway_first_answer_latency_seconds_count", channel="webchat") == 2
        # The person: one first reply, within the SLA.
        assert value(done, "gateway_handoff_first_reply_seconds_count", priority="high") == 1
        assert value(done, "gateway_handoff_sla_breaches_total", priority="high") == 0
        assert value(done, "gateway_escalations_total", reason="customer_request",
                     priority="high") == 1
        assert value(done, "gateway_csat_answers_total", score="4") == 1
        # Rasa failed at least once, and each failed call was tried again.
        errors = value(done, "gateway_rasa_errors_total")
        assert errors >= 1 and value(done, "gateway_rasa_retries_total") == errors
        assert value(done, "gateway_dead_letters_total", direction="in") == 0
        # The store's state: nothing open, nothing queued, nothing dead.
        assert value(done, "gateway_store_up") == 1
        assert value(done, "gateway_handoffs_open", priority="high", status="claimed") == 0
        assert value(done, "gateway_handoffs_open", priority="high", status="open") == 0
        for direction in ("in", "out"):
            assert value(done, "gateway_queue_depth", direction=direction) == 0
            assert value(done, "gateway_dead_letters_waiting", direction=direction) == 0
        # Nobody has gone quiet yet; once they have (ACK_GAP_MINUTES later), containment.
        assert value(done, "gateway_conversations_closed_24h", outcome="contained") == 0
        store_gauges.clock = lambda: time.time() + settings.ack_gap_minutes * 60 + 60
        later = await scrape(http)
        assert value(later, "gateway_conversations_closed_24h", outcome="contained") == 2
        assert value(later, "gateway_conversations_closed_24h", outcome="escalated") == 1
        assert value(later, "gateway_conversations_closed_24h", outcome="unanswered") == 0


async def scrape_errors(http: httpx.AsyncClient) -> bool:
    return value(await scrape(http), "gateway_rasa_errors_total") >= 1


# --- who may scrape ---------------------------------------------------------------------------

async def test_with_a_token_only_its_bearer_is_served(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, metrics_token=METRICS_TOKEN)
    async with running_gateway(settings), client(settings) as http:
        assert (await http.get("/metrics")).status_code == 401  # loopback is not enough
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
        assert METRICS_TOKEN not in wrong.text
        right = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert right.status_code == 200
        assert "gateway_messages_received_total" in right.text


@pytest.mark.parametrize("trust_proxy", [False, True])
async def test_without_a_token_a_proxied_request_is_refused_even_from_loopback(
        tmp_path, rasa, trust_proxy):
    settings = gateway_settings(tmp_path, rasa.url, trust_proxy=trust_proxy)
    async with running_gateway(settings), client(settings) as http:
        assert (await http.get("/metrics")).status_code == 200  # a scraper on this machine
        for header in ({"X-Forwarded-For": "127.0.0.1"}, {"X-Forwarded-For": "203.0.113.9"},
                       {"Forwarded": "for=127.0.0.1"}, {"X-Real-IP": "127.0.0.1"}):
            assert (await http.get("/metrics", headers=header)).status_code == 403, header


async def test_metrics_off_serves_nothing_and_counts_nothing(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, metrics=False)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("c1", "hello", 1))
        await eventually(lambda: len(rasa.received) == 1)
        await app.ctx.gateway.idle()
        assert (await http.get("/metrics")).status_code == 404
        assert isinstance(app.ctx.gateway.metrics, NullMetrics)


@pytest.mark.parametrize("peer, headers, expected", [
    ("127.0.0.1", {}, None),
    ("127.8.9.10", {}, None),
    ("::1", {}, None),
    ("[::1]", {}, None),
    ("::ffff:127.0.0.1", {}, None),
    ("203.0.113.5", {}, 403),
    ("10.0.0.7", {}, 403),  # a private network is not this machine
    ("", {}, 403),  # a UNIX socket: nobody to vouch for
    ("/run/gateway.sock", {}, 403),
    ("127.0.0.1", {"x-forwarded-for": "127.0.0.1"}, 403),  # through a local proxy
    ("127.0.0.1", {"forwarded": "for=127.0.0.1"}, 403),
    ("127.0.0.1", {"x-real-ip": "198.51.100.1"}, 403),
])
def test_without_a_token_only_this_machine_may_scrape(peer, headers, expected):
    assert refusal(None, "", peer, headers) == expected


@pytest.mark.parametrize("authorization, peer, expected", [
    ("", "127.0.0.1", 401),  # a token is set: loopback no longer suffices
    ("Bearer wrong", "127.0.0.1", 401),
    (f"Basic {METRICS_TOKEN}", "127.0.0.1", 401),
    (f"Bearer {METRICS_TOKEN}x", "203.0.113.5", 401),
    (f"Bearer {METRICS_TOKEN}", "203.0.113.5", None),  # from anywhere, through any proxy
    (f"bearer  {METRICS_TOKEN} ", "127.0.0.1", None),
    ("Bearer \ud800", "127.0.0.1", 401),
])
def test_with_a_token_only_its_bearer_may_scrape(authorization, peer, expected):
    assert refusal(METRICS_TOKEN, authorization, peer, {"x-forwarded-for": "1.2.3.4"}) == expected


def test_settings_read_metrics_from_the_environment_and_never_show_the_token():
    settings = Settings.from_env({"METRICS_TOKEN": METRICS_TOKEN, "METRICS": "off"})
    assert settings.metrics_token == METRICS_TOKEN and settings.metrics is False
    assert METRICS_TOKEN not in repr(settings)
    assert Settings.from_env({}).metrics is True and Settings.from_env({}).metrics_token is None


# --- the hooks' arithmetic, on a clock of our own ------------------------------------------------

class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def message(kind: str, created_at: float, conversation: str = "api:c1") -> SimpleNamespace:
    return SimpleNamespace(kind=kind, channel="api", conversation_id=conversation,
                           created_at=created_at)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_latencies_run_from_the_customer_message_stored_to_the_message_sent():
    clock = Clock(1000.0)
    metrics = Metrics(clock)
    clock.now = 1000.3
    metrics.sent(message("ack", 1000.0))  # the ack is queued with the customer's message
    assert sample(metrics, "gateway_ack_latency_seconds_bucket", channel="api", le="0.25") == 0
    assert sample(metrics, "gateway_ack_latency_seconds_bucket", channel="api", le="0.5") == 1
    metrics.answered(message("message", 1000.0), [OutboundMessage("echo")])
    metrics.answered(message("message", 1004.0), [OutboundMessage("echo 2")])  # older one wins
    clock.now = 1007.0
    metrics.sent(message("reply", 1006.0))
    metrics.sent(message("reply", 1006.0))  # its second part: not a first answer
    assert sample(metrics, "gateway_first_answer_latency_seconds_count", channel="api") == 1
    assert sample(metrics, "gateway_first_answer_latency_seconds_sum", channel="api") == 7.0
    assert sample(metrics, "gateway_messages_sent_total", channel="api", kind="reply") == 2
    # Replies a person's conversation dropped: the agent speaks first; no answer is timed.
    metrics.answered(message("message", 1010.0, "api:c2"), [OutboundMessage("x")])
    metrics.sent(message("agent", 1011.0, "api:c2"))
    clock.now = 5000.0
    metrics.sent(message("reply", 4999.0, "api:c2"))
    assert sample(metrics, "gateway_first_answer_latency_seconds_count", channel="api") == 1
    metrics.answered(message("message", 1010.0, "api:c3"), [])  # nothing to answer with
    metrics.sent(message("reply", 4999.0, "api:c3"))
    assert sample(metrics, "gateway_first_answer_latency_seconds_count", channel="api") == 1


def handoff_record(status: str, handoff_id: int = 7) -> dict:
    return {"id": handoff_id, "status": status, "priority": "high", "created_at": 100.0,
            "sla_due_at": 100.0 + 15 * 60}


def test_a_handoffs_first_agent_reply_is_timed_once_and_a_late_one_is_a_breach():
    clock = Clock(100.0 + 10 * 60)
    metrics = Metrics(clock)
    metrics.agent_replied(handoff_record("open"))  # 10 min: in time
    metrics.agent_replied(handoff_record("claimed"))  # the same handoff, replied again
    assert sample(metrics, "gateway_handoff_first_reply_seconds_count", priority="high") == 1
    assert sample(metrics, "gateway_handoff_first_reply_seconds_sum", priority="high") == 600
    assert sample(metrics, "gateway_handoff_sla_breaches_total", priority="high") == 0
    clock.now = 100.0 + 20 * 60
    metrics.agent_replied(handoff_record("claimed", 8))  # claimed first, replied 20 min in
    assert sample(metrics, "gateway_handoff_first_reply_seconds_count", priority="high") == 2
    assert sample(metrics, "gateway_handoff_sla_breaches_total", priority="high") == 1


def test_counters_for_escalations_dead_letters_ratings_and_rasa():
    metrics = Metrics()
    request = HandoffRequest(reason="bot_failed", priority="high", summary="", context={},
                             sla_due_at=0.0)
    metrics.dead_lettered("in", request)
    metrics.dead_lettered("out", None)  # a handoff was open already: none opened
    metrics.escalated(HandoffRequest(reason="Weird Reason!", priority="urgent", summary="",
                                     context={}, sla_due_at=0.0))
    metrics.received("api", 5)
    metrics.received("api")
    metrics.rasa_call(1)
    metrics.rasa_failed()
    metrics.rasa_call(2)
    assert sample(metrics, "gateway_dead_letters_total", direction="in") == 1
    assert sample(metrics, "gateway_dead_letters_total", direction="out") == 1
    assert sample(metrics, "gateway_escalations_total", reason="bot_failed", priority="high") == 1
    assert sample(metrics, "gateway_escalations_total", reason="other", priority="urgent") == 1
    assert sample(metrics, "gateway_csat_answers_total", score="5") == 1
    assert sample(metrics, "gateway_messages_received_total", channel="api") == 2
    assert sample(metrics, "gateway_rasa_errors_total") == 1
    assert sample(metrics, "gateway_rasa_retries_total") == 1


def test_labels_and_memory_stay_bounded():
    assert label("customer_request") == "customer_request"
    assert label("api:c1") == "other" and label(None) == "other" and label("x" * 41) == "other"
    memory: dict = {}
    for n in range(REMEMBERED + 5):
        remember(memory, n, n)
    assert len(memory) == REMEMBERED and 0 not in memory and REMEMBERED + 4 in memory


# --- the store's gauges, on a real store ---------------------------------------------------

def test_the_store_gauges_count_queues_dead_letters_and_open_handoffs(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'gateway.db'}")
    now = time.time()
    try:
        for n in range(3):
            store.receive(InboundMessage(channel="api", external_id=f"c{n}",
                                         channel_message_id="m1", text="hello"),
                          ack=OutboundMessage("Hi!"), now=now - 30)
        first = store.next_inbound("api:c0")
        store.dead_letter(first.id, "Rasa down", HandoffRequest(
            reason="bot_failed", priority="high", summary="", context={}, sla_due_at=now - 1),
            now=now - 20)
        collector = StoreCollector(store, clock=lambda: now)
        samples = {(s.name, frozenset(s.labels.items())): s.value
                   for family in collector.collect() for s in family.samples}
    finally:
        store.engine.dispose()
    assert value(samples, "gateway_store_up") == 1
    assert value(samples, "gateway_queue_depth", direction="in") == 2
    assert value(samples, "gateway_queue_depth", direction="out") == 3  # the acks
    assert value(samples, "gateway_queue_oldest_age_seconds", direction="in") == pytest.approx(30)
    assert value(samples, "gateway_dead_letters_waiting", direction="in") == 1
    assert value(samples, "gateway_handoffs_open", priority="high", status="open") == 1
    assert value(samples, "gateway_handoff_oldest_open_age_seconds",
                 priority="high") == pytest.approx(20)
    assert value(samples, "gateway_handoffs_past_due", priority="high") == 1
    assert value(samples, "gateway_handoff_oldest_open_age_seconds", priority="low") == 0


def test_a_store_that_cannot_be_read_is_reported_not_raised(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'gateway.db'}")
    store.engine.dispose()
    store.engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    families = list(StoreCollector(store).collect())
    assert [(s.name, s.value) for f in families for s in f.samples] == [("gateway_store_up", 0)]


async def test_a_scrape_does_not_hold_up_the_event_loop(tmp_path, rasa):
    """The store's queries run in a thread: customers are served while a scrape waits."""
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings) as http:
        [store_gauges] = app.ctx.metrics.watched
        read, reading, release = store_gauges._read, threading.Event(), threading.Event()

        def stuck_read(now: float):  # noqa: ANN202 - the collector's own, held up
            reading.set()
            release.wait(10)
            return read(now)

        store_gauges._read = stuck_read
        scraping = asyncio.get_running_loop().create_task(http.get("/metrics"))
        await asyncio.to_thread(reading.wait, 10)
        assert (await http.get("/health")).status_code == 200
        assert not scraping.done()
        release.set()
        assert (await scraping).status_code == 200


def test_the_store_gauges_read_postgresql_too():
    """Production's database: every query of a scrape runs there (the counts are deltas,
    as the shared test database holds other tests' rows)."""
    from tests.conftest import service_or_skip

    host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    store = Store(f"postgresql://postgres@{host}:{port}/test")
    now = time.time()
    collector = StoreCollector(store, clock=lambda: now)

    def gauges() -> Samples:
        collector._containment = None  # recomputed on every call here
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in collector.collect() for s in family.samples}

    try:
        before = gauges()
        chat = f"metrics-{time.time_ns()}"
        store.receive(InboundMessage(channel="api", external_id=chat, channel_message_id="m1",
                                     text="hello"), ack=OutboundMessage("Hi!"), now=now - 10)
        store.complete_inbound(store.next_inbound(f"api:{chat}").id, [], HandoffRequest(
            reason="complaint", priority="urgent", summary="", context={}, sla_due_at=now - 1),
            now=now - 5)
        after = gauges()
    finally:
        store.engine.dispose()
    assert value(after, "gateway_store_up") == 1
    for name, labels, delta in (("gateway_queue_depth", {"direction": "out"}, 1),
                                ("gateway_handoffs_open", {"priority": "urgent",
                                                           "status": "open"}, 1),
                                ("gateway_handoffs_past_due", {"priority": "urgent"}, 1)):
        assert value(after, name, **labels) - value(before, name, **labels) == delta, name
    assert value(after, "gateway_handoff_oldest_open_age_seconds", priority="urgent") >= 5
    assert set(OUTCOMES) <= {dict(labels).get("outcome") for _, labels in after}
