"""The web chat's API: a chat is read and written only with the secret it was issued."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from bot.gateway.credentials import digest
from bot.gateway.messages import InboundMessage
from bot.gateway.store import Store
from bot.gateway.store.schema import webchat_sessions
from tests.gateway_support import client, eventually, gateway_settings, running_gateway

CARD = "my card is 4111 1111 1111 1111"
STORED = "my card is •••• 1111"  # cards are cut to their last four on arrival


async def start_chat(http):
    started = await http.post("/chat/api/sessions")
    assert started.status_code == 201
    chat = started.json()
    return chat["session"], {"Authorization": f"Bearer {chat['secret']}"}


async def test_a_chat_is_issued_a_random_secret_stored_only_as_a_digest(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings) as http:
        chats = [(await http.post("/chat/api/sessions")).json() for _ in range(3)]
        engine = app.ctx.gateway.store.engine
        rows = await asyncio.to_thread(
            lambda: engine.connect().execute(sa.select(webchat_sessions)).mappings().all())
    assert len({c["session"] for c in chats}) == len({c["secret"] for c in chats}) == 3
    for chat in chats:
        assert len(chat["session"]) >= 22 and len(chat["secret"]) >= 43  # 128, 256 bits
    stored = {r["session"]: r["secret_sha256"] for r in rows}
    for chat in chats:
        assert stored[chat["session"]] == digest(chat["secret"])
        assert chat["secret"] not in stored.values()


async def test_posting_and_reading_need_the_chats_own_secret(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings) as http:
        mine, my_auth = await start_chat(http)
        theirs, their_auth = await start_chat(http)
        sent = await http.post("/chat/api/messages", headers=my_auth,
                               json={"session": mine, "text": CARD})
        assert sent.status_code == 202
        await app.ctx.gateway.idle()
        own = await http.get("/chat/api/messages", params={"session": mine}, headers=my_auth)
        assert own.status_code == 200 and own.json()["messages"][0]["text"] == STORED

        for headers in ({}, their_auth, {"Authorization": "Bearer " + "q" * 43},
                        {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
                        {"Authorization": "Bearer " + "a" * 5000}):
            read = await http.get("/chat/api/messages", params={"session": mine},
                                  headers=headers)
            assert read.status_code == 401, headers
            assert STORED not in read.text
            write = await http.post("/chat/api/messages", headers=headers,
                                    json={"session": mine, "text": "hi", "name": "Mallory"})
            assert write.status_code == 401, headers
        transcript = await asyncio.to_thread(app.ctx.gateway.store.transcript,
                                             f"webchat:{mine}")
        assert [m.text for m in transcript if m.direction == "in"] == [STORED]
        assert theirs != mine


@pytest.mark.parametrize("session", ["guessed-id-1234", "", "x", "../../etc", "a" * 65, 42])
async def test_a_guessed_or_malformed_session_is_401(tmp_path, rasa, session):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:
        _, auth = await start_chat(http)
        read = await http.get("/chat/api/messages", params={"session": str(session)},
                              headers=auth)
        assert read.status_code == 401
        write = await http.post("/chat/api/messages", headers=auth,
                                json={"session": session, "text": "hello"})
        assert write.status_code == 401


async def test_chats_from_before_secrets_cannot_be_read_by_their_old_id(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)

    def old_chat() -> None:  # the page used to pick its own id and need nothing else
        store = Store(settings.database_url)
        received = store.receive(InboundMessage(channel="webchat", external_id="0b1c-uuid-old",
                                                channel_message_id="m1", text=CARD))
        store.complete_inbound(received.message_id, [])
        store.engine.dispose()

    await asyncio.to_thread(old_chat)
    async with running_gateway(settings), client(settings) as http:
        _, auth = await start_chat(http)
        for headers in ({}, auth):
            read = await http.get("/chat/api/messages", params={"session": "0b1c-uuid-old"},
                                  headers=headers)
            assert read.status_code == 401 and STORED not in read.text


async def test_bad_input_is_still_400(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:
        session, auth = await start_chat(http)
        assert (await http.post("/chat/api/messages", headers=auth, content="nope")
                ).status_code == 400
        assert (await http.post("/chat/api/messages", headers=auth,
                                json={"session": session, "text": "  "})).status_code == 400
        assert (await http.get("/chat/api/messages", headers=auth,
                               params={"session": session, "after": "x"})).status_code == 400
        answered = await http.post("/chat/api/messages", headers=auth,
                                   json={"session": session, "text": "hello"})
        assert answered.status_code == 202
        await eventually(lambda: rasa.texts_for(f"webchat:{session}"))
