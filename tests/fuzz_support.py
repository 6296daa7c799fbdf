"""Fuzzing the gateway over HTTP with hypothesis: budgets, hostile values, checked requests.

The fuzz tests (tests/test_fuzz_*.py) serve one gateway per module from a thread of
its own (``GatewayThread``) and drive hypothesis from plain synchronous test
functions, so no function-scoped fixture is ever reused across examples. Each test
hands ``run`` a strategy and a body; ``run`` applies the budget and counts cases.

Budgets come from the hypothesis profile (``HYPOTHESIS_PROFILE``, registered in
conftest.py): ``ci``, the default, keeps ``make test`` short and reproducible;
``fuzz`` (``make fuzz``) runs the long campaign, scaled by ``FUZZ_SCALE``. In the
``fuzz`` profile a 5xx or a crash is recorded and the campaign goes on, each test
failing at its end with what it found; in ``ci`` the first one fails the test and
hypothesis shrinks it to a minimal input.

Every request ``Probe.send`` makes is checked: no 5xx; the server answers at all;
a JSON error under /api/ has an "error" key; and no response holds a customer's
words (the seeded canaries) that its credential may not read.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)
from urllib.parse import quote

import httpx
from hypothesis import currently_in_test_context, given, note, reject
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bot.gateway.settings import Settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ_SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
# Record findings and go on (make fuzz), or fail at the first (make test); FUZZ_KEEP_GOING=1|0.
KEEP_GOING = os.environ.get("FUZZ_KEEP_GOING", "1" if PROFILE == "fuzz" else "0") == "1"


def budget(ci: int, fuzz: int) -> int:
    """Examples for one test: ``ci`` in make test, ``fuzz`` (times FUZZ_SCALE) in make fuzz."""
    return ci if PROFILE != "fuzz" else max(1, int(fuzz * FUZZ_SCALE))


def without_rate_limits(settings: Settings) -> Settings:
    """The settings with every numeric ``*limit*`` field raised out of the fuzzer's reach.

    The fuzzer sends thousands of messages from a few senders and bridges; a
    per-sender or per-bridge limit would turn the rest into 429s and stop
    exploring. 429 itself is a fine answer (``Probe`` counts it).
    """
    changes = {f.name: 10**9 for f in dataclasses.fields(settings)
               if "limit" in f.name and isinstance(getattr(settings, f.name), int | float)
               and not isinstance(getattr(settings, f.name), bool)}
    return dataclasses.replace(settings, **changes)


# --- what was found --------------------------------------------------------------------

@dataclass
class FuzzStats:
    """Counts for the whole session; conftest.py prints them at the end."""

    cases: int = 0
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: int = 0
    crashes: int = 0
    findings: Dict[str, List[Any]] = field(default_factory=dict)  # kind -> [count, example]
    slow: List[str] = field(default_factory=list)  # answers that took over SLOW seconds
    started: float = field(default_factory=time.monotonic)

    def found(self, kind: str, description: str) -> None:
        """One more of ``kind`` (e.g. a status and the answer); the first example is kept."""
        if kind in self.findings:
            self.findings[kind][0] += 1
        else:
            self.findings[kind] = [1, description]

    def progress(self) -> None:
        if PROGRESS:
            Path(PROGRESS).write_text(self.summary() + "\n", encoding="utf-8")

    def summary(self) -> str:
        classes = Counter(f"{status // 100}xx" if isinstance(status, int) else status
                          for status in self.statuses.elements())
        shown = ", ".join(f"{k} {v}" for k, v in sorted(classes.items()))
        extra = f", 429 {self.statuses[429]}" if self.statuses[429] else ""
        slow = (f"; {len(self.slow)} answers took over {SLOW:.0f} s, the first: {self.slow[0]}"
                if self.slow else "")
        return (f"fuzz ({PROFILE} profile): {self.cases} cases, {self.requests} requests in "
                f"{time.monotonic() - self.started:.0f} s; 5xx: {self.server_errors}; "
                f"crashes: {self.crashes}; answers: {shown}{extra}{slow}")


STATS = FuzzStats()
SLOW = 10.0
CHUNK = 2_000  # examples per hypothesis run (see ``run``)
PROGRESS = os.environ.get("FUZZ_PROGRESS")  # a file to keep the summary in, as it grows


class FuzzFindingError(AssertionError):
    """A 5xx, a dropped connection or a logged crash."""


class CrashLog(logging.Handler):
    """Records every ERROR logged with a traceback anywhere: an exception nothing handled."""

    # Handled, so counted apart (``noise``) rather than as crashes: Sanic logs a traceback
    # for any malformed form body, then reads it as empty; and for a malformed request
    # head its connection task fails while making the 400 and drops the connection
    # (Sanic 21.12, pinned by rasa 3.6; the server goes on serving, test_fuzz_http checks).
    HANDLED = ("Failed when parsing form", "protocol.connection_task uncaught")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: List[str] = []
        self.noise = 0

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info:
            return
        if any(text in record.getMessage() for text in self.HANDLED):
            self.noise += 1
            return
        self.records.append(f"{record.name}: {record.getMessage()}\n"
                            f"{logging.Formatter().formatException(record.exc_info)}")

    def __enter__(self) -> CrashLog:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger().removeHandler(self)


def _finding(kind: str, description: str) -> None:
    STATS.found(kind, description)
    if not KEEP_GOING:
        raise FuzzFindingError(description)


def run(examples: int, strategy: st.SearchStrategy,
        body: Callable[[Any], None], crash_log: Optional[CrashLog] = None) -> None:
    """Run ``body(example)`` for ``examples`` hypothesis examples of ``strategy``.

    A given-decorated function made here, not a decorated test: hypothesis then
    never sees pytest's fixtures (no function-scoped-fixture health check), and
    the test can check what the whole run found once it is over.
    """
    before = {kind: count for kind, (count, _) in STATS.findings.items()}
    seen_crashes = len(crash_log.records) if crash_log else 0

    def fuzz(example: Any) -> None:
        nonlocal seen_crashes
        STATS.cases += 1
        body(example)
        if crash_log is not None and len(crash_log.records) > seen_crashes:
            new = crash_log.records[seen_crashes:]
            seen_crashes = len(crash_log.records)
            STATS.crashes += len(new)
            for record in new:
                _finding("crash: " + record.strip().splitlines()[-1][:200],
                         f"crash logged: {record}")

    # Long campaigns run in rounds: hypothesis keeps every example's choices for the
    # whole run, so one run of 60,000 grows slower and larger as it goes.
    left = examples
    while left > 0:
        now = min(left, CHUNK)
        hypothesis_settings(max_examples=now)(given(strategy)(fuzz))()
        left -= now
        STATS.progress()
    found = [f"[{count - before.get(kind, 0)}x] {description}"
             for kind, (count, description) in STATS.findings.items()
             if count > before.get(kind, 0)]
    if found:
        raise FuzzFindingError(f"{len(found)} distinct finding(s):\n\n" + "\n\n".join(found[:20]))


# --- hostile values ----------------------------------------------------------------------

NASTY = [
    "", " ", "\t", "\n", "\r\n", "\x00", "a\x00b", "\ud800", "\udfff", "x\udc00y", "\ud83d",
    "😀", "👩🏽‍🚀", "\u202e", "\u200b", "\ufeff", "\uffff", "\U0010ffff", "é", "e\u0301",
    "Ⅻ", "١٢", "０", "²", "①", "ß", "İ", "../", "..", ".", "%2e%2e%2f", "%00", "%", "%%", "%zz",
    "%ED%A0%80", "?", "#", "/", "//", "\\", ";", "&", "=", "+", "@", ":", "api:", "api:x:y",
    "telegram:5551001", "webchat:abc", "' OR '1'='1", '" ; DROP TABLE messages; --',
    "<script>alert(1)</script>", "{{brand}}", "${jndi:ldap://x}", "%s%s%n", "null", "true",
    "NaN", "-1", "0", "1e309", "99999999999999999999", "2147483648", "-2147483649",
    "9" * 400, "human please", "buttons please", "long answer please", "/affirm",
    "/rate{\"score\": 5}", "4111 1111 1111 1111",
]
HUGE_UNITS = ["a", "é", "😀", " ", "\x00", "\ud800", "/", "%"]
HUGE_LENGTHS = [129, 201, 1001, 4096, 4097, 10_000, 10_001, 100_000]

any_characters = st.characters(codec=None, exclude_categories=())  # surrogates included


@functools.cache
def huge_texts() -> st.SearchStrategy[str]:
    """Past every length limit; and once past the 1 MB body limit."""
    return st.one_of(st.builds(lambda unit, n: unit * n, st.sampled_from(HUGE_UNITS),
                               st.sampled_from(HUGE_LENGTHS)),
                     st.just("a" * 1_050_000))


@functools.cache
def hostile_texts(max_size: int = 120, huge: bool = True) -> st.SearchStrategy[str]:
    """Any string: ordinary, odd unicode, lone surrogates, NUL, URL and SQL tricks, and
    (``huge``) past every length limit."""
    return st.one_of(
        st.sampled_from(NASTY),
        st.text(max_size=max_size),
        st.text(alphabet=any_characters, max_size=max_size),
        st.lists(st.sampled_from(NASTY), min_size=1, max_size=5).map("".join),
        *([huge_texts()] if huge else []),
    )


@functools.cache
def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-10**40, 10**40),
                     st.floats(allow_nan=True, allow_infinity=True),
                     hostile_texts(60, huge=False))  # huge ones go in the fields that matter


@functools.cache
def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    return st.recursive(json_scalars(), lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(hostile_texts(20, huge=False), inner, max_size=4)),
        max_leaves=max_leaves)


def dumps(value: Any) -> bytes:
    """JSON as a careless client writes it: lone surrogates as \\u escapes, NaN allowed."""
    return json.dumps(value).encode()


def nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


ODD_BODIES = [
    b"", b" ", b"{", b"}", b"[]", b"null", b"0", b'"text"', b"NaN", b"-Infinity", b"1e999",
    b'{"a":', b"\xff\xfe{}", b"\xef\xbb\xbf{}", b"\x00", b'{"text": "\\ud800"}',
    b'{"text": "\\u0000"}', b'{"__proto__": {"x": 1}}', b'{"a": 1, "a": 2}',
    b"9" * 5000, b"a=1&b=2", b"<xml/>",
]


def bodies(shaped: Optional[st.SearchStrategy[Any]] = None) -> st.SearchStrategy[bytes]:
    """Request bodies: JSON of any shape (or mostly ``shaped``), garbage bytes, deep nesting."""
    if shaped is None:
        return _any_bodies()
    return st.one_of(shaped.map(dumps), shaped.map(dumps), shaped.map(dumps), _any_bodies())


@functools.cache
def _any_bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(json_values().map(dumps), st.binary(max_size=120),
                     st.sampled_from(ODD_BODIES),
                     st.builds(nested, st.sampled_from([10, 1000, 100_000]),
                               st.sampled_from(["list", "dict"])))


# Header values a client can put on the wire (no CR, LF or NUL, no whitespace at either
# end), latin-1 bytes included.
_HEADER_BYTES = [9, *range(0x20, 0x7F), *range(0x80, 0x100)]
header_values = st.one_of(
    st.lists(st.sampled_from(_HEADER_BYTES), max_size=80).map(bytes).map(bytes.strip),
    st.sampled_from([b"", b"Bearer", b"Bearer  x", b"Bearer\tx", b"bearer " + b"A" * 43,
                     b"Bearer " + b"A" * 43, b"Bearer " + b"A" * 129, b"Basic dXNlcjpwdw==",
                     b"Bearer \xc3\xa9" * 10, b"x" * 9000]),
)
HEADER_NAMES = ["Authorization", "Cookie", "Content-Type", "Accept", "X-Bridge-Id",
                "X-Timestamp", "X-Signature", "X-Forwarded-For", "X-Forwarded-Proto",
                "X-Request-ID", "X-Telegram-Bot-Api-Secret-Token", "Origin", "Referer",
                "Accept-Encoding", "Range", "If-None-Match", "X-Custom"]
CONTENT_TYPES = [b"application/json", b"text/plain", b"application/x-www-form-urlencoded",
                 b"multipart/form-data", b"multipart/form-data; boundary=", b"multipart/form-data;"
                 b" boundary=xyz", b"application/json; charset=utf-16", b"*/*", b";;;", b""]


def headers(extra: Optional[Mapping[str, st.SearchStrategy[bytes]]] = None
            ) -> st.SearchStrategy[Dict[str, bytes]]:
    """A few headers, odd values, sometimes odd content types."""
    return _headers(extra) if extra else _plain_headers()


@functools.cache
def _plain_headers() -> st.SearchStrategy[Dict[str, bytes]]:
    return _headers(None)


def _headers(extra: Optional[Mapping[str, st.SearchStrategy[bytes]]]
             ) -> st.SearchStrategy[Dict[str, bytes]]:
    named = st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=3)
    typed = st.fixed_dictionaries({}, optional={"Content-Type": st.sampled_from(CONTENT_TYPES)})
    parts = [named, typed] + ([st.fixed_dictionaries({}, optional=dict(extra))] if extra else [])
    return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})


# URL pieces. Sanic routes the raw path (no percent-decoding); a raw target is sent as is.
_SAFE_SETS = ["", "/", "/?", "/%", "/?%#", ":@", ":@/?%#&=+"]


def segment(value: str, safe: str) -> str:
    return quote(value, safe=safe, errors="surrogatepass")


def path_segments(known: Sequence[str] = ()) -> st.SearchStrategy[str]:
    """One path segment: hostile, maybe left with raw ``/ ? % #``, or a known id."""
    return _path_segments(tuple(known))


