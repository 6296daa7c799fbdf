"""Follow-ups of handoffs, scheduled in the store so they survive restarts and run once.

A row is due at ``due_at``; whichever replica first moves it out of ``due``
(``UPDATE ... WHERE status = 'due'``, checking the row count) does it, and
whatever it says to the customer is queued in the outbox in that same
transaction, so it is sent once, with the outbox's retries, or not at all.
What to do is decided by the caller's ``decide`` from a snapshot taken in that
transaction (``FollowUpWork``), so the rules live in ``handoffs/follow_ups.py``
and the SQL here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.gateway.messages import OutboundMessage
from bot.gateway.store.base import StoreBase
from bot.gateway.store.handoffs import HandoffRequest, _handoff_dict, insert_handoff
from bot.gateway.store.schema import conversations, follow_ups, handoffs, messages

SLA_UPDATE, DUE_SOON, OVERDUE, CHECK_BACK = "sla_update", "due_soon", "overdue", "check_back"
SLA_KINDS = (SLA_UPDATE, DUE_SOON, OVERDUE)  # while a handoff waits for its first reply
# due: waiting for its time; asked: a check-back sent, its answer awaited; done; cancelled.
DUE, ASKED, DONE, CANCELLED = "due", "asked", "done", "cancelled"
# The outbound kind of what a follow-up says to the customer (the transcript's label).
OUTBOUND_KIND = "follow_up"


@dataclass(frozen=True)
class FollowUpWork:
    """One due follow-up and what it needs to decide, read in the transaction that claims it."""

    follow_up: Dict[str, Any]
    handoff: Dict[str, Any]
    conversation: Dict[str, Any]
    answered: bool  # an agent has replied since the handoff opened
    later_handoff: bool  # the conversation has had a handoff since this one


@dataclass(frozen=True)
class FollowUpAction:
    """What to do with a claimed follow-up: its new status, words to queue, a new priority."""

    status: str
    messages: Sequence[OutboundMessage] = ()
    priority: Optional[str] = None


@dataclass(frozen=True)
class CheckBackAnswer:
    """A customer's answer recorded on a check-back; ``handoff_id``: the one opened for it."""

    follow_up_id: int
    previous_handoff_id: int
    handoff_id: Optional[int] = None


