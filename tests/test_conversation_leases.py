"""Several replicas on one database: each conversation's lane is worked by one at a time.

Two ``Store`` instances on one database stand for two gateway replicas. Both
database kinds are real: a SQLite file and PostgreSQL. Expiry is tested by
passing the clock (``now``) ahead rather than by sleeping, except for the
keeper, whose renewals run on real time with short leases.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from bot import customer_data
from bot.brand import brand
from bot.gateway.handoffs.intake import failure_handoff
from bot.gateway.leases import LeaseKeeper, new_owner_id
from bot.gateway.messages import InboundMessage, OutboundMessage
from bot.gateway.store import AlreadyFinishedError, Store
from bot.gateway.store.facade import AsyncStore
from tests.conftest import service_or_skip

LEASE = 30.0


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    return f"postgresql://postgres@{host}:{port}/test"


@pytest.fixture
def replicas(url):
    """Two replicas' stores on one database."""
    first, second = Store(url), Store(url)
    yield first, second
    first.engine.dispose()
    second.engine.dispose()


def a_conversation() -> str:
    return f"api:lease-{uuid.uuid4().hex[:12]}"


def a_customer_wrote(store: Store) -> str:
    """A conversation with one message queued for Rasa and its acknowledgement queued."""
    message = InboundMessage(channel="api", external_id=f"lease-{uuid.uuid4().hex[:12]}",
                             channel_message_id="m1", text="hello")
    store.receive(message, OutboundMessage("got it"))
    return message.conversation_id


# --- the store -------------------------------------------------------------

def test_only_one_replica_takes_a_free_lease(replicas):
    a, b = replicas
    chat = a_conversation()
    assert a.acquire_lease(chat, "in", "A", LEASE)
    assert not b.acquire_lease(chat, "in", "B", LEASE)
    assert a.lease(chat, "in").owner == "A"
    assert b.acquire_lease(chat, "out", "B", LEASE), "the outbox is a lane of its own"
    assert not a.acquire_lease(chat, "out", "A", LEASE)


def test_a_released_lease_goes_to_the_other_replica(replicas):
    a, b = replicas
    chat = a_conversation()
    assert a.acquire_lease(chat, "in", "A", LEASE)
    assert not b.release_lease(chat, "in", "B"), "only the holder can give it up"
    assert a.lease(chat, "in").owner == "A"
    assert a.release_lease(chat, "in", "A")
    assert a.lease(chat, "in") is None
    assert b.acquire_lease(chat, "in", "B", LEASE)


def test_the_holder_renews_and_retakes_its_own_lease(replicas):
    a, b = replicas
    chat = a_conversation()
    assert a.acquire_lease(chat, "in", "A", LEASE)
    first = a.lease(chat, "in").expires_at
    now = a.database_time() + 10
    assert a.renew_lease(chat, "in", "A", LEASE, now=now)
    assert a.lease(chat, "in").expires_at == pytest.approx(now + LEASE)
    assert a.lease(chat, "in").expires_at > first
    assert a.acquire_lease(chat, "in", "A", LEASE), "already ours"
    assert not b.renew_lease(chat, "in", "B", LEASE), "nobody renews another's lease"


def test_an_expired_lease_moves_on_and_the_old_holder_cannot_renew(replicas):
    a, b = replicas
    chat = a_conversation()
    assert a.acquire_lease(chat, "in", "A", 5)
    now = a.database_time()
    assert not b.acquire_lease(chat, "in", "B", 5, now=now + 4), "not expired yet"
    assert b.acquire_lease(chat, "in", "B", 5, now=now + 6)
    assert b.lease(chat, "in").owner == "B"
    assert not a.renew_lease(chat, "in", "A", 5, now=now + 6), "A must stop"
    assert not a.release_lease(chat, "in", "A")
    assert b.lease(chat, "in").owner == "B"


def test_an_expired_lease_nobody_took_is_still_its_holders(replicas):
    a, _ = replicas
    chat = a_conversation()
    assert a.acquire_lease(chat, "out", "A", 5)
    assert a.renew_lease(chat, "out", "A", 5, now=a.database_time() + 60)


def test_leases_are_measured_by_the_database_clock(replicas):
    a, _ = replicas
    chat = a_conversation()
    before = a.database_time()
    assert a.acquire_lease(chat, "in", "A", LEASE)
    expires = a.lease(chat, "in").expires_at
    assert before + LEASE <= expires <= a.database_time() + LEASE
    assert abs(before - time.time()) < 5, "the test host and the database share a clock"