@functools.cache
def _path_segments(known: Tuple[str, ...]) -> st.SearchStrategy[str]:
    raw = st.builds(segment, hostile_texts(80, huge=False), st.sampled_from(_SAFE_SETS))
    return st.one_of(raw, st.sampled_from(list(known) or ["x"]))


def int_segments(known: Sequence[int] = ()) -> st.SearchStrategy[str]:
    return _int_segments(tuple(known))


@functools.cache
def _int_segments(known: Tuple[int, ...]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["0", "1", "2", "-1", "00001", "²", "①", "١", "2147483647", "2147483648",
                         "-2147483649",
                         "99999999999999999999", "1e3", "0x10", "%31", "１", "١٢", "9" * 5000]),
        st.integers(-(10**12), 10**12).map(str),
        st.sampled_from([str(n) for n in known] or ["1"]),
    )


@functools.cache
def query_strings() -> st.SearchStrategy[str]:
    """A raw query string: odd keys, odd values, repeats, lone ``=`` and ``&``."""
    # (huge values would only meet Sanic's 8 KB head limit: EXTRA_PATHS has one such)
    value = st.one_of(st.builds(segment, hostile_texts(40, huge=False),
                                st.sampled_from(_SAFE_SETS)),
                      int_segments())
    pair = st.one_of(st.tuples(st.sampled_from(["after", "session", "all", "x", "", "after[]"]),
                               value).map(lambda kv: "=".join(kv)),
                     value)
    return st.lists(pair, max_size=4).map("&".join)


