"""A loopback fake of Meta's Graph API Send endpoint, and Meta's webhook payloads.

``FakeMetaGraph`` answers ``POST /<version>/me/messages`` the way the Send API
does: ``{"recipient_id", "message_id"}`` on success, Graph errors
(``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``)
for a token it does not know (code 190), a text over the platform's limit or
too many quick replies (code 100), and whatever a test injects: once
(``fail_next``) or for every call to one recipient (``fail_for``). Every call
is recorded with its headers, so tests can check where the token went.

The webhook builders (``text_event`` ...) make entries as Meta posts them for
Messenger (``object: page``) and Instagram (``object: instagram``);
``signed`` gives the body and its ``X-Hub-Signature-256`` header.

Import the fixture into a test module with
``from tests.fake_meta import fake_meta_fixture  # noqa: F401``; it is named ``fake_meta``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import pytest
from aiohttp import web

from tests.gateway_support import ServedOnLoopback, free_port

PAGE_ID = "104851345678901"
# Access tokens look like this (long, URL-safe); never real ones.
PAGE_TOKEN = "EAAGfakePageToken0123456789abcdefZZ"
INSTAGRAM_TOKEN = "EAAGfakeInstagramToken0123456789abcdefYY"
INSTAGRAM_ID = "17841405309211844"
TEXT_LIMITS = {"page": 2000, "instagram": 1000}

# Graph API errors, as the Send API returns them: (HTTP status, body error fields).
ERRORS: Dict[str, Tuple[int, Dict[str, Any]]] = {
    "rate_limit": (429, {"message": "(#4) Application request limit reached", "code": 4,
                         "type": "OAuthException"}),
    "page_rate_limit": (400, {"message": "(#613) Calls to this api have exceeded the rate "
                                         "limit.", "code": 613, "type": "OAuthException"}),
    "server_error": (500, {"message": "An unexpected error has occurred. Please retry your "
                                      "request later.", "code": 2, "type": "OAuthException",
                           "is_transient": True}),
    "window": (400, {"message": "(#10) This message is sent outside of allowed window.",
                     "code": 10, "error_subcode": 2018278, "type": "OAuthException"}),
    "unavailable": (400, {"message": "(#551) This person isn't available right now.",
                          "code": 551, "error_subcode": 1545041, "type": "OAuthException"}),
    "bad_token": (400, {"message": "Invalid OAuth access token - Cannot parse access token",
                        "code": 190, "type": "OAuthException"}),
}


@dataclass
class FakeMetaGraph(ServedOnLoopback):
    """``tokens`` maps each access token it accepts to its platform ("page" or "instagram")."""

    tokens: Dict[str, str]
    port: int = field(default_factory=free_port)
    version: str = "v21.0"
    calls: List[Dict[str, Any]] = field(default_factory=list)  # every call, failed ones too
    retry_after: Optional[str] = None  # a Retry-After header on injected rate limits
    _once: List[str] = field(default_factory=list)
    _per_recipient: Dict[str, str] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _runner: Optional[web.AppRunner] = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(f"/{self.version}/me/messages", self._messages)

    # --- what tests tell it and ask it -----------------------------------
    def fail_next(self, kind: str) -> None:
        """Answer the next message call with ERRORS[kind] (queued: call again for more)."""
        self._once.append(kind)

    def fail_for(self, recipient: str, kind: str) -> None:
        """Answer every message call to ``recipient`` with ERRORS[kind]."""
        self._per_recipient[recipient] = kind

    def message_calls(self, recipient: Optional[str] = None) -> List[Dict[str, Any]]:
        """Calls that carried a message (not a sender action), answered or not."""
        return [c for c in self.calls if "message" in c["body"]
                and (recipient is None or c["body"].get("recipient", {}).get("id") == recipient)]

    def sent(self, recipient: str) -> List[Dict[str, Any]]:
        """The messages delivered to ``recipient``, in order."""
        return [c["body"]["message"] for c in self.message_calls(recipient) if c["status"] == 200]

    def texts(self, recipient: str) -> List[str]:
        return [m["text"] for m in self.sent(recipient) if "text" in m]

    def actions(self, recipient: str) -> List[str]:
        return [c["body"]["sender_action"] for c in self.calls
                if c["body"].get("recipient", {}).get("id") == recipient
                and "sender_action" in c["body"]]

    async def wait_for_sent(self, recipient: str, count: int,
                            timeout: float = 10.0) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.sent(recipient)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.sent(recipient))} of {count} messages sent "
                                     f"to {recipient}: {self.sent(recipient)}")
            await asyncio.sleep(0.02)
        return self.sent(recipient)

    # --- the endpoint ----------------------------------------------------
    async def _messages(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsed": raw.decode(errors="replace")}
        call = {"path": request.path_qs, "query": dict(request.query),
                "headers": dict(request.headers), "body": body}
        self.calls.append(call)
        status, answer = self._answer(request, body)
        call["status"] = status
        headers = ({"Retry-After": self.retry_after}
                   if status != 200 and self.retry_after and answer["error"]["code"] in (4, 613)
                   else None)
        return web.json_response(answer, status=status, headers=headers)

    def _answer(self, request: web.Request, body: Dict[str, Any]) -> Tuple[int, Dict[str, Any]]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        platform = self.tokens.get(token) if scheme == "Bearer" else None
        if platform is None:
            return self._error("bad_token")
        recipient = body.get("recipient", {}).get("id") if isinstance(body, dict) else None
        if not isinstance(recipient, str):
            return self._graph_error(400, 100, "(#100) The parameter recipient is required")
        if "sender_action" in body:
            return 200, {"recipient_id": recipient}
        if recipient in self._per_recipient:
            return self._error(self._per_recipient[recipient])
        if self._once:
            return self._error(self._once.pop(0))
        message = body.get("message")
        if body.get("messaging_type") != "RESPONSE" or not isinstance(message, dict):
            return self._graph_error(400, 100, "(#100) Invalid parameter")
        text = message.get("text")
        if text is not None and len(text) > TEXT_LIMITS[platform]:
            return self._graph_error(400, 100, "(#100) Length of param message[text] must be "
                                               f"less than or equal to {TEXT_LIMITS[platform]}")
        quick = message.get("quick_replies") or []
        if len(quick) > 13 or any(len(q.get("title", "")) > 20 for q in quick):
            return self._graph_error(400, 100, "(#100) Invalid quick_replies")
        return 200, {"recipient_id": recipient, "message_id": f"m_fake{next(self._ids)}"}

    def _error(self, kind: str) -> Tuple[int, Dict[str, Any]]:
        status, error = ERRORS[kind]
        return status, {"error": {**error, "fbtrace_id": "AbCdEfGhIjK"}}

    @staticmethod
    def _graph_error(status: int, code: int, message: str) -> Tuple[int, Dict[str, Any]]:
        return status, {"error": {"message": message, "type": "OAuthException", "code": code,
                                  "fbtrace_id": "AbCdEfGhIjK"}}


# --- webhook payloads, as Meta posts them ----------------------------------------------------

_mids = itertools.count(1)


def now_ms() -> int:
    return int(time.time() * 1000)


def webhook(obj: str, *events: Dict[str, Any]) -> Dict[str, Any]:
    """A webhook body: ``obj`` "page" (Messenger) or "instagram", one entry per event."""
    account = PAGE_ID if obj == "page" else INSTAGRAM_ID
    return {"object": obj, "entry": [{"id": account, "time": now_ms(), "messaging": [event]}
                                     for event in events]}


def _event(obj: str, sender: str, **content: Any) -> Dict[str, Any]:
    account = PAGE_ID if obj == "page" else INSTAGRAM_ID
    return {"sender": {"id": sender}, "recipient": {"id": account}, "timestamp": now_ms(),
            **content}


def new_mid() -> str:
    return f"m_AbCd{next(_mids):06d}-Xyz_0123456789"


def text_event(obj: str, sender: str, text: str, mid: Optional[str] = None) -> Dict[str, Any]:
    return _event(obj, sender, message={"mid": mid or new_mid(), "text": text})


def quick_reply_event(obj: str, sender: str, title: str, payload: str) -> Dict[str, Any]:
    return _event(obj, sender, message={"mid": new_mid(), "text": title,
                                        "quick_reply": {"payload": payload}})


def postback_event(obj: str, sender: str, title: str, payload: str) -> Dict[str, Any]:
    return _event(obj, sender, postback={"mid": new_mid(), "title": title, "payload": payload})


def attachment_event(obj: str, sender: str, kind: str = "image") -> Dict[str, Any]:
    return _event(obj, sender, message={"mid": new_mid(), "attachments": [
        {"type": kind, "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"}}]})


def echo_event(obj: str, customer: str, text: str) -> Dict[str, Any]:
    """What the business sent (our reply, or a person's from the Meta inbox), echoed back."""
    account = PAGE_ID if obj == "page" else INSTAGRAM_ID
    return {"sender": {"id": account}, "recipient": {"id": customer}, "timestamp": now_ms(),
            "message": {"mid": new_mid(), "is_echo": True, "app_id": 1517776481860111,
                        "text": text}}


def delivery_event(obj: str, sender: str) -> Dict[str, Any]:
    return _event(obj, sender, delivery={"mids": [new_mid()], "watermark": now_ms()})


def read_event(obj: str, sender: str) -> Dict[str, Any]:
    return _event(obj, sender, read={"watermark": now_ms()} if obj == "page"
                  else {"mid": new_mid()})


def reaction_event(obj: str, sender: str) -> Dict[str, Any]:
    return _event(obj, sender, reaction={"mid": new_mid(), "action": "react",
                                         "reaction": "love", "emoji": "\u2764"})


def signed(body: Any, app_secret: str) -> Tuple[bytes, Dict[str, str]]:
    """The raw body and the headers Meta sends with it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    digest = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


@pytest.fixture(name="fake_meta")
async def fake_meta_fixture() -> AsyncIterator[FakeMetaGraph]:
    """A FakeMetaGraph accepting PAGE_TOKEN (Messenger) and INSTAGRAM_TOKEN."""
    fake = FakeMetaGraph(tokens={PAGE_TOKEN: "page", INSTAGRAM_TOKEN: "instagram"})
    await fake.start()
    yield fake
    await fake.stop()
