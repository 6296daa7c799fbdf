"""The message queue: conversations, inbound and outbound messages, the transcript.

Every inbound message is written here before the channel is answered, and
every reply before it is sent, so a crash or a dead Rasa loses nothing.
Inbound messages are idempotent on (conversation, channel message id), since
channels redeliver.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnElement

from bot.gateway.messages import ACK, ANSWER, Button, InboundMessage, OutboundMessage
from bot.gateway.store.base import StoreBase
from bot.gateway.store.handoffs import HandoffRequest, insert_handoff
from bot.gateway.store.schema import (
    DEAD,
    DONE,
    FAILED,
    HELD,
    PUBLIC_REPLY,
    QUEUED,
    SENT,
    SKIPPED,
    conversations,
    handoffs,
    messages,
)


@dataclass(frozen=True)
class Received:
    """What storing an inbound message decided."""

    message_id: int
    duplicate: bool
    acknowledge: bool  # first message, or the first after a quiet gap
    held: bool = False  # flood control: kept from Rasa (or auto-answered silently)


class ConversationQueueFullError(Exception):
    """So many of this conversation's messages wait for Rasa that no more are taken."""


class AlreadyFinishedError(Exception):
    """The message was completed or given up on already (by another replica)."""



@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: str
    direction: str
    kind: str
    text: str
    payload: Optional[str]
    buttons: List[Button]
    image: Optional[str]
    meta: Dict[str, Any]
    status: str
    attempts: int
    created_at: float
    channel: str
    external_id: str
    customer_name: Optional[str]
    queued_at: float = 0.0  # when it (re)entered the queue; retries give up after a while
    last_error: Optional[str] = None

    @property
    def outbound(self) -> OutboundMessage:
        """The row as a message to send; acknowledgements go before everything else."""
        return OutboundMessage(text=self.text, buttons=self.buttons, image=self.image,
                               priority=ACK if self.kind == "ack" else ANSWER)



