"""Our Rasa input channel, on the real trained model: a retried message is one turn."""

from __future__ import annotations

import asyncio
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
    return [e.message_id for e in tracker.events if type(e).__name__ == "UserUttered"]


async def test_a_retry_of_a_handled_message_gets_the_same_replies_and_no_new_turn(agent):
    sender = f"api:{uuid.uuid4().hex[:8]}"
    first = await handle_once(agent, turn(sender, "gw-1"))
    assert first and first[0]["text"]
    again = await handle_once(agent, turn(sender, "gw-1", retry=True))
    assert [m["text"] for m in again] == [m["text"] for m in first]
    assert await user_turns(agent, sender) == ["gw-1"]


async def test_a_retry_rasa_never_saw_is_run_and_a_retry_racing_the_original_waits(agent):
    sender = f"api:{uuid.uuid4().hex[:8]}"
    unseen = await handle_once(agent, turn(sender, "gw-7", retry=True))
    assert unseen and await user_turns(agent, sender) == ["gw-7"]
    # The original still running when its retry arrives (a gateway restarted mid-call):
    # the retry waits for the conversation's lock, then finds the turn.
    original, retry = await asyncio.gather(handle_once(agent, turn(sender, "gw-8")),
                                           handle_once(agent, turn(sender, "gw-8", retry=True)))
    assert [m["text"] for m in retry] == [m["text"] for m in original]
    assert await user_turns(agent, sender) == ["gw-7", "gw-8"]


async def test_the_channel_needs_the_token_and_a_well_formed_body(agent):
    app = Sanic(f"rasa-channel-{uuid.uuid4().hex[:6]}", register=False)
    app.ctx.agent = agent
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


async def test_a_turn_during_which_the_tracker_store_failed_is_an_error_to_retry(
        agent, tmp_path):
    """Rasa's fail-safe store would answer from an empty conversation and save nowhere."""
    import sqlite3

    from rasa.core.tracker_store import FailSafeTrackerStore

    from bot.rasa_channel import TrackerStoreFailedError
    from bot.rasa_tracker_store import FailClosedSQLTrackerStore

    path = tmp_path / "trackers.db"
    store = FailSafeTrackerStore(FailClosedSQLTrackerStore(
        domain=agent.domain, dialect="sqlite", db=str(path)))
    saved = agent.tracker_store, agent.processor.tracker_store
    agent.tracker_store = agent.processor.tracker_store = store
    sender = f"api:{uuid.uuid4().hex[:8]}"
    try:
        assert await handle_once(agent, turn(sender, "gw-1"))  # the database works
        blocker = sqlite3.connect(path, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")  # now it does not: reads and writes fail
        try:
            with pytest.raises(TrackerStoreFailedError):
                await handle_once(agent, turn(sender, "gw-2"))
        finally:
            blocker.rollback()
            blocker.close()
        # Back again: the retry runs the turn for real, on the customer's conversation.
        assert await handle_once(agent, turn(sender, "gw-2", retry=True))
        assert await user_turns(agent, sender) == ["gw-1", "gw-2"]
    finally:
        agent.tracker_store, agent.processor.tracker_store = saved
