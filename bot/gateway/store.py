"""The gateway's durable store: conversations, inbound and outbound messages.

Every inbound message is written here before the channel is answered, and
every reply before it is sent, so a crash or a dead Rasa loses nothing.
Inbound messages are idempotent on (conversation, channel message id), since
channels redeliver. SQLite (WAL) by default, PostgreSQL via DATABASE_URL.

The engine is synchronous SQLAlchemy; the gateway calls it from worker
threads (``asyncio.to_thread``) so the event loop never blocks on disk.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.gateway.messages import Button, InboundMessage, OutboundMessage

metadata = sa.MetaData()

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("external_id", sa.String(200), nullable=False),
    sa.Column("customer_name", sa.String(100)),
    sa.Column("mode", sa.String(16), nullable=False, default="bot"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_inbound_at", sa.Float),
    sa.Column("last_ack_at", sa.Float),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), sa.ForeignKey("conversations.id"),
              nullable=False),
    sa.Column("direction", sa.String(3), nullable=False),  # "in" | "out"
    sa.Column("kind", sa.String(16), nullable=False),  # in: message; out: ack | reply
    sa.Column("channel_message_id", sa.String(200)),
    sa.Column("text", sa.Text, nullable=False, default=""),
    sa.Column("payload", sa.Text),  # inbound: what to send Rasa instead of text
    sa.Column("buttons", sa.Text),  # outbound: JSON list of {title, payload}
    sa.Column("image", sa.Text),
    sa.Column("meta", sa.Text),  # inbound: JSON channel metadata
    sa.Column("status", sa.String(16), nullable=False),  # queued | done | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("done_at", sa.Float),
    sa.UniqueConstraint("conversation_id", "direction", "channel_message_id",
                        name="uq_channel_message"),
)
handoffs = sa.Table(
    "handoffs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), sa.ForeignKey("conversations.id"),
              nullable=False, index=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text, nullable=False, default=""),
    sa.Column("context", sa.Text, nullable=False, default="{}"),  # details, turns, detail
    sa.Column("status", sa.String(16), nullable=False),  # open | claimed | resolved
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("sla_due_at", sa.Float, nullable=False),
    sa.Column("claimed_by", sa.String(100)),
    sa.Column("claimed_at", sa.Float),
    sa.Column("resolved_at", sa.Float),
    sa.Column("csat", sa.Integer),
    sa.Column("notes", sa.Text, nullable=False, default="[]"),  # internal, JSON list
)

# Messages agents see in their Telegram group, and the handoff each belongs to,
# so a reply to any of them reaches the right customer.
agent_posts = sa.Table(
    "agent_posts",
    metadata,
    sa.Column("chat_id", sa.String(64), primary_key=True),
    sa.Column("message_id", sa.String(64), primary_key=True),
    sa.Column("handoff_id", sa.Integer, sa.ForeignKey("handoffs.id"), nullable=False),
)

# People who answer customers in the web inbox (created with `make agent`).
agent_accounts = sa.Table(
    "agent_accounts",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("display_name", sa.String(100), nullable=False),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

inbox_sessions = sa.Table(
    "inbox_sessions",
    metadata,
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), sa.ForeignKey("agent_accounts.username"),
              nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# Customer messages an agent flagged as misread by the bot, for the NLU
# trainers' review export. One mark per message; agents can undo it.
misunderstood_marks = sa.Table(
    "misunderstood_marks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False,
              unique=True),
    sa.Column("conversation_id", sa.String(255), sa.ForeignKey("conversations.id"),
              nullable=False, index=True),
    sa.Column("agent", sa.String(100), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False),
)

sa.Index("ix_messages_queue", messages.c.direction, messages.c.status, messages.c.id)
sa.Index("ix_messages_conversation", messages.c.conversation_id, messages.c.id)

QUEUED, DONE, SENT, FAILED = "queued", "done", "sent", "failed"


@dataclass(frozen=True)
class Received:
    """What storing an inbound message decided."""

    message_id: int
    duplicate: bool
    acknowledge: bool  # first message, or the first after a quiet gap


@dataclass(frozen=True)
class HandoffRequest:
    """What Rasa's action_escalate asked for, ready to store."""

    reason: str
    priority: str
    summary: str
    context: Dict[str, Any]
    sla_due_at: float


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

    @property
    def outbound(self) -> OutboundMessage:
        return OutboundMessage(text=self.text, buttons=self.buttons, image=self.image)


