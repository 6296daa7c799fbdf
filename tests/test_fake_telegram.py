"""The Telegram fake, checked through python-telegram-bot's real HTTP client.

These tests pin the fake to what PTB actually sends and expects, so tests built on it fail
for the bot's reasons, not the fake's.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from typing import AsyncIterator

import aiohttp
import pytest
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fake_telegram import BOT_USERNAME, FakeTelegram, fake_telegram_fixture  # noqa: F401

CHAT = 4242
KEYBOARD = InlineKeyboardMarkup(
    [[InlineKeyboardButton("Track order", callback_data="track")],
     [InlineKeyboardButton("Talk to a person", callback_data="human")]]
)
KEYBOARD_DICT = {
    "inline_keyboard": [
        [{"text": "Track order", "callback_data": "track"}],
        [{"text": "Talk to a person", "callback_data": "human"}],
    ]
}


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    """An initialized PTB Bot talking to the fake."""
    async with Bot(fake_telegram.token, base_url=fake_telegram.base_url) as ptb_bot:
        yield ptb_bot


def _seconds(value: int | dtm.timedelta) -> float:
    """RetryAfter.retry_after is an int or a timedelta depending on PTB settings."""
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def test_get_me(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot
    assert me.username == BOT_USERNAME
    assert me.can_join_groups is True
    assert bot.username == BOT_USERNAME  # set by initialize(), which also calls getMe


async def test_wrong_token_is_rejected(fake_telegram: FakeTelegram) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("999999:WRONG-TOKEN", base_url=fake_telegram.base_url):
            pass
    assert fake_telegram.calls == []  # rejected before reaching the API


async def test_unknown_method_is_404(bot: Bot, fake_telegram: FakeTelegram) -> None:
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendTelepathy", api_kwargs={"chat_id": CHAT})
    assert fake_telegram.calls[-1] == ("sendTelepathy", {"chat_id": CHAT})


async def test_send_message_arrives_decoded(bot: Bot, fake_telegram: FakeTelegram) -> None:
    message = await bot.send_message(CHAT, "How can I help?", parse_mode="HTML",
                                     reply_markup=KEYBOARD)
    [sent] = fake_telegram.sent(CHAT)
    assert sent["chat_id"] == CHAT
    assert sent["text"] == "How can I help?"
    assert sent["parse_mode"] == "HTML"
    assert sent["reply_markup"] == KEYBOARD_DICT
    assert message.reply_markup == KEYBOARD
    assert message.from_user.username == BOT_USERNAME
    assert message.chat.id == CHAT and message.chat.type == "private"
    assert abs(message.date.timestamp() - time.time()) < 5
    assert fake_telegram.sent(CHAT + 1) == []


async def test_texts_stay_strings_and_ids_increase(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    first = await bot.send_message(CHAT, "42")
    second = await bot.send_message(CHAT, "true", reply_markup=ReplyKeyboardMarkup([["Yes"]]))
    assert [m["text"] for m in fake_telegram.sent(CHAT)] == ["42", "true"]
    assert second.message_id == first.message_id + 1
    assert second.reply_markup is None  # Telegram echoes inline keyboards only
    assert fake_telegram.sent()[1]["reply_markup"] == {"keyboard": [[{"text": "Yes"}]]}


async def test_reply_to_a_customer_message(bot: Bot, fake_telegram: FakeTelegram) -> None:
    update = fake_telegram.text_update(CHAT, "where is my order?")
    customer_id = update["message"]["message_id"]
    reply = await bot.send_message(CHAT, "Let me check.", reply_to_message_id=customer_id)
    assert reply.message_id == customer_id + 1  # ids are shared by both sides of a chat
    assert reply.reply_to_message.text == "where is my order?"
    assert fake_telegram.sent(CHAT)[0]["reply_to_message_id"] == customer_id
    with pytest.raises(BadRequest, match="(?i)message to be replied not found"):
        await bot.send_message(CHAT, "?", reply_to_message_id=9999)


async def test_send_message_validation(bot: Bot, fake_telegram: FakeTelegram) -> None:
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(CHAT, "   ")
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(CHAT, "x" * 4097)
    assert fake_telegram.sent() == []
    assert [name for name, _ in fake_telegram.calls] == ["getMe"] + ["sendMessage"] * 2


async def test_get_updates_and_offset(bot: Bot, fake_telegram: FakeTelegram) -> None:
    sent = await bot.send_message(CHAT, "Choose:", reply_markup=KEYBOARD)
    ids = [
        fake_telegram.push_update(fake_telegram.text_update(CHAT, "/start please")),
        fake_telegram.push_update(fake_telegram.callback_update(CHAT, "track", sent.message_id)),
        fake_telegram.push_update(fake_telegram.photo_update(CHAT, caption="broken lid")),
    ]
    assert ids == sorted(ids) and len(set(ids)) == 3

    updates = await bot.get_updates(timeout=2)
    assert all(isinstance(u, Update) for u in updates)
    text, callback, photo = updates
    assert text.message.text == "/start please"
    assert text.message.entities[0].type == "bot_command"
    assert text.effective_user.first_name == "Amara"
    assert callback.callback_query.data == "track"
    assert callback.callback_query.message.message_id == sent.message_id
    assert callback.callback_query.message.reply_markup == KEYBOARD
    assert photo.message.caption == "broken lid"
    assert photo.message.photo[-1].width == 1280

    # Unconfirmed updates come again; an offset confirms them.
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    rest = await bot.get_updates(offset=ids[1] + 1, timeout=2)
    assert [u.update_id for u in rest] == ids[2:]
    assert fake_telegram.pending_updates == 1
    assert await bot.get_updates(offset=ids[2] + 1, timeout=0) == ()
    assert fake_telegram.pending_updates == 0


async def test_other_message_kinds_parse(bot: Bot, fake_telegram: FakeTelegram) -> None:
    first = fake_telegram.text_update(CHAT, "hello")
    builders = [
        fake_telegram.sticker_update(CHAT),
        fake_telegram.voice_update(CHAT, duration=4),
        fake_telegram.document_update(CHAT, caption="invoice"),
        fake_telegram.location_update(CHAT),
        fake_telegram.contact_update(CHAT),
        fake_telegram.edited_text_update(CHAT, first["message"]["message_id"], "hello again"),
        fake_telegram.text_update(-100123, "hi all", chat_type="supergroup"),
    ]
    for update in builders:
        fake_telegram.push_update(update)
    sticker, voice, document, location, contact, edited, group = await bot.get_updates()
    assert sticker.message.sticker.emoji
    assert _seconds(voice.message.voice.duration) == 4
    assert document.message.document.file_name == "receipt.pdf"
    assert document.message.caption == "invoice"
    assert location.message.location.latitude == pytest.approx(52.3702)
    assert contact.message.contact.user_id == CHAT
    assert edited.edited_message.text == "hello again"
    assert edited.edited_message.message_id == first["message"]["message_id"]
    assert group.effective_chat.type == "supergroup"
    assert group.effective_user.id != group.effective_chat.id


async def test_long_poll_returns_when_an_update_arrives(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.3)
    assert not poll.done()
    fake_telegram.push_update(fake_telegram.text_update(CHAT, "still there?"))
    updates = await asyncio.wait_for(poll, 3)
    assert [u.message.text for u in updates] == ["still there?"]
    assert loop.time() - started < 2


async def test_long_poll_times_out_empty(bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= loop.time() - started < 3


async def test_push_update_from_another_thread(bot: Bot, fake_telegram: FakeTelegram) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    update = fake_telegram.text_update(CHAT, "from a thread")
    await asyncio.to_thread(fake_telegram.push_update, update)
    updates = await asyncio.wait_for(poll, 3)
    assert updates[0].message.text == "from a thread"


async def test_a_second_poller_ends_the_first(fake_telegram: FakeTelegram) -> None:
    """Two bot instances polling is a classic deployment bug; Telegram answers 409."""
    async with Bot(fake_telegram.token, base_url=fake_telegram.base_url) as first, \
            Bot(fake_telegram.token, base_url=fake_telegram.base_url) as second:
        older = asyncio.create_task(first.get_updates(timeout=5))
        await asyncio.sleep(0.2)
        newer = asyncio.create_task(second.get_updates(timeout=5))
        with pytest.raises(Conflict, match="(?i)terminated by other getUpdates request"):
            await asyncio.wait_for(older, 3)
        fake_telegram.push_update(fake_telegram.text_update(CHAT, "hi"))
        assert len(await asyncio.wait_for(newer, 3)) == 1


async def test_stop_releases_a_waiting_long_poll() -> None:
    """Teardown must not hang on a bot that is still long polling."""
    fake = FakeTelegram()
    await fake.start()
    async with Bot(fake.token, base_url=fake.base_url) as ptb_bot:
        poll = asyncio.create_task(ptb_bot.get_updates(timeout=30))
        await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await fake.stop()
        assert await asyncio.wait_for(poll, 3) == ()
        assert loop.time() - started < 2


async def test_wire_format(fake_telegram: FakeTelegram) -> None:
    """Raw HTTP, for clients other than PTB: errors, JSON bodies, case-insensitive names."""
    base = fake_telegram.base_url
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}999:NOPE/getMe") as response:
            assert response.status == 401
            assert await response.json() == {
                "ok": False, "error_code": 401, "description": "Unauthorized"
            }
        async with session.post(f"{base}{fake_telegram.token}/fooBar") as response:
            assert response.status == 404
            assert (await response.json())["description"] == "Not Found: method not found"
        fake_telegram.fail_next("sendMessage")
        payload = {"chat_id": CHAT, "text": "42"}
        url = f"{base}{fake_telegram.token}/sendmessage"
        async with session.post(url, json=payload) as response:
            assert response.status == 429
            assert await response.json() == {
                "ok": False, "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1},
            }
        async with session.post(url, json=payload) as response:
            body = await response.json()
            assert body["ok"] is True and body["result"]["text"] == "42"
    assert fake_telegram.sent(CHAT) == [payload]


async def test_rate_limit_raises_retry_after(bot: Bot, fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", 429, retry_after=1)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHAT, "hi")
    assert _seconds(caught.value.retry_after) == 1
    await bot.send_message(CHAT, "hi again")  # only the next call failed
    assert [m["text"] for m in fake_telegram.sent(CHAT)] == ["hi again"]
    assert [name for name, _ in fake_telegram.calls].count("sendMessage") == 2


async def test_server_errors_raise_network_error(bot: Bot, fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", 502, times=2)
    fake_telegram.fail_next("sendChatAction", 500)
    for _ in range(2):
        with pytest.raises(NetworkError) as caught:
            await bot.send_message(CHAT, "hi")
        assert not isinstance(caught.value, RetryAfter)
        assert "Bad Gateway" in str(caught.value)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_chat_action(CHAT, "typing")
    await bot.send_message(CHAT, "hi")
    assert len(fake_telegram.sent(CHAT)) == 1


async def test_blocked_chat_is_forbidden(bot: Bot, fake_telegram: FakeTelegram) -> None:
    fake_telegram.block_chat(CHAT)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(CHAT, "hi")
    with pytest.raises(Forbidden):
        await bot.send_chat_action(CHAT, "typing")
    await bot.send_message(CHAT + 1, "others still get messages")
    fake_telegram.fail_next("getMe", 403)
    with pytest.raises(Forbidden):
        await bot.get_me()
    assert fake_telegram.sent(CHAT) == []


async def test_webhook(bot: Bot, fake_telegram: FakeTelegram) -> None:
    assert fake_telegram.webhook is None
    url = "https://bot.example.com/webhooks/telegram/webhook"
    assert await bot.set_webhook(url, secret_token="s", allowed_updates=["message"])
    assert fake_telegram.webhook is not None
    assert fake_telegram.webhook["url"] == url
    assert fake_telegram.webhook["secret_token"] == "s"
    assert fake_telegram.webhook["allowed_updates"] == ["message"]
    info = await bot.get_webhook_info()
    assert info.url == url and info.allowed_updates == ("message",)
    with pytest.raises(Conflict, match="(?i)webhook is active"):
        await bot.get_updates()

    fake_telegram.push_update(fake_telegram.text_update(CHAT, "queued"))
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert fake_telegram.webhook is None
    assert (await bot.get_webhook_info()).url == ""
    assert fake_telegram.pending_updates == 0

    with pytest.raises(BadRequest, match="(?i)https url must be provided"):
        await bot.set_webhook("http://bot.example.com/hook")
    with pytest.raises(BadRequest, match="(?i)ports 80, 88, 443 or 8443"):
        await bot.set_webhook("https://bot.example.com:5005/hook")
    assert fake_telegram.webhook is None


async def test_callback_answers_and_edits(bot: Bot, fake_telegram: FakeTelegram) -> None:
    message = await bot.send_message(CHAT, "Choose:", reply_markup=KEYBOARD)
    update = fake_telegram.callback_update(CHAT, "track", message.message_id)
    query_id = update["callback_query"]["id"]
    with pytest.raises(BadRequest, match="(?i)query id is invalid"):
        await bot.answer_callback_query(query_id)  # not pushed, so never delivered
    fake_telegram.push_update(update)
    assert await bot.answer_callback_query(query_id, text="On it")
    with pytest.raises(BadRequest, match="(?i)query id is invalid"):
        await bot.answer_callback_query(query_id)

    edited = await bot.edit_message_text("Tracking…", chat_id=CHAT,
                                         message_id=message.message_id)
    assert edited.text == "Tracking…" and edited.reply_markup is None
    assert edited.edit_date is not None
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Tracking…", chat_id=CHAT, message_id=message.message_id)
    with_keyboard = await bot.edit_message_reply_markup(
        chat_id=CHAT, message_id=message.message_id, reply_markup=KEYBOARD
    )
    assert with_keyboard.reply_markup == KEYBOARD
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=9999)
    assert fake_telegram.calls_of("editMessageText")[0]["text"] == "Tracking…"


async def test_commands_and_logout(bot: Bot) -> None:
    assert await bot.get_my_commands() == ()
    assert await bot.set_my_commands([BotCommand("start", "Start over")])
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    assert await bot.log_out()
    assert await bot.close()


async def test_wait_for_sent_reports_what_was_sent(
    bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await bot.send_message(CHAT, "only one")
    assert len(await fake_telegram.wait_for_sent(CHAT, 1, timeout=1)) == 1
    with pytest.raises(AssertionError, match="got 1: \\['only one'\\]"):
        await fake_telegram.wait_for_sent(CHAT, 2, timeout=0.2)


async def test_application_polls_the_fake(fake_telegram: FakeTelegram) -> None:
    """The way bot tests use it: a PTB Application long-polling the fake."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text("Welcome!", reply_markup=KEYBOARD)

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_chat.send_action("typing")
        await update.message.reply_text(f"You said: {update.message.text}")

    async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer()
        await update.callback_query.edit_message_text(f"Picked {update.callback_query.data}")

    application = (
        ApplicationBuilder().token(fake_telegram.token).base_url(fake_telegram.base_url).build()
    )
    application.add_handler(CommandHandler("start", start))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    application.add_handler(CallbackQueryHandler(button))
    async with application:
        await application.start()
        await application.updater.start_polling(poll_interval=0, timeout=1)
        fake_telegram.push_update(fake_telegram.text_update(CHAT, "/start"))
        fake_telegram.push_update(fake_telegram.text_update(CHAT, "parcel is late"))
        welcome, echoed = await fake_telegram.wait_for_sent(CHAT, 2, timeout=5)
        welcome_id = fake_telegram.sent_messages(CHAT)[0]["message_id"]
        fake_telegram.push_update(fake_telegram.callback_update(CHAT, "human", welcome_id))
        [edit] = await fake_telegram.wait_for_calls("editMessageText", timeout=5)
        await application.updater.stop()
        await application.stop()

    assert welcome["text"] == "Welcome!" and welcome["reply_markup"] == KEYBOARD_DICT
    assert echoed["text"] == "You said: parcel is late"
    assert fake_telegram.calls_of("sendChatAction") == [{"chat_id": CHAT, "action": "typing"}]
    assert fake_telegram.calls_of("answerCallbackQuery")
    assert edit == {"chat_id": CHAT, "message_id": welcome_id, "text": "Picked human"}
    assert [name for name, _ in fake_telegram.calls][:2] == ["getMe", "deleteWebhook"]
    assert fake_telegram.pending_updates == 0  # the updater confirmed what it handled
