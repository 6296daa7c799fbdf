"""Run the gateway: python -m bot.gateway (settings from the environment)."""

from __future__ import annotations

import sys

from bot.brand import BrandProfileError, brand
from bot.gateway.app import create_app
from bot.gateway.logs import configure_logging
from bot.gateway.request_head import RequestHeadGuard
from bot.gateway.settings import Settings, SettingsError


def main() -> int:
    try:
        settings = Settings.from_env()
        profile = brand()
    except (SettingsError, BrandProfileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, secrets=(
        settings.telegram_bot_token, settings.rasa_token, settings.agent_api_token,
        settings.telegram_webhook_secret, settings.meta_app_secret, settings.meta_verify_token,
        settings.meta_page_access_token, settings.meta_instagram_access_token,
        settings.metrics_token))
    app = create_app(settings, profile)
    if settings.webchat:
        print(f"Web chat: http://{settings.host}:{settings.port}/chat/", flush=True)
    app.run(host=settings.host, port=settings.port, access_log=False, protocol=RequestHeadGuard)
    return 0


if __name__ == "__main__":
    sys.exit(main())
