"""The DM API and the agents' API against their OpenAPI document (bot/gateway/openapi.yaml),
schemathesis-style.

Requests are generated from the document's own schemas (hypothesis-jsonschema), then
broken on purpose (a field missing, a wrong type, a pattern or length violated). Every
answer must be one the document lists for that operation, with a body that matches
the listed schema. And the document must describe the routes the app really has.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Dict, Tuple

import jsonschema
import pytest
import yaml
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from bot.gateway.app import create_app
from bot.gateway.channels.dm_api import OPENAPI
from bot.gateway.settings import Settings
from tests import fuzz_support as fuzz
from tests.fuzz_support import budget, dumps, hostile_texts, json_scalars, seeded_gateway

SPEC = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
RATE_LIMITED = 429  # not in the document (yet); a fine answer all the same


def resolve(node: Any) -> Any:
    """The schema with every $ref inlined and OpenAPI's ``nullable`` as JSON Schema says it."""
    if isinstance(node, list):
        return [resolve(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return resolve(target)
    node = {k: resolve(v) for k, v in node.items() if k not in ("description", "example")}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def operation(path: str, method: str) -> Dict[str, Any]:
    return resolve(SPEC["paths"][path][method])


def check_documented(op: Dict[str, Any], answer: fuzz.Answer) -> None:
    """The status is one the operation lists, and the body matches its schema."""
    if answer.settled:
        return
    assert str(answer.status) in op["responses"], (answer.status, answer.text)
    content = op["responses"][str(answer.status)].get("content", {})
    if "application/json" in content:
        assert answer.headers["content-type"].startswith("application/json")
        jsonschema.validate(answer.json(), content["application/json"]["schema"])


# --- the document and the routes -------------------------------------------------------------

def api_routes() -> set:
    """(METHOD, /path/{param}) of every route the app registers under /api/v1."""
    app = create_app(Settings(database_url="sqlite://", agent_api_token="x",
                              telegram_bot_token="1:x", telegram_webhook_url="https://x/y",
                              telegram_webhook_secret="s"))
    return {(method, "/" + re.sub(r"<(\w+):\w+>", r"{\1}", route.path.strip("/")))
            for route in app.router.routes if route.path.startswith("api/v1")
            for method in route.methods if method not in ("HEAD", "OPTIONS")}


DOCUMENTED = {(method.upper(), path) for path, ops in SPEC["paths"].items() for method in ops}


def test_every_documented_operation_is_served():
    assert DOCUMENTED - api_routes() == set()


def test_every_api_route_is_documented():
    """The DM API, the agents' API and the document itself: nothing under /api/v1 is left out."""
    assert api_routes() - DOCUMENTED == set()


# --- requests made from the document ---------------------------------------------------------

@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with seeded_gateway(tmp_path_factory.mktemp("fuzz-openapi")) as seeded:
        yield seeded
        assert seeded.probe.healthy(), "the gateway stopped serving"


POST = operation("/api/v1/messages", "post")
GET = operation("/api/v1/conversations/{conversation_id}/messages", "get")
MESSAGE = POST["requestBody"]["content"]["application/json"]["schema"]


def matches_as_documented(message: Dict[str, Any]) -> bool:
    """Whether every pattern matches as JSON Schema means it (ECMA-262: ``$`` is the very end).

    Python's ``$`` (and so hypothesis-jsonschema and jsonschema here) also lets a string
    end in "\\n", which the gateway rightly refuses.
    """
    return all(re.fullmatch(spec["pattern"].removeprefix("^").removesuffix("$"), message[name])
               for name, spec in MESSAGE["properties"].items()
               if "pattern" in spec and isinstance(message.get(name), str))


def accepted_by_the_rules(message: Dict[str, Any]) -> bool:
    """Valid by the schema; the rest the document says only in words (no NUL) or not at all
    (text that is only whitespace is refused: the schema's minLength 1 lets it through)."""
    return (matches_as_documented(message) and message["text"].strip() != ""
            and not any("\x00" in v for v in message.values() if isinstance(v, str)))


def test_schema_valid_messages_get_a_documented_answer(gw):
    bridge = gw.credentials["bridge-all"].headers

    def body(message: Dict[str, Any]) -> None:
        answer = gw.probe.send("POST", "/api/v1/messages", dumps(message),
                               {**bridge, "Content-Type": "application/json"},
                               sees=gw.credentials["bridge-all"].sees)
        check_documented(POST, answer)
        if not answer.settled:
            expected = (200, 202) if accepted_by_the_rules(message) else (400,)
            assert answer.status in expected, (answer.status, answer.text)

    fuzz.run(budget(40, 2_000), from_schema(MESSAGE), body, gw.crash_log)


@st.composite
def broken_messages(draw):  # noqa: ANN001, ANN201
    """A schema-valid message with one thing wrong: missing, mistyped, too long, mismatched."""
    message = copy.deepcopy(draw(from_schema(MESSAGE)))
    field = draw(st.sampled_from(sorted(MESSAGE["properties"])))
    how = draw(st.sampled_from(["missing", "type", "too long", "pattern", "nul", "surrogate"]))
    required = field in MESSAGE["required"]
    if how == "missing" and required:
        message.pop(field, None)
    elif how == "type":
        message[field] = draw(json_scalars().filter(lambda v: not isinstance(v, str)
                                                    and v is not None))
    elif how == "too long":
        message[field] = "x" * draw(st.sampled_from([129, 201, 10_001, 100_000]))
        if field in ("sender_name",) and len(message[field]) <= 200:
            message[field] += "x" * 200
        if field == "text" and len(message[field]) <= 10_000:
            message[field] = "x" * 10_001
    elif how == "pattern" and field in ("conversation_id", "channel_message_id", "channel"):
        message[field] = draw(hostile_texts(60).filter(
            lambda v: not re.fullmatch(r"[A-Za-z0-9._:@+=-]{1,128}", v)))
    elif how in ("nul", "surrogate"):
        message[field] = str(message.get(field) or "x") + ("\x00" if how == "nul" else "\ud800")
    else:
        message[field] = None if not required else 12345
    return message, field, how


def test_broken_messages_are_refused_as_documented(gw):
    bridge = gw.credentials["bridge-all"].headers

    def body(example: Tuple[Dict[str, Any], str, str]) -> None:
        message, field, how = example
        valid = True
        try:
            jsonschema.validate(message, MESSAGE)
        except jsonschema.ValidationError:
            valid = False
        valid = valid and matches_as_documented(message)
        answer = gw.probe.send("POST", "/api/v1/messages", dumps(message),
                               {**bridge, "Content-Type": "application/json"},
                               sees=gw.credentials["bridge-all"].sees)
        if answer.status == 413:  # the 100,000-character fields: over the body limit
            return
        check_documented(POST, answer)
        if not valid and not answer.settled:
            assert answer.status == 400, (field, how, answer.status, answer.text)

    fuzz.run(budget(40, 2_000), broken_messages(), body, gw.crash_log)


@st.composite
def transcript_requests(draw, gw):  # noqa: ANN001, ANN201
    params = {p["name"]: p for p in GET["parameters"]}
    conversation = draw(st.one_of(st.sampled_from(list(gw.conversations.values())),
                                  from_schema(params["conversation_id"]["schema"])))
    after = draw(st.one_of(st.none(), from_schema(params["after"]["schema"]),
                           st.integers(), hostile_texts(20)))
    query = "" if after is None else f"?after={fuzz.segment(str(after), '')}"
    raw = str(after)  # as the gateway reads it: a decimal integer in the documented range
    # (an empty "after=" is no after at all: Sanic drops blank query values)
    valid_after = after is None or raw == "" or (raw.isascii() and raw.isdigit() and len(raw) <= 10
                                    and int(raw) <= params["after"]["schema"]["maximum"])
    credential = draw(st.sampled_from(["bridge-all", "bridge-api", "none"]))
    return fuzz.segment(conversation, ":"), query, valid_after, credential


def test_transcript_requests_get_a_documented_answer(gw):
    def body(example: Tuple[str, str, bool, str]) -> None:
        conversation, query, valid_after, name = example
        credential = gw.credentials[name]
        target = f"/api/v1/conversations/{conversation}/messages{query}"
        answer = gw.probe.send("GET", target, None, credential.headers, sees=credential.sees)
        if answer.status == 413 and len(fuzz.wire_target(target)) > 7000:
            return  # a URL near Sanic's 8 KB head limit: 413, which the document leaves out
        check_documented(GET, answer)
        if name != "none" and valid_after and not answer.settled:
            assert answer.status in (200, 404), (answer.status, answer.text)
        if name != "none" and not valid_after and not answer.settled:
            assert answer.status == 400, (answer.status, answer.text)

    fuzz.run(budget(60, 3_000), transcript_requests(gw), body, gw.crash_log)


# --- the agents' API -------------------------------------------------------------------------

QUEUE = operation("/api/v1/handoffs", "get")
DETAIL = operation("/api/v1/handoffs/{handoff_id}", "get")
REPLY = operation("/api/v1/handoffs/{handoff_id}/reply", "post")
ACT = operation("/api/v1/handoffs/{handoff_id}/{action}", "post")
HANDOFF_ID = resolve(SPEC["components"]["parameters"]["HandoffId"])["schema"]
ACTIONS = next(p for p in ACT["parameters"] if p["name"] == "action")["schema"]["enum"]
AGENT_NAME = resolve(SPEC["components"]["schemas"]["AgentName"])
AGENT_TEXT = resolve(SPEC["components"]["schemas"]["AgentText"])
# What each POST must carry: reply and notes need text too (the document says so in words).
NEEDS = {"reply": {"agent": AGENT_NAME, "text": AGENT_TEXT}, "notes": {"agent": AGENT_NAME,
         "text": AGENT_TEXT}, "claim": {"agent": AGENT_NAME}, "resolve": {"agent": AGENT_NAME}}


def in_documented_range(raw: str) -> bool:
    """Whether a path segment is a handoff id as the document has them (decimal, in range)."""
    return (raw.isascii() and raw.isdigit() and len(raw.lstrip("0")) <= 10
            and HANDOFF_ID["minimum"] <= int(raw) <= HANDOFF_ID["maximum"])


def agent_input_ok(body: bytes, action: str) -> bool:
    """A JSON object whose fields, trimmed, match their schemas, with no NUL or unpaired
    surrogate: what the document says an agent's POST must carry."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(value, dict):
        return False
    for name, schema in NEEDS[action].items():
        field = value.get(name)
        if not isinstance(field, str) or re.search(r"[\x00\ud800-\udfff]", field):
            return False
        try:
            jsonschema.validate(field.strip(), schema)
        except jsonschema.ValidationError:
            return False
    return True


@st.composite
def agent_fields(draw, action: str):  # noqa: ANN001, ANN201
    """A body as documented for ``action``, or with one field wrong (or padded with spaces)."""
    schema = REPLY if action in ("reply", "notes") else ACT  # notes: the reply's fields
    message = dict(draw(from_schema(schema["requestBody"]["content"]["application/json"]
                                    ["schema"])))
    field = draw(st.sampled_from(["agent", "text"]))
    how = draw(st.sampled_from(["as documented"] * 4 + ["missing", "type", "blank", "too long",
                                                        "padded", "nul", "surrogate"]))
    if how == "missing":
        message.pop(field, None)
    elif how == "type":
        message[field] = draw(json_scalars().filter(lambda v: not isinstance(v, str)))
    elif how == "blank":
        message[field] = draw(st.sampled_from(["", " ", "\t\n", "\u3000", "\x1c", "\x85"]))
    elif how == "too long":
        message[field] = "x" * (101 if field == "agent" else 10_001)
    elif how == "padded":  # trimmed before the limits apply
        message[field] = " " * 300 + str(message.get(field) or "Sam") + "\n"
    elif how in ("nul", "surrogate"):
        message[field] = str(message.get(field) or "x") + ("\x00" if how == "nul" else "\ud800")
    return message


@st.composite
def agent_requests(draw, gw):  # noqa: ANN001, ANN201
    kind = draw(st.sampled_from(["queue", "detail", "reply", "action"]))
    handoff = draw(st.one_of(st.sampled_from(gw.handoff_ids), from_schema(HANDOFF_ID),
                             fuzz.int_segments(gw.handoff_ids)))
    handoff = str(handoff)
    action, body, query = "reply", None, None
    if kind == "queue":
        query = draw(st.one_of(st.none(), st.just("1"), from_schema(
            next(p for p in QUEUE["parameters"] if p["name"] == "all")["schema"])))
        target = "/api/v1/handoffs" + ("" if query is None else f"?all={fuzz.segment(query, '')}")
    elif kind == "detail":
        target = f"/api/v1/handoffs/{handoff}"
    else:
        if kind == "action":
            action = draw(st.sampled_from(ACTIONS) if draw(st.integers(0, 3))  # mostly known
                          else hostile_texts(20, huge=False))
            kind = "reply" if action == "reply" else kind  # its own operation
        target = f"/api/v1/handoffs/{handoff}/{fuzz.segment(action, '')}"
        body = draw(fuzz.bodies(agent_fields(action if action in NEEDS else "claim")))
    credential = draw(st.sampled_from(["agent", "agent", "agent", "wrong-agent", "none",
                                       "bridge-all"]))
    return kind, target, handoff, action, body, query, credential


def test_agent_requests_get_a_documented_answer(gw):
    ops = {"queue": QUEUE, "detail": DETAIL, "reply": REPLY, "action": ACT}

    def body(example: Tuple[Any, ...]) -> None:
        kind, target, handoff, action, content, query, name = example
        credential = gw.credentials[name]
        sent = {**credential.headers, **({"Content-Type": "application/json"} if content else {})}
        answer = gw.probe.send("POST" if content is not None else "GET", target, content, sent,
                               sees=gw.everything if name == "agent" else frozenset())
        check_documented(ops[kind], answer)
        if answer.settled or answer.status == 413:  # 413: a body over 1 MB
            return
        in_range = in_documented_range(handoff)
        known = kind in ("queue", "detail") or action in NEEDS
        if name != "agent":  # never past the token; a 404 only when no route matches
            routed = kind == "queue" or (in_range and known)
            assert answer.status in ((401,) if routed else (401, 404)), (
                answer.status, answer.text)
        elif kind == "queue":
            assert answer.status == 200, (answer.status, answer.text)
            if query != "1":
                assert "resolved" not in {h["status"] for h in answer.json()["handoffs"]}
        elif kind == "detail":
            assert answer.status in ((200, 404) if in_range else (404,)), answer.status
        elif not known:
            assert answer.status == 404, (answer.status, answer.text)
        elif not agent_input_ok(content, action):
            assert answer.status in ((400,) if in_range else (400, 404)), (
                answer.status, answer.text)
        elif not in_range:
            assert answer.status == 404, (answer.status, answer.text)
        else:
            done = 202 if action == "reply" else 200
            expected = (done, 404) if action == "notes" else (done, 404, 409)
            assert answer.status in expected, (answer.status, answer.text)

    fuzz.run(budget(40, 3_000), agent_requests(gw), body, gw.crash_log)
