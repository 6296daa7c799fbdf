"""Who is calling the DM API: a bridge, by its bearer secret or an HMAC signature.

Each bridge (``make bridge ACTION=add``) has its own secret and may use only
its own channels. A request authenticates in one of two ways:

* ``Authorization: Bearer <secret>``: the server hashes the secret and looks
  the digest up. Any bridge may do this.
* Signed, for bridges created with ``--signed``: headers ``X-Bridge-Id``
  (the bridge's name), ``X-Timestamp`` (Unix seconds) and ``X-Signature``,
  ``hex(HMAC-SHA256(key, f"{timestamp}.{METHOD}.{path?query}.".encode() + body))``.
  The key is ``SHA-256(secret)`` (raw 32 bytes): the very digest the store
  keeps. That is a choice made knowingly: a server must hold an HMAC key to
  verify it, so for a signing bridge the stored digest is as good as a secret
  (whoever reads it can sign as that bridge, though not present the bearer
  secret). Hence signing is opt-in, bearer-only bridges refuse signatures, and
  the ``bridge_credentials`` table must be guarded like a secret.
  Timestamps more than five minutes off are refused; a replay inside that
  window can only repeat a read or re-post a message, which is stored once.

Failures are 401 with one message whatever went wrong, and nothing secret
(a token, a signature, a digest) is ever logged.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import time
from typing import Any, Awaitable, Callable, Optional

from sanic import Request
from sanic.response import HTTPResponse

from bot.gateway.credentials import bearer, digest
from bot.gateway.rate_limits import RateLimitedError
from bot.gateway.store import Bridge
from bot.gateway.web import error

log = logging.getLogger(__name__)

REPLAY_WINDOW_SECONDS = 300
BRIDGE_ID, TIMESTAMP, SIGNATURE = "X-Bridge-Id", "X-Timestamp", "X-Signature"
NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
REFUSED = "missing, wrong or revoked bridge credential"

Handler = Callable[..., Awaitable[HTTPResponse]]


def signing_key(secret: str) -> bytes:
    """The HMAC key of a signing bridge: SHA-256 of its secret (what the store keeps)."""
    return hashlib.sha256(secret.encode()).digest()


def signature(key: bytes, timestamp: str, method: str, target: str, body: bytes) -> str:
    """What a signing bridge sends as X-Signature (target: the path and ?query as sent)."""
    message = f"{timestamp}.{method.upper()}.{target}.".encode() + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def request_target(request: Request) -> str:
    """The path and query exactly as the client sent them (what it signed)."""
    return request.path + (f"?{request.query_string}" if request.query_string else "")


async def authenticate(request: Request) -> Optional[Bridge]:
    """The calling bridge, or None when the request does not prove to be one."""
    if any(h in request.headers for h in (BRIDGE_ID, TIMESTAMP, SIGNATURE)):
        return await _signed(request)
    token = bearer(request)
    if token is None:
        return None
    presented = digest(token)
    bridge = await request.app.ctx.gateway.db.active_bridge(secret_sha256=presented)
    if bridge is None or not hmac.compare_digest(bridge.secret_sha256, presented):
        log.info("DM API: a bearer credential was refused")
        return None
    return bridge


async def _signed(request: Request) -> Optional[Bridge]:
    name = request.headers.get(BRIDGE_ID, "")
    timestamp = request.headers.get(TIMESTAMP, "")
    given = request.headers.get(SIGNATURE, "")
    if not (NAME.fullmatch(name) and _TIMESTAMP.fullmatch(timestamp)
            and _SIGNATURE.fullmatch(given)):
        log.info("DM API: malformed signature headers")
        return None
    if abs(time.time() - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        log.info("DM API: signed request from %s outside the replay window", name)
        return None
    bridge = await request.app.ctx.gateway.db.active_bridge(name=name)
    if bridge is None or not bridge.signs:
        log.info("DM API: %s is not an active signing bridge", name)
        return None
    expected = signature(bytes.fromhex(bridge.secret_sha256), timestamp, request.method,
                         request_target(request), request.body)
    if not hmac.compare_digest(expected, given.lower()):
        log.info("DM API: wrong signature from %s", name)
        return None
    return bridge


def bridge_required(handler: Handler) -> Handler:
    """Refuse (401) unless a bridge is calling; the handler finds it in ``request.ctx.bridge``.

    Each bridge may make BRIDGE_REQUESTS_PER_MINUTE calls (429 past that).

    The bridge's channels are narrowed to the DM API's own, so a Telegram or
    web chat conversation is never a bridge's, whatever its row says.
    """

    @functools.wraps(handler)
    async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        bridge = await authenticate(request)
        if bridge is None:
            return error(401, REFUSED)
        wait = request.app.ctx.bridge_requests.take(bridge.name)
        if wait > 0:
            raise RateLimitedError(f"bridge {bridge.name!r} is over its "
                                   f"{request.app.ctx.settings.bridge_requests_per_minute} "
                                   "requests a minute", wait)
        request.ctx.bridge_channels = bridge.channels & request.app.ctx.api_channels
        request.ctx.bridge = bridge
        return await handler(request, *args, **kwargs)

    return guarded
