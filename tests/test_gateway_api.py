"""The gateway through its DM API: acknowledge at once, lose nothing, keep order."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from tests.gateway_support import (
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    running_gateway,
)


def dm(text: str, message_id: str, conversation: str = "c1", name: str = "Amara Okafor"):
    return {"channel": "api", "conversation_id": conversation, "sender_name": name,
            "text": text, "channel_message_id": message_id}


async def transcript(http, conversation: str = "api:c1"):
    response = await http.get(f"/api/v1/conversations/{conversation}/messages")
    return response.json()["messages"]


async def replies(http, conversation: str = "api:c1"):
    return [m["text"] for m in await transcript(http, conversation) if m["kind"] == "reply"]


async def test_first_message_is_acknowledged_then_answered(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings), client(settings, auth) as http:
        response = await http.post("/api/v1/messages", json=dm("where is my order", "m1"))
        assert response.status_code == 202
        assert response.json()["acknowledged"] is True
        assert await eventually(lambda: replies(http)) == ["echo: where is my order"]
        messages = await transcript(http)
        assert [(m["direction"], m["kind"]) for m in messages] == [
            ("inbound", "message"), ("outbound", "ack"), ("outbound", "reply")]
        ack = messages[1]["text"]
        assert ack.startswith("Hi Amara, thanks for your message!")
        assert messages[0]["created_at"].endswith("+00:00")
        assert rasa.received[0]["metadata"]["first_name"] == "Amara"


async def test_redelivered_message_is_stored_and_answered_once(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        first = await http.post("/api/v1/messages", json=dm("hello", "m1"))
        again = await http.post("/api/v1/messages", json=dm("hello", "m1"))
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.json()["duplicate"] is True
        assert again.json()["message_id"] == first.json()["message_id"]
        await app.ctx.gateway.idle()
        assert rasa.texts_for("api:c1") == ["hello"]
        assert len(await transcript(http)) == 3


async def test_a_burst_gets_one_acknowledgement_and_a_later_message_another(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, ack_gap_minutes=0.01)  # 0.6 s
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        for i in range(3):
            await http.post("/api/v1/messages", json=dm(f"part {i}", f"m{i}"))
        await app.ctx.gateway.idle()
        kinds = [m["kind"] for m in await transcript(http)]
        assert kinds.count("ack") == 1
        await asyncio.sleep(0.7)
        response = await http.post("/api/v1/messages", json=dm("back again", "m9"))
        assert response.json()["acknowledged"] is True


async def test_one_conversation_in_order_many_in_parallel(tmp_path, rasa):
    rasa.delay = 0.05
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        async def customer(c: int) -> list:
            # One customer types one message after another; 8 customers at once.
            return [(await http.post("/api/v1/messages", json=dm(f"msg {i}", f"m{i}", f"c{c}")))
                    .status_code for i in range(6)]

        statuses = await asyncio.gather(*(customer(c) for c in range(8)))
        assert all(s == 202 for row in statuses for s in row)
        await app.ctx.gateway.idle()
        assert rasa.max_in_flight > 1  # conversations were processed in parallel
        for c in range(8):
            expected = [f"msg {i}" for i in range(6)]
            assert rasa.texts_for(f"api:c{c}") == expected
            assert await replies(http, f"api:c{c}") == [f"echo: {t}" for t in expected]


async def test_rasa_down_customer_still_acknowledged_and_answered_after(tmp_path, rasa):
    await rasa.stop()
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings), client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("anyone there?", "m1"))
        await http.post("/api/v1/messages", json=dm("hello??", "m2"))
        kinds = await eventually(lambda: _kinds(http))
        assert kinds.count("ack") == 1
        await asyncio.sleep(0.5)
        assert await replies(http) == []
        await rasa.start()
        assert await eventually(lambda: _replies_count(http, 2)) == [
            "echo: anyone there?", "echo: hello??"]


async def test_gateway_restart_mid_queue_loses_and_repeats_nothing(tmp_path, rasa):
    await rasa.stop()
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings), client(settings, auth) as http:
        for i in range(3):
            await http.post("/api/v1/messages", json=dm(f"queued {i}", f"m{i}"))
        await eventually(lambda: _kinds(http))
    await rasa.start()
    async with running_gateway(settings), client(settings, auth) as http:
        assert await eventually(lambda: _replies_count(http, 3)) == [
            "echo: queued 0", "echo: queued 1", "echo: queued 2"]
        kinds = [m["kind"] for m in await transcript(http)]
        assert kinds.count("ack") == 1
        assert rasa.texts_for("api:c1") == ["queued 0", "queued 1", "queued 2"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("not json", "JSON object"),
        ({"channel": "api"}, "missing field(s): conversation_id, text, channel_message_id"),
        ({**dm("hi", "m1"), "text": 42}, "must be strings: text"),
        ({**dm("hi", "m1"), "channel": "pigeon"}, "unknown channel 'pigeon'"),
        ({**dm("   ", "m1")}, "text must be a non-empty string"),
        ({**dm("x" * 10001, "m1")}, "longer than 10000"),
        ({**dm("hi", "")}, "channel_message_id must be a non-empty string"),
    ],
)
async def test_bad_input_gets_a_clear_error_and_changes_nothing(tmp_path, rasa, body, error):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings), client(settings, auth) as http:
        if isinstance(body, str):
            response = await http.post("/api/v1/messages", content=body)
        else:
            response = await http.post("/api/v1/messages", json=body)
        assert response.status_code == 400
        assert error in response.json()["error"]
        missing = await http.get("/api/v1/conversations/api:c1/messages")
        assert missing.status_code == 404


async def test_transcript_pages_with_after_and_rejects_nonsense(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("one", "m1"))
        await app.ctx.gateway.idle()
        messages = await transcript(http)
        newer = await http.get("/api/v1/conversations/api:c1/messages",
                               params={"after": messages[0]["id"]})
        assert [m["id"] for m in newer.json()["messages"]] == [m["id"] for m in messages[1:]]
        bad = await http.get("/api/v1/conversations/api:c1/messages", params={"after": "x"})
        assert bad.status_code == 400


async def test_the_api_is_described_as_openapi(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:  # no credential needed
        spec = yaml.safe_load((await http.get("/api/v1/openapi.yaml")).text)
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/api/v1/messages", "/api/v1/conversations/{conversation_id}/messages",
        "/api/v1/openapi.yaml", "/api/v1/handoffs", "/api/v1/handoffs/{handoff_id}",
        "/api/v1/handoffs/{handoff_id}/reply", "/api/v1/handoffs/{handoff_id}/{action}"}


async def _kinds(http):
    return [m["kind"] for m in await transcript(http)] if await _exists(http) else []


async def _exists(http):
    return (await http.get("/api/v1/conversations/api:c1/messages")).status_code == 200


async def _replies_count(http, count):
    found = await replies(http)
    return found if len(found) >= count else None
