"""Handoff in the gateway: the record, the quiet bot, agents' replies, resolve, CSAT."""

from __future__ import annotations

import pytest

from bot.gateway.messages import InboundMessage
from bot.handoff_contract import RATING_SCALE, rating_payload
from tests.gateway_support import bridge_auth, client, eventually, gateway_settings, running_gateway

TOKEN = "agent-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def dm(text, message_id, conversation="c1"):
    return {"channel": "api", "conversation_id": conversation, "sender_name": "Amara Okafor",
            "text": text, "channel_message_id": message_id}


async def queue(http):
    return (await http.get("/api/v1/handoffs/", headers=AUTH)).json()["handoffs"]


async def test_a_handoff_is_recorded_with_context_and_the_bot_goes_quiet(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=TOKEN)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        [handoff] = await eventually(lambda: queue(http))
        assert (handoff["reason"], handoff["priority"], handoff["status"]) == (
            "customer_request", "high", "open")
        assert handoff["context"]["details"] == {"order_id": "JL-204815"}
        assert handoff["context"]["turns"][0]["intent"] == "request_human"
        assert handoff["sla_due_at"] > handoff["created_at"]
        assert app.ctx.gateway.store.conversation("api:c1")["mode"] == "human"

        await http.post("/api/v1/messages", json=dm("hello? anyone?", "m2"))
        await app.ctx.gateway.idle()
        detail = (await http.get(f"/api/v1/handoffs/{handoff['id']}", headers=AUTH)).json()
        texts = [m["text"] for m in detail["transcript"]]
        assert "hello? anyone?" in texts  # reaches the agent
        assert detail["customer_name"] == "Amara"
        assert [m["kind"] for m in detail["transcript"]].count("reply") == 1  # bot is quiet


async def test_agent_reply_claims_and_reaches_the_customer_signed(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=TOKEN)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        [handoff] = await eventually(lambda: queue(http))
        response = await http.post(f"/api/v1/handoffs/{handoff['id']}/reply", headers=AUTH,
                                   json={"agent": "Sam Patel", "text": "Hi Amara, I'm on it."})
        assert response.status_code == 202
        await app.ctx.gateway.idle()
        transcript = (await http.get("/api/v1/conversations/api:c1/messages")).json()
        agent_message = [m for m in transcript["messages"] if m["kind"] == "agent"][0]
        assert agent_message["text"] == "Hi Amara, I'm on it.\n\n— Sam, Juniper Lane"
        assert (await queue(http))[0]["status"] == "claimed"


async def test_resolving_resumes_the_bot_and_asks_for_a_rating(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=TOKEN)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        [handoff] = await eventually(lambda: queue(http))
        resolved = await http.post(f"/api/v1/handoffs/{handoff['id']}/resolve", headers=AUTH,
                                   json={"agent": "Sam"})
        assert resolved.json()["status"] == "resolved"
        assert rasa.resumed[0]["events"][0] == {"event": "resume"}
        assert await queue(http) == []
        await app.ctx.gateway.idle()
        transcript = (await http.get("/api/v1/conversations/api:c1/messages")).json()
        question = [m for m in transcript["messages"] if m["kind"] == "csat"][0]
        payloads = [b["payload"] for b in question["buttons"]]
        assert payloads == [rating_payload(n) for n in RATING_SCALE]

        # The bot answers again, and the rating lands on the record.
        await http.post("/api/v1/messages", json=dm("thanks!", "m2"))
        await eventually(lambda: "echo: thanks!" in rasa_texts(app))
        # The customer taps "5" (a button press arrives as its payload).
        await app.ctx.gateway.receive(InboundMessage(
            channel="api", external_id="c1", channel_message_id="m3", text="5",
            payload=rating_payload(5)))
        await app.ctx.gateway.idle()
        assert app.ctx.gateway.store.handoff(handoff["id"])["csat"] == 5
        again = await http.post(f"/api/v1/handoffs/{handoff['id']}/resolve", headers=AUTH,
                                json={"agent": "Sam"})
        assert again.status_code == 409


def rasa_texts(app):
    return [m.text for m in app.ctx.gateway.store.transcript("api:c1") if m.kind == "reply"]


async def test_internal_notes_stay_internal(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=TOKEN)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        [handoff] = await eventually(lambda: queue(http))
        noted = await http.post(f"/api/v1/handoffs/{handoff['id']}/notes", headers=AUTH,
                                json={"agent": "Sam", "text": "VIP, refund approved"})
        assert noted.json()["notes"][0]["text"] == "VIP, refund approved"
        await app.ctx.gateway.idle()
        texts = [m.text for m in app.ctx.gateway.store.transcript("api:c1")]
        assert "VIP, refund approved" not in texts


@pytest.mark.parametrize(("token", "headers", "status"), [
    (None, AUTH, 403),               # API off without a token configured
    (TOKEN, {}, 401),
    (TOKEN, {"Authorization": "Bearer wrong"}, 401),
])
async def test_no_customer_data_without_credentials(tmp_path, rasa, token, headers, status):
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=token)
    async with running_gateway(settings), client(settings) as http:
        response = await http.get("/api/v1/handoffs/", headers=headers)
        assert response.status_code == status
        assert "handoffs" not in response.json()


async def test_agent_input_is_checked(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=TOKEN)
    auth = await bridge_auth(settings)
    async with running_gateway(settings), client(settings, auth) as http:
        missing = await http.post("/api/v1/handoffs/99/reply", headers=AUTH,
                                  json={"agent": "Sam", "text": "hi"})
        assert missing.status_code == 404
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        [handoff] = await eventually(lambda: queue(http))
        empty = await http.post(f"/api/v1/handoffs/{handoff['id']}/reply", headers=AUTH,
                                json={"agent": "Sam", "text": "  "})
        nobody = await http.post(f"/api/v1/handoffs/{handoff['id']}/claim", headers=AUTH,
                                 json={})
        assert (empty.status_code, nobody.status_code) == (400, 400)
