"""Rasa behind a small reverse proxy, so that a new model goes live without a pause.

    python -m bot.rasa_supervisor [rasa run options...]   (the Procfile's `rasa:` line)

Rasa's own ``PUT /model`` loads the new model inside the serving process and
blocks its event loop for the whole load (25-40 s with our model): every
message waits. This process instead listens where Rasa would (``RASA_HOST``,
default 127.0.0.1, and ``--port``) and forwards every request, unchanged and
streamed, to a Rasa child (``python -m bot.rasa_server <options> --port
<free port>`` on 127.0.0.1, so the child keeps the token and loopback rules).
``PUT /model`` is answered here, with Rasa's token rule and answers:

1. 401 without the right ``?token=`` (RASA_TOKEN), 400 for a body Rasa would
   refuse, 409 while another switch runs;
2. a second child is started with ``--model <model_file>`` while the first
   keeps answering; once its ``GET /status`` is 200 and names that model, and
   it has parsed a few warm-up messages (a cold Rasa's first parse takes ~2 s),
   new requests go to it;
3. the old child's in-flight requests finish (capped at RASA_TIMEOUT_SECONDS,
   the gateway's own wait, default 330 s), then it gets SIGTERM, and SIGKILL
   after a grace; then the answer is 204, as Rasa's. One log line per switch
   gives the timings.

The new child loads at a lower CPU priority (nice RASA_SWITCH_NICE, default
5; 0 turns it off), so that on a busy machine loading slows the switch rather
than the live Rasa's answers; once live it gets this process's priority back
(that needs root or CAP_SYS_NICE; otherwise it keeps nice 5 and a warning says
so). A new child that exits, starts without a model, or is not ready within
RASA_SWITCH_LOAD_TIMEOUT (default 480 s; deploy.py waits 600 s in all) is
killed, the old one stays live and the answer is 400 with the reason.
Conversations carry over because both children use the same tracker store
(SQL in endpoints.yml); during a switch two Rasa processes hold a model, so
memory briefly doubles.

Start-up: the port is bound at once (a clash is an error straight away) but
only listened on once the first child's ``GET /status`` answers (and it is
warmed up), so callers see "connection refused" while Rasa loads, as with a
bare Rasa, never a 503.

If the live child dies, this process stops its other children and exits with
status 1, so honcho stops `make run` as it did when Rasa itself died. SIGTERM
and SIGINT stop the children (SIGTERM, SIGKILL after a grace) before it
exits; each child also gets SIGTERM from the kernel should this process be
killed outright (Linux PR_SET_PDEATHSIG), so none is left behind.

Not supported (it refuses to start): ``--ssl-*`` (terminate TLS in front) and
running without ``--enable-api`` (the switch needs ``/status``). Only the
token, not a JWT, authorises a switch; ``model_server`` and
``remote_storage`` in the body are refused. WebSocket upgrades are not proxied.
This process imports neither Rasa nor TensorFlow (~31 MB resident); it logs
no requests, and any ``token=`` in its log lines is redacted. Answers pass
through unchanged, except that aiohttp adds ``Date`` and ``Server`` headers
when Rasa sent none.

RASA_CHILD_COMMAND (a shell-quoted command) replaces ``python -m
bot.rasa_server`` as the child, for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import hmac
import json
import logging
import os
import re
import shlex
import signal
import socket
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from bot.rasa_server import DEFAULT_HOST, MissingTokenError

log = logging.getLogger("bot.rasa_supervisor")

DEFAULT_PORT = 5005  # rasa run's
DEFAULT_LOAD_TIMEOUT = 480.0
DEFAULT_DRAIN_TIMEOUT = 330.0  # the gateway's RASA_TIMEOUT_SECONDS default
STOP_GRACE = 20.0  # Sanic's own graceful shutdown is 15 s
READY_POLL = 0.25
MAX_PUT_BODY = 64 * 1024
# Parsed by a new Rasa before it goes live: its first parse costs ~2 s (the NLU
# pipeline builds its caches and TensorFlow traces its graphs), later ones ~50 ms.
WARM_UP_TEXTS = ("hello", "where is my order?", "thank you, bye")
CHILD_HOST = "127.0.0.1"
# A new Rasa loads at this nice value (RASA_SWITCH_NICE), so the live one keeps the CPU.
DEFAULT_SWITCH_NICE = 5
# Not forwarded: they describe one connection, not the message (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade", "Proxy-Connection"))
# aiohttp's client adds these when absent; a proxy must not.
CLIENT_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class OptionsError(SystemExit):
    """The rasa run options cannot be supervised; the text says why."""


class SwitchError(RuntimeError):
    """The new model did not go live; the old one still is. The text says why."""


# --- options ------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The rasa run options, split into what this process takes and what each child gets."""

    host: str
    port: int
    model: Optional[str]  # --model as given (a file or a folder); None: Rasa's default
    child_options: List[str]  # everything else, for every child


