"""A loopback fake of the Telegram Bot API, for tests that drive a bot end to end.

Why a fake server rather than mocks: pointing python-telegram-bot's real HTTP client at it
(``ApplicationBuilder().base_url(fake.base_url)`` or ``Bot(token, base_url=...)``) exercises
what mocks skip - how PTB encodes parameters, how it turns HTTP errors into exceptions
(RetryAfter, Forbidden, NetworkError...), long polling and offsets - without a network or a
real bot token.

It answers the way Telegram does where bots commonly trip: 401 for a wrong token, 409 for
getUpdates while a webhook is set, 400 for empty or too long texts, unknown callback queries,
"message is not modified" edits and non-HTTPS webhooks, 403 for chats that blocked the bot,
400 BUSINESS_CONNECTION_INVALID for a send through an unknown or disabled Telegram Business
connection (or one without the right to reply), and whatever `FakeTelegram.fail_next` injects.

Telegram Business: `add_business_connection` makes a brand account connected to the bot
(getBusinessConnection then knows it), `business_connection_update` the update announcing it
or a change (disabled, rights), `business_update` turns any message update built here into a
business_message (edited_message into edited_business_message), from the customer or the
account's owner, and `deleted_business_messages_update` reports deletions. A send with
business_connection_id comes back as Telegram's does: from the account, sender_business_bot
the bot. It does not parse Markdown/HTML (texts are
echoed as sent), does not deliver to webhooks and does not store uploaded files.

Usage::

    async def test_reply(fake_telegram):
        fake_telegram.push_update(fake_telegram.text_update(42, "hello"))
        ...  # run the bot with base_url=fake_telegram.base_url
        [reply] = await fake_telegram.wait_for_sent(42, 1)

Import the fixture into a test module with
``from tests.fake_telegram import fake_telegram_fixture  # noqa: F401``; it is named
``fake_telegram``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import time
from collections import defaultdict, deque
from http import HTTPStatus
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from aiohttp import web

__all__ = ["DEFAULT_TOKEN", "FakeTelegram", "fake_telegram_fixture"]

DEFAULT_TOKEN = "123456:TEST-TOKEN"
BOT_USERNAME = "juniper_test_bot"
GROUP_MEMBER_ID = 424_242  # the customer writing in group chats, whose ids are not user ids
MAX_TEXT_LENGTH = 4096
BLOCKED = "Forbidden: bot was blocked by the user"
BUSINESS_CONNECTION_INVALID = "Bad Request: BUSINESS_CONNECTION_INVALID"
BUSINESS_OWNER_ID = 777_000_111  # the brand's Telegram account (a user) by default

# Parameters whose values PTB sends as raw strings: they must not be JSON-decoded, or a text
# like "42" or "true" would come back as a number or a boolean.
_STRING_PARAMS = frozenset(
    {
        "action", "address", "animation", "audio", "business_connection_id", "caption",
        "callback_query_id", "custom_title", "description", "document", "emoji",
        "explanation", "first_name", "foursquare_id", "foursquare_type", "google_place_id",
        "google_place_type", "inline_message_id", "ip_address", "language_code", "last_name",
        "message_effect_id", "name", "next_offset", "parse_mode", "phone_number", "photo",
        "question", "secret_token", "short_description", "sticker", "text", "title", "url",
        "vcard", "video", "video_note", "voice",
    }
)
# Update types Telegram leaves out unless allowed_updates asks for them.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice",
        "upload_voice", "upload_document", "choose_sticker", "find_location",
        "record_video_note", "upload_video_note",
    }
)
_WEBHOOK_PORTS = frozenset({80, 88, 443, 8443})
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Telegram marks every "/command" that starts the text or follows whitespace.
_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: BLOCKED,
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

_WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)

JSONDict = dict[str, Any]
_Handler = Callable[[JSONDict], Awaitable[Any]]


class _ApiError(Exception):
    """An error answer, raised anywhere inside a method handler."""

    def __init__(self, status: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def response(self) -> web.Response:
        body: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(body, status=self.status)


def _utf16_len(text: str) -> int:
    """Telegram measures entity offsets in UTF-16 code units, not code points."""
    return len(text.encode("utf-16-le")) // 2


def _command_entities(text: str) -> list[JSONDict]:
    """bot_command entities as Telegram adds them; PTB's CommandHandler relies on them."""
    return [
        {
            "type": "bot_command",
            "offset": _utf16_len(text[: match.start()]),
            "length": _utf16_len(match.group()),
        }
        for match in _COMMAND_RE.finditer(text)
    ]