def test_the_sweep_lists_queued_work_only_without_a_live_lease(replicas):
    a, b = replicas
    chat = a_customer_wrote(a)
    idle = a_conversation()
    now = a.database_time()
    for lane in ("in", "out"):  # the message for Rasa, the acknowledgement to send
        assert chat in b.conversations_needing_work(lane)
        assert a.acquire_lease(chat, lane, "A", 5)
        assert chat not in b.conversations_needing_work(lane)
        assert chat not in b.conversations_needing_work(lane, now=now + 4)
        assert chat in b.conversations_needing_work(lane, now=now + 6), "A's lease expired"
        assert a.release_lease(chat, lane, "A")
        assert chat in b.conversations_needing_work(lane)
    assert a.acquire_lease(idle, "in", "A", 5)
    assert idle not in b.conversations_needing_work("in", now=now + 6), "nothing queued"


def test_the_sweep_skips_a_conversation_once_its_work_is_done(replicas):
    a, b = replicas
    chat = a_customer_wrote(a)
    row = a.next_inbound(chat)
    a.complete_inbound(row.id, [])
    assert chat not in b.conversations_needing_work("in")
    assert chat in b.conversations_needing_work("out"), "its acknowledgement still waits"


def test_forgetting_a_conversation_deletes_its_leases(replicas):
    a, b = replicas
    chat = a_customer_wrote(a)
    assert a.acquire_lease(chat, "in", "A", LEASE)
    assert a.acquire_lease(chat, "out", "A", LEASE)
    removed = customer_data.forget(b, None, chat)
    assert removed["conversation_leases"] == 2
    assert a.lease(chat, "in") is None and a.lease(chat, "out") is None
    assert not a.renew_lease(chat, "in", "A", LEASE), "a replica still on it must stop"


def test_a_lease_needs_a_known_lane_an_owner_and_a_length(replicas):
    a, _ = replicas
    chat = a_conversation()
    for lane, owner, seconds in (("sideways", "A", LEASE), ("in", "", LEASE),
                                 ("in", "A" * 201, LEASE), ("in", "A", 0)):
        with pytest.raises(ValueError):
            a.acquire_lease(chat, lane, owner, seconds)


def test_an_older_database_gains_the_leases_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    Store(url)
    with sa.create_engine(url).begin() as db:
        db.execute(sa.text("DROP TABLE conversation_leases"))
    store = Store(url)
    assert store.acquire_lease(a_conversation(), "in", "A", LEASE)


ROUNDS = 25
THREADS_PER_REPLICA = 4


def test_racing_replicas_leave_exactly_one_winner(replicas):
    """Threads of two replicas take one conversation's lease at the same moment, round
    after round: first a free lease (the insert), then an expired one (the takeover)."""
    contenders = [(store, f"{name}{n}") for name, store in zip("AB", replicas, strict=True)
                  for n in range(THREADS_PER_REPLICA)]
    start = threading.Barrier(len(contenders))

    def race(store: Store, owner: str, chat: str, now: float | None) -> bool:
        start.wait(timeout=30)
        return store.acquire_lease(chat, "in", owner, 5, now=now)

    with ThreadPoolExecutor(len(contenders)) as pool:
        for _ in range(ROUNDS):
            chat = a_conversation()
            later = replicas[0].database_time() + 60
            for now in (None, later):
                racing = [pool.submit(race, store, owner, chat, now)
                          for store, owner in contenders]
                won = [future.result() for future in racing]
                assert won.count(True) == 1, won
                winner = contenders[won.index(True)][1]
                assert replicas[1].lease(chat, "in").owner == winner


def test_a_message_is_finished_once_however_many_replicas_finish_it(replicas):
    """A replica that lost its lease mid-call and finishes late queues nothing twice."""
    a, b = replicas
    chat = a_customer_wrote(a)
    row = a.next_inbound(chat)
    a.complete_inbound(row.id, [OutboundMessage("your answer")])
    with pytest.raises(AlreadyFinishedError):
        b.complete_inbound(row.id, [OutboundMessage("your answer")])
    late = failure_handoff("bot_failed", "gave up", brand())
    with pytest.raises(AlreadyFinishedError):
        b.dead_letter(row.id, "gave up late", late, notice=OutboundMessage("a person will"))
    sent = [m.text for m in a.transcript(chat) if m.kind == "reply"]
    assert sent == ["your answer"]
    assert [h for h in a.handoff_queue() if h["conversation_id"] == chat] == []
    assert a.next_inbound(chat) is None


# --- the keeper ------------------------------------------------------------

SHORT = 1.5  # seconds: renewed every 0.5 s


