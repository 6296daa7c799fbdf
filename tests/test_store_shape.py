"""The store: older databases migrate, and no handler blocks the event loop on it."""

from __future__ import annotations

import asyncio
import re

import pytest
import sqlalchemy as sa

from bot.gateway.agents.accounts import add_agent
from bot.gateway.messages import InboundMessage
from bot.gateway.store import BlockingStoreCallError, Store, StoreBase
from tests.gateway_support import (
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    inbox_sign_in,
    running_gateway,
)

TOKEN = "agent-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "correct horse battery"


def test_a_database_from_before_loses_the_dead_mode_column(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sa.create_engine(url)
    with old.begin() as db:  # the conversations table as earlier versions made it
        db.execute(sa.text(
            "CREATE TABLE conversations (id VARCHAR(255) PRIMARY KEY, channel VARCHAR(32) "
            "NOT NULL, external_id VARCHAR(200) NOT NULL, customer_name VARCHAR(100), "
            "mode VARCHAR(16) NOT NULL, created_at FLOAT NOT NULL, last_inbound_at FLOAT, "
            "last_ack_at FLOAT)"))
        db.execute(sa.text("INSERT INTO conversations VALUES ('api:old', 'api', 'old', "
                           "'Amara', 'bot', 1.0, 1.0, 1.0)"))
    store = Store(url)
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("conversations")}
    assert "mode" not in columns
    assert store.conversation("api:old")["customer_name"] == "Amara"
    store.receive(InboundMessage(channel="api", external_id="new", channel_message_id="m1",
                                 text="hello"))
    assert store.conversation("api:new")["mode"] == "bot"
    Store(url)  # migrating twice is harmless


def test_every_sqlite_connection_syncs_each_commit(tmp_path):
    """synchronous=FULL (2): an acknowledged message survives a power loss under WAL."""
    store = Store(f"sqlite:///{tmp_path / 'durable.db'}")
    for _ in range(2):  # a fresh connection each time, not only the first
        with store.engine.connect() as db:
            assert db.exec_driver_sql("PRAGMA synchronous").scalar() == 2
            assert db.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        store.engine.dispose()


@pytest.fixture
def loop_guard(monkeypatch):
    """Every store call made on the event loop's thread raises instead of blocking."""
    monkeypatch.setattr(StoreBase, "forbid_event_loop", True)


async def test_the_guard_refuses_a_blocking_call_on_the_loop(tmp_path, loop_guard):
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    with pytest.raises(BlockingStoreCallError):
        store.conversation("api:c1")
    assert await asyncio.to_thread(store.conversation, "api:c1") is None


async def test_no_handler_makes_a_blocking_store_call(tmp_path, rasa, loop_guard):
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=TOKEN)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        store = app.ctx.gateway.store
        await asyncio.to_thread(add_agent, store, "sam", "Sam Patel", PASSWORD)
        dm = {"channel": "api", "conversation_id": "c1", "sender_name": "Amara Okafor",
              "text": "human please", "channel_message_id": "m1"}
        assert (await http.post("/api/v1/messages", json=dm)).status_code == 202
        await eventually(lambda: asyncio.to_thread(store.handoff, 1))
        assert (await http.get("/api/v1/conversations/api:c1/messages")).status_code == 200
        started = await http.post("/chat/api/sessions")
        assert started.status_code == 201
        session, chat_auth = (started.json()["session"],
                              {"Authorization": f"Bearer {started.json()['secret']}"})
        chat = await http.post("/chat/api/messages", headers=chat_auth,
                               json={"session": session, "text": "hello"})
        assert chat.status_code == 202
        assert (await http.get(f"/chat/api/messages?session={session}",
                               headers=chat_auth)).status_code == 200

        for path in ("/api/v1/handoffs/", "/api/v1/handoffs/1"):
            assert (await http.get(path, headers=AUTH)).status_code == 200
        for action, body in (("claim", {"agent": "Lee"}),
                             ("notes", {"agent": "Lee", "text": "VIP"}),
                             ("reply", {"agent": "Lee", "text": "Hello Amara"})):
            answer = await http.post(f"/api/v1/handoffs/1/{action}", headers=AUTH, json=body)
            assert answer.status_code in (200, 202), (action, answer.text)

        login = await inbox_sign_in(http, "sam", PASSWORD)
        assert login.status_code == 303
        for path in ("/inbox/", "/inbox/queue", "/inbox/handoffs/1",
                     "/inbox/handoffs/1/transcript"):
            assert (await http.get(path)).status_code == 200, path
        page = (await http.get("/inbox/handoffs/1")).text
        csrf = re.search(r"name=csrf value='([^']+)'", page).group(1)
        customer = next(m for m in await asyncio.to_thread(store.transcript, "api:c1")
                        if m.direction == "in")
        for path, data in (("/inbox/handoffs/1/claim", {}),
                           ("/inbox/handoffs/1/notes", {"text": "called them"}),
                           (f"/inbox/messages/{customer.id}/misunderstood", {"handoff": "1"}),
                           (f"/inbox/messages/{customer.id}/understood", {"handoff": "1"}),
                           ("/inbox/handoffs/1/resolve", {})):
            answer = await http.post(path, data={"csrf": csrf, **data})
            assert answer.status_code == 303, (path, answer.text)
        await app.ctx.gateway.idle()
        assert (await http.post("/inbox/logout", data={"csrf": csrf})).status_code == 302
        handoff = await asyncio.to_thread(store.handoff, 1)
        assert handoff["status"] == "resolved"
