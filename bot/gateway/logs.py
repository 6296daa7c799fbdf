"""The gateway's logging: no log line may carry a secret.

httpx logs every request's URL at INFO, and a Telegram Bot API URL holds the
bot token (``https://api.telegram.org/bot<TOKEN>/sendMessage``); a Rasa HTTP
API URL holds Rasa's ``?token=``. So httpx and httpcore are held at WARNING,
and because other libraries log URLs too (python-telegram-bot, Sanic, our own
error messages), every record is redacted as it is made, whichever logger or
handler it goes to: bot tokens, ``token=`` query values, and the configured
secrets themselves.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Iterable, List, Optional

REDACTED = "<redacted>"
# A Telegram bot token in a Bot API URL: bot<digits>:<secret>.
BOT_TOKEN = re.compile(r"bot\d+:[A-Za-z0-9_-]+")
# A token in a query string, e.g. Rasa's ?token=... (URL-encoded or not).
QUERY_TOKEN = re.compile(r"(?i)(token=)[^&\s'\"]+")
# Libraries that log whole request URLs at INFO or DEBUG.
URL_LOGGERS = ("httpx", "httpcore")
# Libraries that log what customers and agents wrote at DEBUG: python-telegram-bot
# logs every Bot API call with its parameters (message texts). Held at INFO, so
# GATEWAY_LOG_LEVEL=DEBUG shows our own detail, never customers' words.
CONTENT_LOGGERS = ("telegram",)


class Redactor:
    """Replaces secrets in text: the known patterns and any value it was given."""

    def __init__(self, secrets: Iterable[Optional[str]] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self.secrets: List[str] = sorted({s for s in secrets if s and len(s) >= 4},
                                         key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = BOT_TOKEN.sub(f"bot{REDACTED}", text)
        return QUERY_TOKEN.sub(rf"\g<1>{REDACTED}", text)


def install_redaction(redact: Redactor) -> None:
    """Redact every log record as it is created, from any logger in this process.

    A record factory rather than a handler filter: filters on a logger miss
    records from its children, and libraries (Sanic) add handlers of their own.
    Installing again replaces the previous redactor instead of stacking.
    """
    base = getattr(logging.getLogRecordFactory(), "redaction_base",
                   logging.getLogRecordFactory())

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        _redact_record(record, redact)
        return record

    factory.redaction_base = base  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _redact_record(record: logging.LogRecord, redact: Callable[[str], str]) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record: keep its raw text, redacted
        message = str(record.msg)
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def configure_logging(level: str = "INFO", secrets: Iterable[Optional[str]] = ()) -> None:
    """Logging for ``python -m bot.gateway``: ``level`` for us, URL loggers at WARNING,
    loggers of message contents at INFO."""
    install_redaction(Redactor(secrets))
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for names, floor in ((URL_LOGGERS, logging.WARNING), (CONTENT_LOGGERS, logging.INFO)):
        for name in names:
            logging.getLogger(name).setLevel(max(floor, logging.getLevelName(level)))