# --- sending and checking ---------------------------------------------------------------

@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def settled(self) -> bool:
        """Nothing more to check: a 5xx or a dropped connection (already a finding), or a
        rate limit's 429 (fine, but says nothing about the input)."""
        return self.status >= 500 or self.status in (0, 429)


def _vchar(target: str) -> bytes:
    """The request target as bytes a client may send: anything else percent-encoded."""
    return "".join(c if "\x21" <= c <= "\x7e" else quote(c, safe="", errors="surrogatepass")
                   for c in target).encode("ascii")


class Probe:
    """Sends requests to one gateway and checks every answer (see the module docstring).

    ``canaries`` maps a name to a customer's text seeded in the store; a request
    passes ``sees`` with the names its credential may read.
    """

    def __init__(self, base_url: str, canaries: Optional[Dict[str, str]] = None) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=httpx.Timeout(30, connect=10))
        self.canaries = canaries or {}

    def close(self) -> None:
        self.http.close()

    def send(self, method: str, target: str, body: Optional[bytes] = None,
             headers: Optional[Mapping[str, Union[str, bytes]]] = None,
             sees: FrozenSet[str] = frozenset()) -> Answer:
        raw = _vchar(target)
        if currently_in_test_context():
            note(f"{method} {raw!r} headers={dict(headers or {})!r} body={(body or b'')[:300]!r}"
                 f"{'...' if body and len(body) > 300 else ''}")
        request = self.http.build_request(method, "/", content=body, headers=headers,
                                          extensions={"target": raw})
        STATS.requests += 1
        began = time.monotonic()
        try:
            response = self.http.send(request, stream=True)
            try:
                if response.headers.get("content-type", "").startswith("text/event-stream"):
                    content = next(response.iter_raw(), b"")  # a live feed: the first event
                else:
                    content = response.read()
            finally:
                response.close()
        except httpx.LocalProtocolError:
            STATS.requests -= 1
            reject()  # h11 would not send it (e.g. an illegal header): not a request at all
        except (httpx.TransportError, httpx.DecodingError) as error:
            # Sanic closes on a request it cannot parse; it must still serve the next one.
            if self.healthy():
                STATS.statuses["closed"] += 1
                return Answer(0, httpx.Headers(), b"")
            _finding("stopped answering", f"the server stopped answering after {method} "
                     f"{raw[:200]!r}: {error!r}")
            return Answer(0, httpx.Headers(), b"")
        answer = Answer(response.status_code, response.headers, content)
        STATS.statuses[answer.status] += 1
        if time.monotonic() - began > SLOW:
            STATS.slow.append(f"{time.monotonic() - began:.1f} s for {method} {raw[:100]!r} "
                              f"({len(body or b'')} bytes)")
        self._check(method, raw, body, headers, answer, sees)
        return answer

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/health", timeout=10).status_code == 200
        except httpx.TransportError:
            return False

    def _check(self, method: str, raw: bytes, body: Optional[bytes],
               headers: Optional[Mapping[str, Any]], answer: Answer,
               sees: FrozenSet[str]) -> None:
        request = (f"{method} {raw[:300]!r}\n  headers: {dict(headers or {})!r}\n"
                   f"  body: {(body or b'')[:300]!r}{'...' if body and len(body) > 300 else ''}"
                   f" ({len(body or b'')} bytes)")
        if answer.status >= 500:
            STATS.server_errors += 1
            _finding(f"{answer.status}: {answer.body[:100]!r}",
                     f"{answer.status} for {request}\n  answer: {answer.body[:500]!r}")
        path = raw.partition(b"?")[0]
        is_json = answer.headers.get("content-type", "").startswith("application/json")
        has_body = method.upper() != "HEAD"  # (HTTP: a HEAD answer has no body)
        if path.startswith(b"/api/") and answer.status >= 400 and is_json and has_body:
            try:
                error = answer.json().get("error")
            except (ValueError, AttributeError):
                error = None
            if not isinstance(error, str):
                _finding(f"no 'error' key: {answer.status}",
                         f"a JSON error under /api/ without an 'error' key: {answer.status} "
                         f"{answer.body[:300]!r} for {request}")
        for name, canary in self.canaries.items():
            if name not in sees and canary in answer.text:
                _finding(f"leak: {name}", f"customer text {name!r} served to a caller who may "
                         f"not read it: {request}")


