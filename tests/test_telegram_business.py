"""Telegram Business: the bot answering customers' DMs to a brand's own Telegram account.

python-telegram-bot's real HTTP client against the fake Bot API server, and a
RasaStandIn for Rasa, as in test_gateway_telegram.py.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from telegram import Bot, BusinessConnection
from telegram.error import BadRequest

from bot.gateway.channels.telegram import (
    BUSINESS_CHANNEL,
    SECRET_HEADER,
    UNSUPPORTED_REPLY,
    WEBHOOK_PATH,
    BusinessConnectionState,
)
from tests.fake_telegram import BUSINESS_CONNECTION_INVALID, BUSINESS_OWNER_ID
from tests.gateway_support import eventually, running_gateway
from tests.test_gateway_telegram import telegram_settings

CHAT = 5552001  # a customer's private chat with the brand's account
LOGGER = "bot.gateway.channels.telegram"


def conversation(connection_id, chat=CHAT):
    return f"{BUSINESS_CHANNEL}:{connection_id}:{chat}"


def texts(fake, chat=CHAT):
    return [m["text"] for m in fake.sent(chat)]


async def connected(fake, app, **options):
    """A brand account connects the bot, and the gateway has heard of it."""
    connection = fake.add_business_connection(**options)
    fake.push_update(fake.business_connection_update(connection["id"]))
    store = app.ctx.gateway.store
    await eventually(lambda: asyncio.to_thread(store.business_connection, connection["id"]))
    return connection["id"]


def telegram_log(caplog):
    return "\n".join(r.getMessage() for r in caplog.records if r.name == LOGGER)


async def test_a_customers_dm_is_acknowledged_and_answered_through_the_connection(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        connection_id = await connected(fake, app)
        fake.push_update(fake.business_text_update(connection_id, CHAT, "where is my parcel"))
        sent = await fake.wait_for_sent(CHAT, 2)
        assert sent[0]["text"].startswith("Hi Amara, thanks for your message!")
        assert sent[1]["text"] == "echo: where is my parcel"
        assert [m["business_connection_id"] for m in sent] == [connection_id] * 2
        # Telegram shows them as the account's, sent by this bot.
        assert {m["from"]["id"] for m in fake.sent_messages(CHAT)} == {BUSINESS_OWNER_ID}
        typing = await fake.wait_for_calls("sendChatAction")
        assert typing[0]["business_connection_id"] == connection_id
        assert typing[0]["chat_id"] == CHAT
        assert rasa.received[0]["sender"] == conversation(connection_id)
        assert rasa.received[0]["metadata"]["channel"] == BUSINESS_CHANNEL
        stored = app.ctx.gateway.store.conversation(conversation(connection_id))
        assert (stored["channel"], stored["external_id"]) == (BUSINESS_CHANNEL,
                                                              f"{connection_id}:{CHAT}")
        assert app.ctx.gateway.store.conversation(f"telegram:{CHAT}") is None
        assert not fake.calls_of("getBusinessConnection")  # the update told us


async def test_webhook_mode_asks_for_business_updates_and_takes_them(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    settings = telegram_settings(tmp_path, rasa, fake,
                                 telegram_webhook_url="https://bot.example/telegram/webhook",
                                 telegram_webhook_secret="s3cret-token")
    async with running_gateway(settings) as app:
        assert {"business_connection", "business_message", "edited_business_message",
                "deleted_business_messages"} <= set(fake.webhook["allowed_updates"])
        connection_id = fake.add_business_connection()["id"]
        url = f"http://{settings.host}:{settings.port}{WEBHOOK_PATH}"
        headers = {SECRET_HEADER: "s3cret-token"}
        async with httpx.AsyncClient() as http:
            for n, update in enumerate([
                    fake.business_connection_update(connection_id),
                    fake.business_text_update(connection_id, CHAT, "hi from the webhook")]):
                answer = await http.post(url, json={**update, "update_id": 900100 + n},
                                         headers=headers)
                assert answer.status_code == 200
        # Both stored by the time Telegram got its 200s.
        assert app.ctx.gateway.store.business_connection(connection_id)["can_reply"]
        assert app.ctx.gateway.store.conversation(conversation(connection_id)) is not None
        sent = await fake.wait_for_sent(CHAT, 2)
        assert sent[1]["text"] == "echo: hi from the webhook"
        assert sent[1]["business_connection_id"] == connection_id


async def test_a_redelivered_business_message_is_stored_and_answered_once(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        connection_id = await connected(fake, app)
        update = fake.business_text_update(connection_id, CHAT, "hello")
        update_id = fake.push_update(update)
        await fake.wait_for_sent(CHAT, 2)
        fake.push_update({**update, "update_id": update_id})  # Telegram sends it again
        await eventually(lambda: fake.pending_updates == 0)
        await app.ctx.gateway.idle()
        await asyncio.sleep(0.3)
        assert texts(fake).count("echo: hello") == 1
        assert rasa.texts_for(conversation(connection_id)) == ["hello"]
        inbound = [m for m in app.ctx.gateway.store.transcript(conversation(connection_id))
                   if m.direction == "in"]
        assert len(inbound) == 1


async def test_an_edited_business_message_is_a_new_message(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        connection_id = await connected(fake, app)
        original = fake.business_text_update(connection_id, CHAT, "where is my ordr")
        fake.push_update(original)
        await fake.wait_for_sent(CHAT, 2)
        message_id = original["business_message"]["message_id"]
        fake.push_update(fake.edited_business_text_update(connection_id, CHAT, message_id,
                                                          "where is my order"))
        sent = await fake.wait_for_sent(CHAT, 3)
        assert sent[-1]["text"] == "echo: where is my order"
        assert sent[-1]["business_connection_id"] == connection_id
        assert rasa.texts_for(conversation(connection_id)) == ["where is my ordr",
                                                               "where is my order"]


async def test_media_in_a_business_chat_gets_the_polite_answer(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        connection_id = await connected(fake, app)
        fake.push_update(fake.business_update(fake.photo_update(CHAT), connection_id))
        sent = await fake.wait_for_sent(CHAT, 2)
        assert sent[1]["text"] == UNSUPPORTED_REPLY
        assert sent[1]["business_connection_id"] == connection_id
        assert rasa.received == []


async def test_buttons_pressed_in_a_business_chat_come_back_to_that_conversation(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        connection_id = await connected(fake, app)
        fake.push_update(fake.business_text_update(connection_id, CHAT, "buttons please"))
        sent = await fake.wait_for_sent(CHAT, 2)
        assert [row[0]["callback_data"] for row in sent[1]["reply_markup"]["inline_keyboard"]
                ] == ["/affirm", "/deny"]
        pressed = fake.sent_messages(CHAT)[1]["message_id"]
        fake.push_update(fake.callback_update(CHAT, "/affirm", pressed))
        sent = await fake.wait_for_sent(CHAT, 3)
        assert rasa.texts_for(conversation(connection_id))[-1] == "/affirm"
        assert sent[2]["business_connection_id"] == connection_id
        assert rasa.texts_for(f"telegram:{CHAT}") == []


async def test_the_owner_writing_in_the_chat_pauses_the_bot_there(
        tmp_path, rasa, fake_telegram, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        store = app.ctx.gateway.store
        connection_id = await connected(fake, app)
        conv = conversation(connection_id)
        fake.push_update(fake.business_text_update(connection_id, CHAT, "my parcel is late"))
        await fake.wait_for_sent(CHAT, 2)
        owner = fake.business_text_update(connection_id, CHAT, "Hi Amara, I'll sort this out",
                                          from_owner=True)
        owner_update_id = fake.push_update(owner)
        handoff = await eventually(lambda: asyncio.to_thread(store.open_handoff_for, conv))
        assert (handoff["status"], handoff["claimed_by"]) == ("claimed", "Juniper")
        assert handoff["reason"] == "taken_over"
        fake.push_update({**owner, "update_id": owner_update_id})  # redelivered: once
        fake.push_update(fake.business_text_update(connection_id, CHAT, "thanks, and a refund?"))
        await eventually(lambda: "thanks, and a refund?" in rasa.texts_for(conv))
        await eventually(lambda: fake.pending_updates == 0)
        await app.ctx.gateway.idle()
        await asyncio.sleep(0.3)
        assert len(fake.sent(CHAT)) == 2  # no answer from the bot while the owner has it
        assert "Hi Amara, I'll sort this out" not in rasa.texts_for(conv)  # not a customer's
        transcript = store.transcript(conv)
        agent = [m for m in transcript if m.kind == "agent"]
        assert [(m.text, m.status) for m in agent] == [("Hi Amara, I'll sort this out", "sent")]
        assert [m.text for m in transcript if m.direction == "in"] == [
            "my parcel is late", "thanks, and a refund?"]
        assert store.conversation(conv)["mode"] == "human"
        assert "the account owner wrote in chat" in telegram_log(caplog)
        assert "Amara" not in telegram_log(caplog)
        # Resolved in the inbox: the bot has the conversation again, through the connection.
        await app.ctx.gateway.handoffs.resolve(handoff["id"], "Juniper", "inbox")
        sent = await fake.wait_for_sent(CHAT, 3)
        assert sent[2]["text"] == "How did we do? Tap a number."
        fake.push_update(fake.business_text_update(connection_id, CHAT, "all good now"))
        sent = await fake.wait_for_sent(CHAT, 4)
        assert sent[3]["text"] == "echo: all good now"
        assert {m["business_connection_id"] for m in sent} == {connection_id}


async def test_the_owner_writing_first_opens_a_claimed_handoff(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        store = app.ctx.gateway.store
        connection_id = await connected(fake, app)
        fake.push_update(fake.business_text_update(connection_id, CHAT, "Hello from Juniper!",
                                                   from_owner=True))
        conv = conversation(connection_id)
        handoff = await eventually(lambda: asyncio.to_thread(store.open_handoff_for, conv))
        assert handoff["status"] == "claimed"
        fake.push_update(fake.business_text_update(connection_id, CHAT, "hi, my order?"))
        await eventually(lambda: rasa.texts_for(conv) == ["hi, my order?"])
        await app.ctx.gateway.idle()
        # The customer's first message is acknowledged; the bot's answer is held back.
        assert [t.startswith("Hi Amara") for t in texts(fake)] == [True]


async def test_a_disabled_connection_sends_nothing_more_and_is_logged(
        tmp_path, rasa, fake_telegram, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        store = app.ctx.gateway.store
        connection_id = await connected(fake, app)
        conv = conversation(connection_id)
        fake.push_update(fake.business_text_update(connection_id, CHAT, "hello"))
        await fake.wait_for_sent(CHAT, 2)
        fake.push_update(fake.business_connection_update(connection_id, is_enabled=False))
        await eventually(lambda: not store.business_connection(connection_id)["is_enabled"])
        # A message Telegram delivered just before the owner switched the bot off.
        fake.push_update(fake.business_text_update(connection_id, CHAT, "are you there?"))
        await eventually(lambda: "are you there?" in rasa.texts_for(conv))
        await app.ctx.gateway.idle()
        calls = len(fake.calls_of("sendMessage"))
        await asyncio.sleep(0.3)
        assert len(fake.calls_of("sendMessage")) == calls == 2  # not even tried
        [failed] = [m for m in store.transcript(conv)
                    if m.direction == "out" and m.status not in {"sent"}]
        assert failed.status == "dead"
        assert "is disabled" in failed.last_error and connection_id in failed.last_error
        handoff = store.open_handoff_for(conv)
        assert handoff["reason"] == "delivery_failed"  # agents are told
        log = telegram_log(caplog)
        assert f"Telegram Business connection {connection_id} (account {BUSINESS_OWNER_ID}) " \
               "is disabled: replies to its chats are not sent" in log
        assert "Amara" not in log and "Juniper" not in log


async def test_a_connection_without_the_right_to_reply_sends_nothing(
        tmp_path, rasa, fake_telegram, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        connection_id = await connected(fake, app, can_reply=False)
        conv = conversation(connection_id)
        fake.push_update(fake.business_text_update(connection_id, CHAT, "hello"))
        await eventually(lambda: rasa.texts_for(conv) == ["hello"])
        await app.ctx.gateway.idle()
        assert fake.sent(CHAT) == [] and not fake.calls_of("sendMessage")
        assert not fake.calls_of("sendChatAction")
        assert "enabled without the right to reply" in telegram_log(caplog)


async def test_a_connection_unknown_to_the_gateway_is_asked_of_telegram(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        # Connected while the gateway was not listening: no business_connection update.
        connection_id = fake.add_business_connection()["id"]
        fake.push_update(fake.business_text_update(connection_id, CHAT, "hello"))
        sent = await fake.wait_for_sent(CHAT, 2)
        assert [m["business_connection_id"] for m in sent] == [connection_id] * 2
        [asked] = fake.calls_of("getBusinessConnection")
        assert asked["business_connection_id"] == connection_id
        stored = app.ctx.gateway.store.business_connection(connection_id)
        assert (stored["owner_user_id"], stored["is_enabled"], stored["can_reply"]) == (
            BUSINESS_OWNER_ID, True, True)


async def test_a_connection_telegram_does_not_know_is_skipped(
        tmp_path, rasa, fake_telegram, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        fake.push_update(fake.business_text_update("BCgone", CHAT, "hello"))
        fake.push_update(fake.text_update(CHAT + 1, "hi bot"))  # not held up behind it
        await fake.wait_for_sent(CHAT + 1, 2)
        await eventually(lambda: fake.pending_updates == 0)
        await app.ctx.gateway.idle()
        assert fake.sent(CHAT) == []
        assert "connection BCgone is unknown" in telegram_log(caplog)


async def test_a_restarted_gateway_still_knows_the_connection(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    settings = telegram_settings(tmp_path, rasa, fake)
    async with running_gateway(settings) as app:
        connection_id = await connected(fake, app)
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        conv = conversation(connection_id)
        fake.push_update(fake.business_text_update(connection_id, CHAT, "hello again"))
        sent = await fake.wait_for_sent(CHAT, 2)
        assert sent[1]["text"] == "echo: hello again"
        fake.push_update(fake.business_text_update(connection_id, CHAT, "I've got this",
                                                   from_owner=True))  # still the owner
        await eventually(lambda: asyncio.to_thread(app.ctx.gateway.store.open_handoff_for,
                                                   conv))
        assert not fake.calls_of("getBusinessConnection")
        assert "I've got this" not in rasa.texts_for(conv)


async def test_deleted_business_messages_are_logged_by_id(tmp_path, rasa, fake_telegram, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        connection_id = await connected(fake, app)
        fake.push_update(fake.deleted_business_messages_update(connection_id, CHAT, [7, 8]))
        await eventually(lambda: fake.pending_updates == 0)
        await eventually(lambda: "2 message(s) deleted" in telegram_log(caplog))
        assert f"chat {CHAT} (connection {connection_id}): 7,8" in telegram_log(caplog)
        assert app.ctx.gateway.store.conversation(conversation(connection_id)) is None


def test_rights_come_from_bot_api_9_or_the_older_can_reply():
    def state(**fields):
        data = {"id": "BC1", "user": {"id": 5, "is_bot": False, "first_name": "J"},
                "user_chat_id": 5, "date": 1_700_000_000, "is_enabled": True, **fields}
        return BusinessConnectionState.from_telegram(BusinessConnection.de_json(data, None))

    assert state(rights={"can_reply": True}).can_send
    assert not state(rights={"can_read_messages": True}).can_send
    assert state(can_reply=True).can_send  # before Bot API 9.0
    assert not state().can_send
    assert state(rights={"can_reply": True}, is_enabled=False).status == "disabled"


async def test_the_fake_refuses_sends_through_unknown_or_disabled_connections(fake_telegram):
    fake = fake_telegram
    connection_id = fake.add_business_connection()["id"]
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        sent = await bot.send_message(CHAT, "hi", business_connection_id=connection_id)
        assert sent.business_connection_id == connection_id
        assert sent.sender_business_bot.id == bot.id
        fetched = await bot.get_business_connection(connection_id)
        assert fetched.user.id == BUSINESS_OWNER_ID and fetched.rights.can_reply
        for refused in ("BCnone", connection_id):
            if refused == connection_id:
                fake.push_update(fake.business_connection_update(connection_id,
                                                                 is_enabled=False))
            with pytest.raises(BadRequest, match="Business_connection_invalid"):
                await bot.send_message(CHAT, "hi", business_connection_id=refused)
        with pytest.raises(BadRequest):
            await bot.send_chat_action(CHAT, "typing", business_connection_id=connection_id)
    assert BUSINESS_CONNECTION_INVALID.endswith("BUSINESS_CONNECTION_INVALID")
