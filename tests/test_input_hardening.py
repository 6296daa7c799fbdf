"""Hostile input gets a clear 4xx and changes nothing, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import service_or_skip
from tests.gateway_support import bridge_auth, client, gateway_settings, running_gateway

TOKEN = "agent-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    return f"postgresql://postgres@{host}:{port}/test"


def dm(conversation: str, text: str = "hello", message_id: str = "m1") -> dict:
    return {"channel": "api", "conversation_id": conversation, "sender_name": "Amara",
            "text": text, "channel_message_id": message_id}


def raw_json(conversation: str, text_literal: str) -> bytes:
    """A body with a JSON escape Python's encoder would not write (e.g. a lone surrogate)."""
    return (f'{{"channel": "api", "conversation_id": "{conversation}", "text": "{text_literal}",'
            f' "channel_message_id": "m1"}}').encode()


@pytest.mark.parametrize(("change", "error"), [
    ({"text": "nul \x00 byte"}, "NUL or an unpaired surrogate"),
    ({"conversation_id": "x" * 129}, "external_id must be"),
    ({"conversation_id": "x" * 1_000_000}, "external_id must be"),
    ({"conversation_id": "two words"}, "external_id must be"),
    ({"conversation_id": "zoë"}, "external_id must be"),
    ({"conversation_id": "c1\nINFO forged log line"}, "external_id must be"),
    ({"conversation_id": "x/../../conversations/telegram:999/tracker/events?"},
     "external_id must be"),
    ({"channel_message_id": "m" * 129}, "channel_message_id must be"),
    ({"sender_name": "n" * 201}, "sender_name is longer than 200"),
])
async def test_malformed_messages_are_refused_and_nothing_is_stored(
        tmp_path, rasa, database_url, change, error):
    settings = gateway_settings(tmp_path, rasa.url, database_url=database_url)
    conversation = f"h{uuid.uuid4().hex[:12]}"
    async with running_gateway(settings) as app, client(settings,
                                                        await bridge_auth(settings)) as http:
        response = await http.post("/api/v1/messages", json={**dm(conversation), **change})
        assert response.status_code in (400, 413), response.text
        if response.status_code == 400:
            assert error in response.json()["error"]
        assert await app.ctx.gateway.db.conversation(f"api:{conversation}") is None


async def test_a_lone_surrogate_is_refused_not_a_server_error(tmp_path, rasa, database_url):
    settings = gateway_settings(tmp_path, rasa.url, database_url=database_url)
    conversation = f"h{uuid.uuid4().hex[:12]}"
    async with running_gateway(settings) as app, client(settings,
                                                        await bridge_auth(settings)) as http:
        response = await http.post("/api/v1/messages", content=raw_json(conversation, "\\ud800"),
                                   headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert "unpaired surrogate" in response.json()["error"]
        assert await app.ctx.gateway.db.conversation(f"api:{conversation}") is None


async def test_out_of_range_ids_are_not_found_or_refused(tmp_path, rasa, database_url):
    settings = gateway_settings(tmp_path, rasa.url, database_url=database_url,
                                agent_api_token=TOKEN)
    conversation = f"h{uuid.uuid4().hex[:12]}"
    bridge = await bridge_auth(settings)
    async with running_gateway(settings), client(settings) as http:
        sent = await http.post("/api/v1/messages", json=dm(conversation), headers=bridge)
        assert sent.status_code == 202
        for after in ("99999999999999999999", "-1", "1e9", "2147483648"):
            answer = await http.get(f"/api/v1/conversations/api:{conversation}/messages",
                                    params={"after": after}, headers=bridge)
            assert answer.status_code == 400, after
            assert "after must be a message id" in answer.json()["error"]
        poll = await http.get("/chat/api/messages",
                              params={"session": "s" * 12, "after": "99999999999999999999"})
        assert poll.status_code == 400
        for handoff_id in ("99999999999999999999", "2147483648", "0"):
            found = await http.get(f"/api/v1/handoffs/{handoff_id}", headers=AUTH)
            assert found.status_code == 404, handoff_id
            acted = await http.post(f"/api/v1/handoffs/{handoff_id}/claim", headers=AUTH,
                                    json={"agent": "Sam"})
            assert acted.status_code == 404, handoff_id


async def test_an_oversized_body_is_refused_before_it_is_read(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings, await bridge_auth(settings)) as http:
        response = await http.post("/api/v1/messages", content=b"{" + b" " * 2_000_000 + b"}",
                                   headers={"Content-Type": "application/json"})
        assert response.status_code == 413
