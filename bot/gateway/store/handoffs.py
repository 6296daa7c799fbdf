"""Handoffs: the record a person works from, and the Telegram posts that point at it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.gateway.messages import OutboundMessage, conversation_id
from bot.gateway.store.base import StoreBase
from bot.gateway.store.schema import (
    SENT,
    agent_posts,
    conversations,
    handoffs,
    is_row_id,
    messages,
)
from bot.handoff_contract import PRIORITIES


@dataclass(frozen=True)
class HandoffRequest:
    """What Rasa's action_escalate asked for, ready to store."""

    reason: str
    priority: str
    summary: str
    context: Dict[str, Any]
    sla_due_at: float


@dataclass(frozen=True)
class TakeOver:
    """What ``take_over`` did: the handoff, and whether it was opened or claimed just now."""

    handoff_id: Optional[int]
    opened: bool = False
    claimed: bool = False
    duplicate: bool = False  # the person's message was recorded before (a redelivery)


def insert_handoff(db: Connection, conversation_id: str, handoff: HandoffRequest,
                   now: float) -> int:
    """Open a handoff inside the caller's transaction (complete_inbound's)."""
    return db.execute(handoffs.insert().values(
        conversation_id=conversation_id, reason=handoff.reason, priority=handoff.priority,
        summary=handoff.summary, context=json.dumps(handoff.context),
        status="open", created_at=now, sla_due_at=handoff.sla_due_at, notes="[]",
    )).inserted_primary_key[0]


class HandoffStore(StoreBase):
    def handoff(self, handoff_id: int) -> Optional[Dict[str, Any]]:
        if not is_row_id(handoff_id):  # larger than any row id: none (not an overflow)
            return None
        with self._read() as db:
            row = db.execute(sa.select(handoffs).where(handoffs.c.id == handoff_id)
                             ).mappings().first()
        return _handoff_dict(row) if row else None

    def open_handoff_for(self, conversation_id: str) -> Optional[Dict[str, Any]]:
        """The conversation's handoff not yet resolved, if any."""
        with self._read() as db:
            row = db.execute(sa.select(handoffs).where(
                handoffs.c.conversation_id == conversation_id,
                handoffs.c.status != "resolved").order_by(handoffs.c.id.desc())
            ).mappings().first()
        return _handoff_dict(row) if row else None

    def handoff_queue(self, include_resolved: bool = False) -> List[Dict[str, Any]]:
        """Most urgent first, then longest waiting."""
        rank = sa.case({p: i for i, p in enumerate(PRIORITIES)},
                       value=handoffs.c.priority, else_=9)
        query = sa.select(handoffs).order_by(rank, handoffs.c.created_at)
        if not include_resolved:
            query = query.where(handoffs.c.status != "resolved")
        with self._read() as db:
            return [_handoff_dict(r) for r in db.execute(query).mappings().all()]

    def claim_handoff(self, handoff_id: int, agent: str, now: Optional[float] = None) -> None:
        with self._write() as db:
            db.execute(handoffs.update().where(handoffs.c.id == handoff_id,
                                               handoffs.c.status != "resolved")
                       .values(status="claimed", claimed_by=agent, claimed_at=now or time.time()))

    def resolve_handoff(self, handoff_id: int, agent: str,
                        said: Sequence[OutboundMessage] = (),
                        now: Optional[float] = None) -> bool:
        """Close the handoff and queue what the bot ``said`` on taking it back
        (the rating question); False if it was already resolved."""
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
            for message in said:
                self._insert_outbound(db, conv_id, "csat", message, now)
        return True

    def take_over(self, channel: str, external_id: str, handoff: HandoffRequest, agent: str,
                  text: Optional[str] = None, channel_message_id: Optional[str] = None,
                  now: Optional[float] = None) -> TakeOver:
        """A person answered the customer directly on the channel: the conversation is theirs.

        Atomically: the open handoff is claimed by ``agent`` (one is opened, claimed,
        when there is none; one already claimed stays with its agent), and ``text``,
        what the person wrote, goes into the transcript as an agent message already
        sent. A ``channel_message_id`` recorded before (a redelivery) changes nothing.
        """
        now = now or time.time()
        conv_id = conversation_id(channel, external_id)
        with self._write() as db:
            if channel_message_id is not None and db.execute(sa.select(messages.c.id).where(
                    messages.c.conversation_id == conv_id, messages.c.direction == "out",
                    messages.c.channel_message_id == channel_message_id)).first():
                return TakeOver(None, duplicate=True)
            try:
                with db.begin_nested():
                    db.execute(conversations.insert().values(
                        id=conv_id, channel=channel, external_id=external_id, created_at=now))
            except IntegrityError:
                pass  # the customer wrote before: it exists
            current = db.execute(sa.select(handoffs.c.id, handoffs.c.status).where(
                handoffs.c.conversation_id == conv_id, handoffs.c.status != "resolved")
                .order_by(handoffs.c.id.desc()).with_for_update()).first()
            opened = current is None
            handoff_id = insert_handoff(db, conv_id, handoff, now) if opened else current.id
            claimed = opened or current.status == "open"
            if claimed:
                db.execute(handoffs.update().where(handoffs.c.id == handoff_id).values(
                    status="claimed", claimed_by=agent, claimed_at=now))
            if text:
                db.execute(messages.insert().values(
                    conversation_id=conv_id, direction="out", kind="agent",
                    channel_message_id=channel_message_id, text=text, status=SENT,
                    attempts=1, created_at=now, queued_at=now, done_at=now))
        return TakeOver(handoff_id, opened=opened, claimed=claimed)

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
        with self._read() as db:
            return db.execute(sa.select(agent_posts.c.handoff_id).where(
                agent_posts.c.chat_id == chat_id, agent_posts.c.message_id == message_id)
            ).scalar()

    def card_for(self, handoff_id: int) -> Optional[tuple]:
        """(chat_id, message_id) of the handoff's first post: its card."""
        with self._read() as db:
            row = db.execute(sa.select(agent_posts.c.chat_id, agent_posts.c.message_id).where(
                agent_posts.c.handoff_id == handoff_id).limit(1)).first()
        return tuple(row) if row else None

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


def _handoff_dict(row) -> Dict[str, Any]:  # noqa: ANN001 - a SQLAlchemy mapping row
    data = dict(row)
    data["context"] = json.loads(data["context"] or "{}")
    data["notes"] = json.loads(data["notes"] or "[]")
    return data

