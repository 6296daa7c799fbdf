"""The pipeline a DM takes: store, acknowledge, process in order, deliver.

    channel -> receive(): store (idempotent) + queue acknowledgement -> answer channel
            -> inbound worker (per conversation, in order): Rasa -> store replies
               (and a handoff, when Rasa asks for a person: handed to the desk)
            -> outbox worker (per conversation, in order): channel.send -> mark sent

Agents' actions are not here: they live in the handoff desk (``handoffs/``).

Rasa being slow or down delays only the real answer: the acknowledgement
needs nothing but the store, and unprocessed messages wait in the store
until Rasa answers again (also across gateway restarts).

Failures retry with capped exponential backoff for a while (RetryPolicy):
a customer message Rasa cannot answer for ``bot_give_up_after`` seconds, or
a reply the channel cannot take for ``delivery_give_up_after``, becomes a
dead letter (status ``dead``), a person is asked to step in with a
``bot_failed`` / ``delivery_failed`` handoff, and the conversation moves on
to its next message. ``make redrive`` queues dead letters again.

Each message reaches Rasa once: its row is marked before the call, and a
send after that mark (a retry, a restart, a crash) says so, so Rasa's channel
(bot/rasa_channel.py) answers it from the tracker instead of running it
again. Stopping drains: calls in flight finish, backoff waits end at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from typing import ContextManager, Dict, Iterator, List, Optional, Protocol

from bot.brand import BrandProfile
from bot.gateway.acknowledgement import (
    acknowledgement,
    passed_to_team,
    public_reply,
    slow_down,
)
from bot.gateway.acks_first import AcksFirst
from bot.gateway.flood_control import QUEUE_FULL_RETRY_SECONDS, FloodControl
from bot.gateway.handoffs.desk import HandoffDesk
from bot.gateway.handoffs.events import AgentSurface
from bot.gateway.handoffs.follow_ups import FollowUps
from bot.gateway.handoffs.intake import (
    BOT_FAILED,
    DELIVERY_FAILED,
    failure_handoff,
    handoff_request,
)
from bot.gateway.incidents.desk import IncidentDesk
from bot.gateway.leases import HeldLease, LeaseKeeper, new_owner_id
from bot.gateway.messages import (
    ACK,
    InboundMessage,
    OutboundMessage,
    is_public,
    split_message,
)
from bot.gateway.metrics import NO_METRICS, Metrics
from bot.gateway.rasa_client import RasaClient, RasaReply, RasaUnavailableError
from bot.gateway.rate_limits import RateLimitedError
from bot.gateway.store import (
    AlreadyFinishedError,
    ConversationQueueFullError,
    Received,
    Store,
    StoredMessage,
)
from bot.gateway.store.facade import AsyncStore
from bot.gateway.store.priority import acknowledging, ordinary, receiving
from bot.gateway.workers import KeyedWorkers, ShuttingDownError
from bot.handoff_contract import rating_from_payload
from bot.privacy import mask_cards

log = logging.getLogger(__name__)


class SendError(Exception):
    """A channel could not deliver a message."""

    def __init__(self, reason: str, permanent: bool = False,
                 retry_after: Optional[float] = None, blocked: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent or blocked  # retrying cannot help (e.g. a bad request)
        self.blocked = blocked  # the customer blocked the bot: nobody can reach them here
        self.retry_after = retry_after  # the channel asked us to wait this long


class Channel(Protocol):
    """What the gateway needs from a channel to talk back to a customer."""

    name: str

    async def send(self, external_id: str, message: OutboundMessage) -> Optional[str]:
        """Deliver one message; return the channel's id for it; raise SendError."""

    async def typing(self, external_id: str) -> None:
        """Show that the bot is working (best effort)."""


@dataclass
class RetryPolicy:
    first_delay: float = 0.5
    max_delay: float = 300.0  # at most five minutes between tries
    # Rasa is ours and on our network: once back (a restart, a model loading), it
    # should not wait minutes for the next try.
    bot_max_delay: float = 30.0
    bot_give_up_after: float = 3600.0  # BOT_RETRY_MINUTES: then a person answers
    delivery_give_up_after: float = 24 * 3600.0  # DELIVERY_RETRY_HOURS: Telegram keeps 24 h

    def delay(self, attempt: int, cap: Optional[float] = None) -> float:
        base = min(self.max_delay, cap if cap is not None else self.max_delay,
                   self.first_delay * 2 ** max(0, attempt - 1))
        return base * (0.8 + 0.4 * random.random())  # jitter: don't retry in lockstep


