"""Our Rasa input channel, on the real trained model and action server: a retried message
is one turn, and a turn Rasa would carry on past a failure in is an error to retry."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import httpx
import pytest
from sanic import Sanic

from bot.rasa_channel import GatewayInput, handle_once
from tests.gateway_support import free_port

pytestmark = pytest.mark.model

QUESTION = "what are your opening hours?"


def turn(sender: str, message_id: str, retry: bool = False) -> dict:
    return {"sender": sender, "message": QUESTION, "message_id": message_id,
            "metadata": {"first_name": "Amara"}, "retry": retry}


async def user_turns(agent, sender: str) -> list:
    tracker = await agent.tracker_store.retrieve(sender)
    events = tracker.events if tracker is not None else []  # None: never saved
    return [e.message_id for e in events if type(e).__name__ == "UserUttered"]


async def test_a_retry_of_a_handled_message_gets_the_same_replies_and_no_new_turn(live_agent):
    sender = f"api:{uuid.uuid4().hex[:8]}"
    first = await handle_once(live_agent, turn(sender, "gw-1"))
    assert first and first[0]["text"]
    again = await handle_once(live_agent, turn(sender, "gw-1", retry=True))
    assert [m["text"] for m in again] == [m["text"] for m in first]
    assert await user_turns(live_agent, sender) == ["gw-1"]


async def test_a_retry_rasa_never_saw_is_run_and_a_retry_racing_the_original_waits(live_agent):
    sender = f"api:{uuid.uuid4().hex[:8]}"
    unseen = await handle_once(live_agent, turn(sender, "gw-7", retry=True))
    assert unseen and await user_turns(live_agent, sender) == ["gw-7"]
    # The original still running when its retry arrives (a gateway restarted mid-call):
    # the retry waits for the conversation's lock, then finds the turn.
    original, retry = await asyncio.gather(
        handle_once(live_agent, turn(sender, "gw-8")),
        handle_once(live_agent, turn(sender, "gw-8", retry=True)))
    assert [m["text"] for m in retry] == [m["text"] for m in original]
    assert await user_turns(live_agent, sender) == ["gw-7", "gw-8"]


async def test_the_channel_needs_the_token_and_a_well_formed_body(live_agent):
    app = Sanic(f"rasa-channel-{uuid.uuid4().hex[:6]}", register=False)
    app.ctx.agent = live_agent
    channel = GatewayInput(token="t0ken")
    app.blueprint(channel.blueprint(lambda message: None), url_prefix="/webhooks/gateway")
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                     access_log=False)
    await server.startup()
    await server.after_start()
    url = f"http://127.0.0.1:{port}/webhooks/gateway/webhook"
    sender = f"api:{uuid.uuid4().hex[:8]}"
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            assert (await http.post(url, json=turn(sender, "gw-1"))).status_code == 401
            wrong = {"Authorization": "Bearer guess"}
            assert (await http.post(url, json=turn(sender, "gw-1"),
                                    headers=wrong)).status_code == 401
            right = {"Authorization": "Bearer t0ken"}
            for body in ([1, 2], {"sender": sender, "message": "hi"},
                         {**turn(sender, "gw-1"), "metadata": "x"}):
                bad = await http.post(url, json=body, headers=right)
                assert bad.status_code == 400 and "error" in bad.json()
            assert (await http.post(url, content=b"{nope", headers=right)).status_code == 400
            good = await http.post(url, json=turn(sender, "gw-1"), headers=right)
            assert good.status_code == 200 and good.json()[0]["text"]
    finally:
        await server.before_stop()
        await server.close()
        await server.wait_closed()
        await server.after_stop()
    assert GatewayInput.from_credentials(None).name() == "gateway"


@pytest.fixture
def sql_trackers(live_agent, tmp_path):
    """The live agent on the fail-closed SQL tracker store (behind Rasa's fail-safe wrapper,
    as `rasa run` builds it), in a SQLite file of this test's: yields the file."""
    from rasa.core.tracker_store import FailSafeTrackerStore

    from bot.rasa_tracker_store import FailClosedSQLTrackerStore

    path = tmp_path / "trackers.db"
    store = FailSafeTrackerStore(FailClosedSQLTrackerStore(
        domain=live_agent.domain, dialect="sqlite", db=str(path)))
    saved = live_agent.tracker_store, live_agent.processor.tracker_store
    live_agent.tracker_store = live_agent.processor.tracker_store = store
    try:
        yield path
    finally:
        live_agent.tracker_store, live_agent.processor.tracker_store = saved


