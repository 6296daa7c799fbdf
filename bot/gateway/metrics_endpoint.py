"""GET /metrics for Prometheus, and who may read it.

With ``METRICS_TOKEN`` set, only ``Authorization: Bearer <METRICS_TOKEN>``
(compared in constant time), from anywhere: 401 otherwise. Without it, only
a scraper on this machine: the socket's peer must be loopback (127.0.0.0/8,
::1) and the request must carry no forwarding header (Forwarded,
X-Forwarded-For, X-Real-IP). A reverse proxy on this machine connects from
loopback too, for whoever is behind it; it adds those headers, so what it
forwards is refused (403) whether or not TRUST_PROXY is set. The forwarded
client address (TRUST_PROXY's ``remote_addr``) is never what decides: only a
token lets a request through a proxy. A proxy that adds no forwarding header
cannot be told apart from a local scraper: set METRICS_TOKEN behind one.

The figures hold no customer data (labels: channels, kinds, priorities,
reasons, scores), but they do show traffic: hence the guard.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Mapping, Optional

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sanic import Request, Sanic, response
from sanic.response import HTTPResponse

from bot.gateway.credentials import same_secret
from bot.gateway.web import error

PATH = "/metrics"
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def is_loopback(ip: str) -> bool:
    """Whether ``ip`` (as Sanic gives the peer: "127.0.0.1", "::1", "[::1]") is this machine."""
    try:
        address = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:  # a UNIX socket's name, or nothing
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or address).is_loopback


def refusal(token: Optional[str], authorization: str, peer_ip: str,
            headers: Mapping[str, str]) -> Optional[int]:
    """None when the scrape may be served, else its status (401: token; 403: not local).

    ``authorization`` is the Authorization header ("" when absent), ``peer_ip``
    the socket's peer (``request.ip``, never the forwarded address), ``headers``
    the request's (case-insensitive keys, as Sanic's).
    """
    if token:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not same_secret(given.strip(), token):
            return 401
        return None
    if not is_loopback(peer_ip) or any(name in headers for name in FORWARDING_HEADERS):
        return 403
    return None


def install_metrics_endpoint(app: Sanic) -> None:
    """Serve ``app.ctx.metrics``' registry at /metrics (404 when METRICS=off)."""

    @app.get(PATH)
    async def metrics(request: Request) -> HTTPResponse:
        settings = request.app.ctx.settings
        status = refusal(settings.metrics_token, request.headers.get("Authorization", ""),
                         request.ip, request.headers)
        if status == 401:
            answer = error(401, "missing or wrong bearer token (METRICS_TOKEN)")
            answer.headers["WWW-Authenticate"] = "Bearer"
            return answer
        if status is not None:
            return error(403, "metrics are served to this machine only, or with "
                              "METRICS_TOKEN")
        recorder = request.app.ctx.metrics
        if not recorder.enabled:
            return error(404, "metrics are off (METRICS=off)")
        # The store's gauges query the database: off the event loop.
        body = await asyncio.get_running_loop().run_in_executor(
            None, generate_latest, recorder.registry)
        return response.raw(body, content_type=CONTENT_TYPE_LATEST)
