"""Conversation leases: several gateway replicas on one database, one per conversation.

A lease says which replica works on a conversation's lane, "in" (its
messages to Rasa, in order) or "out" (its outbox, in order), until when.
Taking one is a single atomic upsert, ``INSERT ... ON CONFLICT DO UPDATE
... WHERE`` (PostgreSQL 9.5+, SQLite 3.24+): the row is inserted when there
is none, or taken over only if it expired or is already ours, and the
statement's row count says whether we hold it. PostgreSQL documents that
this upsert has an atomic outcome under concurrency (a racing insert waits
for the other to commit, then the WHERE is evaluated against the row that
won); SQLite has one writer at a time, so the statement cannot interleave.

Times are the database's clock, not each replica's: every replica compares
expiries against the one clock that wrote them, so clock skew between
replicas cannot make one steal a live lease. On SQLite every replica shares
the host (and so its clock) anyway. Expiry is still a wall clock: keep the
database host on NTP, and keep leases far longer than one renewal's delay.
``now`` arguments replace that clock (epoch seconds, as ``database_time``
returns) and are for tests; production code leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import ColumnElement

from bot.gateway.store.base import StoreBase
from bot.gateway.store.schema import QUEUED, conversation_leases, messages

LANES = ("in", "out")  # as messages.direction: inbound to Rasa, outbox to the channel

_UNIX_EPOCH_JULIAN_DAY = 2440587.5


@dataclass(frozen=True)
class Lease:
    owner: str
    expires_at: float  # the database's clock, epoch seconds


class LeaseStore(StoreBase):
    def acquire_lease(self, conversation_id: str, lane: str, owner: str, seconds: float,
                      *, now: Optional[float] = None) -> bool:
        """Take the lease if it is free, expired or already ours; True if we hold it now."""
        _check(lane, owner, seconds)
        clock = self._clock(now)
        insert = (postgresql.insert if self.engine.dialect.name == "postgresql"
                  else sqlite.insert)
        leases = conversation_leases
        statement = insert(leases).values(conversation_id=conversation_id, lane=lane,
                                          owner=owner, expires_at=clock + seconds)
        statement = statement.on_conflict_do_update(
            index_elements=[leases.c.conversation_id, leases.c.lane],
            set_={"owner": statement.excluded.owner,
                  "expires_at": statement.excluded.expires_at},
            where=sa.or_(leases.c.expires_at <= clock, leases.c.owner == owner))
        with self._write() as db:
            return db.execute(statement).rowcount == 1

    def renew_lease(self, conversation_id: str, lane: str, owner: str, seconds: float,
                    *, now: Optional[float] = None) -> bool:
        """Extend our lease by ``seconds`` from now; False if it is no longer ours.

        An expired lease nobody else took is still ours (nobody else worked
        meanwhile). False means another replica took it, or the conversation
        was erased: the caller must stop before its next message.
        """
        _check(lane, owner, seconds)
        clock = self._clock(now)
        with self._write() as db:
            return db.execute(conversation_leases.update().where(
                *self._key(conversation_id, lane), conversation_leases.c.owner == owner,
            ).values(expires_at=clock + seconds)).rowcount == 1

    def release_lease(self, conversation_id: str, lane: str, owner: str) -> bool:
        """Give the lease up (if still ours), so another replica need not wait for expiry."""
        _check(lane, owner)
        with self._write() as db:
            return db.execute(conversation_leases.delete().where(
                *self._key(conversation_id, lane), conversation_leases.c.owner == owner,
            )).rowcount == 1

    def lease(self, conversation_id: str, lane: str) -> Optional[Lease]:
        """Who holds (or last held) the lease and until when; None if nobody."""
        with self._read() as db:
            row = db.execute(sa.select(conversation_leases.c.owner,
                                       conversation_leases.c.expires_at)
                             .where(*self._key(conversation_id, lane))).first()
        return Lease(owner=row.owner, expires_at=row.expires_at) if row else None

    def conversations_needing_work(self, lane: str,
                                   now: Optional[float] = None) -> List[str]:
        """Conversations with queued messages in ``lane`` and no live lease, oldest first.

        What a replica's periodic sweep picks up: work nobody is doing,
        including a dead replica's once its leases expire.
        """
        _check(lane)
        leases = conversation_leases
        clock = self._clock(now)
        joined = messages.outerjoin(leases, sa.and_(
            leases.c.conversation_id == messages.c.conversation_id, leases.c.lane == lane))
        with self._read() as db:
            rows = db.execute(
                sa.select(messages.c.conversation_id, sa.func.min(messages.c.id).label("first"))
                .select_from(joined)
                .where(messages.c.direction == lane, messages.c.status == QUEUED,
                       sa.or_(leases.c.owner.is_(None), leases.c.expires_at <= clock))
                .group_by(messages.c.conversation_id).order_by("first")
            ).all()
        return [row[0] for row in rows]

    def database_time(self) -> float:
        """The clock leases are measured by (epoch seconds), for tests and diagnostics."""
        with self._read() as db:
            return float(db.execute(sa.select(self._clock(None))).scalar_one())

    def _clock(self, now: Optional[float]) -> ColumnElement:
        """``now`` as a bound value, else the database's own clock as SQL, in epoch seconds."""
        if now is not None:
            return sa.literal(float(now), sa.Float)
        dialect = self.engine.dialect.name
        if dialect == "postgresql":  # the time it runs, not the transaction's start
            return sa.cast(sa.extract("epoch", sa.func.clock_timestamp()), sa.Float)
        if dialect == "sqlite":  # julianday('now') has millisecond resolution
            return sa.literal_column(
                f"((julianday('now') - {_UNIX_EPOCH_JULIAN_DAY}) * 86400.0)", sa.Float)
        raise NotImplementedError(f"conversation leases need SQLite or PostgreSQL, "
                                  f"not {dialect}")

    @staticmethod
    def _key(conversation_id: str, lane: str) -> List[ColumnElement]:
        return [conversation_leases.c.conversation_id == conversation_id,
                conversation_leases.c.lane == lane]


def _check(lane: str, owner: Optional[str] = None, seconds: float = 1.0) -> None:
    if lane not in LANES:
        raise ValueError(f"lane must be one of {LANES}, not {lane!r}")
    if owner is not None and not 0 < len(owner) <= conversation_leases.c.owner.type.length:
        raise ValueError("a lease owner is a non-empty id of at most 200 characters")
    if not seconds > 0:
        raise ValueError("a lease lasts a positive number of seconds")
