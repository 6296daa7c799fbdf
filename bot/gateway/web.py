"""Helpers every HTTP surface shares: JSON in and out, timestamps, and error mapping.

Handlers raise; one Sanic error handler (``install_error_handler``) turns the
typed errors into responses: JSON ``{"error": ...}`` under ``/api/``, plain
text for the web inbox's forms. Bad input is a 4xx, never a 500.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Dict

from sanic import Request, Sanic, response
from sanic.response import HTTPResponse

from bot.gateway.handoffs.errors import BotUnavailableError, HandoffError
from bot.gateway.store import StoredMessage
from bot.gateway.store.schema import MAX_ID, is_row_id


class InvalidInputError(Exception):
    """The request is malformed; the message tells the caller what to send instead."""

    status = 400


def json_body(request: Request) -> Any:
    """The parsed JSON body, or None when it is missing or not JSON."""
    if not request.body:
        return None
    try:
        return json.loads(request.body)
    except (ValueError, RecursionError):  # RecursionError: nested past ~1,000 levels
        return None


def after_arg(request: Request) -> int:
    """The ``?after=<message id>`` of a transcript poll (0 when absent); 400 for nonsense."""
    raw = request.args.get("after", "0")
    if (not (raw.isascii() and raw.isdigit()) or len(raw) > 10  # '²'.isdigit(), int('²') fails
            or (int(raw) and not is_row_id(int(raw)))):
        raise InvalidInputError("after must be a message id (a whole number, at most "
                                f"{MAX_ID})")
    return int(raw)


def error(status: int, message: str) -> HTTPResponse:
    return response.json({"error": message}, status=status)


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def message_json(message: StoredMessage) -> Dict[str, Any]:
    return {
        "id": message.id,
        "direction": "inbound" if message.direction == "in" else "outbound",
        "kind": message.kind,
        "text": message.text,
        "buttons": [{"title": b.title, "payload": b.payload} for b in message.buttons],
        "status": message.status,
        "created_at": iso(message.created_at),
    }


INBOX_TEXT = {
    BotUnavailableError: "The bot is unavailable, so the conversation stays with you. "
                         "Try again in a minute.",
}


def install_error_handler(app: Sanic) -> None:
    """Map every typed refusal to its status, in the surface's own format."""

    async def refused(request: Request, exception: Exception) -> HTTPResponse:
        status = getattr(exception, "status", 400)
        if request.path.startswith("/api/"):
            return error(status, str(exception))
        return response.text(INBOX_TEXT.get(type(exception), str(exception)), status=status)

    app.error_handler.add(HandoffError, refused)
    app.error_handler.add(InvalidInputError, refused)


# Pages are served by this app only: no framing (clickjacking), no plugins, no
# other origins, forms post back here. Inline scripts and styles are allowed
# because the inbox and web chat pages carry their own small ones.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
                           "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install_security_headers(app: Sanic) -> None:
    """Every response says how browsers may use it; HTTPS ones ask to stay HTTPS."""

    @app.on_response
    async def secure_headers(request: Request, response: HTTPResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.scheme == "https":
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