class FollowUpStore(StoreBase):
    def schedule_follow_ups(self, handoff_id: int, conversation_id: str,
                            plan: Iterable[Tuple[str, float]],
                            now: Optional[float] = None) -> int:
        """Add (kind, due_at) rows for a handoff; kinds it already has are left alone.

        Several replicas may schedule the same handoff at once: the unique
        (handoff, kind) constraint keeps one row. Returns how many were added.
        """
        now = now or time.time()
        added = 0
        for kind, due_at in plan:
            try:
                with self._write() as db:
                    db.execute(follow_ups.insert().values(
                        handoff_id=handoff_id, conversation_id=conversation_id, kind=kind,
                        due_at=due_at, status=DUE, created_at=now))
                added += 1
            except IntegrityError:
                pass  # scheduled already (here, or by another replica)
        return added

    def handoffs_to_schedule(self, kind: str, resolved: bool,
                             since: float) -> List[Dict[str, Any]]:
        """Handoffs (resolved or not) opened, or resolved, since ``since`` with no ``kind`` row.

        What a crash between a handoff's change and its scheduling would leave behind.
        """
        when = handoffs.c.resolved_at if resolved else handoffs.c.created_at
        status = (handoffs.c.status == "resolved") if resolved else (
            handoffs.c.status != "resolved")
        scheduled = sa.exists().where(follow_ups.c.handoff_id == handoffs.c.id,
                                      follow_ups.c.kind == kind)
        with self._read() as db:
            rows = db.execute(sa.select(handoffs).where(status, when >= since, ~scheduled)
                              .order_by(handoffs.c.id)).mappings().all()
        return [_handoff_dict(r) for r in rows]

    def due_follow_ups(self, now: Optional[float] = None, limit: int = 100) -> List[Dict[str, Any]]:
        with self._read() as db:
            return [dict(r) for r in db.execute(sa.select(follow_ups).where(
                follow_ups.c.status == DUE, follow_ups.c.due_at <= (now or time.time()))
                .order_by(follow_ups.c.due_at, follow_ups.c.id).limit(limit)).mappings()]

    def follow_ups_of(self, handoff_id: int) -> List[Dict[str, Any]]:
        with self._read() as db:
            return [dict(r) for r in db.execute(sa.select(follow_ups).where(
                follow_ups.c.handoff_id == handoff_id).order_by(follow_ups.c.id)).mappings()]

    def run_follow_up(self, follow_up_id: int, decide: Callable[[FollowUpWork], FollowUpAction],
                      now: Optional[float] = None) -> Optional[Tuple[FollowUpAction, FollowUpWork]]:
        """Claim a due follow-up and carry out ``decide``'s action, atomically.

        None when it is not due any more (another replica took it, or it was
        cancelled). ``decide`` runs inside the transaction: keep it pure.
        """
        now = now or time.time()
        with self._write() as db:
            claimed = db.execute(follow_ups.update().where(
                follow_ups.c.id == follow_up_id, follow_ups.c.status == DUE
            ).values(status=DONE, done_at=now)).rowcount
            if claimed != 1:
                return None
            row = dict(db.execute(sa.select(follow_ups).where(
                follow_ups.c.id == follow_up_id)).mappings().one())
            handoff = db.execute(sa.select(handoffs).where(
                handoffs.c.id == row["handoff_id"])).mappings().first()
            conversation = db.execute(sa.select(conversations).where(
                conversations.c.id == row["conversation_id"])).mappings().first()
            if handoff is None or conversation is None:  # erased meanwhile
                _set_status(db, follow_up_id, CANCELLED, now)
                return None
            work = FollowUpWork(row, _handoff_dict(handoff), dict(conversation),
                                answered=_answered(db, handoff["conversation_id"],
                                                   handoff["created_at"]),
                                later_handoff=_later_handoff(db, handoff))
            action = decide(work)
            _set_status(db, follow_up_id, action.status, now)
            for message in action.messages:
                self._insert_outbound(db, row["conversation_id"], OUTBOUND_KIND, message, now)
            if action.priority is not None:
                db.execute(handoffs.update().where(handoffs.c.id == row["handoff_id"],
                                                   handoffs.c.status != "resolved")
                           .values(priority=action.priority))
        return action, work

    def cancel_follow_ups(self, kinds: Sequence[str], handoff_id: Optional[int] = None,
                          conversation_id: Optional[str] = None,
                          now: Optional[float] = None) -> int:
        """Cancel the due follow-ups of ``kinds`` of a handoff (or of a whole conversation)."""
        where = [follow_ups.c.status == DUE, follow_ups.c.kind.in_(kinds)]
        if handoff_id is not None:
            where.append(follow_ups.c.handoff_id == handoff_id)
        if conversation_id is not None:
            where.append(follow_ups.c.conversation_id == conversation_id)
        with self._write() as db:
            return db.execute(follow_ups.update().where(*where).values(
                status=CANCELLED, done_at=now or time.time())).rowcount

    def answered_handoffs(self, handoff_ids: Sequence[int]) -> Set[int]:
        """Which of these handoffs an agent has replied to since it opened."""
        if not handoff_ids:
            return set()
        replied = sa.exists().where(
            messages.c.conversation_id == handoffs.c.conversation_id,
            messages.c.direction == "out", messages.c.kind == "agent",
            messages.c.created_at >= handoffs.c.created_at)
        with self._read() as db:
            return set(db.execute(sa.select(handoffs.c.id).where(
                handoffs.c.id.in_(list(handoff_ids)), replied)).scalars())

    def check_back_awaiting(self, conversation_id: str,
                            follow_up_id: Optional[int] = None) -> Optional[Dict[str, Any]]:
        """The check-back a message from this conversation answers, if any.

        With ``follow_up_id`` (a button's payload): that one, while it awaits an
        answer. Without (a plain "no"): the latest asked, if the customer has not
        written since it was asked (read before their message is stored).
        """
        where = [follow_ups.c.conversation_id == conversation_id, follow_ups.c.status == ASKED,
                 follow_ups.c.kind == CHECK_BACK]
        if follow_up_id is not None:
            where.append(follow_ups.c.id == follow_up_id)
        else:
            last_inbound = sa.select(conversations.c.last_inbound_at).where(
                conversations.c.id == conversation_id).scalar_subquery()
            where.append(sa.or_(last_inbound.is_(None), last_inbound < follow_ups.c.done_at))
        with self._read() as db:
            row = db.execute(sa.select(follow_ups).where(*where)
                             .order_by(follow_ups.c.id.desc()).limit(1)).mappings().first()
        return dict(row) if row else None

    def answer_check_back(self, follow_up_id: int, conversation_id: str, answer: str,
                          reopen: Optional[Callable[[Dict[str, Any]], HandoffRequest]] = None,
                          now: Optional[float] = None) -> Optional[CheckBackAnswer]:
        """Record the answer once (None if it was answered already); with ``reopen``
        (a "no"), open the handoff it makes unless a person has the conversation now."""
        now = now or time.time()
        with self._write() as db:
            recorded = db.execute(follow_ups.update().where(
                follow_ups.c.id == follow_up_id, follow_ups.c.conversation_id == conversation_id,
                follow_ups.c.status == ASKED).values(status=DONE, outcome=answer, done_at=now)
            ).rowcount
            if recorded != 1:
                return None
            previous = db.execute(sa.select(handoffs).join(
                follow_ups, follow_ups.c.handoff_id == handoffs.c.id).where(
                follow_ups.c.id == follow_up_id)).mappings().one()
            handoff_id = None
            with_person = db.execute(sa.select(handoffs.c.id).where(
                handoffs.c.conversation_id == conversation_id,
                handoffs.c.status != "resolved").limit(1)).first() is not None
            if reopen is not None and not with_person:
                handoff_id = insert_handoff(db, conversation_id,
                                            reopen(_handoff_dict(previous)), now)
        return CheckBackAnswer(follow_up_id, previous["id"], handoff_id)


def _set_status(db: Connection, follow_up_id: int, status: str, now: float) -> None:
    db.execute(follow_ups.update().where(follow_ups.c.id == follow_up_id)
               .values(status=status, done_at=now))


def _answered(db: Connection, conversation_id: str, since: float) -> bool:
    return db.execute(sa.select(messages.c.id).where(
        messages.c.conversation_id == conversation_id, messages.c.direction == "out",
        messages.c.kind == "agent", messages.c.created_at >= since).limit(1)).first() is not None


def _later_handoff(db: Connection, handoff: Any) -> bool:
    return db.execute(sa.select(handoffs.c.id).where(
        handoffs.c.conversation_id == handoff["conversation_id"],
        handoffs.c.id > handoff["id"]).limit(1)).first() is not None
