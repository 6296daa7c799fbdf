"""Nothing lost, nothing twice: retries that Rasa recognises, draining, dead letters.

Answers these findings: the same customer message reached Rasa twice after a
crash mid-call, after a graceful stop and after a client timeout; a non-JSON
answer from Rasa (or a database error) wedged a conversation for good; a
reply Telegram would not take for a minute was dropped.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.gateway import redrive
from bot.gateway.messages import InboundMessage
from bot.gateway.pipeline import RetryPolicy
from bot.gateway.store import Store
from bot.gateway.workers import KeyedWorkers
from tests.gateway_support import (
    FAST_RETRY,
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    running_gateway,
)
from tests.test_gateway_telegram import CHAT, telegram_settings

GIVE_UP_FAST = RetryPolicy(first_delay=0.05, max_delay=0.2, bot_give_up_after=1.0,
                           delivery_give_up_after=1.0)


def dm(conversation: str, n: int, text: str = "") -> dict:
    return {"channel": "api", "conversation_id": conversation, "sender_name": "Amara",
            "text": text or f"message {n}", "channel_message_id": f"{conversation}-{n}"}


def with_store(settings, work):
    store = Store(settings.database_url)
    try:
        return work(store)
    finally:
        store.engine.dispose()


def inbound(settings, conversation_id):
    return with_store(settings, lambda s: [m for m in s.transcript(conversation_id)
                                           if m.direction == "in"])


def outbound_texts(settings, conversation_id):
    return with_store(settings, lambda s: [m.text for m in s.transcript(conversation_id)
                                           if m.direction == "out"])


# --- exactly once to Rasa ------------------------------------------------------------------

async def test_a_first_send_carries_the_gateways_id_and_is_not_a_retry(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings,
                                                        await bridge_auth(settings)) as http:
        posted = (await http.post("/api/v1/messages", json=dm("once", 0))).json()
        await app.ctx.gateway.idle()
    [turn] = rasa.received
    assert turn["message_id"] == f"gw-{posted['message_id']}"
    assert turn["retry"] is False


async def test_a_message_sent_just_before_a_crash_is_not_run_again(tmp_path, rasa):
    """The store shows the send began; Rasa has the turn: the restart replays, not reruns."""
    settings = gateway_settings(tmp_path, rasa.url)

    def crashed_mid_call(store):
        received = store.receive(InboundMessage(channel="api", external_id="crash",
                                                channel_message_id="m1", text="where is it"))
        store.started_inbound(received.message_id)  # then the process died
        return received.message_id

    message_id = with_store(settings, crashed_mid_call)
    # What Rasa had already done with it before the gateway died:
    rasa.turns[f"gw-{message_id}"] = [{"recipient_id": "api:crash", "text": "echo: where is it"}]
    async with running_gateway(settings) as app:
        await eventually(lambda: "echo: where is it" in outbound_texts(settings, "api:crash"))
        await app.ctx.gateway.idle()
    assert rasa.replayed == [f"gw-{message_id}"]
    assert rasa.received == []  # no second turn
    assert outbound_texts(settings, "api:crash").count("echo: where is it") == 1


async def test_stopping_lets_a_call_in_flight_finish_instead_of_redoing_it(tmp_path, rasa):
    rasa.delay = 1.0
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings), client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("stop", 0))
        await eventually(lambda: rasa.in_flight == 1)
    # The gateway has stopped: the answer it was waiting for was stored, not dropped.
    assert [m.status for m in inbound(settings, "api:stop")] == ["done"]
    assert "echo: message 0" in outbound_texts(settings, "api:stop")
    rasa.delay = 0
    async with running_gateway(settings) as app:
        await asyncio.sleep(0.3)
        await app.ctx.gateway.idle()
    assert len(rasa.received) == 1 and rasa.replayed == []


async def test_a_call_that_times_out_is_retried_as_a_retry_and_not_rerun(tmp_path, rasa):
    rasa.delay = 1.0  # longer than the client waits; Rasa still finishes the turn
    settings = gateway_settings(tmp_path, rasa.url, rasa_timeout_seconds=0.4)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("slow", 0))
        await eventually(lambda: rasa.replayed, timeout=10)
        await app.ctx.gateway.idle()
    assert len(rasa.received) == 1  # one turn in Rasa
    assert outbound_texts(settings, "api:slow").count("echo: message 0") == 1


# --- every failure retries, then surfaces ---------------------------------------------------

def test_a_failing_drain_runs_again_after_a_backoff_without_being_told():
    async def scenario():
        calls = []

        async def drain(key):
            calls.append(key)
            if len(calls) < 3:
                raise OSError("database is locked")

        workers = KeyedWorkers(drain, "test")
        workers.notify("a")
        for _ in range(100):
            if len(calls) >= 3 and not workers.busy:
                break
            await asyncio.sleep(0.05)
        await workers.stop()
        return calls

    assert asyncio.run(scenario()) == ["a", "a", "a"]


async def test_rasa_answering_garbage_is_retried_then_a_person_is_called(tmp_path, rasa):
    rasa.answers_garbage = True
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings, retry=GIVE_UP_FAST) as app, \
            client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("poison", 0))
        await eventually(lambda: app.ctx.gateway.store.open_handoff_for("api:poison"),
                         timeout=10)
        handoff = app.ctx.gateway.store.open_handoff_for("api:poison")
        assert (handoff["reason"], handoff["priority"]) == ("bot_failed", "high")
        assert "not JSON" in handoff["summary"]
        # The conversation is not wedged: the next message goes through.
        rasa.answers_garbage = False
        await http.post("/api/v1/messages", json=dm("poison", 1))
        await eventually(lambda: rasa.texts_for("api:poison") == ["message 1"])
        await app.ctx.gateway.idle()
    statuses = [m.status for m in inbound(settings, "api:poison")]
    assert statuses == ["dead", "done"]
    said = outbound_texts(settings, "api:poison")
    assert any("passed your message to our team" in t for t in said)
    # While a person has it, the bot's own answer is not sent over theirs.
    assert "echo: message 1" not in said


async def test_redrive_queues_dead_letters_again_and_a_running_gateway_takes_them(
        tmp_path, rasa, monkeypatch, capsys):
    rasa.answers_garbage = True
    settings = gateway_settings(tmp_path, rasa.url)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings, retry=GIVE_UP_FAST) as app, \
            client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("later", 0))
        await eventually(lambda: [m.status for m in inbound(settings, "api:later")] == ["dead"],
                         timeout=10)
        assert await asyncio.to_thread(redrive.main, ["list"]) == 0
        assert "1 dead letter(s)" in capsys.readouterr().out
        rasa.answers_garbage = False  # the cause is fixed
        assert await asyncio.to_thread(redrive.main, ["run"]) == 0
        await eventually(lambda: [m.status for m in inbound(settings, "api:later")] == ["done"],
                         timeout=15)
        await app.ctx.gateway.idle()
    assert rasa.texts_for("api:later") == ["message 0"]


async def test_a_reply_telegram_never_takes_is_a_dead_letter_and_the_next_still_goes(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    for _ in range(40):  # Telegram's servers fail for longer than the retry period
        fake.fail_next("sendMessage", status=502, retry_after=None)
    async with running_gateway(telegram_settings(tmp_path, rasa, fake),
                               retry=GIVE_UP_FAST) as app:
        fake.push_update(fake.text_update(CHAT, "hello"))
        conversation = f"telegram:{CHAT}"
        await eventually(lambda: app.ctx.gateway.store.open_handoff_for(conversation),
                         timeout=15)
        handoff = app.ctx.gateway.store.open_handoff_for(conversation)
        assert handoff["reason"] == "delivery_failed"
        statuses = [m.status for m in app.ctx.gateway.store.transcript(conversation)
                    if m.direction == "out"]
        assert "dead" in statuses


def test_retry_periods_come_from_the_environment():
    from bot.gateway.settings import Settings

    settings = Settings.from_env({"BOT_RETRY_MINUTES": "15", "DELIVERY_RETRY_HOURS": "6",
                                  "RASA_TIMEOUT_SECONDS": "400"})
    assert (settings.bot_retry_minutes, settings.delivery_retry_hours,
            settings.rasa_timeout_seconds) == (15, 6, 400)
    assert FAST_RETRY.bot_give_up_after == 3600  # tests wait for Rasa as production does


async def test_a_rasa_still_loading_its_model_hands_the_message_to_the_next_one():
    """A restarted Rasa answers 503 until its model is loaded: that took nothing in,
    so the conversation goes on at once on the other Rasa instead of backing off."""
    from bot.gateway.rasa_client import RasaClient, RasaUnavailableError
    from tests.gateway_support import RasaStandIn

    loading, ready = RasaStandIn(not_ready=True), RasaStandIn()
    await loading.start()
    await ready.start()
    client_ = RasaClient(f"{loading.url},{ready.url}")
    try:
        conversation = next(f"api:c{n}" for n in range(100)
                            if client_.route(f"api:c{n}")[0] == loading.url)
        reply = await client_.send(conversation, "hello", message_id="gw-1")
        assert [m.text for m in reply.messages] == ["echo: hello"]
        assert ready.texts_for(conversation) == ["hello"]

        alone = RasaClient(loading.url)  # no other Rasa: unavailable, retried later
        try:
            with pytest.raises(RasaUnavailableError, match="no model loaded yet"):
                await alone.send(conversation, "hello again", message_id="gw-2")
        finally:
            await alone.close()
    finally:
        await client_.close()
        await loading.stop()
        await ready.stop()


def test_rasa_retries_wait_at_most_half_a_minute():
    policy = RetryPolicy()
    assert max(policy.delay(n, cap=policy.bot_max_delay) for n in range(1, 30)) <= 30 * 1.2
    assert max(policy.delay(n) for n in range(1, 30)) > 200  # channels keep their patience
