"""Confirm only what is committed: a message the store could not take is never confirmed.

Storing fails for real here: another connection holds SQLite's write lock
(``BEGIN EXCLUSIVE``) for longer than the gateway's busy timeout, which the
database URL's ``?timeout=`` makes short. Then the lock is released and the
sender's retry (Telegram's redelivery, the next getUpdates, a bridge's repost)
is stored and answered exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from pathlib import Path
from typing import Iterator

import httpx
from telegram import Update
from telegram.ext import TypeHandler

from bot.gateway.channels.telegram import SECRET_HEADER, WEBHOOK_PATH
from bot.gateway.store import engine_for
from tests.gateway_support import (
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    running_gateway,
)
from tests.test_gateway_telegram import CHAT, telegram_settings, texts
from tests.test_webchat_api import start_chat

BUSY_TIMEOUT = 0.3  # seconds a gateway write waits for the lock before it fails
WORDS = "where is my parcel"  # a customer's words: never in a log line


def short_timeout(tmp_path: Path) -> dict:
    return {"database_url": f"sqlite:///{tmp_path / 'gateway.db'}?timeout={BUSY_TIMEOUT}"}


@contextlib.contextmanager
def store_locked(tmp_path: Path, name: str = "gateway.db") -> Iterator[None]:
    """Another writer holds the gateway's SQLite file: its writes wait, then fail."""
    lock = sqlite3.connect(tmp_path / name, timeout=5, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def inbound_rows(tmp_path: Path, conversation_id: str) -> list:
    """The conversation's stored inbound texts, read past the lock (WAL readers don't wait)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "gateway.db", timeout=5)) as db:
        return [text for (text,) in db.execute(
            "SELECT text FROM messages WHERE conversation_id = ? AND direction = 'in'",
            (conversation_id,))]


def test_the_database_urls_timeout_is_the_busy_timeout(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path / 'x.db'}?timeout=0.2")
    with engine.begin() as db:
        db.exec_driver_sql("CREATE TABLE t (x)")
    with store_locked(tmp_path, "x.db"):
        started = time.monotonic()
        try:
            with engine.begin() as db:
                db.exec_driver_sql("INSERT INTO t VALUES (1)")
        except Exception as error:  # noqa: BLE001 - the class is what is checked
            assert type(error).__name__ == "OperationalError"
        else:
            raise AssertionError("a write past the lock succeeded")
        assert 0.15 < time.monotonic() - started < 5
    engine.dispose()


# --- Telegram --------------------------------------------------------------
async def test_polling_keeps_an_update_unconfirmed_until_it_is_stored(
        tmp_path, rasa, fake_telegram, caplog):
    caplog.set_level(logging.INFO)
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake,
                                                 **short_timeout(tmp_path))) as app:
        fake.push_update(fake.text_update(CHAT + 1, "hello"))  # so there is an offset
        await fake.wait_for_sent(CHAT + 1, 2)
        await app.ctx.gateway.idle()
        await eventually(lambda: fake.pending_updates == 0)  # the next long poll is open
        polls = len(fake.calls_of("getUpdates"))
        with store_locked(tmp_path):
            update_id = fake.push_update(fake.text_update(CHAT, WORDS, first_name="Amara"))
            # The open poll returns it, storing fails, and the next poll still asks for it.
            await eventually(lambda: len(fake.calls_of("getUpdates")) > polls)
            assert fake.pending_updates == 1
            assert fake.calls_of("getUpdates")[-1]["offset"] == update_id
            assert inbound_rows(tmp_path, f"telegram:{CHAT}") == []
            assert fake.sent(CHAT) == []
        sent = await fake.wait_for_sent(CHAT, 2)
        assert sent[0]["text"].startswith("Hi Amara, thanks for your message!")
        assert sent[1]["text"] == f"echo: {WORDS}"
        await eventually(lambda: fake.pending_updates == 0)
        await app.ctx.gateway.idle()
        await asyncio.sleep(0.3)
        assert texts(fake) == [sent[0]["text"], f"echo: {WORDS}"]  # exactly once each
        assert rasa.texts_for(f"telegram:{CHAT}") == [WORDS]
        assert inbound_rows(tmp_path, f"telegram:{CHAT}") == [WORDS]
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "bot.gateway.channels.telegram" and r.levelno == logging.WARNING]
    assert any(str(update_id) in w and "OperationalError" in w for w in warnings), warnings
    assert WORDS not in caplog.text and "Amara" not in caplog.text


async def test_webhook_answers_503_until_the_update_is_stored(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    settings = telegram_settings(tmp_path, rasa, fake, **short_timeout(tmp_path),
                                 telegram_webhook_url="https://bot.example/telegram/webhook",
                                 telegram_webhook_secret="s3cret-token")
    update = fake.text_update(CHAT, WORDS)
    update["update_id"] = 900002
    url = f"http://{settings.host}:{settings.port}{WEBHOOK_PATH}"
    headers = {SECRET_HEADER: "s3cret-token"}
    async with running_gateway(settings) as app, httpx.AsyncClient(timeout=10) as http:
        with store_locked(tmp_path):
            refused = await http.post(url, json=update, headers=headers)
            assert refused.status_code == 503
            assert "error" in refused.json()
            assert inbound_rows(tmp_path, f"telegram:{CHAT}") == []
        redelivered = await http.post(url, json=update, headers=headers)  # Telegram retries
        assert redelivered.status_code == 200
        assert inbound_rows(tmp_path, f"telegram:{CHAT}") == [WORDS]  # before the 200
        again = await http.post(url, json=update, headers=headers)
        assert again.status_code == 200
        await fake.wait_for_sent(CHAT, 2)
        await app.ctx.gateway.idle()
        assert texts(fake).count(f"echo: {WORDS}") == 1
        assert rasa.texts_for(f"telegram:{CHAT}") == [WORDS]
        assert inbound_rows(tmp_path, f"telegram:{CHAT}") == [WORDS]


async def test_a_handler_bug_is_logged_and_does_not_stop_polling(
        tmp_path, rasa, fake_telegram, caplog):
    """Not a storage failure: retrying would wedge every customer behind one odd update."""
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        odd: set = set()

        async def buggy(update: Update, context) -> None:  # noqa: ANN001
            if update.update_id in odd:
                raise ValueError("our bug on odd input")

        app.ctx.telegram.application.add_handler(TypeHandler(Update, buggy), group=-2)
        bad = fake.text_update(CHAT + 1, "odd")
        bad["update_id"] = 700001
        odd.add(700001)
        fake.push_update(bad)
        fake.push_update(fake.text_update(CHAT, "hello"))
        await fake.wait_for_sent(CHAT, 2)
        await eventually(lambda: fake.pending_updates == 0)
    errors = [r for r in caplog.records
              if r.name == "bot.gateway.channels.telegram" and r.levelno == logging.ERROR]
    assert any("700001" in r.getMessage() and r.exc_info and r.exc_info[0] is ValueError
               for r in errors), [r.getMessage() for r in errors]


# --- DM API and web chat ---------------------------------------------------
def dm(text: str, message_id: str) -> dict:
    return {"channel": "api", "conversation_id": "c-42", "sender_name": "Amara",
            "text": text, "channel_message_id": message_id}


def assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"]
    assert int(answer.headers["Retry-After"]) > 0
    for leak in ("Traceback", "sqlite", "INSERT", "locked", WORDS):
        assert leak not in answer.text


async def test_dm_api_answers_503_while_the_store_cannot_commit(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, **short_timeout(tmp_path))
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        with store_locked(tmp_path):
            assert_unavailable(await http.post("/api/v1/messages", json=dm(WORDS, "m1")))
            assert inbound_rows(tmp_path, "api:c-42") == []
        retried = await http.post("/api/v1/messages", json=dm(WORDS, "m1"))
        assert retried.status_code == 202
        again = await http.post("/api/v1/messages", json=dm(WORDS, "m1"))
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        await app.ctx.gateway.idle()
        assert inbound_rows(tmp_path, "api:c-42") == [WORDS]
        assert rasa.texts_for("api:c-42") == [WORDS]


async def test_web_chat_answers_503_while_the_store_cannot_commit(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, **short_timeout(tmp_path))
    async with running_gateway(settings) as app, client(settings) as http:
        session, auth = await start_chat(http)
        body = {"session": session, "text": WORDS, "client_id": "draft-1"}
        with store_locked(tmp_path):
            assert_unavailable(await http.post("/chat/api/messages", headers=auth, json=body))
            assert inbound_rows(tmp_path, f"webchat:{session}") == []
        retried = await http.post("/chat/api/messages", headers=auth, json=body)
        assert retried.status_code == 202
        again = await http.post("/chat/api/messages", headers=auth, json=body)
        assert again.status_code == 202
        assert again.json()["message_id"] == retried.json()["message_id"]
        await app.ctx.gateway.idle()
        assert inbound_rows(tmp_path, f"webchat:{session}") == [WORDS]
        assert rasa.texts_for(f"webchat:{session}") == [WORDS]
