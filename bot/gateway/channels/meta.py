"""Messenger and Instagram DMs, through Meta's webhooks and Send API.

    GET  /meta/webhook   the verification handshake (hub.verify_token, META_VERIFY_TOKEN)
    POST /meta/webhook   events, signed: X-Hub-Signature-256 = HMAC-SHA256(META_APP_SECRET, body)

One webhook serves both platforms: ``object`` "page" is Messenger (channel
``messenger``), "instagram" is Instagram (channel ``instagram``). The
signature is checked in constant time over the raw body before anything is
parsed; a wrong or missing one is 403 and nothing is stored. A body Meta would
never send (not JSON, or the wrong JSON types in the envelope or an event) is
400, and then nothing of it is stored either.

Confirm only what is committed: Meta redelivers a webhook that does not get
200, so the answer is 200 only once every message in the body is stored, and
503 when the store could not take one (Meta sends the body again; the store's
idempotency on (conversation, mid) stores each message once). Meta cannot be
asked to resend later, so a customer over the flood limits has messages stored
but held (``hold_when_busy``), never refused. An event whose ids or text the
gateway's edge checks refuse is logged and skipped, so that one odd event does
not make Meta redeliver the whole batch for ever.

Read: text messages, quick-reply taps (their payload goes to Rasa, the tapped
title to the transcript) and postbacks (button taps). Attachments without text
get the same "I can only read text" reply as on Telegram, without NLU. Echoes
of our own (and the Page's agents') messages, delivery and read receipts,
reactions, edits and anything else are ignored (logged at DEBUG, ids only).

Sending: ``POST {META_GRAPH_URL}/{META_GRAPH_VERSION}/me/messages`` with the
access token in an ``Authorization: Bearer`` header, never in the URL, so it
never reaches a log line. Buttons become quick replies; long text is split by
the gateway at the channel's limit (Messenger 2000, Instagram 1000
characters). Meta allows a standard message only within 24 hours of the
customer's last message: outside that window the channel does not call Meta
and raises a permanent SendError, so the outbox dead-letters the reply and a
person is asked (``delivery_failed``) to reach the customer another way.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import httpx
from sanic import Request, response
from sanic.response import HTTPResponse

from bot.gateway.acknowledgement import UNSUPPORTED_REPLY
from bot.gateway.credentials import same_secret
from bot.gateway.messages import (
    ID_PATTERN,
    InboundMessage,
    InvalidMessageError,
    OutboundMessage,
    conversation_id,
)
from bot.gateway.pipeline import Gateway, SendError
from bot.gateway.rate_limits import RateLimitedError
from bot.gateway.settings import Settings
from bot.gateway.store import store_unavailable
from bot.gateway.store.facade import AsyncStore

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/meta/webhook"
SIGNATURE_HEADER = "X-Hub-Signature-256"
GRAPH_URL = "https://graph.facebook.com"
MESSENGER = "messenger"
INSTAGRAM = "instagram"
PLATFORMS = {"page": MESSENGER, "instagram": INSTAGRAM}  # the webhook's "object"
TEXT_LIMITS = {MESSENGER: 2000, INSTAGRAM: 1000}  # characters per message
QUICK_REPLIES_MAX = 13
QUICK_REPLY_TITLE_MAX = 20
QUICK_REPLY_PAYLOAD_MAX = 1000
# Meta allows a standard (RESPONSE) message this long after the customer's last one.
# The store records when the gateway got the message, a little after the customer
# sent it, so the channel stops a minute early rather than be refused by Meta.
MESSAGING_WINDOW_SECONDS = 24 * 3600
WINDOW_MARGIN_SECONDS = 60
# Graph API error codes: rate limits, and the ones that mean "try again later".
RATE_LIMIT_CODES = {4, 17, 32, 613}
TEMPORARY_CODES = {1, 2}
OUTSIDE_WINDOW = (10, {2018278, 2534022})  # code, subcodes
USER_UNAVAILABLE_CODE = 551
# How long to wait on a rate limit when Meta does not say (it rarely sends Retry-After).
RATE_LIMIT_RETRY_SECONDS = 60.0
SEND_TIMEOUT_SECONDS = 15.0
STORE_RETRY_AFTER = 5  # the 503's Retry-After (Meta keeps its own schedule)
# The handshake's challenge is echoed back: Meta sends digits; allow a short token, no more.
CHALLENGE = re.compile(r"[A-Za-z0-9_.-]{1,128}")


class MalformedWebhookError(ValueError):
    """The body is not shaped like a Meta webhook; the text says where."""


def signature_ok(body: bytes, header: str, app_secret: str) -> bool:
    """Whether ``header`` is ``sha256=<hex HMAC-SHA256(app_secret, body)>`` (constant time)."""
    if not app_secret:
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return same_secret(header, f"sha256={expected}")


def verification(request: Request, settings: Settings) -> HTTPResponse:
    """GET WEBHOOK_PATH: Meta's subscription handshake; the challenge back as plain text."""
    mode = request.args.get("hub.mode", "")
    token = request.args.get("hub.verify_token", "")
    challenge = request.args.get("hub.challenge", "")
    expected = settings.meta_verify_token or ""
    if mode != "subscribe" or not expected or not same_secret(token, expected):
        return response.json({"error": "wrong verify token"}, status=403)
    if not CHALLENGE.fullmatch(challenge):
        return response.json({"error": "hub.challenge must be 1-128 letters or digits"},
                             status=400)
    return response.text(challenge)


