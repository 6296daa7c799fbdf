"""Follow-ups of handoffs: the customer's update past the promised reply time, the
check-back after a resolve, and agents' SLA alerts; each once, across restarts and
replicas. A controllable clock stands in for the minutes and hours that pass."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import List

import pytest

from bot.brand import brand
from bot.gateway.agents.accounts import add_agent
from bot.gateway.handoffs.desk import HandoffDesk
from bot.gateway.handoffs.follow_ups import (
    FollowUps,
    check_back_from_payload,
    check_back_payload,
    plain_answer,
)
from bot.gateway.handoffs.intake import handoff_request
from bot.gateway.messages import InboundMessage
from bot.gateway.store import Store
from bot.gateway.store.facade import AsyncStore
from bot.gateway.store.follow_ups import CANCELLED, CHECK_BACK, SLA_KINDS
from bot.handoff_contract import HandoffPayload
from bot.topology import create_database, drop_database
from tests.conftest import service_or_skip
from tests.gateway_support import (
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    inbox_sign_in,
    running_gateway,
)
from tests.test_telegram_agents import AGENTS, CUSTOMER, settings_for

PHONE, EMAIL = brand().contacts.phone, brand().contacts.email


class Clock:
    """Real time plus whatever the test moves it on by."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset

    def set(self, moment: float) -> None:
        import time

        self.offset = moment - time.time()


def dm(conversation: str, text: str, n: str) -> dict:
    return {"channel": "api", "conversation_id": conversation, "sender_name": "Amara Okafor",
            "text": text, "channel_message_id": n}


async def transcript(http, conversation: str) -> List[dict]:  # noqa: ANN001
    answer = await http.get(f"/api/v1/conversations/api:{conversation}/messages")
    assert answer.status_code == 200
    return answer.json()["messages"]


def follow_ups_sent(messages: List[dict]) -> List[dict]:
    return [m for m in messages if m["kind"] == "follow_up"]


async def handed_over(http, gateway, conversation: str = "c1") -> dict:  # noqa: ANN001
    """The customer asks for a person; the handoff, once its follow-ups are scheduled."""
    assert (await http.post("/api/v1/messages",
                            json=dm(conversation, "human please", f"{conversation}-1"))
            ).status_code == 202
    handoff = await eventually(lambda: gateway.db.open_handoff_for(f"api:{conversation}"))
    await eventually(lambda: gateway.db.follow_ups_of(handoff["id"]))
    return handoff


