"""Telegram, through python-telegram-bot.

Webhook mode (TELEGRAM_WEBHOOK_URL set): Telegram posts updates to our Sanic
route, which checks the secret token in constant time and awaits the
Application's handlers, so each message is stored before Telegram gets 200.

Polling mode (otherwise): our own getUpdates loop over PTB's Bot. PTB's
Updater confirms updates before handlers have run; this loop confirms an
update (by advancing the offset) only after it is stored, so a crash loses
nothing and Telegram's redelivery is absorbed by the store's idempotency.

Confirm only what is committed. ``Application.process_update`` swallows what
a handler raises (it goes to the error handlers), so our error handler records
per update whether its message failed to reach the store; the update is then
not confirmed: the webhook answers 503 (Telegram sends it again later) and
polling keeps the offset and fetches the same batch again after a capped
exponential backoff, logging only the update id and the error's class. The
store's idempotency on (conversation, message id) makes the retry store once.

Which errors hold an update back: the store being unavailable
(``store_unavailable``: SQLite locked past its busy timeout, disk or I/O
errors, a lost connection or an exhausted pool) and a deliberate refusal
(RateLimitedError: not stored either). Anything else a handler raises is a
bug in our code for some odd update, and retrying it would fail the same way
forever while every customer's updates queue behind it; so it is logged
loudly (ERROR, update id, traceback) and the update is confirmed: that one
message is lost, and nobody else's is held up.

Telegram cannot be asked to resend later, so a customer over the flood limits
has messages stored but held (``flood_control.py``), never refused.

Replies go out as plain text (no parse_mode), so *, _ and <b> reach the
customer exactly as written; long text is split at Telegram's limit.

Sending is throttled to Telegram's limits by ``PriorityRateLimiter``
(``telegram_priority.py``): acknowledgements first, then answers, then typing
indicators, so a burst of DMs is acknowledged as fast as the limit allows.
Typing indicators are fire and forget: the pipeline asks for one before each
Rasa call, and waiting for a slot for it would hold that call back.

Telegram Business: a brand connects its own Telegram account to the bot
(Settings -> Telegram Business -> Chatbots), and the bot answers the DMs
customers send that account, as the account. Those chats are a second channel,
``telegram_business`` (``TelegramBusinessChannel``), sharing this Application
and Bot: its external id is ``<business_connection_id>:<chat_id>``, so replies
go out through the right connection and can never collide with the bot's own
chats. Customers' messages take the same path as DMs to the bot (``_receive``).
Each connection (``business_connection`` updates) is kept in memory and in the
store; one the gateway does not know is asked of Telegram
(getBusinessConnection). A disabled connection, or one without the right to
reply, sends nothing: its replies fail for good, with the reason. The account
owner writing in a chat themselves is a person taking the conversation over:
the handoff desk pauses the bot there (``HandoffDesk.taken_over``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

from sanic import Request, response
from sanic.response import HTTPResponse
from telegram import (
    BusinessConnection,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
    User,
)
from telegram.constants import ChatAction, ChatType, MessageLimit
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    BusinessConnectionHandler,
    BusinessMessagesDeletedHandler,
    CallbackQueryHandler,
    MessageHandler,
)
from telegram.ext import filters as tg_filters

from bot.gateway.acknowledgement import UNSUPPORTED_REPLY
from bot.gateway.channels.telegram_priority import Priority, PriorityRateLimiter
from bot.gateway.credentials import same_secret
from bot.gateway.messages import ACK, InboundMessage, InvalidMessageError, OutboundMessage
from bot.gateway.pipeline import Gateway, SendError
from bot.gateway.rate_limits import RateLimitedError
from bot.gateway.settings import Settings
from bot.gateway.store import store_unavailable

log = logging.getLogger(__name__)

CHANNEL = "telegram"
BUSINESS_CHANNEL = "telegram_business"  # customers' DMs to a brand's own Telegram account
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member",
                   "business_connection", "business_message", "edited_business_message",
                   "deleted_business_messages"]
CALLBACK_DATA_LIMIT = 64  # bytes, Telegram's limit for inline button data
# Polling's wait before fetching an unstored update again: doubles, up to the cap.
STORE_RETRY_FIRST_DELAY = 0.5
STORE_RETRY_MAX_DELAY = 30.0
STORE_RETRY_AFTER = 5  # the webhook's 503 Retry-After (Telegram keeps its own schedule)


def default_rate_limiter() -> PriorityRateLimiter:
    """The production limiter: Telegram's limits, acknowledgements first (bench uses it too)."""
    return PriorityRateLimiter()