def not_stored(error: BaseException) -> bool:
    """Whether storing a message failed in a way Meta's redelivery can mend."""
    return store_unavailable(error) or isinstance(error, RateLimitedError)


def _safe(value: Any) -> str:
    """An id fit for a log line (anything else is shown as '?')."""
    return value if isinstance(value, str) and ID_PATTERN.fullmatch(value) else "?"


def _field(holder: Dict[str, Any], name: str, kind: type, where: str) -> Any:
    """``holder[name]`` if absent (None) or of ``kind``, else MalformedWebhookError."""
    value = holder.get(name)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)
                              and kind is not bool):
        raise MalformedWebhookError(f"{where}.{name} must be a {kind.__name__}")
    return value


def webhook_events(body: Any) -> Tuple[Optional[str], List[Dict[str, Any]]]:
    """The platform (None for objects not ours) and the messaging events of a body."""
    if not isinstance(body, dict) or not isinstance(body.get("object"), str):
        raise MalformedWebhookError("body must be a JSON object with \"object\" and \"entry\"")
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise MalformedWebhookError("entry must be a list")
    events: List[Dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise MalformedWebhookError("each entry must be an object")
        # "standby" (another app holds the thread) and "changes" (comments) are not ours.
        for event in _field(entry, "messaging", list, "entry") or []:
            if not isinstance(event, dict):
                raise MalformedWebhookError("each entry.messaging[] must be an object")
            events.append(event)
    return PLATFORMS.get(body["object"]), events


def inbound(platform: str, event: Dict[str, Any]
            ) -> Optional[Tuple[InboundMessage, Optional[OutboundMessage]]]:
    """The customer's message in one messaging event, and the reply it gets without NLU
    (None for events that are not a customer's message). MalformedWebhookError for wrong
    JSON types, InvalidMessageError for ids or text the gateway does not take."""
    sender = _field(event, "sender", dict, "event") or {}
    sender_id = _field(sender, "id", str, "sender")
    message = _field(event, "message", dict, "event")
    postback = _field(event, "postback", dict, "event")
    common = dict(channel=platform, external_id=sender_id, sender_name=None)
    if message is not None:
        mid = _field(message, "mid", str, "message")
        text = _field(message, "text", str, "message")
        if message.get("is_echo") or message.get("is_deleted"):
            _ignored(platform, "echo" if message.get("is_echo") else "deletion", sender_id, mid)
            return None
        quick_reply = _field(message, "quick_reply", dict, "message") or {}
        payload = _field(quick_reply, "payload", str, "message.quick_reply")
        attachments = _field(message, "attachments", list, "message") or []
        if (text and text.strip()) or payload:
            return InboundMessage(text=text or payload, payload=payload or None,
                                  channel_message_id=mid, **common), None
        if attachments or message.get("is_unsupported"):
            kinds = [a.get("type") for a in attachments if isinstance(a, dict)]
            kind = next((k for k in kinds if isinstance(k, str) and k.isalpha()), "attachment")
            log.info("%s: %s from %s answered without NLU", platform, kind, _safe(sender_id))
            return (InboundMessage(text=f"[{kind[:32]}]", channel_message_id=mid, **common),
                    OutboundMessage(UNSUPPORTED_REPLY))
        _ignored(platform, "empty message", sender_id, mid)
        return None
    if postback is not None:
        title = _field(postback, "title", str, "postback")
        payload = _field(postback, "payload", str, "postback")
        mid = _field(postback, "mid", str, "postback")
        if mid is None:  # older events: the timestamp is what a redelivery repeats
            timestamp = _field(event, "timestamp", int, "event")
            mid = f"postback:{timestamp}" if timestamp is not None else None
        if not (title or payload):
            _ignored(platform, "empty postback", sender_id, mid)
            return None
        return InboundMessage(text=title or payload, payload=payload or None,
                              channel_message_id=mid, **common), None
    kind = next((k for k in ("delivery", "read", "reaction", "message_edit", "optin",
                             "referral", "account_linking") if k in event), "unknown event")
    _ignored(platform, kind, sender_id, None)
    return None


def _ignored(platform: str, kind: str, sender_id: Any, mid: Any) -> None:
    log.debug("%s: ignored %s (sender %s, mid %s)", platform, kind, _safe(sender_id),
              _safe(mid))


class MetaChannel:
    """Sending to one platform (Messenger or Instagram) through the Send API."""

    # How long after the customer's last message we may still write to them (follow-ups
    # that would land outside it are not sent: handoffs/follow_ups.py).
    reply_window_seconds = MESSAGING_WINDOW_SECONDS - WINDOW_MARGIN_SECONDS

    def __init__(self, name: str, access_token: str, settings: Settings, db: AsyncStore,
                 clock: Callable[[], float] = time.time) -> None:
        """``clock``: Unix seconds now (tests move it to step outside the 24-hour window)."""
        self.name = name
        self.max_text_length = TEXT_LIMITS[name]
        self.db = db
        self.clock = clock
        base = (settings.meta_graph_url or GRAPH_URL).rstrip("/")
        self.url = f"{base}/{settings.meta_graph_version}/me/messages"
        self._http = httpx.AsyncClient(timeout=SEND_TIMEOUT_SECONDS,
                                       headers={"Authorization": f"Bearer {access_token}"})
        self._typing: Set[asyncio.Task] = set()  # typing indicators on their way

    async def close(self) -> None:
        for task in list(self._typing):
            task.cancel()
        await asyncio.gather(*self._typing, return_exceptions=True)
        await self._http.aclose()

    async def send(self, external_id: str, message: OutboundMessage) -> Optional[str]:
        # The gateway has already split text to max_text_length, one row per part.
        await self._check_window(external_id)
        sent_id: Optional[str] = None
        if message.text:
            body: Dict[str, Any] = {"text": message.text}
            quick_replies = self.quick_replies(message)
            if quick_replies:
                body["quick_replies"] = quick_replies
            sent_id = await self._post(external_id, {"message": body})
        if message.image:
            sent_id = await self._post(external_id, {"message": {"attachment": {
                "type": "image", "payload": {"url": message.image}}}})
        return sent_id

    async def typing(self, external_id: str) -> None:
        """Start a typing indicator and return at once: the Rasa call does not wait for it."""
        task = asyncio.get_running_loop().create_task(self._send_typing(external_id))
        self._typing.add(task)
        task.add_done_callback(self._typing.discard)

    async def _send_typing(self, external_id: str) -> None:
        try:
            await self._http.post(self.url, json={"recipient": {"id": external_id},
                                                  "sender_action": "typing_on"})
        except Exception as error:  # noqa: BLE001 - a typing indicator is best effort
            log.debug("%s: typing indicator for %s failed: %s", self.name,
                      _safe(external_id), type(error).__name__)

    def quick_replies(self, message: OutboundMessage) -> List[Dict[str, str]]:
        replies = []
        for button in message.buttons:
            payload = button.payload or button.title
            if not button.title.strip() or len(payload) > QUICK_REPLY_PAYLOAD_MAX:
                log.warning("%s: a button was dropped (no title, or a payload over %d "
                            "characters)", self.name, QUICK_REPLY_PAYLOAD_MAX)
                continue
            replies.append({"content_type": "text",
                            "title": button.title[:QUICK_REPLY_TITLE_MAX], "payload": payload})
        if len(replies) > QUICK_REPLIES_MAX:
            log.warning("%s: %d buttons, Meta shows %d; the rest were dropped", self.name,
                        len(replies), QUICK_REPLIES_MAX)
        return replies[:QUICK_REPLIES_MAX]

    async def _check_window(self, external_id: str) -> None:
        conversation = await self.db.conversation(conversation_id(self.name, external_id))
        last = conversation["last_inbound_at"] if conversation else None
        age = self.clock() - last if last is not None else None
        if age is None or age >= MESSAGING_WINDOW_SECONDS - WINDOW_MARGIN_SECONDS:
            since = f"{age / 3600:.0f} h ago" if age is not None else "never"
            raise SendError(f"outside Meta's 24-hour messaging window (the customer last "
                            f"wrote {since}); not sent", permanent=True)

    async def _post(self, external_id: str, body: Dict[str, Any]) -> Optional[str]:
        request = {"recipient": {"id": external_id}, "messaging_type": "RESPONSE", **body}
        try:
            answer = await self._http.post(self.url, json=request)
        except httpx.HTTPError as error:  # timeouts, refused connections, broken streams
            raise SendError(f"Meta Send API unreachable ({type(error).__name__})") from None
        if answer.status_code == 200:
            try:
                sent = answer.json()
            except ValueError:
                return None
            message_id = sent.get("message_id") if isinstance(sent, dict) else None
            return message_id if isinstance(message_id, str) else None
        raise send_error(answer)


def send_error(answer: httpx.Response) -> SendError:
    """The SendError for a Send API answer other than 200 (see the module docstring)."""
    try:
        error = answer.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    error = error if isinstance(error, dict) else {}
    code, subcode = error.get("code"), error.get("error_subcode")
    detail = error.get("message") if isinstance(error.get("message"), str) else ""
    reason = (f"Meta Send API: HTTP {answer.status_code}"
              + (f", code {code}" if isinstance(code, int) else "")
              + (f"/{subcode}" if isinstance(subcode, int) else "")
              + (f": {detail[:200]}" if detail else ""))
    if answer.status_code == 429 or code in RATE_LIMIT_CODES:
        return SendError(reason, retry_after=_retry_after(answer))
    if code == USER_UNAVAILABLE_CODE:
        return SendError(reason, blocked=True)
    if code == OUTSIDE_WINDOW[0] and subcode in OUTSIDE_WINDOW[1]:
        return SendError(f"outside Meta's 24-hour messaging window ({reason})", permanent=True)
    if answer.status_code >= 500 or code in TEMPORARY_CODES or answer.status_code < 400:
        return SendError(reason)
    return SendError(reason, permanent=True)


def _retry_after(answer: httpx.Response) -> float:
    raw = answer.headers.get("Retry-After", "")
    try:
        seconds = float(raw)
    except ValueError:
        return RATE_LIMIT_RETRY_SECONDS
    return min(max(seconds, 0.1), 3600.0) if seconds == seconds else RATE_LIMIT_RETRY_SECONDS


class MetaWebhook:
    """The webhook both platforms post to, and a sending channel per configured platform."""

    def __init__(self, settings: Settings, gateway: Gateway) -> None:
        self.settings = settings
        self.gateway = gateway
        tokens = {MESSENGER: settings.meta_page_access_token,
                  INSTAGRAM: settings.meta_instagram_access_token
                  or settings.meta_page_access_token}
        self.channels: Dict[str, MetaChannel] = {
            name: MetaChannel(name, token, settings, gateway.db)
            for name, token in tokens.items() if token}

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

    async def webhook(self, request: Request) -> HTTPResponse:
        """POST WEBHOOK_PATH: check the signature, store every message, then answer 200."""
        if not signature_ok(request.body or b"", request.headers.get(SIGNATURE_HEADER, ""),
                            self.settings.meta_app_secret or ""):
            return response.json({"error": "wrong or missing signature"}, status=403)
        try:
            body = json.loads(request.body or b"")
        except (ValueError, RecursionError):
            return response.json({"error": "body is not JSON"}, status=400)
        received: List[Tuple[InboundMessage, Optional[OutboundMessage]]] = []
        try:
            platform, events = webhook_events(body)
            if platform is not None and platform not in self.channels:
                log.info("%s is not configured (no access token): %d event(s) ignored",
                         platform, len(events))
                return response.json({"ok": True})
            if platform is None:
                log.debug("ignored a webhook for another object (%d event(s))", len(events))
            for event in events if platform is not None else ():
                try:
                    message = inbound(platform, event)
                except InvalidMessageError as problem:
                    log.warning("%s: an event was refused and skipped: %s", platform, problem)
                    continue
                if message is not None:
                    received.append(message)
        except MalformedWebhookError as problem:
            return response.json({"error": str(problem)}, status=400)
        for message, auto_reply in received:
            try:
                await self.gateway.receive(message, auto_reply=auto_reply, hold_when_busy=True)
            except Exception as error:  # noqa: BLE001 - sorted below
                if not not_stored(error):
                    log.error("%s message %s from %s: storing failed (%s); skipped so that "
                              "one bad event does not hold up the others", message.channel,
                              message.channel_message_id, message.external_id,
                              type(error).__name__, exc_info=error)
                    continue
                log.warning("%s message %s not stored (%s); answered 503 so Meta sends it "
                            "again", message.channel, message.channel_message_id,
                            type(error).__name__)
                result = response.json({"error": "not stored; send it again later"},
                                       status=503)
                result.headers["Retry-After"] = str(STORE_RETRY_AFTER)
                return result
        return response.json({"ok": True})