class QueueStore(StoreBase):
    def __init__(self, url: str, ack_gap_seconds: float = 4 * 3600) -> None:
        super().__init__(url)
        self.ack_gap_seconds = ack_gap_seconds

    # --- inbound ---------------------------------------------------------
    def receive(self, message: InboundMessage, ack: Optional[OutboundMessage] = None,
                auto_reply: Optional[List[OutboundMessage]] = None,
                now: Optional[float] = None, hold: bool = False,
                queue_cap: int = 0, hold_when_full: bool = False,
                hold_notice: Optional[OutboundMessage] = None,
                public_reply: Optional[OutboundMessage] = None) -> Received:
        """Store an inbound message once; queue ``ack`` if this one needs acknowledging.

        Acknowledge the first message of a conversation and the first after a
        quiet gap, not every message of a burst. With ``auto_reply`` the message
        is answered without Rasa (e.g. a photo the NLU cannot read), atomically;
        an empty ``auto_reply`` marks it answered and sends nothing.

        Flood control: with ``hold`` the message is stored HELD, not queued for
        Rasa. When ``queue_cap`` (0: none) messages already wait for Rasa, it is
        held if ``hold_when_full``, else refused with ConversationQueueFullError.
        ``hold_notice`` is queued with a held message (the "slow down" reply).
        An unheld message first releases what the conversation held.

        ``public_reply``, for a message posted in public (``metadata`` visibility
        public, with its post_id), is queued to be posted under that post: once
        per post and conversation, however often the customer writes there.
        """
        now = now or time.time()
        conv_id = message.conversation_id
        with self._write() as db:
            existing = db.execute(
                sa.select(messages.c.id).where(
                    messages.c.conversation_id == conv_id,
                    messages.c.direction == "in",
                    messages.c.channel_message_id == message.channel_message_id,
                )
            ).scalar()
            if existing is not None:
                return Received(existing, duplicate=True, acknowledge=False)
            if queue_cap and not hold and auto_reply is None:
                if self._waiting_for_rasa(db, conv_id) >= queue_cap:
                    if not hold_when_full:
                        raise ConversationQueueFullError(conv_id)
                    hold = True
            if not hold and auto_reply is None:  # the burst is over: what it held goes first
                self._release(db, conv_id, now)
            try:
                with db.begin_nested():
                    db.execute(conversations.insert().values(
                        id=conv_id, channel=message.channel, external_id=message.external_id,
                        customer_name=message.first_name, created_at=now))
            except IntegrityError:
                pass  # it exists (perhaps created a moment ago by a concurrent message)
            # The row lock makes concurrent messages of one conversation decide
            # about the acknowledgement one after the other.
            last_inbound = db.execute(
                sa.select(conversations.c.last_inbound_at)
                .where(conversations.c.id == conv_id).with_for_update()
            ).scalar()
            acknowledge = last_inbound is None or now - last_inbound >= self.ack_gap_seconds
            values: Dict[str, Any] = {"last_inbound_at": now}
            if acknowledge:
                values["last_ack_at"] = now
            if message.first_name:
                values["customer_name"] = message.first_name
            db.execute(conversations.update().where(conversations.c.id == conv_id)
                       .values(**values))
            try:
                with db.begin_nested():
                    message_id = db.execute(messages.insert().values(
                        conversation_id=conv_id, direction="in", kind="message",
                        channel_message_id=message.channel_message_id, text=message.text,
                        payload=message.payload, meta=json.dumps(message.metadata),
                        status=DONE if auto_reply is not None else HELD if hold else QUEUED,
                        attempts=0, created_at=now, queued_at=now,
                        done_at=now if auto_reply is not None else None,
                    )).inserted_primary_key[0]
            except IntegrityError:  # a concurrent redelivery won the race
                existing = db.execute(sa.select(messages.c.id).where(
                    messages.c.conversation_id == conv_id, messages.c.direction == "in",
                    messages.c.channel_message_id == message.channel_message_id)).scalar()
                return Received(existing, duplicate=True, acknowledge=False)
            if acknowledge and ack is not None:
                self._insert_outbound(db, conv_id, "ack", ack, now)
            for reply in auto_reply or []:
                self._insert_outbound(db, conv_id, "reply", reply, now)
            if hold and hold_notice is not None:
                self._insert_outbound(db, conv_id, "reply", hold_notice, now)
            if public_reply is not None:
                self._reply_in_public_once(db, conv_id, message.metadata.get("post_id"),
                                           public_reply, now)
        return Received(message_id, duplicate=False, acknowledge=acknowledge, held=hold)

    def _reply_in_public_once(self, db: Connection, conversation_id: str, post_id: Any,
                              reply: OutboundMessage, now: float) -> None:
        meta = {"visibility": "public", "post_id": str(post_id)}
        said = db.execute(sa.select(messages.c.id).where(
            messages.c.conversation_id == conversation_id, messages.c.direction == "out",
            messages.c.kind == PUBLIC_REPLY, messages.c.meta == json.dumps(meta)).limit(1)
        ).first()
        if said is None:
            self._insert_outbound(db, conversation_id, PUBLIC_REPLY, reply, now, meta=meta)

    def _waiting_for_rasa(self, db: Connection, conversation_id: str) -> int:
        return db.execute(sa.select(sa.func.count()).select_from(messages).where(
            messages.c.conversation_id == conversation_id, messages.c.direction == "in",
            messages.c.status == QUEUED)).scalar_one()

    def release_held(self, conversation_id: str, queue_cap: int = 0,
                     now: Optional[float] = None) -> int:
        """The burst passed: queue the newest held message, skip the older ones.

        One answer to the latest message serves a flood; the skipped ones stay
        in the transcript for agents. Nothing is released while ``queue_cap``
        (0: none) messages still wait for Rasa. Returns how many stay held.
        """
        with self._write() as db:
            if queue_cap and self._waiting_for_rasa(db, conversation_id) >= queue_cap:
                return db.execute(sa.select(sa.func.count()).select_from(messages).where(
                    self._held(conversation_id))).scalar_one()
            self._release(db, conversation_id, now or time.time())
        return 0

    @staticmethod
    def _held(conversation_id: str) -> ColumnElement:
        return sa.and_(messages.c.conversation_id == conversation_id,
                       messages.c.direction == "in", messages.c.status == HELD)

    def _release(self, db: Connection, conversation_id: str, now: float) -> None:
        held = db.execute(sa.select(messages.c.id).where(self._held(conversation_id))
                          .order_by(messages.c.id)).scalars().all()
        if not held:
            return
        db.execute(messages.update().where(messages.c.id.in_(held[:-1]))
                   .values(status=SKIPPED, done_at=now))
        db.execute(messages.update().where(messages.c.id == held[-1])
                   .values(status=QUEUED, queued_at=now))

    def conversations_with_held_inbound(self, quiet_for: float = 0.0,
                                        now: Optional[float] = None) -> List[str]:
        """Conversations holding messages, the newest held at least ``quiet_for`` s ago."""
        newest = sa.func.max(messages.c.created_at)
        with self._read() as db:
            return list(db.execute(
                sa.select(messages.c.conversation_id)
                .where(messages.c.direction == "in", messages.c.status == HELD)
                .group_by(messages.c.conversation_id)
                .having(newest <= (now or time.time()) - quiet_for)).scalars())

    def next_inbound(self, conversation_id: str) -> Optional[StoredMessage]:
        """The oldest unprocessed message of a conversation (strict order)."""
        return self._next_queued(conversation_id, "in")

    def complete_inbound(self, message_id: int, replies: List[OutboundMessage],
                         handoff: Optional[HandoffRequest] = None,
                         now: Optional[float] = None) -> Optional[int]:
        """Mark a message processed, queue its replies and open a handoff, atomically.

        While a person has the conversation the bot's replies are dropped: Rasa
        pauses itself for its own handoffs, but not for one the gateway opened
        because Rasa failed (``dead_letter``). Returns the new handoff's id.

        Only a message still queued is completed: a replica that lost its
        lease mid-call and finishes after the one that took over queues
        nothing (``AlreadyFinishedError``), so no reply is queued twice.
        """
        now = now or time.time()
        handoff_id = None
        with self._write() as db:
            conv_id = self._finish_queued(db, message_id, status=DONE, done_at=now)
            if replies and self._with_person(db, conv_id):
                replies = []
            for reply in replies:
                self._insert_outbound(db, conv_id, "reply", reply, now)
            if handoff is not None:
                handoff_id = insert_handoff(db, conv_id, handoff, now)
        return handoff_id

    @staticmethod
    def _finish_queued(db: Connection, message_id: int, **values: Any) -> str:
        """Set ``values`` on a message if it is still queued; its conversation's id.

        Raises AlreadyFinishedError (rolling the transaction back) when it is not.
        """
        conversation_id = db.execute(sa.select(messages.c.conversation_id)
                                     .where(messages.c.id == message_id)).scalar_one()
        updated = db.execute(messages.update().where(
            messages.c.id == message_id, messages.c.status == QUEUED).values(**values))
        if updated.rowcount != 1:
            raise AlreadyFinishedError(f"message {message_id} is no longer queued")
        return conversation_id

    def record_attempt(self, message_id: int, error: str) -> None:
        with self._write() as db:
            db.execute(messages.update().where(messages.c.id == message_id).values(
                attempts=messages.c.attempts + 1, last_error=error[:2000]))

    def started_inbound(self, message_id: int) -> None:
        """About to send it to Rasa: once this is committed, a later send is a retry."""
        with self._write() as db:
            db.execute(messages.update().where(messages.c.id == message_id)
                       .values(attempts=messages.c.attempts + 1))

    def note_error(self, message_id: int, error: str) -> None:
        with self._write() as db:
            db.execute(messages.update().where(messages.c.id == message_id)
                       .values(last_error=error[:2000]))

    def dead_letter(self, message_id: int, error: str, handoff: HandoffRequest,
                    notice: Optional[OutboundMessage] = None,
                    now: Optional[float] = None) -> Optional[int]:
        """Give up on a message: DEAD, and a handoff so that a person sees it, atomically.

        No second handoff is opened while one is open (its agent sees the
        message in the transcript). ``notice`` tells the customer a person
        will answer; it is sent only with a new handoff. Returns its id.
        """
        now = now or time.time()
        with self._write() as db:
            conv_id = self._finish_queued(db, message_id, status=DEAD,
                                          last_error=error[:2000], done_at=now)
            if self._with_person(db, conv_id):
                return None
            if notice is not None:
                self._insert_outbound(db, conv_id, "reply", notice, now)
            return insert_handoff(db, conv_id, handoff, now)

    def redrive(self, conversation_id: Optional[str] = None,
                now: Optional[float] = None) -> List[str]:
        """Queue dead letters again (all, or one conversation's); returns the conversations."""
        now = now or time.time()
        where = messages.c.status == DEAD
        if conversation_id is not None:
            where = sa.and_(where, messages.c.conversation_id == conversation_id)
        with self._write() as db:
            found = list(db.execute(sa.select(messages.c.conversation_id).distinct()
                                    .where(where)).scalars())
            # attempts stay: a message that may have reached Rasa is resent as a retry
            db.execute(messages.update().where(where).values(
                status=QUEUED, queued_at=now, done_at=None, last_error=None))
        return found

    def dead_letters(self) -> List[StoredMessage]:
        return self._select(messages.c.status == DEAD)

    @staticmethod
    def _with_person(db: Connection, conversation_id: str) -> bool:
        return db.execute(sa.select(handoffs.c.id).where(
            handoffs.c.conversation_id == conversation_id,
            handoffs.c.status != "resolved").limit(1)).first() is not None

    # --- outbound --------------------------------------------------------
    def queue_outbound(self, conversation_id: str, kind: str, message: OutboundMessage,
                       now: Optional[float] = None) -> int:
        with self._write() as db:
            return self._insert_outbound(db, conversation_id, kind, message, now or time.time())

    def next_outbound(self, conversation_id: str) -> Optional[StoredMessage]:
        """The oldest undelivered reply of a conversation (strict order)."""
        return self._next_queued(conversation_id, "out")

    def mark_sent(self, message_id: int, channel_message_id: Optional[str] = None,
                  now: Optional[float] = None) -> None:
        with self._write() as db:
            db.execute(messages.update().where(messages.c.id == message_id).values(
                status=SENT, channel_message_id=channel_message_id, done_at=now or time.time(),
                attempts=messages.c.attempts + 1))

    def mark_failed(self, message_id: int, error: str) -> None:
        with self._write() as db:
            db.execute(messages.update().where(messages.c.id == message_id).values(
                status=FAILED, last_error=error[:2000], attempts=messages.c.attempts + 1,
                done_at=time.time()))

    # --- reading ---------------------------------------------------------
    def transcript(self, conversation_id: str, after_id: int = 0) -> List[StoredMessage]:
        """Both directions, oldest first; outbound only once it is sent or queued."""
        return self._select(sa.and_(messages.c.conversation_id == conversation_id,
                                    messages.c.id > after_id))

    def conversation(self, conversation_id: str) -> Optional[Dict[str, Any]]:
        """The conversation, with ``mode``: "human" while a handoff is open, else "bot"."""
        open_handoff = sa.exists().where(handoffs.c.conversation_id == conversations.c.id,
                                         handoffs.c.status != "resolved")
        with self._read() as db:
            row = db.execute(sa.select(conversations, open_handoff.label("with_person"))
                             .where(conversations.c.id == conversation_id)).mappings().first()
        if row is None:
            return None
        data = dict(row)
        data["mode"] = "human" if data.pop("with_person") else "bot"
        return data

    def _next_queued(self, conversation_id: str, direction: str) -> Optional[StoredMessage]:
        rows = self._select(sa.and_(messages.c.conversation_id == conversation_id,
                                    messages.c.direction == direction,
                                    messages.c.status == QUEUED), limit=1)
        return rows[0] if rows else None

    def _select(self, where, limit: Optional[int] = None) -> List[StoredMessage]:
        query = (sa.select(messages, conversations.c.channel, conversations.c.external_id,
                           conversations.c.customer_name)
                 .join(conversations, conversations.c.id == messages.c.conversation_id)
                 .where(where).order_by(messages.c.id))
        if limit:
            query = query.limit(limit)
        with self._read() as db:
            rows = db.execute(query).mappings().all()
        return [
            StoredMessage(
                id=r["id"], conversation_id=r["conversation_id"], direction=r["direction"],
                kind=r["kind"], text=r["text"], payload=r["payload"],
                buttons=[Button(**b) for b in json.loads(r["buttons"] or "[]")],
                image=r["image"], meta=json.loads(r["meta"] or "{}"), status=r["status"],
                attempts=r["attempts"], created_at=r["created_at"], channel=r["channel"],
                external_id=r["external_id"], customer_name=r["customer_name"],
                queued_at=r["queued_at"] or r["created_at"], last_error=r["last_error"],
            )
            for r in rows
        ]