class BusinessConnectionUnavailableError(Exception):
    """Telegram could not be asked about a business connection just now (a network error)."""


def not_stored(error: BaseException) -> bool:
    """Whether a handler's error means the update's message was not committed."""
    return (store_unavailable(error) or isinstance(error, RateLimitedError)
            or isinstance(error, BusinessConnectionUnavailableError))


def keyboard(message: OutboundMessage) -> Optional[InlineKeyboardMarkup]:
    buttons = []
    for button in message.buttons:
        if len(button.payload.encode()) > CALLBACK_DATA_LIMIT:
            log.warning("button %r dropped: payload over 64 bytes", button.title)
            continue
        buttons.append([InlineKeyboardButton(button.title, callback_data=button.payload)])
    return InlineKeyboardMarkup(buttons) if buttons else None


def button_title(message: Optional[Message], data: str) -> Optional[str]:
    """The title of the pressed button, for the transcript."""
    markup = message.reply_markup if message else None
    for row in markup.inline_keyboard if markup else ():
        for button in row:
            if button.callback_data == data:
                return button.text
    return None


class TelegramChannel:
    name = CHANNEL
    max_text_length = MessageLimit.MAX_TEXT_LENGTH

    def __init__(self, settings: Settings, gateway: Gateway,
                 rate_limiter: Optional[PriorityRateLimiter] = None) -> None:
        """``rate_limiter``: Telegram's production limits unless given (tests use small ones)."""
        self.settings = settings
        self.gateway = gateway
        self.rate_limiter = rate_limiter or default_rate_limiter()
        builder = (Application.builder().token(settings.telegram_bot_token).updater(None)
                   # Throttle to Telegram's limits, acknowledgements first; on 429 it
                   # holds everyone and our outbox waits and retries.
                   .rate_limiter(self.rate_limiter))
        if settings.telegram_api_base_url:
            builder = builder.base_url(settings.telegram_api_base_url)
        self.application = builder.build()
        self.business = TelegramBusinessChannel(self)
        self.application.add_handler(BusinessConnectionHandler(self._on_business_connection))
        self.application.add_handler(BusinessMessagesDeletedHandler(
            self._on_business_messages_deleted))
        self.application.add_handler(MessageHandler(
            tg_filters.UpdateType.BUSINESS_MESSAGES, self._on_business_message))
        self.application.add_handler(CallbackQueryHandler(self._on_callback))
        self.application.add_handler(MessageHandler(
            tg_filters.ChatType.PRIVATE & tg_filters.UpdateType.MESSAGES, self._on_message))
        self.application.add_handler(MessageHandler(~tg_filters.ChatType.PRIVATE,
                                                    self._on_group_message))
        # Handlers' errors, by update (object id): what process_update swallowed.
        self._not_stored: Dict[int, BaseException] = {}
        self.application.add_error_handler(self._on_error, block=True)
        self._poller: Optional[asyncio.Task] = None
        self._typing: Set[asyncio.Task] = set()  # typing indicators on their way

    # --- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        await self.application.initialize()
        await self.application.start()
        if self.settings.telegram_webhook_url:
            await self.application.bot.set_webhook(
                self.settings.telegram_webhook_url, secret_token=self.settings.
                telegram_webhook_secret, allowed_updates=ALLOWED_UPDATES)
            log.info("Telegram: webhook mode at %s", self.settings.telegram_webhook_url)
        else:
            await self.application.bot.delete_webhook(drop_pending_updates=False)
            self._poller = asyncio.get_running_loop().create_task(self._poll())
            log.info("Telegram: polling mode")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for task in list(self._typing):
            task.cancel()
        await asyncio.gather(*self._typing, return_exceptions=True)
        await self.application.stop()
        await self.application.shutdown()

    # --- receiving -------------------------------------------------------
    async def _poll(self) -> None:
        offset: Optional[int] = None
        failures = 0  # getUpdates calls failed in a row
        unstored = 0  # batches stopped in a row by an update the store did not take
        while True:
            try:
                updates = await self.application.bot.get_updates(
                    offset=offset, timeout=25, allowed_updates=ALLOWED_UPDATES)
                failures = 0
            except asyncio.CancelledError:
                raise
            except RetryAfter as error:
                await asyncio.sleep(_seconds(error.retry_after))
                continue
            except TelegramError as error:
                failures += 1
                delay = min(30.0, 0.5 * 2 ** failures)
                log.warning("Telegram getUpdates failed (%s); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)
                continue
            for update, error in zip(updates, await self._process_batch(updates), strict=True):
                if error is not None:  # keep the offset: this update and the rest come again
                    unstored += 1
                    delay = min(STORE_RETRY_MAX_DELAY,
                                STORE_RETRY_FIRST_DELAY * 2 ** (unstored - 1))
                    log.warning("Telegram update %s not stored (%s); not confirmed, "
                                "fetching it again in %.1fs", update.update_id,
                                type(error).__name__, delay)
                    await asyncio.sleep(delay)
                    break
                unstored = 0
                offset = update.update_id + 1  # confirmed only once stored

    async def _process_batch(self, updates: List[Update]) -> List[Optional[BaseException]]:
        """Each update's error (None: stored), processing chats at once, each in order.

        A burst of DMs arrives as one batch; one chat after another, the last
        customer's message waited for every other one to be stored before it
        could be acknowledged. A chat's updates after one that was not stored
        are left alone (they come again with it, so its messages stay in order)
        and share its error; updates of other chats stored meanwhile come again
        too, and the store recognises them.
        """
        by_chat: Dict[Any, List[int]] = {}
        for index, update in enumerate(updates):
            by_chat.setdefault(_order_key(update), []).append(index)
        errors: List[Optional[BaseException]] = [None] * len(updates)

        async def in_order(indexes: List[int]) -> None:
            for position, index in enumerate(indexes):
                errors[index] = await self._process(updates[index])
                if errors[index] is not None:
                    for later in indexes[position + 1:]:
                        errors[later] = errors[index]
                    return

        with self.gateway.acks_first.arriving():  # Rasa's turns wait for the batch
            await asyncio.gather(*(in_order(indexes) for indexes in by_chat.values()))
        return errors

    async def webhook(self, request: Request) -> HTTPResponse:
        """Sanic handler for WEBHOOK_PATH (registered by the app in webhook mode)."""
        given = request.headers.get(SECRET_HEADER, "")
        expected = self.settings.telegram_webhook_secret or ""
        if not same_secret(given, expected):
            return response.json({"error": "wrong secret token"}, status=403)
        try:
            update = Update.de_json(request.json, self.application.bot)
        except Exception:  # noqa: BLE001 - malformed body from whoever posted it
            return response.json({"error": "body is not a Telegram update"}, status=400)
        if update is None:
            return response.json({"error": "body is not a Telegram update"}, status=400)
        error = await self._process(update)
        if error is not None:
            log.warning("Telegram update %s not stored (%s); answered 503 so Telegram "
                        "sends it again", update.update_id, type(error).__name__)
            result = response.json({"error": "the update was not stored; send it again "
                                             "later"}, status=503)
            result.headers["Retry-After"] = str(STORE_RETRY_AFTER)
            return result
        return response.json({"ok": True})

    async def _process(self, update: Update) -> Optional[BaseException]:
        """Run the handlers on ``update``; the error that kept it from the store, if any.

        Every handler here blocks (the default), so its error has been through
        ``_on_error`` by the time process_update returns.
        """
        try:
            await self.application.process_update(update)
        finally:
            error = self._not_stored.pop(id(update), None)
        return error

    async def _on_error(self, update: object, context) -> None:  # noqa: ANN001
        """PTB's error handler: note what was not stored, log what is a bug."""
        error = context.error
        if not isinstance(update, Update):
            log.error("Telegram: %s outside an update", type(error).__name__, exc_info=error)
            return
        if not_stored(error):
            self._not_stored[id(update)] = error
            raise ApplicationHandlerStop  # no further handlers: it all runs again on redelivery
        if isinstance(error, InvalidMessageError):  # not a real Telegram message: refused
            log.warning("Telegram update %s refused: %s", update.update_id, error)
            return
        log.error("Telegram update %s: a handler failed (%s); confirmed anyway so that one "
                  "bad update does not hold up the others", update.update_id,
                  type(error).__name__, exc_info=error)

    async def _on_message(self, update: Update, context) -> None:  # noqa: ANN001
        message = update.effective_message
        if message is None or not _is_chat(update.effective_chat):
            return
        await self._receive(update, message, CHANNEL, str(update.effective_chat.id))

    async def _receive(self, update: Update, message: Message, channel: str,
                       external_id: str) -> None:
        """A customer's message (or edit) to the gateway: DMs to the bot and to a
        Telegram Business account alike."""
        user = update.effective_user
        inbound_text = message.text or message.caption
        common = dict(
            channel=channel, external_id=external_id,
            channel_message_id=_message_key(update, message),
            sender_name=user.first_name if user else None,
            metadata={"username": user.username} if user and user.username else {},
        )
        if message.text:
            await self.gateway.receive(InboundMessage(text=message.text, **common),
                                       hold_when_busy=True)
            return
        kind = _media_kind(message)
        log.info("Telegram: %s from chat %s answered without NLU", kind, message.chat.id)
        text = f"[{kind}]" + (f" {inbound_text}" if inbound_text else "")
        await self.gateway.receive(InboundMessage(text=text, **common),
                                   auto_reply=OutboundMessage(UNSUPPORTED_REPLY),
                                   hold_when_busy=True)

    async def _on_callback(self, update: Update, context) -> None:  # noqa: ANN001
        query = update.callback_query
        if query is None or query.data is None or query.message is None:
            return
        try:
            await query.answer()  # stops the button's loading spinner
        except TelegramError as error:
            log.debug("answerCallbackQuery failed: %s", error)
        if query.message.chat.type != ChatType.PRIVATE or not _is_chat(query.message.chat):
            return
        channel, external_id = CHANNEL, str(query.message.chat.id)
        connection_id = getattr(query.message, "business_connection_id", None)
        if connection_id:  # a button under a reply sent as a Telegram Business account
            channel = BUSINESS_CHANNEL
            external_id = business_external_id(connection_id, query.message.chat.id)
        title = button_title(query.message, query.data) or query.data
        await self.gateway.receive(InboundMessage(
            channel=channel, external_id=external_id,
            channel_message_id=f"callback:{query.id}", text=title, payload=query.data,
            sender_name=query.from_user.first_name if query.from_user else None,
        ), hold_when_busy=True)

    async def _on_business_connection(self, update: Update, context) -> None:  # noqa: ANN001
        await self.business.remember(update.business_connection)

    async def _on_business_message(self, update: Update, context) -> None:  # noqa: ANN001
        message = update.effective_message
        if message is None or not _is_chat(message.chat) or not message.business_connection_id:
            return
        await self.business.on_message(update, message)

    async def _on_business_messages_deleted(self, update: Update,
                                            context) -> None:  # noqa: ANN001
        deleted = update.deleted_business_messages
        log.info("Telegram Business: %d message(s) deleted in chat %s (connection %s): %s",
                 len(deleted.message_ids), deleted.chat.id, deleted.business_connection_id,
                 ",".join(str(i) for i in deleted.message_ids))

    async def _on_group_message(self, update: Update, context) -> None:  # noqa: ANN001
        chat = update.effective_chat
        log.info("Telegram: skipped a message in %s chat %s (the bot serves DMs)",
                 chat.type if chat else "?", chat.id if chat else "?")

    # --- sending ---------------------------------------------------------
    async def send(self, external_id: str, message: OutboundMessage) -> Optional[str]:
        return await self._send(_chat_id(external_id), message)

    async def _send(self, chat_id: int, message: OutboundMessage,
                    business_connection_id: Optional[str] = None) -> Optional[str]:
        """Send to a chat (as a Telegram Business account, given its connection)."""
        # The gateway has already split text to max_text_length, one row per part.
        sent_id: Optional[str] = None
        urgency = {"priority": Priority.ACK if message.priority == ACK else Priority.ANSWER}
        try:
            if message.text:
                sent = await self.application.bot.send_message(
                    chat_id=chat_id, text=message.text, reply_markup=keyboard(message),
                    business_connection_id=business_connection_id, rate_limit_args=urgency)
                sent_id = str(sent.message_id)
            if message.image:
                sent = await self.application.bot.send_photo(
                    chat_id, message.image, business_connection_id=business_connection_id,
                    rate_limit_args=urgency)
                sent_id = str(sent.message_id)
        except RetryAfter as error:
            raise SendError(str(error), retry_after=_seconds(error.retry_after)) from None
        except Forbidden as error:  # blocked by the user, or kicked
            raise SendError(str(error), blocked=True) from None
        except BadRequest as error:
            raise SendError(str(error), permanent=True) from None
        except NetworkError as error:  # timeouts and 5xx
            raise SendError(str(error)) from None
        return sent_id

    async def typing(self, external_id: str) -> None:
        """Start a typing indicator and return at once (see the module docstring)."""
        self._start_typing(_chat_id(external_id))

    def _start_typing(self, chat_id: int, business_connection_id: Optional[str] = None) -> None:
        task = asyncio.get_running_loop().create_task(
            self._send_typing(chat_id, business_connection_id))
        self._typing.add(task)
        task.add_done_callback(self._typing.discard)

    async def _send_typing(self, chat_id: int,
                           business_connection_id: Optional[str] = None) -> None:
        try:
            await self.application.bot.send_chat_action(
                chat_id, ChatAction.TYPING, business_connection_id=business_connection_id,
                rate_limit_args={"priority": Priority.TYPING})
        except Exception as error:  # noqa: BLE001 - a typing indicator is best effort
            log.debug("typing indicator for chat %s failed: %s", chat_id, error)


@dataclass(frozen=True)
class BusinessConnectionState:
    """A Telegram Business connection as the gateway keeps it: ids and flags only."""

    id: str
    owner_user_id: int  # the business account (the brand's Telegram user)
    user_chat_id: int  # the owner's private chat with the bot
    is_enabled: bool
    can_reply: bool

    @property
    def can_send(self) -> bool:
        return self.is_enabled and self.can_reply

    @property
    def status(self) -> str:
        if not self.is_enabled:
            return "disabled"
        return "enabled" if self.can_reply else "enabled without the right to reply"

    @classmethod
    def from_telegram(cls, connection: BusinessConnection) -> BusinessConnectionState:
        # Bot API 9.0 moved can_reply into rights (PTB 22.1+); an older shape's
        # can_reply reaches PTB 22.3+ only as an unknown field, in api_kwargs.
        rights = connection.rights
        can_reply = (rights.can_reply if rights is not None
                     else connection.api_kwargs.get("can_reply"))
        return cls(id=connection.id, owner_user_id=connection.user.id,
                   user_chat_id=connection.user_chat_id, is_enabled=bool(connection.is_enabled),
                   can_reply=bool(can_reply))


class TelegramBusinessChannel:
    """Customers' DMs to brands' own Telegram accounts (see the module docstring).

    Shares the TelegramChannel's Application, Bot and rate limiter; its
    handlers are registered there and call ``remember`` and ``on_message``.
    """

    name = BUSINESS_CHANNEL
    max_text_length = MessageLimit.MAX_TEXT_LENGTH

    def __init__(self, telegram: TelegramChannel) -> None:
        self.telegram = telegram
        self._connections: Dict[str, BusinessConnectionState] = {}

    @property
    def _db(self):  # noqa: ANN202 - the gateway's AsyncStore
        return self.telegram.gateway.db

    # --- connections -----------------------------------------------------
    async def remember(self, connection: BusinessConnection) -> BusinessConnectionState:
        """Keep what Telegram says of a connection (in memory and in the store)."""
        state = BusinessConnectionState.from_telegram(connection)
        before = self._connections.get(state.id) or await self._stored(state.id)
        await self._db.save_business_connection(state.id, state.owner_user_id,
                                                state.user_chat_id, state.is_enabled,
                                                state.can_reply)
        self._connections[state.id] = state
        if before is None or before.status != state.status:
            consequence = "" if state.can_send else ": replies to its chats are not sent"
            log.info("Telegram Business connection %s (account %s) is %s%s", state.id,
                     state.owner_user_id, state.status, consequence)
        return state

    async def connection(self, connection_id: str) -> Optional[BusinessConnectionState]:
        """The connection from memory, else the store, else Telegram (getBusinessConnection).

        None when Telegram does not know it (any more); BusinessConnectionUnavailableError
        when Telegram could not be asked just now.
        """
        known = self._connections.get(connection_id)
        if known is not None:
            return known
        stored = await self._stored(connection_id)
        if stored is not None:
            self._connections[connection_id] = stored
            return stored
        try:
            fetched = await self.telegram.application.bot.get_business_connection(connection_id)
        except (BadRequest, Forbidden) as error:
            log.warning("Telegram Business connection %s is unknown to Telegram (%s)",
                        connection_id, type(error).__name__)
            return None
        except TelegramError as error:  # network trouble, 5xx, 429: ask again later
            raise BusinessConnectionUnavailableError(
                f"could not ask Telegram about business connection {connection_id}: "
                f"{error}") from None
        log.info("Telegram Business connection %s fetched from Telegram", connection_id)
        return await self.remember(fetched)

    async def _stored(self, connection_id: str) -> Optional[BusinessConnectionState]:
        row = await self._db.business_connection(connection_id)
        if row is None:
            return None
        return BusinessConnectionState(
            id=row["id"], owner_user_id=row["owner_user_id"], user_chat_id=row["user_chat_id"],
            is_enabled=bool(row["is_enabled"]), can_reply=bool(row["can_reply"]))

    # --- receiving -------------------------------------------------------
    async def on_message(self, update: Update, message: Message) -> None:
        """A message (or edit) in a chat of a connected account: a customer's, or the
        owner's own (a person taking the conversation over)."""
        connection = await self.connection(message.business_connection_id)
        if connection is None:
            log.warning("Telegram Business: message %s in chat %s skipped: connection %s is "
                        "unknown", message.message_id, message.chat.id,
                        message.business_connection_id)
            return
        external_id = business_external_id(connection.id, message.chat.id)
        if message.sender_business_bot is not None:  # a bot (this one) wrote as the account
            log.debug("Telegram Business: message %s in chat %s was sent by a bot",
                      message.message_id, message.chat.id)
            return
        sender = message.from_user
        if sender is not None and sender.id == connection.owner_user_id:
            await self._owner_wrote(update, message, connection, external_id, sender)
            return
        await self.telegram._receive(update, message, BUSINESS_CHANNEL, external_id)

    async def _owner_wrote(self, update: Update, message: Message,
                           connection: BusinessConnectionState, external_id: str,
                           owner: User) -> None:
        """The account's owner answered the customer themselves: a person has the
        conversation now, so the bot stays quiet there (an agent's claimed handoff)."""
        text = message.text or message.caption or f"[{_media_kind(message)}]"
        handoff_id = await self.telegram.gateway.handoffs.taken_over(
            BUSINESS_CHANNEL, external_id, _owner_name(owner), via=BUSINESS_CHANNEL,
            summary="The account owner wrote in this Telegram Business chat themselves, so "
                    "the bot stays quiet here until this handoff is resolved.",
            text=text, channel_message_id=f"owner:{_message_key(update, message)}")
        if handoff_id is not None:
            log.info("Telegram Business: the account owner wrote in chat %s (connection %s); "
                     "handoff %s: the bot stays quiet there", message.chat.id, connection.id,
                     handoff_id)

    # --- sending ---------------------------------------------------------
    async def send(self, external_id: str, message: OutboundMessage) -> Optional[str]:
        connection_id, chat_id = parse_business_external_id(external_id)
        await self._sendable(connection_id)
        return await self.telegram._send(chat_id, message, business_connection_id=connection_id)

    async def typing(self, external_id: str) -> None:
        """Best effort: only for a connection known to be able to reply."""
        connection_id, chat_id = parse_business_external_id(external_id)
        known = self._connections.get(connection_id)
        if known is not None and known.can_send:
            self.telegram._start_typing(chat_id, connection_id)

    async def _sendable(self, connection_id: str) -> BusinessConnectionState:
        """The connection, if replies may go out through it; else SendError."""
        try:
            state = await self.connection(connection_id)
        except BusinessConnectionUnavailableError as error:
            raise SendError(str(error)) from None
        if state is None:
            raise SendError(f"Telegram Business connection {connection_id} is unknown to "
                            "Telegram: the account has removed the bot", permanent=True)
        if not state.can_send:
            # Another replica may have heard of it being switched back on.
            state = await self._stored(connection_id) or state
            self._connections[connection_id] = state
        if not state.can_send:
            raise SendError(f"Telegram Business connection {connection_id} is {state.status}: "
                            "the account's owner has turned the bot off for it, so nothing "
                            "is sent", permanent=True)
        return state


def _is_chat(chat: Optional[Chat]) -> bool:
    """A chat we can answer: Telegram's ids are integers (PTB passes on whatever came)."""
    return (chat is not None and isinstance(chat.id, int) and not isinstance(chat.id, bool))


def _order_key(update: Update) -> Any:
    """What an update must stay in order with: its chat, else its sender, else nothing."""
    if update.effective_chat is not None:
        return ("chat", update.effective_chat.id)
    if update.effective_user is not None:
        return ("user", update.effective_user.id)
    return ("update", update.update_id)


def business_external_id(connection_id: str, chat_id: int) -> str:
    """A Telegram Business chat's external id: the connection and the chat, both needed
    to send."""
    return f"{connection_id}:{chat_id}"


def parse_business_external_id(external_id: str) -> Tuple[str, int]:
    connection_id, _, chat = external_id.rpartition(":")
    if not connection_id:
        raise SendError(f"{external_id!r} is not a Telegram Business chat", permanent=True)
    return connection_id, _chat_id(chat)


def _message_key(update: Update, message: Message) -> str:
    """The message's id; an edit is a new message to us (the customer corrected
    themselves), so its key holds the edit's time."""
    edited = update.edited_message is not None or update.edited_business_message is not None
    if edited and message.edit_date:
        return f"{message.message_id}:edit:{int(message.edit_date.timestamp())}"
    return str(message.message_id)


def _owner_name(owner: User) -> str:
    """How agents see the account owner who took a conversation over."""
    return (owner.full_name or "").strip()[:80] or "the account owner"


def _chat_id(external_id: str) -> int:
    try:
        return int(external_id)
    except ValueError:
        raise SendError(f"{external_id!r} is not a Telegram chat id", permanent=True) from None


def _media_kind(message: Message) -> str:
    for kind in ("photo", "sticker", "voice", "video", "video_note", "audio", "document",
                 "location", "contact", "animation", "poll", "venue", "dice"):
        if getattr(message, kind, None):
            return kind
    return "message"


def _seconds(value) -> float:  # noqa: ANN001 - int in PTB 22, timedelta later
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)