_TAKEN = {"--port": "port", "-p": "port", "--model": "model", "-m": "model",
          "--interface": "host", "-i": "host"}


def parse_options(options: Sequence[str], env: Mapping[str, str] = os.environ) -> Options:
    """Take --port, --model and --interface out of ``options``; the rest goes to each child."""
    found: Dict[str, str] = {}
    rest: List[str] = []
    items = list(options)
    index = 0
    while index < len(items):
        item = items[index]
        name, equals, value = item.partition("=")
        if name in _TAKEN and (equals or index + 1 < len(items)):
            if not equals:
                index += 1
                value = items[index]
            found[_TAKEN[name]] = value
        elif item in _TAKEN:
            raise OptionsError(f"error: {item} needs a value")
        else:
            if name.startswith("--ssl"):
                raise OptionsError(f"error: {name} is not supported by bot.rasa_supervisor; "
                                   "terminate TLS in front of it")
            rest.append(item)
        index += 1
    if "--enable-api" not in rest:
        raise OptionsError("error: bot.rasa_supervisor needs --enable-api (it reads GET /status "
                           "to know a Rasa is ready)")
    try:
        port = int(found.get("port", DEFAULT_PORT))
    except ValueError:
        raise OptionsError(f"error: --port {found['port']!r} is not a number") from None
    host = found.get("host") or env.get("RASA_HOST", "").strip() or DEFAULT_HOST
    return Options(host, port, found.get("model"), rest)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise OptionsError(f"error: {name}={raw!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise OptionsError(f"error: {name} must be a number of seconds above 0")
    return value


# --- logging, without the token ------------------------------------------------------


_TOKEN_PARAM = re.compile(r"(token=)[^&\s'\"]+")


def redact(text: str, token: Optional[str] = None) -> str:
    """``text`` with every ``token=...`` value, and the token itself, replaced."""
    text = _TOKEN_PARAM.sub(r"\1[redacted]", text)
    return text.replace(token, "[redacted]") if token else text


class RedactingFormatter(logging.Formatter):
    """Redacts whole formatted records, tracebacks included."""

    def __init__(self, token: Optional[str]) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s  - %(message)s")
        self.token = token

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.token)


# --- children -----------------------------------------------------------------------


def free_port(host: str = CHILD_HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None
_PR_SET_PDEATHSIG = 1


def _child_setup(nice: int) -> None:  # pragma: no cover - runs in the forked child
    """Linux: the kernel sends the child SIGTERM when this process dies, even by SIGKILL.
    ``nice``: a lower CPU priority, so that loading does not slow the live Rasa."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if nice:
        os.nice(nice)


def restore_priority(pid: int) -> bool:
    """Give every thread of ``pid`` this process's CPU priority again (Linux: nice is per
    thread); False where that is not allowed (raising priority needs CAP_SYS_NICE)."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        for _ in range(2):  # twice: a thread started meanwhile took its creator's value
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(ProcessLookupError):
                    os.setpriority(os.PRIO_PROCESS, int(task), own)
    except PermissionError:
        return False
    except FileNotFoundError:  # gone, or no /proc
        pass
    return True


