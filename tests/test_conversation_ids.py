"""Conversation ids in Rasa's API paths: the right tracker, and never another one.

A webchat session or DM API conversation id is chosen by whoever calls the
gateway. Put raw into ``/conversations/{id}/tracker/events``, an id like
``x/../../conversations/telegram:999/tracker/events?`` resumed another
customer's conversation. The live test runs against the real Rasa server,
whose Sanic router does not percent-decode: ``:`` must stay raw.
"""

from __future__ import annotations

import httpx
import pytest

from bot.gateway.conversation_ids import is_addressable, path_segment
from bot.gateway.messages import InboundMessage, InvalidMessageError
from bot.gateway.rasa_client import RasaClient, UnaddressableConversationError
from tests.fake_telegram import FakeTelegram
from tests.gateway_support import bridge_auth, client, gateway_settings, running_gateway
from tests.stack import listening_addresses, running_stack

TRAVERSAL = "x/../../conversations/telegram:999/tracker/events?"
OTHER = "telegram:999"


@pytest.mark.parametrize("conversation_id", [
    "telegram:12345", "telegram:-100777888", "api:c1",
    "webchat:6f1c2a4e-9b1d-4c1e-8f0a-2b3c4d5e6f70", "api:a.b_c~d@e"])
def test_real_ids_are_sent_as_they_are(conversation_id):
    assert path_segment(conversation_id) == conversation_id
    assert is_addressable(conversation_id)


@pytest.mark.parametrize(("conversation_id", "segment"), [
    (TRAVERSAL, "x%2F..%2F..%2Fconversations%2Ftelegram:999%2Ftracker%2Fevents%3F"),
    ("api:a b#c%d", "api:a%20b%23c%25d"), ("..", "%2E%2E"), ("api:é", "api:%C3%A9")])
def test_anything_else_is_escaped_into_one_segment_and_refused(conversation_id, segment):
    assert path_segment(conversation_id) == segment
    assert "/" not in path_segment(conversation_id)
    assert not is_addressable(conversation_id)


def test_an_id_rasa_could_not_address_is_refused_at_the_door():
    with pytest.raises(InvalidMessageError, match="external_id must be"):
        InboundMessage(channel="webchat", external_id=TRAVERSAL, channel_message_id="m1",
                       text="hello")


async def test_a_traversal_id_is_refused_by_the_web_chat_and_the_dm_api(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:
        answer = await http.post("/chat/api/messages", json={"session": TRAVERSAL,
                                                             "text": "hello"})
        assert answer.status_code == 401  # no chat has that id, nor could one
        dm = {"channel": "api", "conversation_id": "c1/../../x", "text": "hi",
              "channel_message_id": "m1"}
        refused = await http.post("/api/v1/messages", json=dm,
                                  headers=await bridge_auth(settings))
        assert refused.status_code == 400 and "external_id must be" in refused.text
    assert rasa.received == []


async def test_the_hand_back_sends_the_token_and_refuses_a_traversal_id(rasa):
    rasa_client = RasaClient(rasa.url, token="s3cret-rasa")
    try:
        await rasa_client.hand_back("telegram:12345")
        with pytest.raises(UnaddressableConversationError):
            await rasa_client.hand_back(TRAVERSAL)
    finally:
        await rasa_client.close()
    assert [call["path"].split("?")[0] for call in rasa.api_calls] == [
        "/conversations/telegram:12345/tracker/events",
        "/conversations/telegram:12345/trigger_intent"]
    assert {call["token"] for call in rasa.api_calls} == {"s3cret-rasa"}
    assert rasa.handed_back == ["telegram:12345"]


def events_of(tracker: dict) -> list:
    return [(e["event"], e.get("name")) for e in tracker["events"]]


@pytest.mark.model
async def test_real_rasa_reaches_the_right_tracker_and_no_other(model_path):
    fake = FakeTelegram()
    await fake.start()
    try:
        async with running_stack(model_path, fake) as stack:
            rasa_port = int(stack.rasa_url.rsplit(":", 1)[1])
            assert listening_addresses(rasa_port) == {"127.0.0.1"}
            for chat in (12345, 999):  # two customers with trackers in Rasa
                fake.push_update(fake.text_update(chat, "hi", first_name="Amara"))
                await fake.wait_for_sent(chat, 2, timeout=60)
            api = httpx.AsyncClient(base_url=stack.rasa_url, timeout=60,
                                    params={"token": stack.rasa_token})
            async with api:
                assert (await api.get("/conversations/telegram:12345/tracker",
                                      params={"token": ""})).status_code == 401
                other_before = (await api.get(f"/conversations/{OTHER}/tracker")).json()

                rasa_client = RasaClient(stack.rasa_url, token=stack.rasa_token)
                try:
                    said = await rasa_client.hand_back("telegram:12345")
                    with pytest.raises(UnaddressableConversationError):
                        await rasa_client.hand_back(TRAVERSAL)
                    # Escaped but sent anyway, the traversal id is only a name to Rasa.
                    await rasa_client._post(
                        f"{stack.rasa_url}/conversations/{path_segment(TRAVERSAL)}"
                        "/tracker/events", [{"event": "pause"}],
                        params={"token": stack.rasa_token})
                finally:
                    await rasa_client.close()
                assert said and "How did we do?" in said[0].text
                mine = (await api.get("/conversations/telegram:12345/tracker")).json()
                assert mine["sender_id"] == "telegram:12345"
                assert ("resume", None) in events_of(mine)
                assert ("action", "action_resume_after_handoff") in events_of(mine)
                other_after = (await api.get(f"/conversations/{OTHER}/tracker")).json()
                assert other_after["events"] == other_before["events"]
                assert not other_after["paused"]
    finally:
        await fake.stop()
