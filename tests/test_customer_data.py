"""A customer's data on request: exported whole, erased everywhere, old conversations let go.

Both stores are real: the gateway's and Rasa's SQL tracker store, on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from bot import customer_data
from bot.brand import PROJECT_ROOT
from bot.gateway.messages import InboundMessage, OutboundMessage
from bot.gateway.store import HandoffRequest, Store
from bot.rasa_trackers import open_tracker_store
from tests.conftest import service_or_skip

DAY = 86400


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request, tmp_path):
    """(gateway Store, Rasa tracker store, endpoints file, DATABASE_URL) on one database kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
        tracker_config = f"  dialect: sqlite\n  db: {tmp_path / 'rasa.db'}\n"
        (tmp_path / "rasa.db").touch()
    else:
        host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
        url = f"postgresql://postgres@{host}:{port}/test"
        tracker_config = (f"  dialect: postgresql\n  url: {host}\n  port: {port}\n  db: test\n"
                          "  username: postgres\n  password: ''\n")
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text("tracker_store:\n  type: SQL\n" + tracker_config)
    return Store(url), open_tracker_store(endpoints), endpoints, url


def a_conversation(store, trackers, name: str, at: float) -> str:
    """A customer who wrote, was answered, handed to a person, and noted about."""
    from rasa.shared.core.events import BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    chat = f"{name}-{uuid.uuid4().hex[:8]}"
    message = InboundMessage(channel="api", external_id=chat, channel_message_id="m1",
                             text=f"I am {name}, mail me at {name}@example.com",
                             sender_name=name.title())
    received = store.receive(message, OutboundMessage("ack"), now=at)
    handoff = store.complete_inbound(received.message_id, [OutboundMessage("a person will")],
                                     HandoffRequest("customer_request", "normal", "wants help",
                                                    {}, at + 3600), now=at)
    store.add_note(handoff, "Sam", f"{name} is a VIP", now=at)
    store.mark_misunderstood(received.message_id, "Sam", "misread", now=at)
    conversation = message.conversation_id
    tracker = DialogueStateTracker.from_events(conversation, [
        UserUttered(message.text, timestamp=at), BotUttered("a person will", timestamp=at)])
    asyncio.run(trackers.save(tracker))
    return conversation


def test_an_export_holds_everything_about_the_customer_and_nothing_else(stores):
    store, trackers, _, _ = stores
    now = time.time()
    ana = a_conversation(store, trackers, "ana", now)
    bo = a_conversation(store, trackers, "bo", now)
    data = asyncio.run(customer_data.export(store, trackers, ana))
    text = json.dumps(data, default=str)
    assert "ana@example.com" in text and "ana is a VIP" in text and "misread" in text
    assert [e["event"] for e in data["rasa_events"]] == ["user", "bot"]
    assert "bo@example.com" not in text and bo not in text


def test_forgetting_erases_both_stores_and_leaves_everyone_else(stores):
    store, trackers, _, _ = stores
    now = time.time()
    ana = a_conversation(store, trackers, "ana", now)
    bo = a_conversation(store, trackers, "bo", now)
    removed = customer_data.forget(store, trackers, ana)
    assert removed["messages"] == 3 and removed["handoffs"] == 1
    assert removed["misunderstood_marks"] == 1 and removed["rasa_events"] == 2
    assert asyncio.run(customer_data.export(store, trackers, ana)) == {
        "conversation_id": ana, "gateway": {}, "rasa_events": []}
    assert store.export_conversation(bo)["messages"]
    assert asyncio.run(trackers.retrieve_full_tracker(bo)) is not None
    # Forgetting twice is harmless: nothing left to remove.
    assert sum(customer_data.forget(store, trackers, ana).values()) == 0


def test_purge_forgets_only_conversations_quiet_everywhere(stores):
    store, trackers, _, _ = stores
    now = time.time()
    old = a_conversation(store, trackers, "old", now - 400 * DAY)
    recent = a_conversation(store, trackers, "recent", now - 10 * DAY)
    forgotten = asyncio.run(customer_data.purge(store, trackers, days=365, now=now))
    assert old in forgotten and recent not in forgotten
    assert store.export_conversation(old) == {}
    assert store.export_conversation(recent)["messages"]


def test_the_cli_exports_to_a_private_file_and_forgets(stores, tmp_path):
    store, trackers, endpoints, url = stores
    ana = a_conversation(store, trackers, "ana", time.time())
    env = {**os.environ, "DATABASE_URL": url}

    def cli(*args):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "bot.customer_data", "--endpoints",
                                 str(endpoints), *args], capture_output=True, text=True,
                                cwd=PROJECT_ROOT, env=env)
        return result, time.perf_counter() - started

    out = tmp_path / "ana.json"
    exported, _ = cli("export", ana, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "ana@example.com" in out.read_text() and oct(out.stat().st_mode)[-3:] == "600"
    assert "ana@example.com" not in exported.stdout + exported.stderr
    forgot, seconds = cli("forget", ana)
    assert forgot.returncode == 0 and "3 messages" in forgot.stdout
    print(f"erasing one customer took {seconds:.2f}s (CLI start included)")
    bad, _ = cli("forget", "not a conversation id")
    assert bad.returncode == 2 and "not a conversation id like" in bad.stderr