class Child:
    """One Rasa process, its keep-alive connections, and how many requests it holds."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, model: Optional[str],
                 keepalive: float) -> None:
        self.process = process
        self.port = port
        self.model = model
        self.url = f"http://{CHILD_HOST}:{port}"
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.retiring = False  # stopped on purpose: its exit is no failure
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=keepalive),
            timeout=aiohttp.ClientTimeout(total=None, connect=10),
            auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
        self.exited = asyncio.ensure_future(process.wait())

    @property
    def pid(self) -> int:
        return self.process.pid

    def enter(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, SIGKILL after ``grace``; then its connections are closed."""
        self.retiring = True
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(self.exited), grace)
            except asyncio.TimeoutError:
                log.warning("Rasa pid %d did not stop within %.0fs of SIGTERM; killing it",
                            self.pid, grace)
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.exited
        await self.session.close()


@functools.cache
def _rasa_version() -> Optional[str]:
    try:
        return metadata.version("rasa")  # the installed one, without importing it
    except metadata.PackageNotFoundError:
        return None


def _rasa_error(status: int, reason: str, message: str, **details: Any) -> web.Response:
    """An error in the shape of Rasa's ErrorResponse, so that clients read it alike."""
    body = {"version": _rasa_version(), "status": "failure", "message": message, "reason": reason,
            "details": details, "help": None, "code": status}
    return web.json_response(body, status=status)


# --- the supervisor -----------------------------------------------------------------


