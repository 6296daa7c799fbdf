"""What every part of the store shares: the engine, the write lock, and the loop guard.

The engine is synchronous SQLAlchemy. Code on the event loop must go through
``AsyncStore`` (``facade.py``), which runs each call in a worker thread. With
``StoreBase.forbid_event_loop`` set (tests do), a call made on the event
loop's own thread raises ``BlockingStoreCallError`` instead of stalling it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterator, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.gateway.messages import OutboundMessage
from bot.gateway.store.priority import PriorityLock
from bot.gateway.store.schema import QUEUED, messages, migrate


class BlockingStoreCallError(RuntimeError):
    """A store call was made on the event loop's thread; use AsyncStore."""


# What a store that cannot commit right now raises: SQLite's lock held past the
# busy timeout, a full disk or an I/O error (OperationalError), a lost or broken
# connection, no free connection in the pool. Trying again later may succeed.
UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError,
               sa.exc.TimeoutError)


def store_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means "not committed, try again later" (an outage, not a bug).

    A constraint violation or an SQL error is our bug: retrying gives the same answer.
    """
    return isinstance(error, UNAVAILABLE) or (
        isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated)


# A message is acknowledged once stored. With WAL, synchronous=NORMAL may lose
# the last commits on power loss; FULL syncs the WAL on every commit, so an
# acknowledged message survives (`make bench` measures what that costs).
SQLITE_SYNCHRONOUS = "FULL"
# Seconds a write waits for another writer's lock before "database is locked".
SQLITE_BUSY_TIMEOUT = 30.0


def engine_for(url: str, synchronous: str = SQLITE_SYNCHRONOUS) -> Engine:
    """An engine for DATABASE_URL; SQLite gets WAL, durable commits, a busy timeout
    and its folder. ``synchronous`` is for the benchmark that compares settings.

    The busy timeout is how long a write waits for another writer's lock before
    it fails ("database is locked"): SQLITE_BUSY_TIMEOUT seconds, or the URL's
    own ``?timeout=<seconds>`` (e.g. ``sqlite:///var/gateway.db?timeout=5``).

    Statement parameters are customers' names and words: SQLAlchemy keeps them
    out of its error messages, which end up in logs (``hide_parameters``).
    """
    if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"unknown SQLite synchronous setting {synchronous!r}")
    if url.startswith("sqlite"):
        parsed = sa.engine.make_url(url)
        path = parsed.database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False}
        if "timeout" not in parsed.query:  # connect_args would override the URL's
            connect_args["timeout"] = SQLITE_BUSY_TIMEOUT
        engine = sa.create_engine(url, connect_args=connect_args, hide_parameters=True)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection, _record):  # noqa: ANN001 - SQLAlchemy hook
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, hide_parameters=True)



class StoreBase:
    forbid_event_loop: ClassVar[bool] = False  # tests turn it on

    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        # SQLite has one writer; its deferred transactions fail ("database is
        # locked") rather than wait when two upgrade from read to write, so
        # writers queue here, urgent ones first (store/priority.py).
        # PostgreSQL uses row locks instead.
        self._writer = (PriorityLock() if self.engine.dialect.name == "sqlite"
                        else contextlib.nullcontext())
        migrate(self.engine)

    def _check_thread(self) -> None:
        if not StoreBase.forbid_event_loop:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread or a script: blocking is fine here
        raise BlockingStoreCallError("a blocking store call on the event loop; "
                                     "await it through AsyncStore (gateway.db) instead")

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        self._check_thread()
        with self._writer, self.engine.begin() as db:
            yield db

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        self._check_thread()
        with self.engine.connect() as db:
            yield db

    @staticmethod
    def _insert_outbound(db: Connection, conversation_id: str, kind: str, message: OutboundMessage,
                         now: float, meta: Optional[Dict[str, Any]] = None) -> int:
        buttons = json.dumps([{"title": b.title, "payload": b.payload} for b in message.buttons])
        return db.execute(messages.insert().values(
            conversation_id=conversation_id, direction="out", kind=kind, text=message.text,
            buttons=buttons if message.buttons else None, image=message.image,
            meta=json.dumps(meta) if meta else None,
            status=QUEUED, attempts=0, created_at=now, queued_at=now,
        )).inserted_primary_key[0]

