"""Run the gateway: python -m bot.gateway (settings from the environment)."""

from __future__ import annotations

import logging
import sys

from bot.brand import BrandProfileError, brand
from bot.gateway.app import create_app
from bot.gateway.settings import Settings, SettingsError


def main() -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        profile = brand()
    except (SettingsError, BrandProfileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app = create_app(settings, profile)
    if settings.webchat:
        print(f"Web chat: http://{settings.host}:{settings.port}/chat/", flush=True)
    app.run(host=settings.host, port=settings.port, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
