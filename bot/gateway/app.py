"""The gateway's Sanic app: channels in front, the pipeline to Rasa, agents behind.

    python -m bot.gateway          (make run starts it)

    channels/ (telegram, meta, webchat, dm_api) -> pipeline.py -> Rasa -> actions/
        -> handoffs/ (the desk) -> agents/ (inbox, agent API, Telegram group)
"""

from __future__ import annotations

import logging
import uuid
from typing import Optional

from sanic import Blueprint, Request, Sanic, response
from sanic.response import HTTPResponse

from bot.brand import BrandProfile, brand
from bot.gateway.agents.agent_api import agent_api
from bot.gateway.agents.canned import load_canned_replies
from bot.gateway.agents.inbox import InboxEvents, inbox
from bot.gateway.agents.inbox_assets import inbox_assets
from bot.gateway.agents.sign_in import LoginThrottle
from bot.gateway.channels.dm_api import API_CHANNELS, PollingChannel, dm_api
from bot.gateway.channels.webchat import CHANNEL as WEBCHAT
from bot.gateway.channels.webchat import webchat
from bot.gateway.flood_control import FloodControl
from bot.gateway.incidents.inbox_pages import InboxIncidents, incident_inbox
from bot.gateway.metrics import NO_METRICS, Metrics
from bot.gateway.metrics_collector import StoreCollector
from bot.gateway.metrics_endpoint import install_metrics_endpoint
from bot.gateway.pipeline import Gateway, RetryPolicy
from bot.gateway.rasa_client import RasaClient
from bot.gateway.rate_limits import SlidingWindow
from bot.gateway.report.page import report_page
from bot.gateway.settings import Settings
from bot.gateway.store import Store
from bot.gateway.web import install_error_handler, install_security_headers

log = logging.getLogger(__name__)


def create_app(settings: Settings, profile: Optional[BrandProfile] = None,
               retry: Optional[RetryPolicy] = None) -> Sanic:
    app = Sanic(f"gateway-{uuid.uuid4().hex[:8]}", register=False)
    app.config.KEEP_ALIVE_TIMEOUT = 30
    # No request here needs more than a DM's worth of JSON (Sanic's default is 100 MB).
    app.config.REQUEST_MAX_SIZE = 1_000_000
    if settings.trust_proxy:  # a TLS-terminating proxy in front: believe its X-Forwarded-*
        app.config.PROXIES_COUNT = 1
    app.ctx.settings = settings
    app.ctx.login_throttle = LoginThrottle()
    app.ctx.bridge_requests = SlidingWindow(settings.bridge_requests_per_minute, 60.0)
    app.ctx.chat_sessions = SlidingWindow(settings.chat_sessions_per_hour, 3600.0)
    app.ctx.api_channels = set(API_CHANNELS)
    app.ctx.metrics = Metrics() if settings.metrics else NO_METRICS  # GET /metrics
    install_metrics_endpoint(app)
    app.blueprint(Blueprint.group(dm_api, agent_api, url_prefix="/api/v1"))
    app.blueprint(inbox)
    app.blueprint(incident_inbox)  # /inbox/incidents
    app.blueprint(inbox_assets)  # /inbox/static: the inbox's stylesheet and script
    app.blueprint(report_page)  # /inbox/report, the desk report
    install_error_handler(app)
    install_security_headers(app)
    app.ctx.inbox_events = InboxEvents()
    app.ctx.canned_replies = load_canned_replies()  # checked now: a bad file fails start-up
    if settings.webchat:
        app.blueprint(webchat)

    @app.before_server_start
    async def start(app: Sanic, _loop) -> None:  # noqa: ANN001
        store = Store(settings.database_url, ack_gap_seconds=settings.ack_gap_minutes * 60)
        rasa = RasaClient(settings.rasa_url, token=settings.rasa_token,
                          timeout=settings.rasa_timeout_seconds)
        flood = FloodControl(settings.sender_messages_per_minute,
                             settings.queued_messages_per_conversation)
        gateway = Gateway(store, rasa, profile or brand(), retry or RetryPolicy(
            bot_give_up_after=settings.bot_retry_minutes * 60,
            delivery_give_up_after=settings.delivery_retry_hours * 3600), flood=flood,
            metrics=app.ctx.metrics)
        app.ctx.metrics.watch(StoreCollector(store))  # the desk's state, read per scrape
        for name in (*API_CHANNELS, WEBCHAT):
            gateway.add_channel(PollingChannel(name))
        gateway.add_agent_surface(app.ctx.inbox_events)
        gateway.incidents.add_surface(InboxIncidents(app.ctx.inbox_events))
        app.ctx.gateway = gateway
        app.ctx.telegram = None
        app.ctx.meta = None
        if settings.telegram_bot_token:
            from bot.gateway.channels.telegram import TelegramChannel

            telegram = TelegramChannel(settings, gateway)
            gateway.add_channel(telegram)
            gateway.add_channel(telegram.business)  # Telegram Business chats
            if settings.telegram_agent_chat_id:
                from bot.gateway.agents.telegram_group import TelegramAgentGroup

                gateway.add_agent_surface(TelegramAgentGroup(
                    telegram.application, settings.telegram_agent_chat_id, gateway))
            await telegram.start()
            app.ctx.telegram = telegram
        if settings.meta_webhook:
            from bot.gateway.channels.meta import MetaWebhook

            meta = MetaWebhook(settings, gateway)  # a channel per platform with a token
            for channel in meta.channels.values():
                gateway.add_channel(channel)
                app.ctx.api_channels.discard(channel.name)  # one source per channel
            app.ctx.meta = meta
        await gateway.start()

    @app.after_server_stop
    async def stop(app: Sanic, _loop) -> None:  # noqa: ANN001
        await app.ctx.gateway.handoffs.surfaces.drain()  # while Telegram can still be told
        if app.ctx.telegram is not None:
            await app.ctx.telegram.stop()
        await app.ctx.gateway.stop()
        if app.ctx.meta is not None:  # after the drain: its last replies went through it
            await app.ctx.meta.close()

    if settings.telegram_bot_token and settings.telegram_webhook_url:
        from bot.gateway.channels.telegram import WEBHOOK_PATH

        @app.post(WEBHOOK_PATH)
        async def telegram_webhook(request: Request) -> HTTPResponse:
            return await request.app.ctx.telegram.webhook(request)

    if settings.meta_webhook:
        from bot.gateway.channels.meta import WEBHOOK_PATH as META_WEBHOOK_PATH
        from bot.gateway.channels.meta import verification

        @app.get(META_WEBHOOK_PATH)
        async def meta_verification(request: Request) -> HTTPResponse:
            return verification(request, settings)

        @app.post(META_WEBHOOK_PATH)
        async def meta_webhook(request: Request) -> HTTPResponse:
            return await request.app.ctx.meta.webhook(request)

    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        if settings.webchat:
            return response.redirect("/chat/")
        return response.json({"service": "first responder gateway"})

    return app
