"""One handoff desk behind every agent surface: they agree, and a dead Rasa changes nothing."""

from __future__ import annotations

import asyncio
import re

from bot.gateway.agents.accounts import add_agent
from tests.gateway_support import (
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    inbox_sign_in,
    running_gateway,
)

TOKEN = "agent-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "correct horse battery"
CUSTOMER = 5551001
AGENTS = -100900200


def dm(text, message_id):
    return {"channel": "api", "conversation_id": "c1", "sender_name": "Amara Okafor",
            "text": text, "channel_message_id": message_id}


def telegram_settings(tmp_path, rasa, fake, **changes):
    return gateway_settings(tmp_path, rasa.url, telegram_bot_token=fake.token,
                            telegram_api_base_url=fake.base_url,
                            telegram_agent_chat_id=str(AGENTS), **changes)


def agent_reply(fake, to_message, text, agent="Priya"):
    update = fake.text_update(AGENTS, text, first_name=agent, chat_type="supergroup")
    update["message"]["reply_to_message"] = to_message
    fake.push_update(update)


async def sign_in(http, app):
    await asyncio.to_thread(add_agent, app.ctx.gateway.store, "sam", "Sam Patel", PASSWORD)
    login = await inbox_sign_in(http, "sam", PASSWORD)
    assert login.status_code == 303


async def csrf_for(http, handoff_id):
    page = (await http.get(f"/inbox/handoffs/{handoff_id}")).text
    return re.search(r"name=csrf value='([^']+)'", page).group(1)


def card_text(fake):
    """The card as it reads now, after any edits."""
    card = fake.sent_messages(AGENTS)[0]
    edits = [c for c in fake.calls_of("editMessageText")
             if int(c["message_id"]) == card["message_id"]]
    return edits[-1]["text"] if edits else card["text"]