class GaveUpError(Exception):
    """A message failed for longer than the retry policy allows (the text: the last error)."""


class LeaseLostError(Exception):
    """This replica no longer holds the conversation's lease: leave it to whoever does."""


# How long stopping waits for calls in flight before cancelling them (a cancelled
# Rasa call is safe to redo: the next send is marked as a retry).
DRAIN_SECONDS = 30.0
# How often the store is checked for queued work nobody here was told about:
# messages `make redrive` requeued, work left by a failed drain, or by another
# replica that died (once its lease, LEASE_SECONDS, has run out).
SWEEP_SECONDS = 5.0
LEASE_SECONDS = 30.0


class Gateway:
    def __init__(self, store: Store, rasa: RasaClient, profile: BrandProfile,
                 retry: Optional[RetryPolicy] = None, rasa_concurrency: int = 8,
                 flood: Optional[FloodControl] = None, metrics: Metrics = NO_METRICS) -> None:
        self.store = store  # synchronous: for scripts and tests off the event loop
        self.metrics = metrics  # in-process counters (metrics.py); hooks are one line each
        self.db = AsyncStore(store)  # the same store, for code on the event loop
        self.rasa = rasa
        self.profile = profile
        self.retry = retry or RetryPolicy()
        self.flood = flood or FloodControl()
        self._release_timers: Dict[str, asyncio.TimerHandle] = {}
        self.acks_first = AcksFirst()
        self._stopping = asyncio.Event()
        self._sweeper: Optional[asyncio.Task] = None
        # Several gateway processes may share one database: each conversation's
        # lane is worked by whichever holds its lease (leases.py).
        # Renewals on threads of their own: never queued behind message work (facade.py).
        self.leases = LeaseKeeper(AsyncStore(store, threads=2, name="leases"), new_owner_id(),
                                  LEASE_SECONDS)
        self.channels: Dict[str, Channel] = {}
        self._rasa_slots = asyncio.Semaphore(rasa_concurrency)
        self._inbound = KeyedWorkers(self._process_conversation, "inbound")
        self._outbox = KeyedWorkers(self._deliver_conversation, "outbox")
        self.handoffs = HandoffDesk(self.db, rasa, profile, deliver=self._outbox.notify,
                                    fit=self._fit, metrics=metrics)
        # Many customers, one problem: an agent's one answer instead of Rasa (incidents/).
        self.incidents = IncidentDesk(self.db, profile, deliver=self._outbox.notify)
        # Updates past the SLA, agents' SLA alerts, check-backs (handoffs/follow_ups.py).
        self.follow_ups = FollowUps(self.db, profile, self.handoffs, deliver=self._outbox.notify,
                                    fit=self._fit, channels=self.channels)
        self.handoffs.add_surface(self.follow_ups)

    def add_channel(self, channel: Channel) -> None:
        self.channels[channel.name] = channel

    async def start(self) -> None:
        """Pick up whatever a previous run (or a dead replica) left queued, then keep looking."""
        log.info("gateway replica %s starting", self.leases.owner)
        await self._pick_up_work(held_quiet_for=0.0)  # bursts counted before a restart are over
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        self.follow_ups.start()

    async def _pick_up_work(self, held_quiet_for: float) -> None:
        for conversation_id in await self.db.conversations_needing_work("out"):
            self._outbox.notify(conversation_id)
        for conversation_id in await self.db.conversations_needing_work("in"):
            self._inbound.notify(conversation_id)
        # Bursts that ended unseen (e.g. on a replica since gone): release what they held.
        for conversation_id in await self.db.conversations_with_held_inbound(held_quiet_for):
            self.flood.holding.add(conversation_id)
            await self._release_held(conversation_id)

    async def _sweep(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._wait(SWEEP_SECONDS)
                await self._pick_up_work(held_quiet_for=self.flood.window_seconds)
            except ShuttingDownError:
                return
            except Exception:  # noqa: BLE001 - e.g. the database is down: look again later
                log.exception("looking for queued work failed")

    async def stop(self) -> None:
        """Drain: no new work, waits cut short, calls in flight finish (up to DRAIN_SECONDS)."""
        self._stopping.set()
        for timer in self._release_timers.values():
            timer.cancel()
        if self._sweeper is not None:
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self.follow_ups.stop()
        await asyncio.gather(self._inbound.stop(DRAIN_SECONDS), self._outbox.stop(DRAIN_SECONDS))
        await self.handoffs.surfaces.drain()
        await self.rasa.close()

    async def idle(self) -> None:
        """Wait until everything queued has been processed and delivered (tests)."""
        while self._inbound.busy or self._outbox.busy:
            await self._inbound.idle()
            await self._outbox.idle()

    # --- inbound ---------------------------------------------------------
    async def receive(self, message: InboundMessage,
                      auto_reply: Optional[OutboundMessage] = None,
                      hold_when_busy: bool = False) -> Received:
        """Store a customer's message and queue its acknowledgement; returns at once.

        ``auto_reply`` answers without Rasa, for what the NLU cannot read.
        Card numbers are cut to their last four digits first: nothing after
        this point (store, Rasa, agents, logs) ever holds a whole one.

        Past the sender's limits (``flood_control.py``) this raises
        RateLimitedError, storing nothing; with ``hold_when_busy`` (channels
        that cannot ask the sender to retry) it stores the message held instead.
        """
        conversation = message.conversation_id
        wait = self.flood.wait(conversation)
        if wait > 0 and not hold_when_busy:
            raise RateLimitedError("this conversation is sending messages too fast", wait)
        message = dataclasses.replace(message, text=mask_cards(message.text))
        ack = OutboundMessage(acknowledgement(self.profile, message.first_name))
        score = rating_from_payload(message.payload)
        if score is not None:  # a satisfaction answer: stored here, thanked by the bot
            await self.handoffs.record_csat(conversation, score)
        # An answer to "Did that sort it out?": answered here, not by Rasa, and no ack.
        check_back = (await self.follow_ups.answer_to(message)
                      if auto_reply is None and score is None else None)
        if check_back is not None:
            auto_reply, ack = check_back.reply, None
        replies = self._fit(message.channel, [auto_reply]) if auto_reply else None
        if wait > 0 and replies is not None:
            replies = []  # a flood of photos gets one "slow down", not a reply each
        notice = (OutboundMessage(slow_down(message.first_name))
                  if hold_when_busy and conversation not in self.flood.warned else None)
        # Posted in public: one calm public line, then everything else in private.
        in_public = (OutboundMessage(public_reply(message.first_name))
                     if is_public(message) else None)
        try:
            with receiving():  # ahead of store work for earlier messages (store/priority.py)
                received = await self.db.receive(
                    message, ack, replies, hold=wait > 0, queue_cap=self.flood.queue_cap,
                    hold_when_full=hold_when_busy, hold_notice=notice, public_reply=in_public)
        except ConversationQueueFullError:
            raise RateLimitedError("this conversation has too many messages waiting for an "
                                   "answer", QUEUE_FULL_RETRY_SECONDS) from None
        if received.duplicate:
            return received
        if check_back is not None:  # recorded once stored; a "no" opens a handoff
            await self.follow_ups.answered(check_back)
        self.metrics.received(message.channel, score)
        self.flood.counted(conversation)
        if received.held:
            if notice is not None:
                self.flood.warned.add(conversation)
            if replies is None:
                self.flood.holding.add(conversation)
                self._release_later(conversation)
        else:
            self.flood.calm(conversation)  # the store released what the burst held
        if received.acknowledge:
            self.acks_first.stored(conversation)
        if received.acknowledge or replies or (received.held and notice):
            self._outbox.notify(conversation)
        if replies is None and not received.held:
            self._inbound.notify(conversation)
        return received

    def _release_later(self, conversation_id: str) -> None:
        """Release the held messages once the sender is under its rate again."""
        if conversation_id in self._release_timers:
            return
        delay = max(0.05, self.flood.wait(conversation_id))
        loop = asyncio.get_running_loop()
        self._release_timers[conversation_id] = loop.call_later(
            delay, lambda: loop.create_task(self._release_when_calm(conversation_id)))

    async def _release_when_calm(self, conversation_id: str) -> None:
        self._release_timers.pop(conversation_id, None)
        if self.flood.wait(conversation_id) > 0:  # still flooding: look again later
            self._release_later(conversation_id)
            return
        try:
            await self._release_held(conversation_id)
        except Exception:  # noqa: BLE001 - the next message or drain releases it instead
            log.exception("could not release held messages of %s", conversation_id)

    async def _release_held(self, conversation_id: str) -> None:
        """Queue the newest held message for Rasa unless the queue is still full."""
        if await self.db.release_held(conversation_id, self.flood.queue_cap):
            return  # still full: the inbound worker releases it once the queue drains
        self.flood.calm(conversation_id)
        self._inbound.notify(conversation_id)

    def _fit(self, channel_name: str, replies: List[OutboundMessage]) -> List[OutboundMessage]:
        """Split replies to the channel's length limit, so each part is sent once."""
        limit = getattr(self.channels.get(channel_name), "max_text_length", None)
        return [part for reply in replies for part in split_message(reply, limit)]

    def add_agent_surface(self, surface: AgentSurface) -> None:
        self.handoffs.add_surface(surface)

    async def _process_conversation(self, conversation_id: str) -> None:
        await self.acks_first.before_rasa()  # not even the lease's write before them
        async with self.leases.hold(conversation_id, "in") as held:
            with _left_to_others(held):
                while held and not self._stopping.is_set():
                    if not await self._process_next(conversation_id, held):
                        return

    async def _process_next(self, conversation_id: str, held: HeldLease) -> bool:
        """Take the conversation's next message to Rasa; False when there is none."""
        await self.acks_first.before_rasa()
        row = await self.db.next_inbound(conversation_id)
        if row is None:
            if conversation_id in self.flood.holding and not self.flood.wait(conversation_id):
                await self._release_held(conversation_id)  # drained: the held one's turn
            return False
        try:
            if await self.incidents.take(row):  # a known incident's answer, not Rasa's
                self._outbox.notify(conversation_id)
                return True
        except AlreadyFinishedError:  # the replica that took our lease answered it first
            raise LeaseLostError(conversation_id) from None
        try:
            reply = await self._ask_rasa(row, held)
        except GaveUpError as failure:
            await self._give_up_inbound(row, str(failure))
            return True
        replies = self._fit(row.channel, reply.messages)
        handoff = handoff_request(reply.handoff, self.profile) if reply.handoff else None
        try:
            handoff_id = await self.db.complete_inbound(row.id, replies, handoff)
        except AlreadyFinishedError:  # the replica that took our lease finished it first
            raise LeaseLostError(conversation_id) from None
        self.metrics.answered(row, replies)
        self._outbox.notify(conversation_id)
        if handoff_id is not None:
            self.metrics.escalated(handoff)
            await self.handoffs.opened(handoff_id)
        else:
            await self.handoffs.customer_wrote(conversation_id, row)
        return True

    async def _ask_rasa(self, row: StoredMessage, held: HeldLease) -> RasaReply:
        """Rasa's replies to one message, retrying until Rasa answers or GaveUpError
        (LeaseLostError once another replica has the conversation)."""
        channel = self.channels.get(row.channel)
        sent_before = row.attempts > 0  # an earlier run (or one that died) may have sent it
        patience = self.retry.bot_give_up_after
        if row.last_error and self._past(row, patience):  # failing since before a restart
            raise GaveUpError(row.last_error)
        attempt = 0
        while True:
            attempt += 1
            if channel is not None:
                await _best_effort(channel.typing(row.external_id))
            metadata = {"first_name": row.customer_name, "channel": row.channel, **row.meta}
            async with self._rasa_slots:
                await self.db.started_inbound(row.id)
                self.metrics.rasa_call(attempt)
                try:
                    return await self.rasa.send(
                        row.conversation_id, row.payload or row.text, metadata,
                        message_id=f"gw-{row.id}", retry=sent_before or attempt > 1)
                except RasaUnavailableError as error:
                    error_text = str(error)
            await self.db.note_error(row.id, error_text)
            self.metrics.rasa_failed()
            if self._past(row, patience):
                raise GaveUpError(error_text)
            delay = self.retry.delay(attempt, cap=self.retry.bot_max_delay)
            log.warning("Rasa unavailable for message %s (%s); retrying in %.1fs",
                        row.id, error_text, delay)
            await self._wait(delay, held)

    @staticmethod
    def _past(row: StoredMessage, patience: float) -> bool:
        return time.time() - row.queued_at > patience

    async def _wait(self, seconds: float, held: Optional[HeldLease] = None) -> None:
        """Sleep, unless the gateway stops first (ShuttingDownError) or, with ``held``,
        the lease is lost meanwhile or already (LeaseLostError)."""
        ends = [asyncio.ensure_future(self._stopping.wait())]
        if held is not None:
            ends.append(asyncio.ensure_future(held.lost.wait()))
        try:
            await asyncio.wait(ends, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for end in ends:
                end.cancel()
        if self._stopping.is_set():
            raise ShuttingDownError()
        if held is not None and not held:
            raise LeaseLostError(held.conversation_id)

    async def _give_up_inbound(self, row: StoredMessage, error: str) -> None:
        minutes = round(self.retry.bot_give_up_after / 60)
        log.error("giving up on message %s after %d min: %s", row.id, minutes, error)
        handoff = failure_handoff(
            BOT_FAILED, f"The bot could not answer this message for {minutes} min "
                        f"({_short(error)}). Please answer the customer.", self.profile)
        try:
            handoff_id = await self.db.dead_letter(
                row.id, error, handoff,
                notice=OutboundMessage(passed_to_team(row.customer_name)))
        except AlreadyFinishedError:  # another replica answered it meanwhile
            raise LeaseLostError(row.conversation_id) from None
        self.metrics.dead_lettered("in", handoff if handoff_id is not None else None)
        self._outbox.notify(row.conversation_id)
        if handoff_id is not None:
            await self.handoffs.opened(handoff_id)
        else:
            await self.handoffs.customer_wrote(row.conversation_id, row)

    # --- outbound --------------------------------------------------------
    async def _deliver_conversation(self, conversation_id: str) -> None:
        # Until its acknowledgement is out, a conversation's outbox is urgent store work.
        acks = self.acks_first
        try:
            with _acknowledging_if(acks.is_due(conversation_id)):
                async with self.leases.hold(conversation_id, "out") as held:
                    with _left_to_others(held):
                        while held and not self._stopping.is_set():
                            with _acknowledging_if(acks.is_due(conversation_id)):
                                row = await self.db.next_outbound(conversation_id)
                                if row is None:
                                    return
                                await self._deliver(row, held)
                            if row.outbound.priority == ACK:
                                acks.done(conversation_id)
        finally:  # all sent, or left to another replica
            acks.done(conversation_id)

    async def _deliver(self, row: StoredMessage, held: HeldLease) -> None:
        channel = self.channels.get(row.channel)
        if channel is None:
            await self._give_up_outbound(row, f"channel {row.channel!r} is not configured")
            return
        attempt = row.attempts
        while True:
            attempt += 1
            try:
                if row.outbound.priority == ACK:
                    self.acks_first.handed(row.conversation_id)
                channel_id = await channel.send(row.external_id, row.outbound)
            except SendError as error:
                if error.blocked:  # their choice: recorded, not an alert for agents
                    log.info("reply %s not delivered: the customer blocked the bot", row.id)
                    await self.db.mark_failed(row.id, str(error))
                    return
                if error.permanent or self._past(row, self.retry.delivery_give_up_after):
                    await self._give_up_outbound(row, str(error))
                    return
                delay = error.retry_after or self.retry.delay(attempt)
                await self.db.record_attempt(row.id, str(error))
                await self._wait(delay, held)  # another replica may take it meanwhile
                continue
            await self.db.mark_sent(row.id, channel_id)
            self.metrics.sent(row)
            return

    async def _give_up_outbound(self, row: StoredMessage, error: str) -> None:
        log.warning("giving up on reply %s to %s: %s", row.id, row.conversation_id, error)
        handoff = failure_handoff(
            DELIVERY_FAILED, f"A reply could not be delivered ({_short(error)}). The "
                             "customer may need another way to hear from us.", self.profile)
        try:
            handoff_id = await self.db.dead_letter(row.id, error, handoff)
        except AlreadyFinishedError:  # another replica delivered it meanwhile
            raise LeaseLostError(row.conversation_id) from None
        self.metrics.dead_lettered("out", handoff if handoff_id is not None else None)
        if handoff_id is not None:
            await self.handoffs.opened(handoff_id)


def _acknowledging_if(condition: bool) -> ContextManager[None]:
    """Acknowledging priority, or ordinary: an enclosing one does not carry on."""
    return acknowledging() if condition else ordinary()


@contextlib.contextmanager
def _left_to_others(held: HeldLease) -> Iterator[None]:
    """Stop quietly when the lease is lost: the replica holding it now carries on."""
    try:
        yield
    except LeaseLostError:
        log.warning("stopped work on %s (%s lane): another replica holds its lease now",
                    held.conversation_id, held.lane)


def _short(error: Optional[str]) -> str:
    return (error or "no answer").splitlines()[0][:160]


async def _best_effort(awaitable) -> None:  # noqa: ANN001
    try:
        await awaitable
    except Exception as error:  # noqa: BLE001 - a typing indicator is never worth failing for
        log.debug("typing indicator failed: %s", error)
