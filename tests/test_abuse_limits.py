"""Abuse limits: a flood from one sender, bridge or address is bounded, and nothing is lost.

The findings these answer: 1,000 posts from one sender were all accepted and
all sent to Rasa; nothing bounded a bridge, a conversation's queue, or the
creation of web chats.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bot.gateway.flood_control import FloodControl
from bot.gateway.messages import InboundMessage, OutboundMessage
from bot.gateway.rate_limits import SlidingWindow
from bot.gateway.settings import Settings, SettingsError
from bot.gateway.store import ConversationQueueFullError, Store
from tests.conftest import service_or_skip
from tests.gateway_support import bridge_auth, client, eventually, gateway_settings, running_gateway
from tests.test_gateway_telegram import CHAT, telegram_settings, texts

SLOW_DOWN = "You're writing faster than I can keep up"


def dm(conversation: str, n: int) -> dict:
    return {"channel": "api", "conversation_id": conversation, "sender_name": "Amara",
            "text": f"message {n}", "channel_message_id": f"{conversation}-{n}"}


def statuses(settings: Settings, conversation_id: str) -> list:
    store = Store(settings.database_url)
    try:
        return [(m.text, m.status) for m in store.transcript(conversation_id)
                if m.direction == "in"]
    finally:
        store.engine.dispose()


# --- the counter -------------------------------------------------------------------------

def test_a_sliding_window_counts_per_key_and_forgets_after_its_window():
    window = SlidingWindow(limit=3, window_seconds=10)
    assert [window.take("a", now=t) for t in (0, 1, 2)] == [0, 0, 0]
    assert window.take("a", now=3) == 7  # the event at 0 leaves the window at 10
    assert window.take("b", now=3) == 0  # other keys are not affected
    assert window.take("a", now=10) == 0
    window.forget("a")
    assert window.wait("a", now=10) == 0


def test_a_limit_of_zero_is_off():
    window = SlidingWindow(limit=0, window_seconds=60)
    assert all(window.take("a", now=0) == 0 for _ in range(1000))


def test_a_window_keeps_bounded_memory_under_many_keys():
    window = SlidingWindow(limit=2, window_seconds=1, max_keys=100)
    for n in range(1000):
        window.add(f"sender-{n}", now=float(n))
    assert len(window._events) <= 101


def test_the_limits_come_from_the_environment():
    settings = Settings.from_env({"SENDER_MESSAGES_PER_MINUTE": "5",
                                  "QUEUED_MESSAGES_PER_CONVERSATION": "0",
                                  "BRIDGE_REQUESTS_PER_MINUTE": "100",
                                  "CHAT_SESSIONS_PER_HOUR": "3"})
    assert (settings.sender_messages_per_minute, settings.queued_messages_per_conversation,
            settings.bridge_requests_per_minute, settings.chat_sessions_per_hour) == (5, 0, 100, 3)
    with pytest.raises(SettingsError, match="SENDER_MESSAGES_PER_MINUTE"):
        Settings.from_env({"SENDER_MESSAGES_PER_MINUTE": "lots"})


# --- the store, on both databases ------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
        url = f"postgresql://postgres@{host}:{port}/test"
    store = Store(url)
    yield store
    store.engine.dispose()


def test_the_store_holds_caps_and_releases_only_the_newest_held_message(store):
    chat = f"cap-{uuid.uuid4().hex[:8]}"
    conversation = f"telegram:{chat}"

    def message(n: int) -> InboundMessage:
        return InboundMessage(channel="telegram", external_id=chat,
                              channel_message_id=str(n), text=f"m{n}")

    for n in range(2):
        assert not store.receive(message(n), queue_cap=2).held
    with pytest.raises(ConversationQueueFullError):
        store.receive(message(2), queue_cap=2)  # the APIs refuse: nothing stored
    held = [store.receive(message(n), queue_cap=2, hold_when_full=True,
                          hold_notice=OutboundMessage("slow down")) for n in (3, 4)]
    assert all(r.held for r in held)
    assert store.release_held(conversation, queue_cap=2) == 2  # still full: nothing moves
    for _ in range(2):
        store.complete_inbound(store.next_inbound(conversation).id, [])
    assert store.release_held(conversation, queue_cap=2) == 0
    assert store.next_inbound(conversation).text == "m4"
    assert [(m.text, m.status) for m in store.transcript(conversation)
            if m.direction == "in"] == [("m0", "done"), ("m1", "done"), ("m3", "skipped"),
                                        ("m4", "queued")]
    assert [m.text for m in store.transcript(conversation)
            if m.direction == "out"] == ["slow down"] * 2
    assert conversation not in store.conversations_with_held_inbound()


# --- the DM API: refused with 429 and Retry-After, nothing stored ------------------------

async def test_one_sender_flooding_the_api_is_refused_and_rasa_sees_only_its_limit(
        tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, sender_messages_per_minute=20)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        answers = [await http.post("/api/v1/messages", json=dm("flood", n)) for n in range(60)]
        other = await http.post("/api/v1/messages", json=dm("calm", 0))
        await app.ctx.gateway.idle()
    codes = [a.status_code for a in answers]
    assert codes[:20] == [202] * 20 and codes[20:] == [429] * 40
    refused = answers[20]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "too fast" in refused.json()["error"]
    assert other.status_code == 202  # another customer on the same bridge is served
    assert len(rasa.texts_for("api:flood")) == 20
    assert len(statuses(settings, "api:flood")) == 20  # refused means not stored


async def test_a_full_conversation_queue_is_refused_until_rasa_catches_up(tmp_path, rasa):
    rasa.delay = 0.5  # Rasa is slow: messages wait in the store
    settings = gateway_settings(tmp_path, rasa.url, queued_messages_per_conversation=3)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        codes = [(await http.post("/api/v1/messages", json=dm("slow", n))).status_code
                 for n in range(6)]
        assert codes.count(429) >= 2
        full = await http.post("/api/v1/messages", json=dm("slow", 99))
        assert full.status_code == 429 and full.headers["retry-after"] == "10"
        await app.ctx.gateway.idle()
        again = await http.post("/api/v1/messages", json=dm("slow", 99))
        assert again.status_code == 202  # the queue drained: the retry is taken


async def test_each_bridge_has_its_own_request_budget(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, bridge_requests_per_minute=5)
    busy, quiet = await bridge_auth(settings), await bridge_auth(settings)
    async with running_gateway(settings), client(settings) as http:
        codes = [(await http.get("/api/v1/conversations/api:x/messages",
                                 headers=busy)).status_code for _ in range(7)]
        assert codes == [404] * 5 + [429] * 2
        refused = await http.post("/api/v1/messages", headers=busy, json=dm("b", 0))
        assert refused.status_code == 429 and "requests a minute" in refused.json()["error"]
        assert (await http.post("/api/v1/messages", headers=quiet,
                                json=dm("b", 0))).status_code == 202


# --- the web chat -----------------------------------------------------------------------

async def test_web_chats_per_address_and_messages_per_chat_are_limited(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, chat_sessions_per_hour=2,
                                sender_messages_per_minute=3)
    async with running_gateway(settings), client(settings) as http:
        started = [await http.post("/chat/api/sessions") for _ in range(3)]
        assert [s.status_code for s in started] == [201, 201, 429]
        assert int(started[2].headers["retry-after"]) > 60
        chat = started[0].json()
        auth = {"Authorization": f"Bearer {chat['secret']}"}
        codes = [(await http.post("/chat/api/messages", headers=auth, json={
            "session": chat["session"], "text": f"hi {n}", "client_id": f"c{n}"})).status_code
            for n in range(4)]
        assert codes == [202, 202, 202, 429]


# --- Telegram: stored but held, one polite "slow down", one answer after ------------------

async def test_a_telegram_flood_is_stored_held_and_answered_once_when_it_passes(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    settings = telegram_settings(tmp_path, rasa, fake)
    async with running_gateway(settings) as app:
        gateway = app.ctx.gateway
        gateway.flood = FloodControl(per_minute=3, queue_cap=20, window_seconds=5.0)
        for n in range(8):
            fake.push_update(fake.text_update(CHAT, f"hello {n}"))
        await eventually(lambda: fake.pending_updates == 0)
        await eventually(lambda: any(SLOW_DOWN in t for t in texts(fake)))
        await eventually(lambda: [s for _, s in statuses(settings, f"telegram:{CHAT}")]
                         == ["done"] * 3 + ["held"] * 5)
        # The burst passes: the newest held message is answered, the rest are kept.
        await eventually(lambda: "echo: hello 7" in texts(fake), timeout=10)
        await gateway.idle()
    sent = texts(fake)
    assert sum(SLOW_DOWN in t for t in sent) == 1  # told once, not per message
    assert rasa.texts_for(f"telegram:{CHAT}") == ["hello 0", "hello 1", "hello 2", "hello 7"]
    assert [s for _, s in statuses(settings, f"telegram:{CHAT}")] == (
        ["done"] * 3 + ["skipped"] * 4 + ["done"])


async def test_a_photo_flood_gets_the_note_once_not_a_reply_per_photo(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(telegram_settings(tmp_path, rasa, fake)) as app:
        app.ctx.gateway.flood = FloodControl(per_minute=2, queue_cap=20)
        for _ in range(6):
            fake.push_update(fake.photo_update(CHAT))
        await eventually(lambda: fake.pending_updates == 0)
        await app.ctx.gateway.idle()
        await asyncio.sleep(0.2)
    sent = texts(fake)
    assert sum(SLOW_DOWN in t for t in sent) == 1
    assert sum(t.startswith("Thanks for sending that!") for t in sent) == 2
    assert rasa.received == []


async def test_held_messages_survive_a_restart_and_are_released_then(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    settings = telegram_settings(tmp_path, rasa, fake)
    async with running_gateway(settings) as app:
        app.ctx.gateway.flood = FloodControl(per_minute=1, queue_cap=20)
        for n in range(3):
            fake.push_update(fake.text_update(CHAT, f"part {n}"))
        await eventually(lambda: fake.pending_updates == 0)
        await eventually(lambda: [s for _, s in statuses(settings, f"telegram:{CHAT}")]
                         == ["done", "held", "held"])
    async with running_gateway(settings) as app:  # a new process: the burst is history
        await eventually(lambda: "echo: part 2" in texts(fake))
    assert rasa.texts_for(f"telegram:{CHAT}") == ["part 0", "part 2"]
