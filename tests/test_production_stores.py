"""endpoints.production.yml really works: trackers in PostgreSQL, locks in Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bot.brand import PROJECT_ROOT
from tests.conftest import service_or_skip

ENDPOINTS = str(PROJECT_ROOT / "endpoints.production.yml")


@pytest.fixture
def production_env(monkeypatch):
    pg_host, pg_port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    redis_host, redis_port = service_or_skip("Redis", "127.0.0.1", 6379)
    env = {
        "ACTION_ENDPOINT_URL": "http://localhost:5055/webhook",
        "TRACKER_DB_HOST": pg_host, "TRACKER_DB_PORT": str(pg_port),
        "TRACKER_DB_NAME": "test", "TRACKER_DB_USER": "postgres", "TRACKER_DB_PASSWORD": "",
        "REDIS_HOST": redis_host, "REDIS_PORT": str(redis_port),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_conversations_survive_in_postgresql(production_env):
    from rasa.core.tracker_store import TrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.utils.endpoints import read_endpoint_config

    domain = Domain.load(str(PROJECT_ROOT / "domain.yml"))
    config = read_endpoint_config(ENDPOINTS, "tracker_store")
    store = TrackerStore.create(config, domain)
    sender = f"pg-test-{uuid.uuid4().hex[:8]}"
    tracker = DialogueStateTracker.from_events(sender, [UserUttered("where is JL-204815")])

    async def roundtrip():
        await store.save(tracker)
        # A fresh store, as after a restart, must read the same conversation back.
        return await TrackerStore.create(config, domain).retrieve(sender)

    restored = asyncio.new_event_loop().run_until_complete(roundtrip())
    from rasa.core.tracker_store import SQLTrackerStore

    from bot.rasa_tracker_store import FailClosedSQLTrackerStore

    assert isinstance(store, FailClosedSQLTrackerStore)  # PostgreSQL through Rasa's SQL store
    assert isinstance(store, SQLTrackerStore) and store.engine.dialect.name == "postgresql"
    assert restored.latest_message.text == "where is JL-204815"


def test_conversation_locks_are_shared_through_redis(production_env):
    from rasa.core.lock_store import LockStore
    from rasa.utils.endpoints import read_endpoint_config

    config = read_endpoint_config(ENDPOINTS, "lock_store")
    first, second = LockStore.create(config), LockStore.create(config)
    conversation = f"lock-test-{uuid.uuid4().hex[:8]}"
    lock = first.issue_ticket(conversation)
    # A second Rasa process sees the first one's ticket, so it waits its turn.
    assert second.get_lock(conversation).last_issued == lock
    first.finish_serving(conversation, lock)
    after = second.get_lock(conversation)
    assert after is None or not after.tickets


def test_the_gateway_store_works_on_postgresql():
    """DATABASE_URL=postgresql://...: idempotent receive, ordered queue, handoffs."""
    import sqlalchemy as sa

    from bot.gateway.messages import InboundMessage, OutboundMessage
    from bot.gateway.store import HandoffRequest, Store

    host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    url = f"postgresql://postgres@{host}:{port}/test"
    store = Store(url)
    chat = f"pg-{uuid.uuid4().hex[:8]}"
    first = InboundMessage(channel="api", external_id=chat, channel_message_id="m1",
                           text="hello", sender_name="Amara Okafor")
    received = store.receive(first, ack=OutboundMessage("Hi Amara"))
    assert received.acknowledge and not received.duplicate
    assert store.receive(first).duplicate
    second = InboundMessage(channel="api", external_id=chat, channel_message_id="m2",
                            text="where is my order")
    assert not store.receive(second).acknowledge  # one acknowledgement per burst
    conversation = f"api:{chat}"
    assert store.next_inbound(conversation).text == "hello"
    handoff_id = store.complete_inbound(
        store.next_inbound(conversation).id, [OutboundMessage("echo")],
        HandoffRequest("hostile", "high", "summary", {"turns": []}, 0.0))
    assert store.next_inbound(conversation).text == "where is my order"
    assert store.open_handoff_for(conversation)["id"] == handoff_id
    assert store.conversation(conversation)["mode"] == "human"
    assert [m.kind for m in store.transcript(conversation) if m.direction == "out"] == [
        "ack", "reply"]
    with store.engine.connect() as db:  # really PostgreSQL
        assert db.execute(sa.text("select version()")).scalar().startswith("PostgreSQL")


def test_misunderstood_marks_work_on_postgresql():
    """Agents' "bot misunderstood" marks: one per customer message, undoable, exported."""
    from bot.gateway.messages import InboundMessage, OutboundMessage
    from bot.gateway.store import Store

    host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    store = Store(f"postgresql://postgres@{host}:{port}/test")
    chat = f"pg-{uuid.uuid4().hex[:8]}"
    conversation = f"api:{chat}"
    asked = store.receive(InboundMessage(channel="api", external_id=chat, channel_message_id="m1",
                                         text="wher is my parcle"),
                          ack=OutboundMessage("Hi")).message_id
    ack = next(m for m in store.transcript(conversation) if m.direction == "out")

    store.mark_misunderstood(asked, "Sam Patel")
    store.mark_misunderstood(asked, "Lee Wong", note="order status")  # still one mark
    assert store.misunderstood_ids(conversation) == {asked: "Lee Wong"}
    [mark] = [m for m in store.misunderstood_messages() if m["conversation_id"] == conversation]
    assert (mark["message_id"], mark["text"], mark["agent"], mark["note"]) == (
        asked, "wher is my parcle", "Lee Wong", "order status")
    assert mark["marked_at"] >= mark["sent_at"]
    with pytest.raises(ValueError):
        store.mark_misunderstood(ack.id, "Sam Patel")
    store.unmark_misunderstood(asked)
    assert store.misunderstood_ids(conversation) == {}