async def test_a_turn_during_which_the_tracker_store_failed_is_an_error_to_retry(
        live_agent, sql_trackers):
    """Rasa's fail-safe store would answer from an empty conversation and save nowhere."""
    import sqlite3

    from bot.rasa_channel import TrackerStoreFailedError

    sender = f"api:{uuid.uuid4().hex[:8]}"
    assert await handle_once(live_agent, turn(sender, "gw-1"))  # the database works
    blocker = sqlite3.connect(sql_trackers, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # now it does not: reads and writes fail
    try:
        with pytest.raises(TrackerStoreFailedError):
            await handle_once(live_agent, turn(sender, "gw-2"))
    finally:
        blocker.rollback()
        blocker.close()
    # Back again: the retry runs the turn for real, on the customer's conversation.
    assert await handle_once(live_agent, turn(sender, "gw-2", retry=True))
    assert await user_turns(live_agent, sender) == ["gw-1", "gw-2"]


@contextlib.asynccontextmanager
async def action_server_dies_mid_call(agent):
    """The agent's action server accepts each call, then drops it (killed mid-call)."""
    from rasa.utils.endpoints import EndpointConfig

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the request has begun to arrive
        writer.transport.abort()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    live = agent.processor.action_endpoint
    agent.processor.action_endpoint = EndpointConfig(url=f"http://127.0.0.1:{port}/webhook")
    try:
        yield
    finally:
        agent.processor.action_endpoint = live
        server.close()
        await server.wait_closed()


async def test_a_turn_whose_action_failed_is_not_saved_and_its_retry_runs_it_whole(
        live_agent, sql_trackers):
    """Rasa goes on without a custom action it could not run ("the actions events are
    lost"): the turn would be saved with no reply, and a retry would replay that nothing."""
    from bot.rasa_channel import ActionFailedError

    sender = f"api:{uuid.uuid4().hex[:8]}"
    # The very first turn: action_session_start (ours) fails.
    async with action_server_dies_mid_call(live_agent):
        with pytest.raises(ActionFailedError):
            await handle_once(live_agent, turn(sender, "gw-1"))
    assert await user_turns(live_agent, sender) == []
    first = await handle_once(live_agent, turn(sender, "gw-1", retry=True))
    assert first and first[0]["text"]
    assert await user_turns(live_agent, sender) == ["gw-1"]

    # Mid-conversation: the greeting is a custom action (action_greet).
    hello = {**turn(sender, "gw-2"), "message": "hello"}
    async with action_server_dies_mid_call(live_agent):
        with pytest.raises(ActionFailedError):
            await handle_once(live_agent, hello)
    assert await user_turns(live_agent, sender) == ["gw-1"]
    greeting = await handle_once(live_agent, {**hello, "retry": True})
    # action_greet ran, with the name the re-run session start took from the metadata
    assert any("Amara" in (m.get("text") or "") for m in greeting)
    assert await user_turns(live_agent, sender) == ["gw-1", "gw-2"]
    # And a later retry of it replays that greeting rather than nothing.
    again = await handle_once(live_agent, {**hello, "retry": True})
    assert [m.get("text") for m in again] == [m.get("text") for m in greeting]


async def test_turns_from_other_channels_are_saved_as_rasa_saves_them(live_agent, sql_trackers):
    """Outside a gateway turn nothing changes: Rasa's own channels keep Rasa's behaviour."""
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    sender = f"rest:{uuid.uuid4().hex[:8]}"
    async with action_server_dies_mid_call(live_agent):
        await live_agent.handle_message(UserMessage("hello", CollectingOutputChannel(), sender))
    tracker = await live_agent.tracker_store.retrieve(sender)
    assert any(type(e).__name__ == "UserUttered" for e in tracker.events)


async def test_a_lost_lock_ticket_ends_the_wait_and_cleans_up():
    """Rasa's ticket lock can wait for ever on a lost ticket: the channel gives up,
    so the gateway retries, and its own ticket is not left behind."""
    from rasa.core.lock_store import InMemoryLockStore

    from bot.rasa_channel import LockWaitTimeoutError, bounded_lock

    store = InMemoryLockStore()
    store.issue_ticket("c1", 600)  # a ticket held by a Rasa that was killed
    with pytest.raises(LockWaitTimeoutError):
        async with bounded_lock(store, "c1", wait=0.2):
            raise AssertionError("the lock was never free")
    assert len(store.get_lock("c1").tickets) == 1  # ours was removed on giving up
    store.delete_lock("c1")
    async with bounded_lock(store, "c1", wait=1.0):
        assert store.get_lock("c1").tickets  # held while inside
    assert not store.is_someone_waiting("c1")
