"""Hold a conversation's lease while working on it, so replicas never work it at once.

Several gateway processes may share one database. Before a replica drains a
conversation's lane ("in": its messages to Rasa; "out": its outbox) it takes
that lane's lease (store/leases.py); while it works, the lease is renewed in
the background; when it is done, it is given back. A replica that dies stops
renewing, its leases expire, and another replica's sweep
(``conversations_needing_work``) picks its conversations up.

    async with keeper.hold(conversation_id, "in") as held:
        if not held:
            return  # another replica has it
        while held and (row := await db.next_inbound(conversation_id)):
            ...  # one message; ``held`` turns false once the lease is lost

A lease cannot stop a step already under way: if renewals fail (this replica
cut off from the database) it is given up, and ``held.lost`` set, one renewal
interval before it would expire, so a caller that checks between messages
stops before another replica may start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from typing import AsyncIterator, Optional

from bot.gateway.store.facade import AsyncStore

log = logging.getLogger(__name__)


def new_owner_id() -> str:
    """An id for this process's leases: ``hostname-pid-random``.

    Readable in the table (which replica holds what), and unique even when a
    restarted container comes back with the same hostname and pid 1: a new
    process must not mistake its predecessor's leases for its own.
    """
    return f"{socket.gethostname()[:100]}-{os.getpid()}-{secrets.token_hex(4)}"


class HeldLease:
    """What ``LeaseKeeper.hold`` yields: true while this replica holds the lease.

    False from the start if another replica holds it; turns false, and
    ``lost`` is set, once a renewal fails, so the caller stops before its
    next message (or awaits ``lost`` to abandon a long wait).
    """

    def __init__(self, keeper: LeaseKeeper, conversation_id: str, lane: str, acquired: bool,
                 good_until: float) -> None:
        self.conversation_id = conversation_id
        self.lane = lane
        self.acquired = acquired
        self.lost = asyncio.Event()
        self._keeper = keeper
        self.good_until = good_until  # time.monotonic() by which it surely expires

    def __bool__(self) -> bool:
        return self.acquired and not self.lost.is_set()

    async def confirm(self) -> bool:
        """Renew now and say whether it is still ours: before a step not to be done twice."""
        if self:
            await self._keeper._renew(self)
        return bool(self)


class LeaseKeeper:
    """Takes, renews (every ``seconds / 3``) and gives back one process's leases.

    Leases keep replicas apart, not tasks: within a process ``KeyedWorkers``
    already runs one drain per conversation and lane. Two holds of one lane
    in one process would both succeed, and the first to end would give it up.
    """

    def __init__(self, db: AsyncStore, owner: str, seconds: float = 30.0) -> None:
        if not seconds > 0:
            raise ValueError("a lease lasts a positive number of seconds")
        self.db = db
        self.owner = owner
        self.seconds = seconds
        # Two renewals may fail before the lease is given up, and it is given up
        # one interval before it would expire.
        self.renew_every = seconds / 3

    @contextlib.asynccontextmanager
    async def hold(self, conversation_id: str, lane: str) -> AsyncIterator[HeldLease]:
        """The lease on ``(conversation_id, lane)`` for the body; false if another has it."""
        started = time.monotonic()  # before the database stamps the expiry
        acquired = await self.db.acquire_lease(conversation_id, lane, self.owner, self.seconds)
        held = HeldLease(self, conversation_id, lane, acquired, started + self.seconds)
        if not acquired:
            yield held
            return
        renewing = asyncio.get_running_loop().create_task(
            self._keep(held), name=f"lease:{lane}:{conversation_id}")
        try:
            yield held
        finally:
            renewing.cancel()
            # Shielded: a worker being cancelled still gives its lease back
            # rather than leave the conversation waiting for the expiry. Every
            # lease write is conditional on the owner, so a renewal still in
            # flight cannot revive it afterwards for anyone else.
            try:
                await asyncio.shield(self.db.release_lease(conversation_id, lane, self.owner))
            except Exception as error:  # noqa: BLE001 - it expires on its own
                log.warning("could not release the %s lease on %s (%s); it expires in %.0fs",
                            lane, conversation_id, error, self.seconds)

    async def _keep(self, held: HeldLease) -> None:
        while held:
            await asyncio.sleep(self.renew_every)
            await self._renew(held)

    async def _renew(self, held: HeldLease) -> None:
        started = time.monotonic()
        renewed: Optional[bool] = None  # None: unknown (error or too slow), try again
        try:
            renewed = await asyncio.wait_for(
                self.db.renew_lease(held.conversation_id, held.lane, self.owner, self.seconds),
                timeout=self.renew_every)
        except asyncio.TimeoutError:
            log.warning("renewing the %s lease on %s took over %.1fs", held.lane,
                        held.conversation_id, self.renew_every)
        except Exception as error:  # noqa: BLE001 - the database may come back in time
            log.warning("could not renew the %s lease on %s: %s", held.lane,
                        held.conversation_id, error)
        if renewed:
            held.good_until = max(held.good_until, started + self.seconds)
        elif renewed is False:
            log.warning("lost the %s lease on %s: another replica took it, or the "
                        "conversation was erased", held.lane, held.conversation_id)
            held.lost.set()
        elif time.monotonic() + self.renew_every >= held.good_until:
            log.warning("giving up the %s lease on %s before it expires unrenewed",
                        held.lane, held.conversation_id)
            held.lost.set()
