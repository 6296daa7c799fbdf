"""Several gateway replicas on one PostgreSQL database: each conversation worked by one at
a time, in order, every message once; a dead replica's conversations move on."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bot.gateway import pipeline
from bot.gateway.pipeline import RetryPolicy
from bot.gateway.store import Store
from bot.topology import create_database, drop_database
from tests.conftest import service_or_skip
from tests.gateway_support import (
    RasaStandIn,
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    running_gateway,
)


@pytest.fixture
def postgres_url():
    """A database of its own, so no other test's queued rows are swept up here."""
    host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    url = f"postgresql://postgres@{host}:{port}/replicas_{uuid.uuid4().hex[:8]}"
    create_database(url)
    yield url
    drop_database(url)


def dm(conversation: str, n: int) -> dict:
    return {"channel": "api", "conversation_id": conversation, "sender_name": "Amara",
            "text": f"message {n}", "channel_message_id": f"{conversation}-{n}"}


async def test_two_gateways_on_one_database_work_each_conversation_once_in_order(
        tmp_path, rasa, postgres_url):
    rasa.delay = 0.03
    first = gateway_settings(tmp_path, rasa.url, database_url=postgres_url)
    second = gateway_settings(tmp_path, rasa.url, database_url=postgres_url)
    auth = await bridge_auth(first)
    conversations = [f"c{n}" for n in range(8)]
    async with running_gateway(first) as one, running_gateway(second) as two, \
            client(first, auth) as to_one, client(second, auth) as to_two:
        for n in range(6):  # each conversation's messages arrive at both replicas
            for i, conversation in enumerate(conversations):
                http = to_one if (n + i) % 2 else to_two
                assert (await http.post("/api/v1/messages",
                                        json=dm(conversation, n))).status_code == 202
        await eventually(lambda: len(rasa.received) >= 48, timeout=30)
        await one.ctx.gateway.idle()
        await two.ctx.gateway.idle()
        assert one.ctx.gateway.leases.owner != two.ctx.gateway.leases.owner
    assert rasa.max_in_flight_per_sender == 1
    for conversation in conversations:
        assert rasa.texts_for(f"api:{conversation}") == [f"message {n}" for n in range(6)]
    assert len(rasa.received) == 48


async def test_a_dead_replicas_conversation_moves_on_when_its_lease_runs_out(
        tmp_path, rasa, postgres_url):
    settings = gateway_settings(tmp_path, rasa.url, database_url=postgres_url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        store: Store = app.ctx.gateway.store
        # A replica that died while it held this conversation, its lease 2 s from expiry:
        assert store.acquire_lease("api:orphan", "in", "dead-replica", 2.0)
        await http.post("/api/v1/messages", json=dm("orphan", 0))
        await asyncio.sleep(1.0)
        assert rasa.texts_for("api:orphan") == []  # not while the lease is alive
        await eventually(lambda: rasa.texts_for("api:orphan") == ["message 0"], timeout=15)


async def test_a_replica_that_loses_the_lease_while_rasa_fails_stops_and_it_is_answered_once(
        tmp_path, rasa, postgres_url, monkeypatch):
    """Retrying a failing Rasa is work on the conversation too: once another replica holds
    the lease, this one stops retrying (it would race the new holder to answer)."""
    monkeypatch.setattr(pipeline, "LEASE_SECONDS", 1.5)  # renewed every 0.5 s
    settings = gateway_settings(tmp_path, rasa.url, database_url=postgres_url)
    auth = await bridge_auth(settings)
    rasa.answers_garbage = True  # Rasa fails; the gateway backs off and tries again
    slow_retry = RetryPolicy(first_delay=0.3, max_delay=0.3)
    async with running_gateway(settings, retry=slow_retry) as app, \
            client(settings, auth) as http:
        store: Store = app.ctx.gateway.store
        await http.post("/api/v1/messages", json=dm("stolen", 0))
        await eventually(lambda: rasa.calls_per_sender.get("api:stolen", 0) >= 2)
        # Another replica takes the lease (as if this one had stalled past its expiry).
        later = store.database_time() + 60
        assert store.acquire_lease("api:stolen", "in", "replica-b", 60, now=later)
        await asyncio.sleep(1.5)  # this replica notices at its next renewal
        calls = rasa.calls_per_sender["api:stolen"]
        await asyncio.sleep(1.5)
        assert rasa.calls_per_sender["api:stolen"] == calls, "it went on retrying"
        assert store.next_inbound("api:stolen") is not None, "left queued for the holder"
        # The other replica goes away; once Rasa answers again, the message is answered once.
        rasa.answers_garbage = False
        store.release_lease("api:stolen", "in", "replica-b")
        await eventually(lambda: rasa.texts_for("api:stolen") == ["message 0"], timeout=15)
        await app.ctx.gateway.idle()
        replies = [m.text for m in store.transcript("api:stolen") if m.kind == "reply"]
        assert replies == ["echo: message 0"]


async def test_several_rasa_servers_each_conversation_sticks_to_one_and_fails_over(
        tmp_path, rasa):
    other = RasaStandIn()
    await other.start()
    try:
        settings = gateway_settings(tmp_path, f"{rasa.url},{other.url}")
        auth = await bridge_auth(settings)
        conversations = [f"r{n}" for n in range(12)]
        async with running_gateway(settings) as app, client(settings, auth) as http:
            for n in range(2):
                for conversation in conversations:
                    await http.post("/api/v1/messages", json=dm(conversation, n))
            await eventually(lambda: len(rasa.received) + len(other.received) == 24)
            for conversation in conversations:  # sticky: both turns at the same server
                assert {len(rasa.texts_for(f"api:{conversation}")),
                        len(other.texts_for(f"api:{conversation}"))} == {0, 2}
            assert rasa.received and other.received  # and spread over both
            await other.stop()  # one Rasa goes away: its conversations move to the other
            moved = [c for c in conversations if other.texts_for(f"api:{c}")]
            for conversation in moved:
                await http.post("/api/v1/messages", json=dm(conversation, 2))
            await eventually(lambda: all(rasa.texts_for(f"api:{c}") == ["message 2"]
                                         for c in moved))
            await app.ctx.gateway.idle()
    finally:
        await other.stop()


def test_replicas_starting_together_on_a_new_database_all_start(postgres_url):
    """Each replica creates the schema on start; on a new database they must not race."""
    import threading

    errors: list = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        try:
            Store(postgres_url).engine.dispose()
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
