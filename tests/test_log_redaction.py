"""No log line carries a secret: the Telegram bot token above all.

httpx logs each request's URL at INFO, and Bot API URLs hold the bot token.
The round trip runs the gateway as `make run` does (``python -m bot.gateway``)
at DEBUG against the loopback fake Bot API, and reads everything it printed.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys

import pytest

from bot.gateway.logs import REDACTED, Redactor, configure_logging, install_redaction
from tests.fake_telegram import FakeTelegram
from tests.gateway_support import free_port
from tests.stack import stop, wait_http

BOT_TOKEN = "7012345678:AAH-fake_Secret-token_0123456789abcdef"
SECRET_PART = BOT_TOKEN.split(":", 1)[1]
CHAT = 5551234


@pytest.fixture
def captured():
    """Every record of every logger, at DEBUG, as text; logging restored afterwards."""
    factory, root = logging.getLogRecordFactory(), logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root.handlers, root.level = [handler], logging.DEBUG
    yield stream
    logging.setLogRecordFactory(factory)
    root.handlers, root.level = handlers, level


def test_tokens_are_redacted_from_any_logger_and_from_tracebacks(captured):
    install_redaction(Redactor([BOT_TOKEN, "rasa-s3cret"]))
    url = f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage"
    logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 200 OK"', url)
    logging.getLogger("some.library.child").debug("calling %s", url.replace(
        BOT_TOKEN, "999:Other-Bot_token"))
    logging.getLogger("bot.gateway").warning(
        "Rasa at http://rasa:5005/conversations/a/tracker/events?token=rasa-s3cret&x=1")
    try:
        raise RuntimeError(f"connection to {url} failed")
    except RuntimeError:
        logging.getLogger("telegram.ext").exception("network error")
    text = captured.getvalue()
    assert SECRET_PART not in text and "Other-Bot_token" not in text
    assert "rasa-s3cret" not in text
    assert f"bot{REDACTED}/sendMessage" in text
    assert f"token={REDACTED}&x=1" in text
    assert "RuntimeError: connection to" in text  # the traceback is kept, redacted


def test_installing_twice_does_not_stack_redactors(captured):
    install_redaction(Redactor(["first-secret"]))
    install_redaction(Redactor(["second-secret"]))
    logging.getLogger("x").info("first-secret second-secret")
    assert captured.getvalue().strip() == f"x first-secret {REDACTED}"


def test_url_loggers_are_held_at_warning_even_at_debug(captured):
    configure_logging("DEBUG")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() == logging.WARNING


async def test_a_telegram_round_trip_at_debug_never_logs_the_bot_token_nor_the_words(
        tmp_path, rasa):
    fake = FakeTelegram(token=BOT_TOKEN)
    await fake.start()
    port = free_port()
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
           "TELEGRAM_API_BASE_URL": fake.base_url, "RASA_URL": rasa.url,
           "RASA_TOKEN": "rasa-s3cret-token", "GATEWAY_PORT": str(port),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}", "WEBCHAT": "off",
           "GATEWAY_LOG_LEVEL": "DEBUG"}
    log_path = tmp_path / "gateway.log"
    try:
        with open(log_path, "w") as log:
            process = subprocess.Popen([sys.executable, "-m", "bot.gateway"], env=env,
                                       stdout=log, stderr=subprocess.STDOUT)
        try:
            await wait_http(f"http://127.0.0.1:{port}/health", 60)
            fake.push_update(fake.text_update(CHAT, "where is my parcel", first_name="Amara"))
            sent = await fake.wait_for_sent(CHAT, 2, timeout=30)
            assert sent[1]["text"] == "echo: where is my parcel"
            await asyncio.sleep(0.5)  # let the last polls and their log lines happen
        finally:
            stop(process)
    finally:
        await fake.stop()
    text = log_path.read_text()
    assert SECRET_PART not in text
    assert "rasa-s3cret-token" not in text
    assert " DEBUG " in text, text[-2000:]  # it did log at DEBUG
    # ...but not what the customer wrote (python-telegram-bot logs call parameters at
    # DEBUG, so its logger is held at INFO).
    assert "where is my parcel" not in text
