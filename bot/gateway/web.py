"""Helpers every HTTP surface shares: JSON in and out, timestamps, and error mapping.

Handlers raise; one Sanic error handler (``install_error_handler``) turns the
typed errors into responses: JSON ``{"error": ...}`` for the APIs, plain
text for the web inbox's forms. Bad input is a 4xx, never a 500. A store that
cannot commit (locked, disk, connection) is a 503 with Retry-After: nothing
was stored, so the caller must not take it as accepted, and may send again.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, Dict

from sanic import Request, Sanic, response
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse

from bot.gateway.handoffs.errors import BotUnavailableError, HandoffError
from bot.gateway.rate_limits import RateLimitedError
from bot.gateway.store import UNAVAILABLE, StoredMessage
from bot.gateway.store.schema import MAX_ID, is_row_id

log = logging.getLogger(__name__)

STORE_RETRY_AFTER = 5  # seconds, on the 503 of a store that could not commit
STORE_UNAVAILABLE_TEXT = "this could not be stored just now, so it was not accepted; try again"


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


def client_address(request: Request) -> str:
    """Who is calling: the peer, or with TRUST_PROXY the client the proxy names."""
    return request.remote_addr or request.ip or "?"


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
        "visibility": message.meta.get("visibility") or "private",
        "post_id": message.meta.get("post_id"),
    }


INBOX_TEXT = {
    BotUnavailableError: "The bot is unavailable, so the conversation stays with you. "
                         "Try again in a minute.",
}


def install_error_handler(app: Sanic) -> None:
    """Map every typed refusal to its status, in the surface's own format."""

    async def refused(request: Request, exception: Exception) -> HTTPResponse:
        status = getattr(exception, "status", 400)
        if "/api/" in request.path:  # /api/v1/... and the web chat's /chat/api/...
            result = error(status, str(exception))
        else:
            result = response.text(INBOX_TEXT.get(type(exception), str(exception)),
                                   status=status)
        if isinstance(exception, RateLimitedError):
            result.headers["Retry-After"] = str(exception.retry_after)
        return result

    async def unavailable(request: Request, exception: Exception) -> HTTPResponse:
        # The class only: the error's text can quote SQL, and the path a conversation id.
        log.warning("%s %s: the store could not commit (%s); answered 503", request.method,
                    request.name, type(exception).__name__)
        result = (error(503, STORE_UNAVAILABLE_TEXT) if "/api/" in request.path
                  else response.text(STORE_UNAVAILABLE_TEXT, status=503))
        result.headers["Retry-After"] = str(STORE_RETRY_AFTER)
        return result

    async def sanic_refused(request: Request, exception: SanicException) -> HTTPResponse:
        # Sanic's own (no route, wrong method, body too large...), in our format: its
        # default page parses Accept and fails (a 500) on a value without a '/'.
        # JSON but for the pages, as what Sanic could not even route (an over-long
        # request line) may well have been an API call.
        status = getattr(exception, "status_code", 500) or 500
        text = str(exception) if status < 500 else "internal error"
        page = request.path.startswith("/inbox") or request.path in {"/", "/chat", "/chat/"}
        result = response.text(text, status=status) if page else error(status, text)
        for name, value in (getattr(exception, "headers", None) or {}).items():
            result.headers[name] = value
        return result

    for refusal in (HandoffError, InvalidInputError, RateLimitedError):
        app.error_handler.add(refusal, refused)
    for outage in UNAVAILABLE:
        app.error_handler.add(outage, unavailable)
    app.error_handler.add(SanicException, sanic_refused)


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