class Supervisor:
    """Proxies to the live Rasa child and switches models behind it (see the module text)."""

    def __init__(self, options: Sequence[str], env: Optional[Mapping[str, str]] = None,
                 child_command: Optional[Sequence[str]] = None) -> None:
        env = dict(os.environ if env is None else env)
        self.token = env.get("RASA_TOKEN", "").strip()
        if not self.token:
            raise MissingTokenError("error: RASA_TOKEN is not set; `make run` makes one "
                                    "(var/rasa-token), or set it to the gateway's RASA_TOKEN")
        self.options = parse_options(options, env)
        self.load_timeout = _seconds(env, "RASA_SWITCH_LOAD_TIMEOUT", DEFAULT_LOAD_TIMEOUT)
        self.drain_timeout = _seconds(env, "RASA_TIMEOUT_SECONDS", DEFAULT_DRAIN_TIMEOUT)
        if child_command is None:
            configured = env.get("RASA_CHILD_COMMAND", "").strip()
            child_command = (shlex.split(configured) if configured
                             else [sys.executable, "-m", "bot.rasa_server"])
        self.child_command = list(child_command)
        self.child_env = {**env, "RASA_HOST": CHILD_HOST}
        # Reuse a connection to a child only well inside Sanic's keep-alive (5 s by
        # default), so that Sanic never closes one just as a request goes out on it.
        sanic_keepalive = _seconds(env, "SANIC_KEEP_ALIVE_TIMEOUT", 5.0)
        self.keepalive = max(0.5, min(sanic_keepalive - 1.5, 30.0))
        nice = env.get("RASA_SWITCH_NICE", "").strip() or str(DEFAULT_SWITCH_NICE)
        if not nice.isdigit() or int(nice) > 19:
            raise OptionsError(f"error: RASA_SWITCH_NICE={nice!r} is not a nice value 0..19")
        self.switch_nice = int(nice)
        self.live: Optional[Child] = None
        self.children: List[Child] = []
        self.switching = False
        self.stopped = asyncio.Event()
        self.exit_code = 0
        self._runner: Optional[web.AppRunner] = None

    # -- lifecycle

    def request_stop(self, exit_code: int = 0) -> None:
        """Stop serving; run() then returns ``exit_code`` (the first one asked for)."""
        if not self.stopped.is_set():
            self.exit_code = exit_code
            self.stopped.set()

    async def run(self) -> int:
        """Serve until stopped; returns the exit status. Children are always stopped."""
        host, port = self.options.host, self.options.port
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
        except OSError as error:
            listener.close()
            log.error("cannot listen on %s:%d (%s)", host, port, error.strerror or error)
            return 1
        try:
            first = await self._spawn(self.options.model)
            ready = asyncio.ensure_future(self._wait_ready(first, expect=None, timeout=None))
            stop = asyncio.ensure_future(self.stopped.wait())
            await asyncio.wait({ready, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                ready.cancel()
                return self.exit_code
            stop.cancel()
            try:
                ready.result()
            except SwitchError as error:
                log.error("Rasa did not start: %s", error)
                return 1
            await self._warm_up(first)
            if self.stopped.is_set():
                return self.exit_code
            if first.exited.done():
                log.error("Rasa exited with status %s as it started", first.process.returncode)
                return 1
            self.live = first
            app = web.Application(client_max_size=MAX_PUT_BODY)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                         shutdown_timeout=5.0)
            await self._runner.setup()
            await web.SockSite(self._runner, listener).start()
            log.info("serving on http://%s:%d, Rasa pid %d (%s) behind it",
                     host, port, first.pid, first.model or "its default model")
            await self.stopped.wait()
            return self.exit_code
        finally:
            await self._shutdown()
            listener.close()

    async def _shutdown(self) -> None:
        """Stop listening, and every child: on SIGTERM Rasa finishes the requests it holds,
        and their answers are still passed on (for up to 5 s) as the server winds down."""
        children = list(self.children)
        for child in children:
            child.retiring = True
        # The server first: it stops listening before any child is told to stop.
        await asyncio.gather(*([self._runner.cleanup()] if self._runner else []),
                             *(child.stop() for child in children), return_exceptions=True)

    async def _spawn(self, model: Optional[str], nice: int = 0) -> Child:
        port = free_port()
        argv = [*self.child_command, *self.options.child_options, "--port", str(port)]
        if model is not None:
            argv.append(f"--model={model}")  # "=": a path may start with "-"
        process = await asyncio.create_subprocess_exec(
            *argv, env=self.child_env, start_new_session=False,
            preexec_fn=functools.partial(_child_setup, nice))
        child = Child(process, port, model, self.keepalive)
        self.children.append(child)
        child.exited.add_done_callback(lambda _: self._on_exit(child))
        log.info("started Rasa pid %d on %s:%d (model %s)", child.pid, CHILD_HOST, port,
                 model or "as configured")
        return child

    def _on_exit(self, child: Child) -> None:
        if child in self.children:
            self.children.remove(child)
        if child is self.live and not child.retiring and not self.stopped.is_set():
            log.error("the live Rasa (pid %d) exited unexpectedly (status %s); stopping",
                      child.pid, child.process.returncode)
            self.request_stop(1)

    async def _wait_ready(self, child: Child, expect: Optional[str],
                          timeout: Optional[float]) -> None:
        """Until the child's GET /status is 200 (and names ``expect``, if given)."""
        started = time.monotonic()
        status_url = URL(f"{child.url}/status")
        while True:
            if child.exited.done():
                raise SwitchError(f"Rasa exited with status {child.process.returncode} before "
                                  "it was ready (see its log above)")
            if timeout is not None and time.monotonic() - started > timeout:
                raise SwitchError(f"Rasa was not ready within {timeout:.0f}s "
                                  "(RASA_SWITCH_LOAD_TIMEOUT)")
            try:
                async with child.session.get(status_url, params={"token": self.token},
                                             timeout=aiohttp.ClientTimeout(total=5)) as answer:
                    body = await answer.read()
                    if answer.status == 200:
                        live = _json_field(body, "model_file")
                        if expect is None or live == expect:
                            return
                        raise SwitchError(f"Rasa loaded {live!r}, not {expect!r}")
                    if answer.status == 409:  # Rasa's "no agent loaded"
                        if expect is None:
                            log.warning("Rasa pid %d runs without a model (it found or loaded "
                                        "none; see its log)", child.pid)
                            return
                        raise SwitchError("Rasa started without a model: it could not load "
                                          "the file (see its log above)")
                    raise SwitchError(f"Rasa answered GET /status with HTTP {answer.status}")
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass  # not listening yet: Rasa listens only once its model is loaded
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(child.exited), READY_POLL)

    async def _warm_up(self, child: Child) -> float:
        """Parse a few messages (POST /model/parse: no tracker is touched), so that the
        first customers on a new Rasa do not pay for its cold start; returns the seconds."""
        started = time.monotonic()
        for text in WARM_UP_TEXTS:
            try:
                async with child.session.post(URL(f"{child.url}/model/parse"),
                                              params={"token": self.token},
                                              json={"text": text},
                                              timeout=aiohttp.ClientTimeout(total=60)
                                              ) as answer:
                    await answer.read()
                    if answer.status != 200:
                        log.warning("Rasa pid %d answered its warm-up parse with HTTP %d",
                                    child.pid, answer.status)
                        break
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                log.warning("Rasa pid %d failed its warm-up parse (%s)", child.pid,
                            type(error).__name__)
                break
        return time.monotonic() - started

    # -- requests

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "PUT" and request.path.rstrip("/") == "/model":
            return await self._put_model(request)
        child = self.live
        if child is None or self.stopped.is_set():
            return _rasa_error(503, "ServiceUnavailable", "Rasa is stopping; try again shortly")
        return await self._forward(request, child)

    async def _forward(self, request: web.Request, child: Child) -> web.StreamResponse:
        """The request to ``child`` as it came (raw path and query, headers, streamed body),
        and its answer back as it came."""
        child.enter()
        try:
            headers = CIMultiDict((k, v) for k, v in request.headers.items()
                                  if k.lower() not in HOP_BY_HOP)
            skip = [name for name in CLIENT_AUTO_HEADERS if name not in request.headers]
            url = URL(child.url + request.raw_path, encoded=True)
            try:
                upstream = await child.session.request(
                    request.method, url, headers=headers, skip_auto_headers=skip,
                    data=request.content if request.body_exists else None,
                    allow_redirects=False, compress=None)
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                log.warning("Rasa pid %d did not answer %s %s (%s)", child.pid,
                            request.method, request.path, type(error).__name__)
                return _rasa_error(502, "BadGateway", "Rasa did not answer; try again")
            async with upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for name, value in upstream.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        response.headers.add(name, value)
                await response.prepare(request)
                try:
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
                except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                    # Rasa broke off its answer: so must we, or the caller would take the
                    # part it got (a final chunk, or a short body) for the whole.
                    log.warning("Rasa pid %d broke off its answer to %s %s (%s)", child.pid,
                                request.method, request.path, type(error).__name__)
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                except ConnectionResetError:
                    return response  # the caller hung up; Rasa has done its part
                await response.write_eof()
                return response
        finally:
            child.leave()

    def _authorised(self, request: web.Request) -> bool:
        given = request.query.get("token", "")
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                   self.token.encode("utf-8", "surrogateescape"))

    async def _put_model(self, request: web.Request) -> web.Response:
        """Rasa's PUT /model, done by starting a second Rasa (see the module text)."""
        if not self._authorised(request):
            return _rasa_error(401, "NotAuthenticated", "User is not authenticated.")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _rasa_error(400, "BadRequest", "The request body is too large.")
        model, problem = _model_file(raw)
        if problem:
            return _rasa_error(400, "BadRequest", problem)
        if self.switching:
            return _rasa_error(409, "Conflict", "A model switch is already running; try "
                                                "again once it has finished.")
        if self.live is None or self.stopped.is_set():
            return _rasa_error(503, "ServiceUnavailable", "Rasa is stopping")
        self.switching = True
        # A task of its own: a caller that hangs up must not leave a switch half done.
        task = asyncio.ensure_future(self._switch(model))
        task.add_done_callback(lambda _: setattr(self, "switching", False))
        try:
            await asyncio.shield(task)
        except SwitchError as error:
            return _rasa_error(400, "BadRequest",
                               f"Agent with name '{model}' could not be loaded: {error}",
                               parameter="model_file", **{"in": "body"})
        return web.Response(status=204)

    async def _switch(self, model: str) -> None:
        started = time.monotonic()
        old = self.live
        assert old is not None
        expect = Path(model).name if Path(model).is_file() else None
        new = await self._spawn(model, nice=self.switch_nice)
        try:
            await self._wait_ready(new, expect, self.load_timeout)
            left = self.load_timeout - (time.monotonic() - started)
            try:
                warm_up = await asyncio.wait_for(self._warm_up(new), max(1.0, left))
            except asyncio.TimeoutError:
                raise SwitchError(f"Rasa was not ready within {self.load_timeout:.0f}s "
                                  "(RASA_SWITCH_LOAD_TIMEOUT)") from None
            if self.stopped.is_set():
                raise SwitchError("the supervisor is stopping")
        except BaseException as error:
            await new.stop()
            log.error("model switch to %s failed after %.1fs: %s; Rasa pid %d stays live",
                      model, time.monotonic() - started, error, old.pid)
            raise
        loaded = time.monotonic()
        self.live = new
        if self.switch_nice and not restore_priority(new.pid):
            log.warning("Rasa pid %d keeps nice %d: raising it back needs CAP_SYS_NICE (or set "
                        "RASA_SWITCH_NICE=0 to load new models at full priority)", new.pid,
                        self.switch_nice)
        held = old.in_flight
        try:
            await asyncio.wait_for(old.idle.wait(), self.drain_timeout)
        except asyncio.TimeoutError:
            log.warning("Rasa pid %d still had %d requests after %.0fs "
                        "(RASA_TIMEOUT_SECONDS); stopping it anyway", old.pid, old.in_flight,
                        self.drain_timeout)
        drained = time.monotonic()
        await old.stop()
        done = time.monotonic()
        log.info("model switch: %s live in Rasa pid %d after %.1fs loading (%.1fs of it "
                 "warming up); old pid %d finished %d in-flight requests in %.1fs and stopped "
                 "in %.1fs; %.1fs in all", model, new.pid, loaded - started, warm_up, old.pid,
                 held, drained - loaded, done - drained, done - started)