def raw_exchange(host: str, port: int, data: bytes, timeout: float = 0.5) -> Optional[int]:
    """Send raw bytes on a fresh connection; the status of the answer, None if none came
    within ``timeout`` (an incomplete request is waited for, then dropped)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it was all sent, e.g. headers far too large
        received = b""
        try:
            while b"\r\n" not in received and len(received) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    line = received.split(b"\r\n", 1)[0].split()
    if len(line) >= 2 and line[0].startswith(b"HTTP/") and line[1].isdigit():
        return int(line[1])
    return None


def wire_target(target: str) -> str:
    """The target exactly as ``Probe.send`` puts it on the wire (what a bridge signs)."""
    return _vchar(target).decode("ascii")


# --- one gateway with customers in it ----------------------------------------------------

AGENT_TOKEN = "agent-api-token-for-the-fuzzer"
AGENT_PASSWORD = "correct horse battery"
TELEGRAM_CHAT = 5551001


@dataclass
class Credential:
    """How a request authenticates (headers, maybe a cookie), and whose words it may read."""

    name: str
    headers: Dict[str, str]
    sees: FrozenSet[str]


@dataclass
class SeededGateway:
    """A served gateway with bridges, an agent, web chats and canaried conversations."""

    served: Any  # GatewayThread
    probe: Probe
    crash_log: CrashLog
    credentials: Dict[str, Credential]
    conversations: Dict[str, str]  # canary name -> conversation id
    handoff_ids: List[int]
    webchat: Dict[str, str]  # session -> secret (a: has the canary, b: another customer)
    inbox_csrf: str
    signer: Dict[str, str]  # name and secret of a signing bridge on "api"

    @property
    def store(self):  # noqa: ANN201 - the synchronous Store
        return self.served.app.ctx.gateway.store

    @property
    def everything(self) -> FrozenSet[str]:
        return frozenset(self.probe.canaries)

    def new_inbox_session(self) -> Dict[str, str]:
        """A further signed-in session (cookie header and its CSRF token), e.g. to sign out."""
        token, csrf = os.urandom(24).hex(), os.urandom(24).hex()
        self.store.open_session(token, "sam", csrf, time.time() + 3600)
        return {"Cookie": f"inbox_session={token}", "csrf": csrf}


def seeded_gateway(tmp_path, telegram: bool = False, **changes: Any):  # noqa: ANN001, ANN201
    """Context manager: ``with seeded_gateway(tmp) as gw:`` (see ``SeededGateway``).

    The database lives in memory-backed /dev/shm where there is one: the store syncs
    every commit to disk (synchronous=FULL), which would make the fuzzer wait on the
    disk, not the gateway; durability is tested elsewhere.
    """
    import contextlib
    import shutil
    import tempfile
    import uuid

    from bot.gateway.agents.accounts import add_agent
    from bot.gateway.channels.dm_api import API_CHANNELS
    from bot.gateway.messages import InboundMessage
    from tests.gateway_support import GatewayThread, bridge_auth, gateway_settings, inbox_sign_in

    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="fuzz-", dir=shm)) if (
        shm.is_dir() and os.access(shm, os.W_OK)) else Path(tmp_path)

    def make(rasa, fake):  # noqa: ANN001, ANN202
        extra = dict(telegram_bot_token=fake.token, telegram_api_base_url=fake.base_url,
                     telegram_webhook_url="https://bot.example/telegram/webhook",
                     telegram_webhook_secret="fuzz-webhook-secret") if fake else {}
        return without_rate_limits(gateway_settings(folder, rasa.url,
                                                    agent_api_token=AGENT_TOKEN,
                                                    **{**extra, **changes}))

    @contextlib.contextmanager
    def seeded():  # noqa: ANN202
        with CrashLog() as crash_log, GatewayThread(make, telegram=telegram) as served:
            settings = served.settings
            bridges = {
                "bridge-api": (("api",), frozenset({"api"})),
                "bridge-instagram": (("instagram",), frozenset({"instagram"})),
                "bridge-all": (API_CHANNELS, frozenset({"api", "instagram"})),
            }
            credentials = {"none": Credential("none", {}, frozenset())}
            for name, (channels, sees) in bridges.items():
                credentials[name] = Credential(name, served.run(bridge_auth(settings, channels)),
                                               sees)
            signing = served.run(bridge_auth(settings, ("api",), signed=True))
            secret = signing["Authorization"].removeprefix("Bearer ")
            store = served.app.ctx.gateway.store
            from bot.gateway.credentials import digest
            [signer_name] = [b.name for b in store.bridges() if b.secret_sha256 == digest(secret)]
            probe = Probe(served.base_url)
            marks = {name: f"canary-{name}-{uuid.uuid4().hex}" for name in
                     ("api", "instagram", "webchat", "telegram")}
            conversations = {}
            for name, bridge in (("api", "bridge-api"), ("instagram", "bridge-instagram")):
                external = f"seed{uuid.uuid4().hex[:10]}"
                for n, text in enumerate((f"my words are {marks[name]}", "human please")):
                    posted = probe.send("POST", "/api/v1/messages", dumps({
                        "channel": name, "conversation_id": external, "text": text,
                        "sender_name": "Amara Okafor", "channel_message_id": f"m{n}"}),
                        {**credentials[bridge].headers, "Content-Type": "application/json"})
                    assert posted.status == 202, posted.text
                conversations[name] = f"{name}:{external}"
            store.receive(InboundMessage(channel="telegram", external_id=str(TELEGRAM_CHAT),
                                         channel_message_id="m0", sender_name="Amara Okafor",
                                         text=f"my words are {marks['telegram']}"))
            conversations["telegram"] = f"telegram:{TELEGRAM_CHAT}"
            webchat = {}
            for label in ("a", "b"):
                started = probe.send("POST", "/chat/api/sessions").json()
                webchat[started["session"]] = started["secret"]
                if label == "a":
                    conversations["webchat"] = f"webchat:{started['session']}"
                    sent = probe.send("POST", "/chat/api/messages", dumps({
                        "session": started["session"], "text": f"hi {marks['webchat']}"}),
                        {"Authorization": f"Bearer {started['secret']}"})
                    assert sent.status == 202, sent.text
            (session_a, secret_a), (_, secret_b) = webchat.items()
            credentials["webchat-a"] = Credential(
                "webchat-a", {"Authorization": f"Bearer {secret_a}"}, frozenset({"webchat"}))
            credentials["webchat-b"] = Credential(
                "webchat-b", {"Authorization": f"Bearer {secret_b}"}, frozenset())
            credentials["agent"] = Credential(
                "agent", {"Authorization": f"Bearer {AGENT_TOKEN}"}, frozenset(marks))
            credentials["wrong-agent"] = Credential(
                "wrong-agent", {"Authorization": f"Bearer {AGENT_TOKEN}x"}, frozenset())

            add_agent(store, "sam", "Sam Patel", AGENT_PASSWORD)

            async def sign_in() -> str:
                async with httpx.AsyncClient(base_url=served.base_url) as http:
                    signed_in = await inbox_sign_in(http, "sam", AGENT_PASSWORD)
                    assert signed_in.status_code == 303, signed_in.text
                    return signed_in.cookies["inbox_session"]

            token = served.run(sign_in())
            credentials["inbox"] = Credential("inbox", {"Cookie": f"inbox_session={token}"},
                                              frozenset(marks))
            deadline = time.monotonic() + 20
            while len(store.handoff_queue()) < 2:
                assert time.monotonic() < deadline, "the seeded handoffs never opened"
                time.sleep(0.05)
            probe.canaries = marks
            try:
                yield SeededGateway(
                    served=served, probe=probe, crash_log=crash_log, credentials=credentials,
                    conversations=conversations,
                    handoff_ids=[h["id"] for h in store.handoff_queue()], webchat=webchat,
                    inbox_csrf=store.session(token)["csrf"],
                    signer={"name": signer_name, "secret": secret})
            finally:
                probe.close()
        if folder != Path(tmp_path):
            shutil.rmtree(folder, ignore_errors=True)

    return seeded()
