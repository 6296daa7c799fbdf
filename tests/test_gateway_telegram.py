"""Telegram through python-telegram-bot's real HTTP client and a fake Bot API server."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from bot.gateway.channels.telegram import SECRET_HEADER, UNSUPPORTED_REPLY, WEBHOOK_PATH
from tests.gateway_support import eventually, gateway_settings, running_gateway

CHAT = 5551001


def telegram_settings(tmp_path, rasa, fake, **changes):
    return gateway_settings(tmp_path, rasa.url, telegram_bot_token=fake.token,
                            telegram_api_base_url=fake.base_url, **changes)


def texts(fake, chat=CHAT):
    return [m["text"] for m in fake.sent(chat)]


async def test_polling_acknowledges_at_once_then_answers(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)):
        fake.push_update(fake.text_update(CHAT, "where is my parcel", first_name="Amara"))
        sent = await fake.wait_for_sent(CHAT, 2)
        assert sent[0]["text"].startswith("Hi Amara, thanks for your message!")
        assert sent[1]["text"] == "echo: where is my parcel"
        assert "parse_mode" not in sent[1]
        assert fake.calls_of("sendChatAction")[0]["action"] == "typing"
        assert rasa.received[0]["sender"] == f"telegram:{CHAT}"
        assert rasa.received[0]["metadata"]["first_name"] == "Amara"


async def test_redelivered_update_is_answered_once(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        update = fake.text_update(CHAT, "hello")
        update_id = fake.push_update(update)
        await fake.wait_for_sent(CHAT, 2)
        fake.push_update({**update, "update_id": update_id})  # Telegram sends it again
        await eventually(lambda: fake.pending_updates == 0)
        await app.ctx.gateway.idle()
        await asyncio.sleep(0.3)
        assert texts(fake).count("echo: hello") == 1
        assert rasa.texts_for(f"telegram:{CHAT}") == ["hello"]


async def test_many_customers_at_once_each_answered_in_order(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    rasa.delay = 0.02
    chats = [CHAT + i for i in range(12)]
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)):
        for n in range(3):
            for chat in chats:
                fake.push_update(fake.text_update(chat, f"message {n}"))
        for chat in chats:
            sent = await fake.wait_for_sent(chat, 4, timeout=20)
            assert [m["text"] for m in sent][1:] == [f"echo: message {n}" for n in range(3)]
            assert sent[0]["text"].startswith("Hi Amara")


async def test_webhook_mode_checks_the_secret_and_stores_before_answering(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    settings = telegram_settings(tmp_path, rasa, fake,
                                 telegram_webhook_url="https://bot.example/telegram/webhook",
                                 telegram_webhook_secret="s3cret-token")
    async with running_gateway(settings) as app:
        assert fake.webhook["url"] == "https://bot.example/telegram/webhook"
        assert fake.webhook["secret_token"] == "s3cret-token"
        update = fake.text_update(CHAT, "hi from the webhook")
        update["update_id"] = 900001
        url = f"http://{settings.host}:{settings.port}{WEBHOOK_PATH}"
        async with httpx.AsyncClient() as http:
            wrong = await http.post(url, json=update, headers={SECRET_HEADER: "guess"})
            missing = await http.post(url, json=update)
            assert (wrong.status_code, missing.status_code) == (403, 403)
            assert app.ctx.gateway.store.conversation(f"telegram:{CHAT}") is None
            ok = await http.post(url, json=update, headers={SECRET_HEADER: "s3cret-token"})
            assert ok.status_code == 200
            # Stored by the time Telegram got its 200.
            assert app.ctx.gateway.store.conversation(f"telegram:{CHAT}") is not None
            again = await http.post(url, json=update, headers={SECRET_HEADER: "s3cret-token"})
            assert again.status_code == 200
            junk = await http.post(url, content=b"[]", headers={SECRET_HEADER: "s3cret-token"})
            assert junk.status_code == 400
        await fake.wait_for_sent(CHAT, 2)
        await app.ctx.gateway.idle()
        assert texts(fake).count("echo: hi from the webhook") == 1
        assert not fake.calls_of("getUpdates")


async def test_long_replies_are_split_cleanly(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)):
        fake.push_update(fake.text_update(CHAT, "long answer please"))
        sent = await fake.wait_for_sent(CHAT, 4)  # the ack, then ~10,000 characters in 3
        parts = [m["text"] for m in sent[1:]]
        assert all(len(p) <= 4096 for p in parts)
        assert all(not p.startswith(" ") and not p.endswith(" ") for p in parts)
        assert " ".join(" ".join(parts).split()) == " ".join(("word " * 2000).split())


async def test_buttons_become_an_inline_keyboard_and_presses_come_back(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        fake.push_update(fake.text_update(CHAT, "buttons please"))
        sent = await fake.wait_for_sent(CHAT, 2)
        keyboard = sent[1]["reply_markup"]["inline_keyboard"]
        assert [row[0]["callback_data"] for row in keyboard] == ["/affirm", "/deny"]
        pressed = fake.sent_messages(CHAT)[1]["message_id"]
        fake.push_update(fake.callback_update(CHAT, "/affirm", pressed))
        await fake.wait_for_sent(CHAT, 3)
        assert rasa.texts_for(f"telegram:{CHAT}")[-1] == "/affirm"
        assert fake.calls_of("answerCallbackQuery")
        transcript = app.ctx.gateway.store.transcript(f"telegram:{CHAT}")
        assert [m.text for m in transcript if m.direction == "in"][-1] == "Yes"


@pytest.mark.parametrize("kind", ["photo", "sticker", "voice", "document", "location",
                                  "contact"])
async def test_non_text_messages_get_a_polite_answer_without_nlu(
        tmp_path, rasa, fake_telegram, kind):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)):
        fake.push_update(getattr(fake, f"{kind}_update")(CHAT))
        sent = await fake.wait_for_sent(CHAT, 2)
        assert sent[1]["text"] == UNSUPPORTED_REPLY
        assert rasa.received == []


async def test_an_edited_message_is_read_again(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)):
        original = fake.text_update(CHAT, "where is my ordr")
        fake.push_update(original)
        await fake.wait_for_sent(CHAT, 2)
        message_id = original["message"]["message_id"]
        fake.push_update(fake.edited_text_update(CHAT, message_id, "where is my order"))
        sent = await fake.wait_for_sent(CHAT, 3)
        assert sent[-1]["text"] == "echo: where is my order"


async def test_group_messages_are_skipped(tmp_path, rasa, fake_telegram, caplog):
    caplog.set_level(logging.INFO, logger="bot.gateway.channels.telegram")
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        fake.push_update(fake.text_update(-100200300, "hello bot", chat_type="supergroup"))
        fake.push_update(fake.text_update(CHAT, "hello"))
        await fake.wait_for_sent(CHAT, 2)
        await app.ctx.gateway.idle()
        assert fake.sent(-100200300) == []
        assert "skipped a message in supergroup chat" in caplog.text


async def test_a_customer_who_blocked_the_bot_does_not_hold_up_others(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    fake.block_chat(CHAT)
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        fake.push_update(fake.text_update(CHAT, "hi then bye"))
        fake.push_update(fake.text_update(CHAT + 1, "hello"))
        await fake.wait_for_sent(CHAT + 1, 2)
        await app.ctx.gateway.idle()
        statuses = {m.status for m in app.ctx.gateway.store.transcript(f"telegram:{CHAT}")
                    if m.direction == "out"}
        assert statuses == {"failed"}


async def test_rate_limits_and_server_errors_are_retried(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    fake.fail_next("sendMessage", status=429, retry_after=1)
    fake.fail_next("sendMessage", status=502, retry_after=None)
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)):
        fake.push_update(fake.text_update(CHAT, "hello"))
        sent = await fake.wait_for_sent(CHAT, 2, timeout=15)
        assert sent[1]["text"] == "echo: hello"
        assert len(fake.calls_of("sendMessage")) >= 4  # two failures, then both sent


async def test_markup_characters_reach_the_customer_verbatim(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)):
        fake.push_update(fake.text_update(CHAT, "*bold* _it_ <b>x</b> [a](b) 1 < 2 & 3"))
        sent = await fake.wait_for_sent(CHAT, 2)
        assert sent[1]["text"] == "echo: *bold* _it_ <b>x</b> [a](b) 1 < 2 & 3"
        assert "parse_mode" not in sent[1]


async def test_rasa_down_then_up_over_telegram(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    await rasa.stop()
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)):
        fake.push_update(fake.text_update(CHAT, "is anyone there"))
        sent = await fake.wait_for_sent(CHAT, 1)
        assert sent[0]["text"].startswith("Hi Amara")
        await asyncio.sleep(0.5)
        assert len(fake.sent(CHAT)) == 1
        await rasa.start()
        sent = await fake.wait_for_sent(CHAT, 2, timeout=15)
        assert sent[1]["text"] == "echo: is anyone there"
