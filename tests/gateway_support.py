"""Running the gateway in-process for tests, with a stand-in for Rasa's REST channel.

The stand-in lets tests make Rasa slow, down, or answer with buttons, which
the real server cannot be told to do on cue. End-to-end tests against the real
Rasa stack live elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, Sequence, TypeVar

import httpx
from aiohttp import web
from sanic import Sanic

from bot.gateway.app import create_app
from bot.gateway.channels.bridge_admin import create_bridge
from bot.gateway.pipeline import RetryPolicy
from bot.gateway.request_head import RequestHeadGuard
from bot.gateway.settings import Settings
from bot.gateway.store import Store
from bot.handoff_contract import NOT_READY_ERROR, RATING_SCALE, RESOLVED_INTENT, rating_payload

# Several gateway apps start and stop in one test process; Sanic supports that
# in test mode (it keeps the original methods its touch-up step rewrites).
Sanic.test_mode = True

# Deliveries give up after 5 s; Rasa is waited for as in production (an hour).
FAST_RETRY = RetryPolicy(first_delay=0.05, max_delay=0.3, delivery_give_up_after=5.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedOnLoopback:
    """An aiohttp fake of a service, on 127.0.0.1: subclasses (dataclasses with ``port``
    and ``_runner`` fields) say what it serves in ``add_routes``."""

    port: int
    _runner: Optional[web.AppRunner]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class RasaStandIn(ServedOnLoopback):
    """Answers like Rasa's REST webhook: 'echo: <text>', or buttons, or a long text."""

    port: int = field(default_factory=free_port)
    delay: float = 0.0
    received: List[Dict[str, Any]] = field(default_factory=list)
    paused: set = field(default_factory=set)
    resumed: List[Dict[str, Any]] = field(default_factory=list)
    handed_back: List[str] = field(default_factory=list)  # senders, per hand-back event
    api_calls: List[Dict[str, Any]] = field(default_factory=list)  # path and token, per call
    hand_back_fails: bool = False  # e.g. the action server is down: Rasa answers 500
    answers_garbage: bool = False  # a 200 that is not JSON (a proxy's error page, say)
    not_ready: bool = False  # still loading its model: 503, as bot/rasa_channel.py answers
    turns: Dict[str, Any] = field(default_factory=dict)  # message_id -> replies, as the tracker
    replayed: List[str] = field(default_factory=list)  # message_ids answered from "the tracker"
    _locks: Dict[str, asyncio.Lock] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    in_flight_per_sender: Dict[str, int] = field(default_factory=dict)
    max_in_flight_per_sender: int = 0  # above 1: two replicas worked one conversation at once
    calls_per_sender: Dict[str, int] = field(default_factory=dict)  # every call, failed too
    _runner: Optional[web.AppRunner] = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/webhooks/gateway/webhook", self._webhook)
        app.router.add_post("/conversations/{sender}/tracker/events", self._events)
        app.router.add_post("/conversations/{sender}/trigger_intent", self._trigger)

    def texts_for(self, sender: str) -> List[str]:
        return [r["message"] for r in self.received if r["sender"] == sender]

    async def _webhook(self, request: web.Request) -> web.Response:
        """Like bot/rasa_channel.py: a retry of a message already handled is replayed."""
        body = await request.json()
        if self.not_ready:
            return web.json_response({"error": NOT_READY_ERROR}, status=503)
        sender = body["sender"]  # calls for one conversation at once (before the lock)
        self.calls_per_sender[sender] = self.calls_per_sender.get(sender, 0) + 1
        self.in_flight_per_sender[sender] = self.in_flight_per_sender.get(sender, 0) + 1
        self.max_in_flight_per_sender = max(self.max_in_flight_per_sender,
                                            self.in_flight_per_sender[sender])
        try:
            return await self._handle_once(body)
        finally:
            self.in_flight_per_sender[sender] -= 1

    async def _handle_once(self, body: Dict[str, Any]) -> web.Response:
        message_id = body.get("message_id")
        # Rasa's conversation lock: a retry waits for the original, then finds it.
        async with self._locks.setdefault(body["sender"], asyncio.Lock()):
            if body.get("retry") and message_id in self.turns:
                self.replayed.append(message_id)
                return web.json_response(self.turns[message_id])
            if self.answers_garbage:
                return web.Response(text="<html>Bad gateway</html>", content_type="text/html")
            response = await self._answer(body)
            if message_id:
                self.turns[message_id] = json.loads(response.body)
            return response

    async def _answer(self, body: Dict[str, Any]) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.received.append(body)
        text = body["message"]
        sender = body["sender"]
        if sender in self.paused:  # like Rasa: recorded, not answered
            return web.json_response([])
        if text == "human please":
            self.paused.add(sender)
            return web.json_response([
                {"recipient_id": sender, "text": "A person will reply right here."},
                {"recipient_id": sender, "custom": {"handoff": {
                    "reason": "customer_request", "priority": "high",
                    "summary": "Wants: Check on an order; order: JL-204815",
                    "details": {"order_id": "JL-204815"},
                    "turns": [{"text": text, "intent": "request_human", "confidence": 0.97,
                               "sentiment": "neutral"}]}}},
            ])
        if text == "buttons please":
            return web.json_response([{"recipient_id": body["sender"], "text": "Pick one",
                                       "buttons": [{"title": "Yes", "payload": "/affirm"},
                                                   {"title": "No", "payload": "/deny"}]}])
        if text == "long answer please":
            return web.json_response([{"recipient_id": body["sender"],
                                       "text": ("word " * 1000 + "\n\n") * 2}])
        return web.json_response([{"recipient_id": body["sender"], "text": f"echo: {text}"}])


    def _api_call(self, request: web.Request) -> None:
        self.api_calls.append({"path": request.raw_path, "token": request.query.get("token")})

    async def _events(self, request: web.Request) -> web.Response:
        self._api_call(request)
        events = await request.json()
        sender = request.match_info["sender"]
        self.resumed.append({"sender": sender, "events": events})
        if any(e.get("event") == "resume" for e in events):
            self.paused.discard(sender)
        return web.json_response({"sender_id": sender})

    async def _trigger(self, request: web.Request) -> web.Response:
        """Like action_resume_after_handoff: the rating question, once resumed."""
        self._api_call(request)
        sender = request.match_info["sender"]
        if (await request.json()).get("name") != RESOLVED_INTENT:
            return web.json_response({"message": "unknown intent"}, status=404)
        if sender in self.paused:  # Rasa runs no action in a paused conversation
            return web.json_response({"tracker": {}, "messages": []})
        if self.hand_back_fails:
            return web.json_response({"reason": "ConversationError"}, status=500)
        self.handed_back.append(sender)
        return web.json_response({"tracker": {}, "messages": [{
            "recipient_id": sender, "text": "How did we do? Tap a number.",
            "buttons": [{"title": str(n), "payload": rating_payload(n)} for n in RATING_SCALE],
        }]})


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings,
                          retry: RetryPolicy = FAST_RETRY) -> AsyncIterator[Any]:
    """The gateway app serving on settings.port; yields the app (ctx.gateway inside)."""
    app = create_app(settings, retry=retry)
    server = await app.create_server(host=settings.host, port=settings.port,
                                     return_asyncio_server=True, access_log=False,
                                     protocol=RequestHeadGuard)  # as python -m bot.gateway
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield app
    finally:
        await server.before_stop()
        await server.close()
        await server.wait_closed()
        await server.after_stop()