async def test_a_claim_in_the_inbox_shows_on_the_telegram_card_and_vice_versa(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    settings = telegram_settings(tmp_path, rasa, fake)
    async with running_gateway(settings) as app, client(settings) as http:
        fake.push_update(fake.text_update(CUSTOMER, "human please", first_name="Amara"))
        [card] = await fake.wait_for_sent(AGENTS, 1)
        assert "Status: open" in card["text"]
        await sign_in(http, app)

        claimed = await http.post("/inbox/handoffs/1/claim",
                                  data={"csrf": await csrf_for(http, 1)})
        assert claimed.status_code == 303
        await eventually(lambda: "Status: claimed by Sam Patel" in card_text(fake))
        posts = await fake.wait_for_sent(AGENTS, 2)
        assert posts[-1]["text"] == "Claimed by Sam Patel (web inbox)."
        assert posts[-1]["reply_to_message_id"] == fake.sent_messages(AGENTS)[0]["message_id"]

        # Claimed again in Telegram: the inbox's queue says so.
        agent_reply(fake, fake.sent_messages(AGENTS)[0], "/claim")
        await eventually(lambda: "Status: claimed by Priya" in card_text(fake))
        queue = (await http.get("/inbox/queue")).text
        assert "claimed · Priya" in queue

        # A reply from the inbox reaches the agents' group too.
        await http.post("/inbox/handoffs/1/reply",
                        data={"csrf": await csrf_for(http, 1), "text": "On it, Amara."})
        posts = await eventually(lambda: [p for p in fake.sent(AGENTS)
                                          if "replied: On it, Amara." in p["text"]])
        assert posts[0]["text"] == "Sam Patel (web inbox) replied: On it, Amara."


async def test_a_resolve_in_telegram_updates_the_inbox_live(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    settings = telegram_settings(tmp_path, rasa, fake)
    async with running_gateway(settings) as app, client(settings) as http:
        fake.push_update(fake.text_update(CUSTOMER, "human please", first_name="Amara"))
        await fake.wait_for_sent(AGENTS, 1)
        await sign_in(http, app)
        assert "data-handoff=1" in (await http.get("/inbox/queue")).text

        feed = app.ctx.inbox_events.subscribe()  # what /inbox/events streams to each page
        agent_reply(fake, fake.sent_messages(AGENTS)[0], "/resolve")
        assert await asyncio.wait_for(feed.get(), timeout=10) == "queue"
        await eventually(lambda: asyncio.to_thread(
            lambda: app.ctx.gateway.store.handoff(1)["status"] == "resolved"))
        assert "data-handoff=1" not in (await http.get("/inbox/queue")).text
        assert "resolved" in (await http.get("/inbox/handoffs/1")).text
        await eventually(lambda: "Status: resolved by Priya" in card_text(fake))


async def test_the_agent_api_answers_503_and_changes_nothing_when_rasa_is_down(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=TOKEN)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        await eventually(lambda: asyncio.to_thread(app.ctx.gateway.store.handoff, 1))
        await app.ctx.gateway.idle()
        before = (await http.get("/api/v1/handoffs/1", headers=AUTH)).json()
        await rasa.stop()

        down = await http.post("/api/v1/handoffs/1/resolve", headers=AUTH, json={"agent": "Sam"})
        assert down.status_code == 503
        assert "bot is unavailable" in down.json()["error"]
        after = (await http.get("/api/v1/handoffs/1", headers=AUTH)).json()
        assert after == before  # still open, unclaimed, no rating question queued
        assert [m["kind"] for m in after["transcript"]].count("csat") == 0

        await rasa.start()  # back on the same port: the same call now works
        up = await http.post("/api/v1/handoffs/1/resolve", headers=AUTH, json={"agent": "Sam"})
        assert (up.status_code, up.json()["status"]) == (200, "resolved")
        again = await http.post("/api/v1/handoffs/1/claim", headers=AUTH, json={"agent": "Sam"})
        assert again.status_code == 409  # one rule for every action on a resolved handoff


async def test_a_hand_back_rasa_half_takes_leaves_the_handoff_open_and_can_be_retried(
        tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=TOKEN)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        await eventually(lambda: asyncio.to_thread(app.ctx.gateway.store.handoff, 1))
        rasa.hand_back_fails = True  # Rasa lifts the pause, but its action fails

        failed = await http.post("/api/v1/handoffs/1/resolve", headers=AUTH,
                                 json={"agent": "Sam"})
        assert failed.status_code == 503
        handoff = (await http.get("/api/v1/handoffs/1", headers=AUTH)).json()
        assert handoff["status"] == "open"
        assert [m["kind"] for m in handoff["transcript"]].count("csat") == 0

        rasa.hand_back_fails = False
        retried = await http.post("/api/v1/handoffs/1/resolve", headers=AUTH,
                                  json={"agent": "Sam"})
        assert retried.json()["status"] == "resolved"
        assert rasa.handed_back == ["api:c1"]
        await app.ctx.gateway.idle()
        handoff = (await http.get("/api/v1/handoffs/1", headers=AUTH)).json()
        assert [m["kind"] for m in handoff["transcript"]].count("csat") == 1


async def test_stopping_while_an_agent_command_is_handled_does_not_hang(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    settings = telegram_settings(tmp_path, rasa, fake)

    async def resolve_then_stop_at_once():
        async with running_gateway(settings) as app:
            fake.push_update(fake.text_update(CUSTOMER, "human please", first_name="Amara"))
            await fake.wait_for_sent(AGENTS, 1)
            # The card is known to the store a moment after Telegram has it.
            await eventually(lambda: asyncio.to_thread(app.ctx.gateway.store.card_for, 1))
            agent_reply(fake, fake.sent_messages(AGENTS)[0], "/resolve")
            await fake.wait_for_calls("editMessageText")  # mid-command: the card is updating

    await asyncio.wait_for(resolve_then_stop_at_once(), timeout=30)


async def test_an_agent_name_longer_than_its_column_is_a_400_on_postgresql(tmp_path, rasa):
    """The desk allowed 200 characters where the columns hold 100: PostgreSQL refused the
    write (a 500) while SQLite stored it. Now the name's limit is the columns'."""
    import uuid

    from bot.topology import create_database, drop_database
    from tests.conftest import service_or_skip

    host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    url = f"postgresql://postgres@{host}:{port}/desk_{uuid.uuid4().hex[:8]}"
    create_database(url)
    try:
        settings = gateway_settings(tmp_path, rasa.url, database_url=url,
                                    agent_api_token=TOKEN)
        auth = await bridge_auth(settings)
        async with running_gateway(settings) as app, client(settings, auth) as http:
            await http.post("/api/v1/messages", json=dm("human please", "m1"))
            [handoff] = await eventually(lambda: app.ctx.gateway.store.handoff_queue())
            for action, body in (("claim", {}), ("reply", {"text": "On it"}),
                                 ("notes", {"text": "checked"}), ("resolve", {})):
                answer = await http.post(f"/api/v1/handoffs/{handoff['id']}/{action}",
                                         json={"agent": "S" * 150, **body}, headers=AUTH)
                assert answer.status_code == 400, (action, answer.text)
                assert "name" in answer.json()["error"]
            claimed = await http.post(f"/api/v1/handoffs/{handoff['id']}/claim",
                                      json={"agent": "S" * 100}, headers=AUTH)
            assert claimed.status_code == 200 and claimed.json()["claimed_by"] == "S" * 100
    finally:
        drop_database(url)