def engine_for(url: str) -> Engine:
    """An engine for DATABASE_URL; SQLite gets WAL, a busy timeout and its folder."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False,
                                                     "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection, _record):  # noqa: ANN001 - SQLAlchemy hook
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10)


class Store:
    def __init__(self, url: str, ack_gap_seconds: float = 4 * 3600) -> None:
        self.engine = engine_for(url)
        self.ack_gap_seconds = ack_gap_seconds
        # SQLite has one writer; its deferred transactions fail ("database is
        # locked") rather than wait when two upgrade from read to write, so
        # writers queue here. PostgreSQL uses row locks instead.
        self._writer = (threading.Lock() if self.engine.dialect.name == "sqlite"
                        else contextlib.nullcontext())
        metadata.create_all(self.engine)  # also adds tables new since a database was made

    @contextlib.contextmanager
    def _write(self):
        with self._writer, self.engine.begin() as db:
            yield db

    # --- inbound ---------------------------------------------------------
    def receive(self, message: InboundMessage, ack: Optional[OutboundMessage] = None,
                auto_reply: Optional[List[OutboundMessage]] = None,
                now: Optional[float] = None) -> Received:
        """Store an inbound message once; queue ``ack`` if this one needs acknowledging.

        Acknowledge the first message of a conversation and the first after a
        quiet gap, not every message of a burst. With ``auto_reply`` the message
        is answered without Rasa (e.g. a photo the NLU cannot read), atomically.
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
            try:
                with db.begin_nested():
                    db.execute(conversations.insert().values(
                        id=conv_id, channel=message.channel, external_id=message.external_id,
                        customer_name=message.first_name, mode="bot", created_at=now))
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
                        status=DONE if auto_reply else QUEUED, attempts=0, created_at=now,
                        done_at=now if auto_reply else None,
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
        return Received(message_id, duplicate=False, acknowledge=acknowledge)

    def next_inbound(self, conversation_id: str) -> Optional[StoredMessage]:
        """The oldest unprocessed message of a conversation (strict order)."""
        return self._next_queued(conversation_id, "in")

    def conversations_with_queued_inbound(self) -> List[str]:
        return self._queued_conversations("in")

    def complete_inbound(self, message_id: int, replies: List[OutboundMessage],
                         handoff: Optional[HandoffRequest] = None,
                         now: Optional[float] = None) -> Optional[int]:
        """Mark a message processed, queue its replies and open a handoff, atomically.

        Returns the new handoff's id, if one was opened.
        """
        now = now or time.time()
        handoff_id = None
        with self._write() as db:
            conv_id = db.execute(sa.select(messages.c.conversation_id)
                                 .where(messages.c.id == message_id)).scalar_one()
            for reply in replies:
                self._insert_outbound(db, conv_id, "reply", reply, now)
            db.execute(messages.update().where(messages.c.id == message_id)
                       .values(status=DONE, done_at=now))
            if handoff is not None:
                handoff_id = db.execute(handoffs.insert().values(
                    conversation_id=conv_id, reason=handoff.reason, priority=handoff.priority,
                    summary=handoff.summary, context=json.dumps(handoff.context),
                    status="open", created_at=now, sla_due_at=handoff.sla_due_at, notes="[]",
                )).inserted_primary_key[0]
                db.execute(conversations.update().where(conversations.c.id == conv_id)
                           .values(mode="human"))
        return handoff_id

    def record_attempt(self, message_id: int, error: str) -> None:
        with self._write() as db:
            db.execute(messages.update().where(messages.c.id == message_id).values(
                attempts=messages.c.attempts + 1, last_error=error[:2000]))

    # --- outbound --------------------------------------------------------
    def queue_outbound(self, conversation_id: str, kind: str, message: OutboundMessage,
                       now: Optional[float] = None) -> int:
        with self._write() as db:
            return self._insert_outbound(db, conversation_id, kind, message, now or time.time())

    def next_outbound(self, conversation_id: str) -> Optional[StoredMessage]:
        """The oldest undelivered reply of a conversation (strict order)."""
        return self._next_queued(conversation_id, "out")

    def conversations_with_queued_outbound(self) -> List[str]:
        return self._queued_conversations("out")

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

    # --- handoffs --------------------------------------------------------
    def handoff(self, handoff_id: int) -> Optional[Dict[str, Any]]:
        with self.engine.connect() as db:
            row = db.execute(sa.select(handoffs).where(handoffs.c.id == handoff_id)
                             ).mappings().first()
        return _handoff_dict(row) if row else None

    def open_handoff_for(self, conversation_id: str) -> Optional[Dict[str, Any]]:
        """The conversation's handoff not yet resolved, if any."""
        with self.engine.connect() as db:
            row = db.execute(sa.select(handoffs).where(
                handoffs.c.conversation_id == conversation_id,
                handoffs.c.status != "resolved").order_by(handoffs.c.id.desc())
            ).mappings().first()
        return _handoff_dict(row) if row else None

    def handoff_queue(self, include_resolved: bool = False) -> List[Dict[str, Any]]:
        """Most urgent first, then longest waiting."""
        rank = sa.case({p: i for i, p in enumerate(("urgent", "high", "normal", "low"))},
                       value=handoffs.c.priority, else_=9)
        query = sa.select(handoffs).order_by(rank, handoffs.c.created_at)
        if not include_resolved:
            query = query.where(handoffs.c.status != "resolved")
        with self.engine.connect() as db:
            return [_handoff_dict(r) for r in db.execute(query).mappings().all()]

    def claim_handoff(self, handoff_id: int, agent: str, now: Optional[float] = None) -> None:
        with self._write() as db:
            db.execute(handoffs.update().where(handoffs.c.id == handoff_id,
                                               handoffs.c.status != "resolved")
                       .values(status="claimed", claimed_by=agent, claimed_at=now or time.time()))

    def resolve_handoff(self, handoff_id: int, agent: str,
                        question: Optional[OutboundMessage] = None,
                        now: Optional[float] = None) -> bool:
        """Close the handoff and queue ``question``; False if it was already resolved."""
        now = now or time.time()
        with self._write() as db:
            conv_id = db.execute(sa.select(handoffs.c.conversation_id)
                                 .where(handoffs.c.id == handoff_id)).scalar_one()
            closed = db.execute(handoffs.update().where(
                handoffs.c.id == handoff_id, handoffs.c.status != "resolved").values(
                status="resolved", resolved_at=now,
                claimed_by=sa.func.coalesce(handoffs.c.claimed_by, agent))).rowcount
            if not closed:
                return False
            db.execute(conversations.update().where(conversations.c.id == conv_id)
                       .values(mode="bot"))
            if question is not None:
                self._insert_outbound(db, conv_id, "csat", question, now)
        return True

    def add_note(self, handoff_id: int, agent: str, text: str,
                 now: Optional[float] = None) -> None:
        with self._write() as db:
            notes = json.loads(db.execute(sa.select(handoffs.c.notes).where(
                handoffs.c.id == handoff_id)).scalar_one() or "[]")
            notes.append({"agent": agent, "text": text, "at": now or time.time()})
            db.execute(handoffs.update().where(handoffs.c.id == handoff_id)
                       .values(notes=json.dumps(notes)))

    def remember_agent_post(self, chat_id: str, message_id: str, handoff_id: int) -> None:
        with self._write() as db:
            db.execute(agent_posts.insert().values(chat_id=chat_id, message_id=message_id,
                                                   handoff_id=handoff_id))

    def handoff_for_agent_post(self, chat_id: str, message_id: str) -> Optional[int]:
        with self.engine.connect() as db:
            return db.execute(sa.select(agent_posts.c.handoff_id).where(
                agent_posts.c.chat_id == chat_id, agent_posts.c.message_id == message_id)
            ).scalar()

    def card_for(self, handoff_id: int) -> Optional[tuple]:
        """(chat_id, message_id) of the handoff's first post: its card."""
        with self.engine.connect() as db:
            row = db.execute(sa.select(agent_posts.c.chat_id, agent_posts.c.message_id).where(
                agent_posts.c.handoff_id == handoff_id).limit(1)).first()
        return tuple(row) if row else None

    # --- agent accounts and inbox sessions ------------------------------
    def save_agent(self, username: str, display_name: str, password_hash: str) -> None:
        with self._write() as db:
            db.execute(agent_accounts.delete().where(agent_accounts.c.username == username))
            db.execute(agent_accounts.insert().values(
                username=username, display_name=display_name, password_hash=password_hash,
                created_at=time.time()))

    def agent(self, username: str) -> Optional[Dict[str, Any]]:
        with self.engine.connect() as db:
            row = db.execute(sa.select(agent_accounts).where(
                agent_accounts.c.username == username)).mappings().first()
        return dict(row) if row else None

    def open_session(self, token: str, username: str, csrf: str, expires_at: float) -> None:
        with self._write() as db:
            db.execute(inbox_sessions.insert().values(token=token, username=username,
                                                      csrf=csrf, expires_at=expires_at))

    def session(self, token: str) -> Optional[Dict[str, Any]]:
        with self.engine.connect() as db:
            row = db.execute(sa.select(inbox_sessions, agent_accounts.c.display_name)
                             .join(agent_accounts)
                             .where(inbox_sessions.c.token == token,
                                    inbox_sessions.c.expires_at > time.time())
                             ).mappings().first()
        return dict(row) if row else None

    def close_session(self, token: str) -> None:
        with self._write() as db:
            db.execute(inbox_sessions.delete().where(inbox_sessions.c.token == token))

    def record_csat(self, conversation_id: str, score: int) -> Optional[int]:
        """Store a satisfaction score on the conversation's latest resolved handoff."""
        with self._write() as db:
            handoff_id = db.execute(sa.select(handoffs.c.id).where(
                handoffs.c.conversation_id == conversation_id,
                handoffs.c.status == "resolved").order_by(handoffs.c.id.desc()).limit(1)
            ).scalar()
            if handoff_id is not None:
                db.execute(handoffs.update().where(handoffs.c.id == handoff_id)
                           .values(csat=score))
        return handoff_id

    # --- "bot misunderstood" marks, for the NLU trainers' review ---------
    def mark_misunderstood(self, message_id: int, agent: str, note: str = "",
                           now: Optional[float] = None) -> None:
        """Flag a customer's message as misread by the bot; marking again updates it.

        Only inbound customer messages qualify: the bot's own replies are not NLU input.
        """
        with self._write() as db:
            row = db.execute(sa.select(messages.c.direction, messages.c.kind,
                                       messages.c.conversation_id)
                             .where(messages.c.id == message_id)).first()
            if row is None:
                raise ValueError(f"There is no message {message_id}.")
            if (row.direction, row.kind) != ("in", "message"):
                raise ValueError(f"Message {message_id} is not a customer's message; only "
                                 "what a customer wrote can be marked as misunderstood.")
            update = (misunderstood_marks.update()
                      .where(misunderstood_marks.c.message_id == message_id)
                      .values(agent=agent, note=note))
            if db.execute(update).rowcount:
                return
            try:
                with db.begin_nested():
                    db.execute(misunderstood_marks.insert().values(
                        message_id=message_id, conversation_id=row.conversation_id,
                        agent=agent, note=note, created_at=now or time.time()))
            except IntegrityError:  # another agent marked it a moment ago
                db.execute(update)

    def unmark_misunderstood(self, message_id: int) -> None:
        """Take a mark back (an agent's mis-click); no mark is fine."""
        with self._write() as db:
            db.execute(misunderstood_marks.delete()
                       .where(misunderstood_marks.c.message_id == message_id))

    def misunderstood_ids(self, conversation_id: str) -> Dict[int, str]:
        """Marked message id -> the agent who marked it, to render a transcript."""
        with self.engine.connect() as db:
            rows = db.execute(sa.select(misunderstood_marks.c.message_id,
                                        misunderstood_marks.c.agent)
                              .where(misunderstood_marks.c.conversation_id == conversation_id)
                              ).all()
        return {message_id: agent for message_id, agent in rows}

    def misunderstood_messages(self) -> List[Dict[str, Any]]:
        """Every mark with the customer's text, oldest mark first (the review export)."""
        query = (sa.select(misunderstood_marks.c.message_id,
                           misunderstood_marks.c.conversation_id, messages.c.text,
                           misunderstood_marks.c.agent, misunderstood_marks.c.note,
                           misunderstood_marks.c.created_at.label("marked_at"),
                           messages.c.created_at.label("sent_at"))
                 .join(messages, messages.c.id == misunderstood_marks.c.message_id)
                 .order_by(misunderstood_marks.c.created_at, misunderstood_marks.c.id))
        with self.engine.connect() as db:
            return [dict(row) for row in db.execute(query).mappings().all()]

    # --- reading ---------------------------------------------------------
    def transcript(self, conversation_id: str, after_id: int = 0) -> List[StoredMessage]:
        """Both directions, oldest first; outbound only once it is sent or queued."""
        return self._select(sa.and_(messages.c.conversation_id == conversation_id,
                                    messages.c.id > after_id))

    def conversation(self, conversation_id: str) -> Optional[Dict[str, Any]]:
        with self.engine.connect() as db:
            row = db.execute(sa.select(conversations)
                             .where(conversations.c.id == conversation_id)).mappings().first()
        return dict(row) if row else None

    # --- helpers ---------------------------------------------------------
    @staticmethod
    def _insert_outbound(db, conversation_id: str, kind: str, message: OutboundMessage,
                         now: float) -> int:
        buttons = json.dumps([{"title": b.title, "payload": b.payload} for b in message.buttons])
        return db.execute(messages.insert().values(
            conversation_id=conversation_id, direction="out", kind=kind, text=message.text,
            buttons=buttons if message.buttons else None, image=message.image,
            status=QUEUED, attempts=0, created_at=now,
        )).inserted_primary_key[0]

    def _next_queued(self, conversation_id: str, direction: str) -> Optional[StoredMessage]:
        rows = self._select(sa.and_(messages.c.conversation_id == conversation_id,
                                    messages.c.direction == direction,
                                    messages.c.status == QUEUED), limit=1)
        return rows[0] if rows else None

    def _queued_conversations(self, direction: str) -> List[str]:
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(messages.c.conversation_id, sa.func.min(messages.c.id).label("first"))
                .where(messages.c.direction == direction, messages.c.status == QUEUED)
                .group_by(messages.c.conversation_id).order_by("first")
            ).all()
        return [row[0] for row in rows]

    def _select(self, where, limit: Optional[int] = None) -> List[StoredMessage]:
        query = (sa.select(messages, conversations.c.channel, conversations.c.external_id,
                           conversations.c.customer_name)
                 .join(conversations, conversations.c.id == messages.c.conversation_id)
                 .where(where).order_by(messages.c.id))
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as db:
            rows = db.execute(query).mappings().all()
        return [
            StoredMessage(
                id=r["id"], conversation_id=r["conversation_id"], direction=r["direction"],
                kind=r["kind"], text=r["text"], payload=r["payload"],
                buttons=[Button(**b) for b in json.loads(r["buttons"] or "[]")],
                image=r["image"], meta=json.loads(r["meta"] or "{}"), status=r["status"],
                attempts=r["attempts"], created_at=r["created_at"], channel=r["channel"],
                external_id=r["external_id"], customer_name=r["customer_name"],
            )
            for r in rows
        ]


def _handoff_dict(row) -> Dict[str, Any]:  # noqa: ANN001 - a SQLAlchemy mapping row
    data = dict(row)
    data["context"] = json.loads(data["context"] or "{}")
    data["notes"] = json.loads(data["notes"] or "[]")
    return data