async def test_a_keeper_renews_while_the_body_outlasts_the_lease(replicas):
    a, b = replicas
    keeper = LeaseKeeper(AsyncStore(a), new_owner_id(), seconds=SHORT)
    chat = a_conversation()
    async with keeper.hold(chat, "in") as held:
        assert held
        for _ in range(10):  # 3 s, twice the lease
            await asyncio.sleep(0.3)
            assert not await asyncio.to_thread(b.acquire_lease, chat, "in", "B", SHORT)
            assert held and not held.lost.is_set()
        assert await held.confirm()
    assert await asyncio.to_thread(a.lease, chat, "in") is None, "given back at the end"
    assert await asyncio.to_thread(b.acquire_lease, chat, "in", "B", SHORT)


async def test_a_keeper_yields_false_while_another_replica_holds_it(replicas):
    a, b = replicas
    chat = a_conversation()
    assert await asyncio.to_thread(b.acquire_lease, chat, "out", "B", LEASE)
    keeper = LeaseKeeper(AsyncStore(a), new_owner_id(), seconds=SHORT)
    async with keeper.hold(chat, "out") as held:
        assert not held and not held.acquired
    lease = await asyncio.to_thread(a.lease, chat, "out")
    assert lease.owner == "B", "not released by the one who never held it"


async def test_a_keeper_signals_when_another_replica_takes_the_lease(replicas):
    a, b = replicas
    keeper = LeaseKeeper(AsyncStore(a), new_owner_id(), seconds=SHORT)
    chat = a_conversation()
    async with keeper.hold(chat, "in") as held:
        assert held
        later = await asyncio.to_thread(b.database_time) + 60  # as if A had stalled
        assert await asyncio.to_thread(b.acquire_lease, chat, "in", "B", LEASE, now=later)
        await asyncio.wait_for(held.lost.wait(), timeout=keeper.renew_every * 3)
        assert not held
        assert not await held.confirm()
    lease = await asyncio.to_thread(a.lease, chat, "in")
    assert lease.owner == "B", "the new holder keeps it when the old one's body ends"


async def test_a_keeper_gives_up_a_lease_it_cannot_renew_before_it_expires(replicas):
    a, b = replicas

    class Unreachable(AsyncStore):
        async def renew_lease(self, *args, **kwargs):
            raise sa.exc.OperationalError("renew", {}, ConnectionError("database gone"))

    keeper = LeaseKeeper(Unreachable(a), new_owner_id(), seconds=SHORT)
    chat = a_conversation()
    async with keeper.hold(chat, "in") as held:
        taken = time.monotonic()
        await asyncio.wait_for(held.lost.wait(), timeout=SHORT * 2)
        assert time.monotonic() - taken < SHORT, "given up before it could expire"
        assert not await asyncio.to_thread(b.acquire_lease, chat, "in", "B", SHORT)
    assert await asyncio.to_thread(a.lease, chat, "in") is None


async def test_a_keeper_gives_the_lease_back_when_its_body_fails(replicas):
    a, _ = replicas
    keeper = LeaseKeeper(AsyncStore(a), new_owner_id(), seconds=LEASE)
    chat = a_conversation()
    with pytest.raises(RuntimeError):
        async with keeper.hold(chat, "out") as held:
            assert held
            raise RuntimeError("the channel broke")
    assert await asyncio.to_thread(a.lease, chat, "out") is None


def test_every_process_gets_an_owner_id_of_its_own():
    first, second = new_owner_id(), new_owner_id()
    assert first != second and 0 < len(first) <= 200


async def test_lease_renewals_never_wait_behind_the_gateways_message_work(url):
    """Far past capacity, store calls for messages queue up; the lease's calls go on."""
    from bot.gateway.pipeline import Gateway
    from bot.gateway.rasa_client import RasaClient

    release = threading.Event()

    class Busy(Store):
        def transcript(self, *args, **kwargs):  # a message's store call, stuck for now
            release.wait(30)
            return super().transcript(*args, **kwargs)

    store = Busy(url)
    gateway = Gateway(store, RasaClient("http://127.0.0.1:9"), brand())
    backlog = [asyncio.ensure_future(gateway.db.transcript("api:x")) for _ in range(40)]
    try:
        await asyncio.sleep(0.2)
        chat = a_conversation()

        async def take_and_renew() -> bool:
            async with gateway.leases.hold(chat, "in") as held:
                return bool(held) and await held.confirm()

        assert await asyncio.wait_for(take_and_renew(), timeout=5)
    finally:
        release.set()
        await asyncio.gather(*backlog)
        await gateway.rasa.close()
        store.engine.dispose()
