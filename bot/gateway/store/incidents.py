"""Incidents: many customers, one problem, one answer (bot/gateway/incidents/ decides when).

Each promise to customers is kept by the database, not by a process: a report
is one row per (incident, conversation), and ``told_at`` / ``updated_at`` are
set in the same transaction that queues the answer or the closing update, only
where still unset. So however many replicas see a customer's messages, each
customer gets an incident's answer at most once and its closing update at most once.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.gateway.messages import OutboundMessage
from bot.gateway.store.base import StoreBase
from bot.gateway.store.queue import QueueStore
from bot.gateway.store.schema import (
    DONE,
    conversations,
    handoffs,
    incident_candidates,
    incident_reports,
    incidents,
    messages,
)

OPEN, CLOSED = "open", "closed"
# (customer's first name or None) -> what they are sent
Personalise = Callable[[Optional[str]], OutboundMessage]


class _TakenError(Exception):
    """Another replica made an incident of some of these reports first."""


class IncidentStore(StoreBase):
    # --- reading ---------------------------------------------------------
    def incidents(self, include_closed: bool = False) -> List[Dict[str, Any]]:
        """Incidents, newest first, each with its ``count`` of customers and who was told."""
        where = sa.true() if include_closed else incidents.c.status == OPEN
        with self._read() as db:
            rows = db.execute(sa.select(incidents).where(where)
                              .order_by(incidents.c.id.desc())).mappings().all()
            return [self._with_counts(db, dict(r)) for r in rows]

    def incident(self, incident_id: int) -> Optional[Dict[str, Any]]:
        with self._read() as db:
            row = db.execute(sa.select(incidents).where(incidents.c.id == incident_id)
                             ).mappings().first()
            return self._with_counts(db, dict(row)) if row else None

    @staticmethod
    def _with_counts(db: Connection, incident: Dict[str, Any]) -> Dict[str, Any]:
        of_it = incident_reports.c.incident_id == incident["id"]
        count = sa.func.count()
        incident["count"] = db.execute(sa.select(count).where(of_it)).scalar_one()
        incident["told"] = db.execute(sa.select(count).where(
            of_it, incident_reports.c.told_at.isnot(None))).scalar_one()
        incident["updated"] = db.execute(sa.select(count).where(
            of_it, incident_reports.c.updated_at.isnot(None))).scalar_one()
        return incident

    def incident_reports(self, incident_id: int, limit: int = 200) -> List[Dict[str, Any]]:
        """The reports, newest first: conversation, customer's name, text of the first message."""
        query = (sa.select(incident_reports, messages.c.text, conversations.c.customer_name)
                 .join(messages, messages.c.id == incident_reports.c.message_id)
                 .join(conversations, conversations.c.id == incident_reports.c.conversation_id)
                 .where(incident_reports.c.incident_id == incident_id)
                 .order_by(incident_reports.c.reported_at.desc()).limit(limit))
        with self._read() as db:
            return [dict(r) for r in db.execute(query).mappings()]

    def incident_reported_by(self, incident_id: int, conversation_id: str
                             ) -> Optional[Dict[str, Any]]:
        with self._read() as db:
            row = db.execute(sa.select(incident_reports).where(
                incident_reports.c.incident_id == incident_id,
                incident_reports.c.conversation_id == conversation_id)).mappings().first()
        return dict(row) if row else None

    # --- detection -------------------------------------------------------
    def add_incident_candidate(self, message_id: int, conversation_id: str, seen_at: float,
                               forget_before: float) -> None:
        """Keep a symptom report for the window; reports older than ``forget_before`` go."""
        with self._write() as db:
            db.execute(incident_candidates.delete().where(
                incident_candidates.c.seen_at < forget_before))
            try:
                with db.begin_nested():
                    db.execute(incident_candidates.insert().values(
                        message_id=message_id, conversation_id=conversation_id,
                        seen_at=seen_at))
            except IntegrityError:
                pass  # seen already (a retried message)

    def incident_candidates(self, since: float) -> List[Tuple[int, str, str]]:
        """(message id, conversation, text) of the symptom reports seen since ``since``."""
        with self._read() as db:
            return [tuple(r) for r in db.execute(
                sa.select(incident_candidates.c.message_id, incident_candidates.c.conversation_id,
                          messages.c.text)
                .join(messages, messages.c.id == incident_candidates.c.message_id)
                .where(incident_candidates.c.seen_at >= since)
                .order_by(incident_candidates.c.message_id))]

    def open_incident(self, title: str, members: Sequence[Tuple[int, str]],
                      now: Optional[float] = None) -> Optional[int]:
        """A new incident from waiting reports ((message id, conversation) each), or None
        when another replica took any of them first (nothing is changed then)."""
        now = now or time.time()
        keys = [message_id for message_id, _ in members]
        try:
            with self._write() as db:
                return self._open_incident(db, title, members, keys, now)
        except _TakenError:  # rolled back
            return None

    @staticmethod
    def _open_incident(db: Connection, title: str, members: Sequence[Tuple[int, str]],
                       keys: List[int], now: float) -> int:
        taken = db.execute(incident_candidates.delete().where(
            incident_candidates.c.message_id.in_(keys))).rowcount
        if taken != len(set(keys)):
            raise _TakenError()
        incident_id = db.execute(incidents.insert().values(
            status=OPEN, title=title[:200], created_at=now, last_report_at=now,
            card_count=0)).inserted_primary_key[0]
        first: Dict[str, int] = {}
        for message_id, conversation_id in sorted(members):
            first.setdefault(conversation_id, message_id)
        for conversation_id, message_id in first.items():
            db.execute(incident_reports.insert().values(
                incident_id=incident_id, conversation_id=conversation_id,
                message_id=message_id, reported_at=now))
        return incident_id

    def add_incident_report(self, incident_id: int, conversation_id: str, message_id: int,
                            now: Optional[float] = None) -> bool:
        """Count a customer in; False when they were counted already or it is closed."""
        now = now or time.time()
        with self._write() as db:
            if not self._is_open(db, incident_id):
                return False
            db.execute(incident_candidates.delete().where(
                incident_candidates.c.message_id == message_id))
            try:
                with db.begin_nested():
                    db.execute(incident_reports.insert().values(
                        incident_id=incident_id, conversation_id=conversation_id,
                        message_id=message_id, reported_at=now))
            except IntegrityError:
                return False
            db.execute(incidents.update().where(incidents.c.id == incident_id)
                       .values(last_report_at=now))
        return True

    def claim_incident_card(self, incident_id: int, count: int, every: int) -> bool:
        """True for the one caller that should update the cards now: the count has grown by
        ``every`` since they last showed it (or this is the first)."""
        with self._write() as db:
            return db.execute(incidents.update().where(
                incidents.c.id == incident_id,
                sa.or_(incidents.c.card_count == 0, incidents.c.card_count <= count - every))
                .values(card_count=count)).rowcount == 1

    # --- the answer and the close ------------------------------------------
    def answer_incident(self, incident_id: int, agent: str, text: str,
                        now: Optional[float] = None) -> bool:
        """Set (or change) the answer of an open incident; False if it is closed."""
        with self._write() as db:
            return db.execute(incidents.update().where(
                incidents.c.id == incident_id, incidents.c.status == OPEN).values(
                answer=text, answered_by=agent, answered_at=now or time.time())).rowcount == 1

    def tell_incident_answer(self, incident_id: int, message_id: int, conversation_id: str,
                             reply: OutboundMessage, now: Optional[float] = None) -> bool:
        """Answer a customer's message with the incident's answer instead of the bot, once.

        Atomically: the message is marked processed (AlreadyFinishedError if it is
        no longer queued), the answer queued and the customer marked told. False,
        changing nothing, when the incident is closed or has no answer, the customer
        was told already, or a person has the conversation.
        """
        now = now or time.time()
        with self._write() as db:
            incident = db.execute(sa.select(incidents.c.status, incidents.c.answer).where(
                incidents.c.id == incident_id)).first()
            if incident is None or incident.status != OPEN or not incident.answer:
                return False
            if self._with_a_person(db, conversation_id):
                return False
            told = db.execute(incident_reports.update().where(
                incident_reports.c.incident_id == incident_id,
                incident_reports.c.conversation_id == conversation_id,
                incident_reports.c.told_at.is_(None)).values(told_at=now)).rowcount
            if told != 1:
                return False
            QueueStore._finish_queued(db, message_id, status=DONE, done_at=now)
            self._insert_outbound(db, conversation_id, "reply", reply, now)
        return True

    def close_incident(self, incident_id: int, agent: str, text: str,
                       update: Personalise, now: Optional[float] = None) -> Optional[List[str]]:
        """Close it, queueing ``update(first name)`` once to every customer who was told
        the answer; the conversations updated, or None if it was closed already."""
        now = now or time.time()
        with self._write() as db:
            closed = db.execute(incidents.update().where(
                incidents.c.id == incident_id, incidents.c.status == OPEN).values(
                status=CLOSED, closing_message=text, closed_by=agent, closed_at=now)).rowcount
            if closed != 1:
                return None
            told = db.execute(
                sa.select(incident_reports.c.conversation_id, conversations.c.customer_name)
                .join(conversations, conversations.c.id == incident_reports.c.conversation_id)
                .where(incident_reports.c.incident_id == incident_id,
                       incident_reports.c.told_at.isnot(None),
                       incident_reports.c.updated_at.is_(None))).all()
            for conversation_id, name in told:
                self._insert_outbound(db, conversation_id, "reply", update(name), now)
            db.execute(incident_reports.update().where(
                incident_reports.c.incident_id == incident_id,
                incident_reports.c.conversation_id.in_([c for c, _ in told]))
                .values(updated_at=now))
        return [conversation_id for conversation_id, _ in told]

    @staticmethod
    def _is_open(db: Connection, incident_id: int) -> bool:
        return db.execute(sa.select(incidents.c.status).where(
            incidents.c.id == incident_id)).scalar() == OPEN

    @staticmethod
    def _with_a_person(db: Connection, conversation_id: str) -> bool:
        return db.execute(sa.select(handoffs.c.id).where(
            handoffs.c.conversation_id == conversation_id,
            handoffs.c.status != "resolved").limit(1)).first() is not None
