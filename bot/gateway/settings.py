"""Gateway configuration, from the environment (documented in the README)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping, Optional

from bot.brand import PROJECT_ROOT

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A configuration variable is set to something unusable; the text says which."""


@dataclass(frozen=True)
class Settings:
    """Secrets are left out of the repr, so printing or logging settings shows none."""

    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'gateway.db'}"
    rasa_url: str = "http://localhost:5005"
    # Rasa's --auth-token (RASA_TOKEN), sent on its HTTP API calls.
    rasa_token: Optional[str] = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    # Acknowledge again when a customer writes after this much silence.
    ack_gap_minutes: float = 240.0
    telegram_bot_token: Optional[str] = field(default=None, repr=False)
    telegram_api_base_url: Optional[str] = None  # python-telegram-bot's base_url
    telegram_webhook_url: Optional[str] = None  # public URL: webhook mode when set
    telegram_webhook_secret: Optional[str] = field(default=None, repr=False)
    telegram_agent_chat_id: Optional[str] = None
    # Messenger and Instagram DMs (channels/meta.py): served when the app secret, the
    # verify token and at least one access token are set.
    meta_app_secret: Optional[str] = field(default=None, repr=False)
    meta_verify_token: Optional[str] = field(default=None, repr=False)
    meta_page_access_token: Optional[str] = field(default=None, repr=False)
    meta_instagram_access_token: Optional[str] = field(default=None, repr=False)
    meta_graph_url: Optional[str] = None  # https://graph.facebook.com unless set (tests: a fake)
    meta_graph_version: str = "v21.0"
    webchat: bool = True
    log_level: str = "INFO"  # GATEWAY_LOG_LEVEL; secrets are redacted at every level
    # Enables /api/v1/handoffs for agents.
    agent_api_token: Optional[str] = field(default=None, repr=False)
    # Behind one reverse proxy that terminates TLS: trust its X-Forwarded-Proto/For
    # (secure cookies, client addresses for sign-in throttling).
    trust_proxy: bool = False
    # Abuse limits (0 turns one off); each gateway process counts its own.
    sender_messages_per_minute: int = 20  # per conversation: 429, or held on Telegram
    queued_messages_per_conversation: int = 20  # waiting for Rasa, per conversation
    bridge_requests_per_minute: int = 600  # per DM API bridge credential
    chat_sessions_per_hour: int = 30  # new web chats per client address
    # Retrying, then giving up (a dead letter and a handoff to a person).
    bot_retry_minutes: float = 60.0  # a customer message Rasa cannot answer
    delivery_retry_hours: float = 24.0  # a reply the channel will not take
    rasa_timeout_seconds: float = 330.0  # longer than Rasa's own worst case (rasa_client.py)
    # GET /metrics (metrics_endpoint.py): with a token, for its bearer only; without one,
    # for this machine only. METRICS=off turns the counting hooks and the endpoint off.
    metrics_token: Optional[str] = field(default=None, repr=False)
    metrics: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        def text(name: str) -> Optional[str]:
            value = env.get(name, "").strip()
            return value or None

        def number(name: str, default: float, kind=float):  # noqa: ANN001, ANN202
            raw = text(name)
            if raw is None:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a number, not {raw!r}") from None
            if value < 0:
                raise SettingsError(f"{name} must not be negative")
            return value

        settings = cls(
            database_url=text("DATABASE_URL") or cls.database_url,
            rasa_url=text("RASA_URL") or cls.rasa_url,
            rasa_token=text("RASA_TOKEN"),
            host=text("GATEWAY_HOST") or cls.host,
            port=number("GATEWAY_PORT", cls.port, int),
            ack_gap_minutes=number("ACK_GAP_MINUTES", cls.ack_gap_minutes),
            telegram_bot_token=text("TELEGRAM_BOT_TOKEN"),
            telegram_api_base_url=text("TELEGRAM_API_BASE_URL"),
            telegram_webhook_url=text("TELEGRAM_WEBHOOK_URL"),
            telegram_webhook_secret=text("TELEGRAM_WEBHOOK_SECRET"),
            telegram_agent_chat_id=text("TELEGRAM_AGENT_CHAT_ID"),
            meta_app_secret=text("META_APP_SECRET"),
            meta_verify_token=text("META_VERIFY_TOKEN"),
            meta_page_access_token=text("META_PAGE_ACCESS_TOKEN"),
            meta_instagram_access_token=text("META_INSTAGRAM_ACCESS_TOKEN"),
            meta_graph_url=text("META_GRAPH_URL"),
            meta_graph_version=text("META_GRAPH_VERSION") or cls.meta_graph_version,
            webchat=(text("WEBCHAT") or "on").lower() not in {"0", "off", "false", "no"},
            agent_api_token=text("AGENT_API_TOKEN"),
            trust_proxy=(text("TRUST_PROXY") or "off").lower() in {"1", "on", "true", "yes"},
            log_level=(text("GATEWAY_LOG_LEVEL") or cls.log_level).upper(),
            sender_messages_per_minute=number(
                "SENDER_MESSAGES_PER_MINUTE", cls.sender_messages_per_minute, int),
            queued_messages_per_conversation=number(
                "QUEUED_MESSAGES_PER_CONVERSATION", cls.queued_messages_per_conversation, int),
            bridge_requests_per_minute=number(
                "BRIDGE_REQUESTS_PER_MINUTE", cls.bridge_requests_per_minute, int),
            chat_sessions_per_hour=number(
                "CHAT_SESSIONS_PER_HOUR", cls.chat_sessions_per_hour, int),
            bot_retry_minutes=number("BOT_RETRY_MINUTES", cls.bot_retry_minutes),
            delivery_retry_hours=number("DELIVERY_RETRY_HOURS", cls.delivery_retry_hours),
            rasa_timeout_seconds=number("RASA_TIMEOUT_SECONDS", cls.rasa_timeout_seconds),
            metrics_token=text("METRICS_TOKEN"),
            metrics=(text("METRICS") or "on").lower() not in {"0", "off", "false", "no"},
        )
        if settings.log_level not in LOG_LEVELS:
            raise SettingsError(f"GATEWAY_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        if settings.telegram_webhook_url and not settings.telegram_webhook_secret:
            raise SettingsError("TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET, so "
                                "that only Telegram can post updates to the gateway")
        if settings.telegram_webhook_url and not settings.telegram_bot_token:
            raise SettingsError("TELEGRAM_WEBHOOK_URL is set but TELEGRAM_BOT_TOKEN is not")
        meta = {"META_APP_SECRET": settings.meta_app_secret,
                "META_VERIFY_TOKEN": settings.meta_verify_token,
                "META_PAGE_ACCESS_TOKEN or META_INSTAGRAM_ACCESS_TOKEN": (
                    settings.meta_page_access_token or settings.meta_instagram_access_token)}
        if any(meta.values()) and not all(meta.values()):
            missing = " and ".join(name for name, value in meta.items() if not value)
            raise SettingsError(f"Messenger/Instagram is partly configured: {missing} "
                                "missing (the webhook needs the app secret, the verify "
                                "token and an access token)")
        if not re.fullmatch(r"v\d+\.\d+", settings.meta_graph_version):
            raise SettingsError("META_GRAPH_VERSION must look like v21.0")
        return settings

    @property
    def meta_webhook(self) -> bool:
        """Whether Messenger/Instagram is configured (from_env refuses half of it)."""
        return bool(self.meta_app_secret and self.meta_verify_token
                    and (self.meta_page_access_token or self.meta_instagram_access_token))