async def test_past_due_without_a_reply_the_customer_gets_one_update_and_moves_up(
        tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        gateway = app.ctx.gateway
        clock = gateway.follow_ups.now = Clock()
        handoff = await handed_over(http, gateway)
        assert handoff["priority"] == "high"

        clock.set(handoff["sla_due_at"] - 30)  # not yet: nothing for the customer
        await gateway.follow_ups.tick()
        await gateway.idle()
        assert follow_ups_sent(await transcript(http, "c1")) == []

        clock.set(handoff["sla_due_at"] + 1)
        for _ in range(3):  # however often the loop looks
            await gateway.follow_ups.tick()
        await gateway.idle()
        [update] = follow_ups_sent(await transcript(http, "c1"))
        assert update["text"].startswith("Still with us, Amara? Sorry, this is taking longer "
                                         "than we said. We've moved you up our queue")
        assert PHONE in update["text"] and EMAIL in update["text"]
        assert update["status"] == "sent"
        after = await gateway.db.handoff(handoff["id"])
        assert after["priority"] == "urgent"
        assert after["sla_due_at"] == handoff["sla_due_at"]  # the promise itself stands
        # The queue puts it first now: above a newer high-priority handoff.
        await handed_over(http, gateway, "c2")
        queue = await gateway.handoffs.queue()
        assert [h["id"] for h in queue][0] == handoff["id"]


async def test_an_agent_reply_before_due_means_no_update(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        gateway = app.ctx.gateway
        clock = gateway.follow_ups.now = Clock()
        handoff = await handed_over(http, gateway)
        await gateway.handoffs.reply(handoff["id"], "Sam Patel", "Hi Amara, looking now.", "api")
        clock.set(handoff["sla_due_at"] + 3600)
        await gateway.follow_ups.tick()
        await gateway.idle()
        assert follow_ups_sent(await transcript(http, "c1")) == []
        assert (await gateway.db.handoff(handoff["id"]))["priority"] == "high"
        rows = await gateway.db.follow_ups_of(handoff["id"])
        assert {r["kind"]: r["status"] for r in rows} == {k: CANCELLED for k in SLA_KINDS}


async def test_check_back_no_reopens_for_a_person_and_yes_is_thanked(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token="agent-secret")
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        gateway = app.ctx.gateway
        clock = gateway.follow_ups.now = Clock()
        first = await handed_over(http, gateway, "c1")
        second = await handed_over(http, gateway, "c2")
        resolved = {}
        for handoff in (first, second):
            await gateway.handoffs.reply(handoff["id"], "Sam Patel", "All done!", "api")
            resolved[handoff["id"]] = await gateway.handoffs.resolve(handoff["id"], "Sam Patel",
                                                                     "api")
        [check_back] = [r for r in await gateway.db.follow_ups_of(first["id"])
                        if r["kind"] == CHECK_BACK]
        hours = brand().follow_up.check_back_hours
        # (the first handoff's own resolve: the second's came a moment later)
        assert check_back["due_at"] >= resolved[first["id"]]["resolved_at"] + hours * 3600

        clock.set(check_back["due_at"] - 60)
        await gateway.follow_ups.tick()
        await gateway.idle()
        assert follow_ups_sent(await transcript(http, "c1")) == []
        clock.set(check_back["due_at"] + 1)
        await gateway.follow_ups.tick()
        await gateway.follow_ups.tick()
        await gateway.idle()
        [question] = follow_ups_sent(await transcript(http, "c1"))
        assert question["text"].startswith("Hi Amara, it's Juno from Juniper Lane")
        assert "Did that sort it out?" in question["text"]
        assert [b["title"] for b in question["buttons"]] == ["Yes, all sorted", "No, not yet"]

        # A plain "no": a person has it again, with the earlier context.
        assert (await http.post("/api/v1/messages", json=dm("c1", "No, not yet!", "c1-no"))
                ).status_code == 202
        reopened = await eventually(lambda: gateway.db.open_handoff_for("api:c1"))
        assert reopened["id"] not in (first["id"], second["id"])
        assert reopened["reason"] == "not_sorted"
        assert reopened["context"]["details"] == {"order_id": "JL-204815"}
        assert f"handoff #{first['id']}" in reopened["summary"]
        queue = await http.get("/api/v1/handoffs/", headers={
            "Authorization": "Bearer agent-secret"})
        assert reopened["id"] in [h["id"] for h in queue.json()["handoffs"]]
        await gateway.idle()
        said = [m for m in await transcript(http, "c1") if m["direction"] == "outbound"]
        assert said[-1]["text"].startswith("Sorry it's not sorted yet, Amara. I've passed it "
                                           "back to our team")
        assert "No, not yet!" not in rasa.texts_for("api:c1")  # answered by the gateway
        # ... and the reopened one has an SLA of its own.
        await eventually(lambda: gateway.db.follow_ups_of(reopened["id"]))

        # A tap on "Yes" in the other conversation: thanked, nothing reopened.
        await gateway.follow_ups.tick()
        await gateway.idle()
        [asked] = follow_ups_sent(await transcript(http, "c2"))
        yes = next(b["payload"] for b in asked["buttons"] if b["title"].startswith("Yes"))
        await gateway.receive(InboundMessage(channel="api", external_id="c2",
                                             channel_message_id="c2-yes", text="Yes, all sorted",
                                             sender_name="Amara Okafor", payload=yes))
        await gateway.idle()
        said = [m for m in await transcript(http, "c2") if m["direction"] == "outbound"]
        assert said[-1]["text"] == ("That's great to hear, Amara, thanks for letting us know! "
                                    "I'm here if you need anything else.")
        assert await gateway.db.open_handoff_for("api:c2") is None
        [row] = [r for r in await gateway.db.follow_ups_of(second["id"])
                 if r["kind"] == CHECK_BACK]
        assert row["outcome"] == "yes"
        # A second tap is thanked again, and changes nothing.
        await gateway.receive(InboundMessage(channel="api", external_id="c2",
                                             channel_message_id="c2-yes-again",
                                             text="No, not yet", payload=yes.replace("yes",
                                                                                     "no")))
        assert await gateway.db.open_handoff_for("api:c2") is None


async def test_a_restart_between_scheduling_and_due_time_still_sends_it_once(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        handoff = await handed_over(http, app.ctx.gateway)
    for _ in range(2):  # started again, twice, after the due time
        async with running_gateway(settings) as app, client(settings, auth) as http:
            gateway = app.ctx.gateway
            clock = gateway.follow_ups.now = Clock()
            clock.set(handoff["sla_due_at"] + 1)

            async def sent(gateway=gateway, http=http) -> list:  # noqa: ANN001
                await gateway.idle()
                return follow_ups_sent(await transcript(http, "c1"))

            assert len(await eventually(sent)) == 1  # the gateway's own loop found it
            await gateway.follow_ups.tick()
            assert len(await sent()) == 1


def _open_handoff(store: Store, conversation: str) -> dict:
    store.receive(InboundMessage(channel="api", external_id=conversation,
                                 channel_message_id=f"{conversation}-1", text="human please",
                                 sender_name="Amara"))
    row = store.next_inbound(f"api:{conversation}")
    request = handoff_request(HandoffPayload(priority="normal", summary="Wants a person"),
                              brand())
    handoff_id = store.complete_inbound(row.id, [], request)
    return store.handoff(handoff_id)


async def _two_schedulers_send_once(url: str) -> None:
    stores = [Store(url), Store(url)]
    clock = Clock()
    schedulers = []
    for store in stores:
        db = AsyncStore(store)
        desk = HandoffDesk(db, None, brand(), deliver=lambda _c: None, fit=lambda _c, m: m)
        schedulers.append(FollowUps(db, brand(), desk, deliver=lambda _c: None,
                                    fit=lambda _c, m: m, now=clock))
    handoff = await asyncio.to_thread(_open_handoff, stores[0], f"c-{uuid.uuid4().hex[:6]}")
    await asyncio.gather(*(s.schedule_missed() for s in schedulers))  # both schedule it
    clock.set(handoff["sla_due_at"] + 1)
    for _ in range(3):
        await asyncio.gather(*(s.tick() for s in schedulers))
    said = [m for m in await asyncio.to_thread(stores[1].transcript, handoff["conversation_id"])
            if m.kind == "follow_up"]
    assert len(said) == 1
    assert len(await asyncio.to_thread(stores[0].follow_ups_of, handoff["id"])) == 3
    # Erasing the conversation takes its follow-ups with it.
    erased = await asyncio.to_thread(stores[0].forget_conversation, handoff["conversation_id"])
    assert erased["follow_ups"] == 3
    for store in stores:
        store.engine.dispose()


async def test_two_schedulers_on_one_sqlite_store_send_once(tmp_path):
    await _two_schedulers_send_once(f"sqlite:///{tmp_path / 'shared.db'}")


async def test_two_schedulers_on_one_postgresql_store_send_once():
    host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    url = f"postgresql://postgres@{host}:{port}/follow_ups_{uuid.uuid4().hex[:8]}"
    create_database(url)
    try:
        await _two_schedulers_send_once(url)
    finally:
        drop_database(url)


async def test_sla_alerts_mark_the_queue_and_post_to_the_agents_group_once(
        tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    settings = settings_for(tmp_path, rasa, fake)
    async with running_gateway(settings) as app, client(settings) as http:
        gateway = app.ctx.gateway
        clock = gateway.follow_ups.now = Clock()
        await asyncio.to_thread(add_agent, gateway.store, "sam", "Sam Patel", "correct horse")
        assert (await inbox_sign_in(http, "sam", "correct horse")).status_code == 303
        fake.push_update(fake.text_update(CUSTOMER, "human please", first_name="Amara"))
        await fake.wait_for_sent(AGENTS, 1)  # the card
        handoff = await eventually(lambda: gateway.db.open_handoff_for(f"telegram:{CUSTOMER}"))
        await eventually(lambda: gateway.db.follow_ups_of(handoff["id"]))

        def row_html(page: str) -> str:
            return re.search(rf"<tr data-handoff={handoff['id']} .*?</tr>", page, re.S).group(0)

        assert "alert-" not in row_html((await http.get("/inbox/")).text)

        clock.set(handoff["sla_due_at"] - 10 * 60)  # past 80 % of the hour
        await gateway.follow_ups.tick()
        await gateway.follow_ups.tick()
        posts = await fake.wait_for_sent(AGENTS, 2)
        assert posts[1]["text"].startswith(f"⏰ Due in 10 min: handoff #{handoff['id']} · "
                                           "🟠 high · Amara")
        row = row_html((await http.get("/inbox/queue")).text)
        assert "alert-due-soon" in row and "<div class=alert>due soon</div>" in row

        clock.set(handoff["sla_due_at"] + 60)
        await gateway.follow_ups.tick()
        await gateway.follow_ups.tick()
        await gateway.idle()
        posts = await eventually(lambda: [p["text"] for p in fake.sent(AGENTS)
                                          if "Overdue" in p["text"]])
        assert posts[0].startswith(f"🔴 Overdue: handoff #{handoff['id']} · 🔴 urgent · Amara")
        row = row_html((await http.get("/inbox/")).text)
        assert "alert-overdue" in row and "<div class=alert>overdue</div>" in row
        customer = await fake.wait_for_sent(CUSTOMER, 3)
        assert customer[-1]["text"].startswith("Still with us, Amara?")
        await gateway.handoffs.surfaces.drain()
        texts = [p["text"] for p in fake.sent(AGENTS)]
        assert sum("Due in" in t for t in texts) == 1
        assert sum("Overdue" in t for t in texts) == 1
        assert any("the customer was sent an update" in t for t in texts)

        # An agent's reply: the row is no longer marked.
        await gateway.handoffs.reply(handoff["id"], "Sam Patel", "Sorry Amara, here now.",
                                     "inbox")
        assert "alert-" not in row_html((await http.get("/inbox/")).text)


class MetaLikeChannel:
    """A channel that may only write within 24 hours of the customer's last message."""

    name = "api"
    reply_window_seconds = 24 * 3600 - 60


async def test_nothing_is_sent_where_the_channel_no_longer_lets_us_write(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'window.db'}")
    db = AsyncStore(store)
    clock = Clock()
    desk = HandoffDesk(db, None, brand(), deliver=lambda _c: None, fit=lambda _c, m: m)
    follow_ups = FollowUps(db, brand(), desk, deliver=lambda _c: None, fit=lambda _c, m: m,
                           now=clock, channels={"api": MetaLikeChannel()})
    handoff = await asyncio.to_thread(_open_handoff, store, "late")
    await follow_ups.schedule_missed()
    clock.set(max(handoff["sla_due_at"], handoff["created_at"] + 25 * 3600))
    await follow_ups.tick()
    said = await asyncio.to_thread(store.transcript, "api:late")
    assert [m for m in said if m.kind == "follow_up"] == []  # no dead letter in the making
    assert (await db.handoff(handoff["id"]))["priority"] == "high"  # agents still see it rise
    store.engine.dispose()


@pytest.mark.parametrize("text, answer", [
    ("no", "no"), ("No, not yet!", "no"), ("nope", "no"), ("No it didn’t", "no"),
    ("Yes", "yes"), ("yes thanks", "yes"), ("👍", "yes"),
    ("no idea where my order is", None), ("yes I want a refund for JL-204815", None),
    ("", None)])
def test_plain_answers(text, answer):
    assert plain_answer(text) == answer


def test_check_back_payloads_round_trip_and_refuse_forgeries():
    payload = check_back_payload(2**31 - 1, "no")
    assert len(payload.encode()) <= 64  # Telegram's callback_data limit
    assert check_back_from_payload(payload) == (2**31 - 1, "no")
    for forged in ('/check_back{"follow_up":0,"answer":"no"}',
                   '/check_back{"follow_up":true,"answer":"no"}',
                   '/check_back{"follow_up":"7","answer":"no"}',
                   '/check_back{"follow_up":7,"answer":"maybe"}',
                   '/check_back{"follow_up":99999999999,"answer":"no"}',
                   '/check_back[1]', '/rate_service{"csat_score": 4}', None):
        assert check_back_from_payload(forged) is None