def _decode_value(name: str, value: str) -> Any:
    """Undo PTB's encoding: non-string values travel as JSON text inside form fields."""
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # a plain string such as "@channel_name"


def _update_type(update: JSONDict) -> str:
    return next((key for key in update if key != "update_id"), "")


class FakeTelegram:
    """An in-process Bot API server on 127.0.0.1 that records what the bot does.

    Not thread-safe except for `push_update`, which may be called from another thread.
    """

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        self.token: str = token
        self.base_url: str = ""
        self.calls: list[tuple[str, JSONDict]] = []
        self.webhook: JSONDict | None = None
        self.bot_user: JSONDict = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": "Juniper",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self._sent: list[tuple[JSONDict, JSONDict]] = []  # (params, resulting Message)
        self._updates: deque[JSONDict] = deque()
        self._next_update_id = 10_001
        self._allowed_updates: list[str] | None = None
        self._faults: dict[str, deque[_ApiError]] = defaultdict(deque)
        self._blocked: set[int] = set()
        self._chats: dict[int, JSONDict] = {}
        self._messages: dict[tuple[int, int], JSONDict] = {}
        self._last_message_id: dict[int, int] = defaultdict(int)
        self._open_callback_queries: set[str] = set()
        self._callback_ids = itertools.count(4_000_000_000_001)
        self._file_ids = itertools.count(1)
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._business_connections: dict[str, JSONDict] = {}
        self._business_ids = itertools.count(1)
        self._poll_generation = 0
        self._closing = False
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._handlers: dict[str, _Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendChatAction": self._send_chat_action,
            "getBusinessConnection": self._get_business_connection,
            "answerCallbackQuery": self._answer_callback_query,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
            "logOut": self._true,
            "close": self._true,
        }
        # Telegram accepts method names in any case ("sendmessage" works).
        self._method_names = {name.lower(): name for name in self._handlers}

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1 and set `base_url`."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._closing = False
        app = web.Application()
        app.router.add_route("*", r"/bot{token:[^/]+}/{method:[^/]+}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/bot"

    async def stop(self) -> None:
        """Release pending long polls at once (empty answers), then close the server."""
        self._closing = True
        self._wake()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------ what customers do

    def push_update(self, update: JSONDict) -> int:
        """Queue a raw Update dict for getUpdates; returns its (possibly assigned) update_id.

        The dict is copied, so a test can reuse it. Messages and callback queries in it become
        known to the fake, so the bot may reply to, edit or answer them.
        """
        update = copy.deepcopy(update)
        update.setdefault("update_id", self._next_update_id)
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        for key in ("message", "edited_message", "channel_post", "business_message",
                    "edited_business_message"):
            if key in update:
                self._remember(update[key])
        if "business_connection" in update:  # Telegram's own record changes with it
            connection = update["business_connection"]
            self._business_connections[str(connection["id"])] = copy.deepcopy(connection)
        query = update.get("callback_query")
        if query:
            self._open_callback_queries.add(str(query["id"]))
            if "message" in query:
                self._remember(query["message"])
        self._updates.append(update)
        self._wake()
        return int(update["update_id"])

    def text_update(
        self,
        chat_id: int,
        text: str,
        first_name: str = "Amara",
        message_id: int | None = None,
        chat_type: str = "private",
    ) -> JSONDict:
        """An Update with a customer's text message (not queued; see `push_update`).

        Commands get bot_command entities as on Telegram. message_id defaults to the chat's
        next one; ids are shared with the bot's own messages, as in real chats.
        """
        content: JSONDict = {"text": text}
        entities = _command_entities(text)
        if entities:
            content["entities"] = entities
        return self._message_update(chat_id, first_name, message_id, chat_type, content)

    def edited_text_update(
        self, chat_id: int, message_id: int, text: str, first_name: str = "Amara",
        chat_type: str = "private",
    ) -> JSONDict:
        """An Update with edited_message: the customer changed message `message_id`."""
        original = self._messages.get((chat_id, message_id))
        update = self.text_update(chat_id, text, first_name, message_id, chat_type)
        message = update.pop("message")
        if original is not None:
            message["date"] = original["date"]
        message["edit_date"] = int(time.time())
        self._remember(message)
        return {"edited_message": message}

    def photo_update(
        self, chat_id: int, caption: str | None = None, first_name: str = "Amara",
        message_id: int | None = None, chat_type: str = "private",
    ) -> JSONDict:
        """An Update with a photo in three sizes, the way Telegram sends them."""
        file_id, unique_id = self._new_file_id("AgACAgIAAxkBAAI")
        content: JSONDict = {
            "photo": [
                {
                    "file_id": f"{file_id}-{side}",
                    "file_unique_id": f"{unique_id}-{side}",
                    "width": side,
                    "height": side * 3 // 4,
                    "file_size": side * side // 10,
                }
                for side in (90, 320, 1280)
            ]
        }
        self._add_caption(content, caption)
        return self._message_update(chat_id, first_name, message_id, chat_type, content)

    def sticker_update(
        self, chat_id: int, emoji: str = "\N{THUMBS UP SIGN}", first_name: str = "Amara",
        message_id: int | None = None, chat_type: str = "private",
    ) -> JSONDict:
        """An Update with a regular static sticker."""
        file_id, unique_id = self._new_file_id("CAACAgIAAxkBAAI")
        sticker = {
            "file_id": file_id, "file_unique_id": unique_id, "type": "regular",
            "width": 512, "height": 512, "is_animated": False, "is_video": False,
            "emoji": emoji, "set_name": "JuniperTestStickers", "file_size": 23_512,
        }
        return self._message_update(
            chat_id, first_name, message_id, chat_type, {"sticker": sticker}
        )

    def voice_update(
        self, chat_id: int, duration: int = 3, first_name: str = "Amara",
        message_id: int | None = None, chat_type: str = "private",
    ) -> JSONDict:
        """An Update with a voice note (OGG/Opus, as Telegram's apps record them)."""
        file_id, unique_id = self._new_file_id("AwACAgIAAxkBAAI")
        voice = {
            "file_id": file_id, "file_unique_id": unique_id, "duration": duration,
            "mime_type": "audio/ogg", "file_size": 4_000 * duration,
        }
        return self._message_update(
            chat_id, first_name, message_id, chat_type, {"voice": voice}
        )

    def document_update(
        self, chat_id: int, file_name: str = "receipt.pdf",
        mime_type: str = "application/pdf", caption: str | None = None,
        first_name: str = "Amara", message_id: int | None = None, chat_type: str = "private",
    ) -> JSONDict:
        """An Update with a file sent as a document."""
        file_id, unique_id = self._new_file_id("BQACAgIAAxkBAAI")
        content: JSONDict = {
            "document": {
                "file_id": file_id, "file_unique_id": unique_id, "file_name": file_name,
                "mime_type": mime_type, "file_size": 48_213,
            }
        }
        self._add_caption(content, caption)
        return self._message_update(chat_id, first_name, message_id, chat_type, content)

    def location_update(
        self, chat_id: int, latitude: float = 52.3702, longitude: float = 4.8952,
        first_name: str = "Amara", message_id: int | None = None, chat_type: str = "private",
    ) -> JSONDict:
        """An Update with a shared location."""
        location = {"latitude": latitude, "longitude": longitude}
        return self._message_update(
            chat_id, first_name, message_id, chat_type, {"location": location}
        )

    def contact_update(
        self, chat_id: int, phone_number: str = "+31612345678", first_name: str = "Amara",
        message_id: int | None = None, chat_type: str = "private",
    ) -> JSONDict:
        """An Update with the customer sharing their own contact (user_id set, as Telegram does)."""
        user_id = chat_id if chat_type == "private" else GROUP_MEMBER_ID
        contact = {"phone_number": phone_number, "first_name": first_name, "user_id": user_id}
        return self._message_update(
            chat_id, first_name, message_id, chat_type, {"contact": contact}
        )

    def callback_update(
        self, chat_id: int, data: str, message_id: int, first_name: str = "Amara"
    ) -> JSONDict:
        """An Update with a button press on message `message_id`.

        The query's message is the one the bot sent, if it went through this fake; otherwise
        a bot message without text. The query id becomes answerable once pushed.
        """
        chat = self._chat(chat_id, first_name=first_name)
        message = self._messages.get((chat_id, message_id))
        if message is None:
            message = {
                "message_id": message_id, "from": self._bot_from(), "chat": chat,
                "date": int(time.time()) - 1,
            }
            self._remember(message)
        user_id = chat_id if chat["type"] == "private" else GROUP_MEMBER_ID
        return {
            "callback_query": {
                "id": str(next(self._callback_ids)),
                "from": self._user(user_id, first_name),
                "message": copy.deepcopy(message),
                "chat_instance": str(-(abs(chat_id) * 7919 + 11)),
                "data": data,
            }
        }

    # ------------------------------------------------------- Telegram Business

    def add_business_connection(
        self, connection_id: str | None = None, owner_id: int = BUSINESS_OWNER_ID,
        owner_first_name: str = "Juniper", owner_username: str | None = "juniper_shop",
        is_enabled: bool = True, can_reply: bool = True, legacy: bool = False,
    ) -> JSONDict:
        """A brand account connects the bot (Telegram Business -> Chatbots): the
        BusinessConnection as Telegram keeps it, known to getBusinessConnection from now on.

        Not an update: push `business_connection_update(id)` to tell the bot. ``legacy``
        gives the shape from before Bot API 9.0 (``can_reply`` instead of ``rights``).
        """
        connection_id = connection_id or f"BCfake{next(self._business_ids):04d}-Abc_9"
        owner = self._user(owner_id, owner_first_name)
        owner["is_premium"] = True
        if owner_username:
            owner["username"] = owner_username
        connection: JSONDict = {
            "id": connection_id, "user": owner, "user_chat_id": owner_id,
            "date": int(time.time()), "is_enabled": is_enabled,
        }
        if legacy:
            connection["can_reply"] = can_reply
        else:
            connection["rights"] = {"can_reply": True, "can_read_messages": True} \
                if can_reply else {"can_read_messages": True}
        self._business_connections[connection_id] = connection
        self.bot_user["can_connect_to_business"] = True
        return copy.deepcopy(connection)

    def business_connection_update(
        self, connection_id: str, is_enabled: bool | None = None, can_reply: bool | None = None,
    ) -> JSONDict:
        """An Update with business_connection: the connection as it now is, after the owner
        disabled or re-enabled it or changed the bot's rights (None: unchanged)."""
        connection = self._business_connections[connection_id]
        if is_enabled is not None:
            connection["is_enabled"] = is_enabled
        if can_reply is not None:
            if "rights" in connection:
                connection["rights"] = {k: v for k, v in connection["rights"].items()
                                        if k != "can_reply"}
                if can_reply:
                    connection["rights"]["can_reply"] = True
            else:
                connection["can_reply"] = can_reply
        return {"business_connection": copy.deepcopy(connection)}

    def business_update(
        self, update: JSONDict, connection_id: str, from_owner: bool = False
    ) -> JSONDict:
        """The message update `update` (from any builder here: text, photo, edit...) as it
        arrives from a chat of a connected business account: business_message (or
        edited_business_message) with its business_connection_id. The chat is the
        customer's private chat with the account; ``from_owner``: the account's owner wrote
        it in that chat themselves."""
        kinds = {"message": "business_message", "edited_message": "edited_business_message"}
        kind = next(k for k in kinds if k in update)
        message = copy.deepcopy(update[kind])
        message["business_connection_id"] = connection_id
        if from_owner:
            owner = self._business_connections[connection_id]["user"]
            message["from"] = {k: owner[k] for k in ("id", "is_bot", "first_name")}
        self._remember(message)
        return {kinds[kind]: message}

    def business_text_update(
        self, connection_id: str, chat_id: int, text: str, first_name: str = "Amara",
        message_id: int | None = None, from_owner: bool = False,
    ) -> JSONDict:
        """An Update with business_message: a text in a chat of a connected account."""
        return self.business_update(self.text_update(chat_id, text, first_name, message_id),
                                    connection_id, from_owner)

    def edited_business_text_update(
        self, connection_id: str, chat_id: int, message_id: int, text: str,
        first_name: str = "Amara",
    ) -> JSONDict:
        """An Update with edited_business_message: the customer changed `message_id`."""
        return self.business_update(
            self.edited_text_update(chat_id, message_id, text, first_name), connection_id)

    def deleted_business_messages_update(
        self, connection_id: str, chat_id: int, message_ids: list[int]
    ) -> JSONDict:
        """An Update with deleted_business_messages (BusinessMessagesDeleted)."""
        return {"deleted_business_messages": {
            "business_connection_id": connection_id, "chat": self._chat(chat_id),
            "message_ids": list(message_ids),
        }}

    def business_connection(self, connection_id: str) -> JSONDict | None:
        """The connection as the fake Telegram keeps it (None: unknown)."""
        connection = self._business_connections.get(connection_id)
        return copy.deepcopy(connection) if connection is not None else None

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by a getUpdates offset."""
        return len(self._updates)

    # ---------------------------------------------------------- what the bot did

    def calls_of(self, method: str) -> list[JSONDict]:
        """Decoded params of every call of `method` (any outcome), in order."""
        return [params for name, params in self.calls if name == method]

    def sent(self, chat_id: int | None = None) -> list[JSONDict]:
        """Params of successful sendMessage calls, in order, optionally for one chat.

        Values are decoded (chat_id int, reply_markup dict...). PTB 22 sends replies as
        reply_parameters; reply_to_message_id is filled in from it for convenience.
        """
        result = []
        for params, _message in self._sent:
            if chat_id is None or params.get("chat_id") == chat_id:
                params = dict(params)
                reply = params.get("reply_parameters")
                if isinstance(reply, dict) and "reply_to_message_id" not in params:
                    params["reply_to_message_id"] = reply.get("message_id")
                result.append(params)
        return result

    def sent_messages(self, chat_id: int | None = None) -> list[JSONDict]:
        """The Message dicts the fake returned for successful sendMessage calls (with ids)."""
        return [
            copy.deepcopy(message) for params, message in self._sent
            if chat_id is None or params.get("chat_id") == chat_id
        ]

    async def wait_for_sent(
        self, chat_id: int, count: int, timeout: float = 10.0
    ) -> list[JSONDict]:
        """Wait until at least `count` messages were sent to `chat_id`; return all of them.

        Bots answer asynchronously, so tests wait for an outcome instead of sleeping.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            sent = self.sent(chat_id)
            if len(sent) >= count:
                return sent
            if loop.time() >= deadline:
                texts = [params.get("text") for params in sent]
                raise AssertionError(
                    f"expected {count} message(s) to chat {chat_id} within {timeout}s, "
                    f"got {len(sent)}: {texts!r}; last calls: {self.calls[-10:]!r}"
                )
            await asyncio.sleep(0.01)

    async def wait_for_calls(
        self, method: str, count: int = 1, timeout: float = 10.0
    ) -> list[JSONDict]:
        """Wait until `method` was called at least `count` times; return all their params.

        For outcomes other than sendMessage (edits, answers, chat actions).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            calls = self.calls_of(method)
            if len(calls) >= count:
                return calls
            if loop.time() >= deadline:
                raise AssertionError(
                    f"expected {count} {method} call(s) within {timeout}s, got {len(calls)}; "
                    f"last calls: {self.calls[-10:]!r}"
                )
            await asyncio.sleep(0.01)

    # ----------------------------------------------------------------- faults

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` with an error instead.

        retry_after is sent only with 429 (PTB turns it into RetryAfter whatever the status).
        The description defaults to Telegram's for the status, e.g. "Too Many Requests: retry
        after 1", "Forbidden: bot was blocked by the user", "Bad Gateway".
        """
        if status == 429:
            description = description or (
                f"Too Many Requests: retry after {retry_after}"
                if retry_after is not None else "Too Many Requests"
            )
        else:
            retry_after = None
            description = description or _DEFAULT_DESCRIPTIONS.get(
                status, HTTPStatus(status).phrase
            )
        name = self._method_names.get(method.lower(), method)
        for _ in range(times):
            self._faults[name].append(_ApiError(status, description, retry_after))

    def block_chat(self, chat_id: int) -> None:
        """The customer blocked the bot: sending to this chat answers 403 from now on."""
        self._blocked.add(chat_id)

    def unblock_chat(self, chat_id: int) -> None:
        """The customer unblocked the bot."""
        self._blocked.discard(chat_id)

    # ----------------------------------------------------------------- HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _ApiError(401, "Unauthorized").response()
        requested = request.match_info["method"]
        method = self._method_names.get(requested.lower(), requested)
        params = await self._read_params(request)
        self.calls.append((method, params))
        handler = self._handlers.get(method)
        try:
            if handler is None:
                raise _ApiError(404, "Not Found: method not found")
            if self._faults.get(method):
                raise self._faults[method].popleft()
            result = await handler(params)
        except _ApiError as error:
            return error.response()
        return web.json_response({"ok": True, "result": result})

    async def _not_found(self, request: web.Request) -> web.Response:
        return _ApiError(404, "Not Found").response()

    @staticmethod
    async def _read_params(request: web.Request) -> JSONDict:
        """Query string, form (urlencoded or multipart, as PTB sends) or JSON body."""
        params: JSONDict = {k: _decode_value(k, v) for k, v in request.query.items()}
        if request.content_type == "application/json":
            body = await request.json() if request.can_read_body else {}
            params.update(body or {})
            return params
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                content = value.file.read()
                params[name] = {
                    "filename": value.filename,
                    "content_type": value.content_type,
                    "size": len(content),
                }
            else:
                params[name] = _decode_value(name, value)
        return params

    # ---------------------------------------------------------------- methods

    async def _true(self, params: JSONDict) -> bool:
        return True

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return dict(self.bot_user)

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook is not None:
            raise _ApiError(409, _WEBHOOK_CONFLICT)
        # A newer getUpdates ends any older one with 409, as on Telegram.
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()
        self._confirm(int(params.get("offset") or 0))
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"]) or None
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.webhook is not None:
                raise _ApiError(409, _WEBHOOK_CONFLICT)
            if generation != self._poll_generation:
                raise _ApiError(409, _DEFAULT_DESCRIPTIONS[409])
            ready = [u for u in self._updates if self._is_allowed(u)]
            if ready or self._closing or loop.time() >= deadline:
                return copy.deepcopy(ready[:limit])
            assert self._wakeup is not None
            try:
                await asyncio.wait_for(self._wakeup.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                pass

    async def _set_webhook(self, params: JSONDict) -> bool:
        url = params.get("url") or ""
        if not url:  # Telegram treats an empty URL as deleteWebhook
            self.webhook = None
            return True
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise _ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        if (parts.port or 443) not in _WEBHOOK_PORTS:
            raise _ApiError(
                400, "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 "
                "or 8443",
            )
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN_RE.fullmatch(str(secret)):
            raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"]) or None
        self.webhook = dict(params)
        self._wake()  # a waiting getUpdates now conflicts
        return True

    async def _delete_webhook(self, params: JSONDict) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook is not None:
            info.update(url=self.webhook["url"], max_connections=self.webhook.get(
                "max_connections", 40), ip_address="127.0.0.1")
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
        return info

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        text = self._valid_text(params)
        content: JSONDict = {"text": text}
        reply = params.get("reply_parameters")
        reply_to = reply.get("message_id") if isinstance(reply, dict) else None
        reply_to = reply_to or params.get("reply_to_message_id")
        if reply_to is not None:
            original = self._messages.get((chat_id, int(reply_to)))
            if original is not None:
                content["reply_to_message"] = {
                    k: v for k, v in original.items() if k != "reply_to_message"
                }
            elif not (
                params.get("allow_sending_without_reply")
                or (isinstance(reply, dict) and reply.get("allow_sending_without_reply"))
            ):
                raise _ApiError(400, "Bad Request: message to be replied not found")
        self._set_markup(content, params.get("reply_markup"))
        sender = self._bot_from()
        connection = self._sending_connection(params)
        if connection is not None:  # sent as the business account, by this bot
            sender = {k: connection["user"][k] for k in ("id", "is_bot", "first_name")}
            content["business_connection_id"] = connection["id"]
            content["sender_business_bot"] = self._bot_from()
        message = self._new_message(chat_id, sender, content)
        self._sent.append((params, message))
        return copy.deepcopy(message)

    async def _send_chat_action(self, params: JSONDict) -> bool:
        self._chat_id(params)
        self._sending_connection(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    async def _get_business_connection(self, params: JSONDict) -> JSONDict:
        connection = self._business_connections.get(str(params.get("business_connection_id")))
        if connection is None:
            raise _ApiError(400, BUSINESS_CONNECTION_INVALID)
        return copy.deepcopy(connection)

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._open_callback_queries:
            raise _ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is "
                "invalid",
            )
        self._open_callback_queries.discard(query_id)
        if len(str(params.get("text") or "")) > 200:
            raise _ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        return True

    async def _edit_message_text(self, params: JSONDict) -> JSONDict | bool:
        text = self._valid_text(params)
        if params.get("inline_message_id"):
            return True
        message = self._message_to_edit(params)
        new = dict(message, text=text)
        new.pop("reply_markup", None)
        self._set_markup(new, params.get("reply_markup"))
        return self._store_edit(message, new)

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict | bool:
        if params.get("inline_message_id"):
            return True
        message = self._message_to_edit(params)
        new = dict(message)
        new.pop("reply_markup", None)
        self._set_markup(new, params.get("reply_markup"))
        return self._store_edit(message, new)

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _ApiError(400, "Bad Request: parameter \"commands\" is required")
        self._commands[self._commands_key(params)] = commands
        return True

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return list(self._commands.get(self._commands_key(params), []))

    # ---------------------------------------------------------------- helpers

    def _wake(self) -> None:
        """Wake waiting long polls; safe from other threads."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake_now()
        else:
            loop.call_soon_threadsafe(self._wake_now)

    def _wake_now(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _confirm(self, offset: int) -> None:
        """Forget updates the bot confirmed: ids below offset, or all but the last -offset."""
        if offset > 0:
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        elif offset < 0:
            while len(self._updates) > -offset:
                self._updates.popleft()

    def _is_allowed(self, update: JSONDict) -> bool:
        kind = _update_type(update)
        if self._allowed_updates is None:
            return kind not in _OPT_IN_UPDATES
        return kind in self._allowed_updates

    def _chat_id(self, params: JSONDict) -> int:
        """The target chat of a send; 400 if missing or unknown, 403 if it blocked the bot."""
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise _ApiError(400, "Bad Request: chat_id is empty")
        if not isinstance(chat_id, int):
            raise _ApiError(400, "Bad Request: chat not found")
        if chat_id in self._blocked:
            raise _ApiError(403, BLOCKED)
        return chat_id

    def _sending_connection(self, params: JSONDict) -> JSONDict | None:
        """The business connection a send goes through (None: as the bot itself); 400 when
        Telegram would refuse it: unknown, disabled, or without the right to reply."""
        connection_id = params.get("business_connection_id")
        if connection_id in (None, ""):
            return None
        connection = self._business_connections.get(str(connection_id))
        if connection is None or not connection.get("is_enabled"):
            raise _ApiError(400, BUSINESS_CONNECTION_INVALID)
        can_reply = (connection["rights"].get("can_reply") if "rights" in connection
                     else connection.get("can_reply"))
        if not can_reply:
            raise _ApiError(400, BUSINESS_CONNECTION_INVALID)
        return connection

    @staticmethod
    def _valid_text(params: JSONDict) -> str:
        text = params.get("text")
        if text is None or not str(text).strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if _utf16_len(str(text)) > MAX_TEXT_LENGTH:
            raise _ApiError(400, "Bad Request: message is too long")
        return str(text)

    @staticmethod
    def _set_markup(content: JSONDict, markup: Any) -> None:
        """Only inline keyboards come back in a Message (reply keyboards are not echoed)."""
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            content["reply_markup"] = markup

    def _message_to_edit(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        message_id = params.get("message_id")
        if message_id is None:
            raise _ApiError(400, "Bad Request: message identifier is not specified")
        message = self._messages.get((chat_id, int(message_id)))
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        if message.get("from", {}).get("id") != self.bot_user["id"]:
            raise _ApiError(400, "Bad Request: message can't be edited")
        return message

    def _store_edit(self, old: JSONDict, new: JSONDict) -> JSONDict:
        def content(m: JSONDict) -> tuple[Any, Any]:
            return m.get("text"), m.get("reply_markup")

        if content(old) == content(new):
            raise _ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup of "
                "the message",
            )
        new["edit_date"] = int(time.time())
        self._remember(new)
        return copy.deepcopy(new)

    @staticmethod
    def _commands_key(params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    def _bot_from(self) -> JSONDict:
        return {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}

    @staticmethod
    def _user(user_id: int, first_name: str) -> JSONDict:
        return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}

    def _chat(self, chat_id: int, chat_type: str | None = None,
              first_name: str = "Amara") -> JSONDict:
        """The chat as Telegram describes it; remembered so replies use the same one."""
        known = self._chats.get(chat_id)
        if known is not None and chat_type in (None, known["type"]):
            return dict(known)
        chat_type = chat_type or ("private" if chat_id > 0 else "group")
        if chat_type == "private":
            chat: JSONDict = {"id": chat_id, "type": "private", "first_name": first_name}
        else:
            chat = {"id": chat_id, "type": chat_type, "title": "Juniper test group"}
        self._chats[chat_id] = chat
        return dict(chat)

    def _remember(self, message: JSONDict) -> None:
        chat = message.get("chat") or {}
        if "id" not in chat or "message_id" not in message:
            return
        chat_id, message_id = int(chat["id"]), int(message["message_id"])
        self._chats.setdefault(chat_id, dict(chat))
        self._messages[(chat_id, message_id)] = copy.deepcopy(message)
        self._last_message_id[chat_id] = max(self._last_message_id[chat_id], message_id)

    def _new_message(self, chat_id: int, sender: JSONDict, content: JSONDict,
                     message_id: int | None = None, chat_type: str | None = None,
                     first_name: str = "Amara") -> JSONDict:
        if message_id is None:
            message_id = self._last_message_id[chat_id] + 1
        message = {
            "message_id": message_id,
            "from": sender,
            "chat": self._chat(chat_id, chat_type, first_name),
            "date": int(time.time()),
            **content,
        }
        self._remember(message)
        return message

    def _message_update(self, chat_id: int, first_name: str, message_id: int | None,
                        chat_type: str, content: JSONDict) -> JSONDict:
        user_id = chat_id if chat_type == "private" else GROUP_MEMBER_ID
        message = self._new_message(
            chat_id, self._user(user_id, first_name), content, message_id, chat_type, first_name
        )
        return {"message": copy.deepcopy(message)}

    def _new_file_id(self, prefix: str) -> tuple[str, str]:
        number = next(self._file_ids)
        return f"{prefix}{number:06d}fake", f"AQAD{number:06d}"

    @staticmethod
    def _add_caption(content: JSONDict, caption: str | None) -> None:
        if caption:
            content["caption"] = caption
            entities = _command_entities(caption)
            if entities:
                content["caption_entities"] = entities


@pytest.fixture(name="fake_telegram")
async def fake_telegram_fixture() -> AsyncIterator[FakeTelegram]:
    """A started FakeTelegram with DEFAULT_TOKEN, stopped after the test."""
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