def _json_field(body: bytes, name: str) -> Any:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value.get(name) if isinstance(value, dict) else None


def _model_file(raw: bytes) -> Tuple[str, Optional[str]]:
    """(model_file, None) from a PUT /model body, or ("", why Rasa would refuse it)."""
    if not raw.strip():
        return "", "No path to model file defined in request_body."
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "", "The request body is not JSON."
    if not isinstance(body, dict):
        return "", 'The request body must be a JSON object: {"model_file": "<path>"}.'
    for unsupported in ("model_server", "remote_storage"):
        if body.get(unsupported):
            return "", (f"'{unsupported}' is not supported here (bot.rasa_supervisor); "
                        "give the path of a model archive on this machine as 'model_file'.")
    model = body.get("model_file")
    if not isinstance(model, str) or not model.strip():
        return "", "No path to model file defined in request_body."
    if "\x00" in model:
        return "", f"'model_file' {model!r} is not a usable path."
    if not Path(model).exists():
        return "", f"Agent with name '{model}' could not be loaded: no such file."
    return model, None


async def serve(options: Sequence[str]) -> int:
    """Run a Supervisor until SIGTERM/SIGINT or the live Rasa's death; its exit status."""
    supervisor = Supervisor(options)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, supervisor.request_stop, 0)
    return await supervisor.run()


def main(argv: Optional[Sequence[str]] = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(os.environ.get("RASA_TOKEN", "").strip() or None))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    sys.exit(asyncio.run(serve(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