T = TypeVar("T")


class GatewayThread:
    """The gateway (and a RasaStandIn, and a FakeTelegram if asked) served from a thread
    of its own, on its own event loop, for synchronous tests such as hypothesis ones
    that send many requests to one gateway: ``with GatewayThread(make) as served:``.

    ``make_settings(rasa, fake_telegram_or_None)`` is called once both listen, so the
    settings can point at them. ``run(coroutine)`` runs a coroutine on the gateway's
    loop and returns its result (e.g. ``run(bridge_auth(served.settings))``).
    """

    def __init__(self, make_settings: Callable[[RasaStandIn, Any], Settings],
                 telegram: bool = False) -> None:
        self._make_settings = make_settings
        self._with_telegram = telegram
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="gateway-thread", daemon=True)
        self._serving: Any = None
        self.rasa: Optional[RasaStandIn] = None
        self.telegram: Any = None
        self.settings: Optional[Settings] = None
        self.app: Any = None

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coroutine: Awaitable[T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        try:
            self.run(self._start())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)
            self.loop.close()

    async def _start(self) -> None:
        self.rasa = RasaStandIn()
        await self.rasa.start()
        if self._with_telegram:
            from tests.fake_telegram import FakeTelegram

            self.telegram = FakeTelegram()
            await self.telegram.start()
        self.settings = self._make_settings(self.rasa, self.telegram)
        self._serving = running_gateway(self.settings)
        self.app = await self._serving.__aenter__()

    async def _stop(self) -> None:
        if self._serving is not None:
            await self._serving.__aexit__(None, None, None)
            self._serving = None
        if self.telegram is not None:
            await self.telegram.stop()
        if self.rasa is not None:
            await self.rasa.stop()


def gateway_settings(tmp_path, rasa_url: str, **changes: Any) -> Settings:
    values = dict(database_url=f"sqlite:///{tmp_path / 'gateway.db'}", rasa_url=rasa_url,
                  host="127.0.0.1", port=free_port())
    values.update(changes)
    return Settings(**values)


async def inbox_sign_in(http: httpx.AsyncClient, username: str, password: str,
                        **headers: str) -> httpx.Response:
    """Sign in to the web inbox as a browser does: fetch the form, post it with its token.

    The form's CSRF token is also its cookie; it is sent explicitly, since
    behind an HTTPS proxy the cookie is Secure and httpx would keep it back.
    """
    form = await http.get("/inbox/login", headers=headers)
    csrf = re.search(r"name=csrf value='([^']+)'", form.text).group(1)
    return await http.post("/inbox/login", headers={**headers, "Cookie": f"inbox_login={csrf}"},
                           data={"username": username, "password": password, "csrf": csrf})


def client(settings: Settings, headers: Optional[Dict[str, str]] = None) -> httpx.AsyncClient:
    """An HTTP client for the gateway; ``headers`` (e.g. ``bridge_auth``'s) go on every call."""
    return httpx.AsyncClient(base_url=f"http://{settings.host}:{settings.port}", timeout=10,
                             headers=headers)


async def bridge_auth(settings: Settings, channels: Sequence[str] = ("api",),
                      signed: bool = False) -> Dict[str, str]:
    """A new DM API bridge in the test's store, as the header it authenticates with.

    Works before or after the gateway starts (the store is the same database).
    The secret is in ``headers["Authorization"].removeprefix("Bearer ")``.
    """
    def create() -> str:
        store = Store(settings.database_url)
        try:
            return create_bridge(store, f"test-{uuid.uuid4().hex[:8]}", channels, signed)
        finally:
            store.engine.dispose()

    return {"Authorization": f"Bearer {await asyncio.to_thread(create)}"}


async def eventually(check, timeout: float = 10.0, interval: float = 0.05):  # noqa: ANN001
    """Poll ``check()`` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: last {result!r}")
        await asyncio.sleep(interval)
