"""The agents' web inbox: accounts, no data without login, CSRF, and a real browser."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import sqlalchemy as sa

from bot.brand import PROJECT_ROOT
from bot.gateway.agents.accounts import add_agent, check_password, hash_password
from bot.gateway.messages import InboundMessage, OutboundMessage
from bot.gateway.store import Store
from tests.gateway_support import (
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    inbox_sign_in,
    running_gateway,
)

PASSWORD = "correct horse battery"


def dm(text, message_id):
    return {"channel": "api", "conversation_id": "c1", "sender_name": "Amara Okafor",
            "text": text, "channel_message_id": message_id}


def test_passwords_are_stored_hashed_and_checked_in_constant_time():
    stored = hash_password(PASSWORD)
    assert PASSWORD not in stored and stored.startswith("scrypt$")
    assert hash_password(PASSWORD) != stored  # salted
    assert check_password(PASSWORD, stored)
    assert not check_password("wrong password", stored)
    assert not check_password(PASSWORD, "garbage")


def test_the_cli_creates_accounts_and_rejects_weak_passwords(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}"}
    command = [sys.executable, "-m", "bot.gateway.agents.accounts", "add", "sam",
               "--name", "Sam Patel", "--password-stdin"]
    ok = subprocess.run(command, input=PASSWORD + "\n", text=True, capture_output=True,
                        cwd=PROJECT_ROOT, env=env)
    assert ok.returncode == 0, ok.stderr
    weak = subprocess.run(command, input="short\n", text=True, capture_output=True,
                          cwd=PROJECT_ROOT, env=env)
    assert weak.returncode == 2 and "at least 10 characters" in weak.stderr


async def test_no_customer_data_without_signing_in(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings), client(settings, auth) as http:
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        assert (await http.get("/inbox/")).headers["location"] == "/inbox/login"
        assert (await http.get("/inbox/handoffs/1")).status_code == 302
        assert (await http.get("/inbox/queue")).status_code == 401
        assert (await http.get("/inbox/events")).status_code == 401
        mark = await http.post("/inbox/messages/1/misunderstood", data={"handoff": "1"})
        assert mark.headers["location"] == "/inbox/login"
        wrong = await inbox_sign_in(http, "sam", "x")
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text


async def test_forms_without_the_csrf_token_are_refused(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        add_agent(app.ctx.gateway.store, "sam", "Sam Patel", PASSWORD)
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        await eventually(lambda: app.ctx.gateway.store.handoff(1))
        login = await inbox_sign_in(http, "sam", PASSWORD)
        assert login.status_code == 303
        forged = await http.post("/inbox/handoffs/1/resolve", data={"csrf": "forged"})
        assert forged.status_code == 403
        assert app.ctx.gateway.store.handoff(1)["status"] == "open"


async def test_an_agent_works_a_handoff_in_the_browser(tmp_path, rasa, browser_page):
    page = browser_page
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        store = app.ctx.gateway.store
        add_agent(store, "sam", "Sam Patel", PASSWORD)
        base = f"http://{settings.host}:{settings.port}"
        await page.goto(f"{base}/inbox/")
        await page.fill("input[name=username]", "sam")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button:has-text('Sign in')")
        await page.locator("text=No one is waiting").wait_for()

        # A customer asks for a person: the queue updates live, no reload.
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        row = page.locator("tr[data-handoff='1']")
        await row.wait_for(timeout=10_000)
        assert "🟠 high" in await row.inner_text()
        assert "Wants: Check on an order" in await row.inner_text()

        await row.locator("a").click()
        await page.locator("text=Reason >> visible=true").first.wait_for()  # not the queue pane's
        assert "JL-204815" in await page.content()
        await page.fill("textarea[name=text] >> nth=0", "Hi Amara, Sam here. On it!")
        await page.click("button:has-text('Send reply')")
        await page.locator(".msg.out", has_text="Sam here").wait_for()
        await app.ctx.gateway.idle()
        agent_lines = [m.text for m in store.transcript("api:c1") if m.kind == "agent"]
        assert agent_lines == ["Hi Amara, Sam here. On it!\n\n— Sam, Juniper Lane"]

        # The customer writes back: it appears in the open conversation, live.
        await http.post("/api/v1/messages", json=dm("thank you so much", "m2"))
        await page.locator(".msg.in", has_text="thank you so much").wait_for(timeout=10_000)

        await page.click("button:has-text('Resolve')")
        await page.locator("#status", has_text="resolved").wait_for()
        assert store.handoff(1)["status"] == "resolved"
        assert rasa.resumed


def test_marks_are_one_per_customer_message_and_survive_in_older_databases(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    store = Store(url)
    with store.engine.begin() as db:  # a database made before marks existed
        db.execute(sa.text("DROP TABLE misunderstood_marks"))
    store = Store(url)
    asked = store.receive(InboundMessage(channel="api", external_id="c1",
                                         channel_message_id="m1", text="wher is my parcle"),
                          ack=OutboundMessage("Hi!")).message_id
    ack = store.transcript("api:c1")[-1]
    assert ack.direction == "out"

    store.mark_misunderstood(asked, "Sam Patel")
    store.mark_misunderstood(asked, "Lee Wong", note="order status")  # once, updated
    [mark] = store.misunderstood_messages()
    assert mark["text"] == "wher is my parcle" and mark["conversation_id"] == "api:c1"
    assert (mark["agent"], mark["note"], mark["message_id"]) == ("Lee Wong", "order status",
                                                                 asked)
    assert mark["marked_at"] >= mark["sent_at"]
    assert store.misunderstood_ids("api:c1") == {asked: "Lee Wong"}

    with pytest.raises(ValueError, match="not a customer's message"):
        store.mark_misunderstood(ack.id, "Sam Patel")
    with pytest.raises(ValueError, match="no message"):
        store.mark_misunderstood(9999, "Sam Patel")
    store.unmark_misunderstood(asked)
    store.unmark_misunderstood(asked)  # undoing twice is harmless
    assert store.misunderstood_messages() == [] and store.misunderstood_ids("api:c1") == {}


async def agent_and_handoff(app, http):
    """An agent account, and a customer who asked for a person (handoff 1)."""
    store = app.ctx.gateway.store
    add_agent(store, "sam", "Sam Patel", PASSWORD)
    await http.post("/api/v1/messages", json=dm("human please", "m1"))
    await eventually(lambda: store.handoff(1))
    return store


async def test_marks_need_the_csrf_token_and_a_customer_message(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        store = await agent_and_handoff(app, http)
        await inbox_sign_in(http, "sam", PASSWORD)
        transcript = store.transcript("api:c1")
        customer = next(m for m in transcript if m.direction == "in")
        bot = next(m for m in transcript if m.kind == "reply")
        # The live transcript carries the buttons, with the form's token.
        fragment = (await http.get("/inbox/handoffs/1/transcript")).text
        csrf = re.search(r"name=csrf value='([^']+)'", fragment).group(1)
        assert f"/inbox/messages/{customer.id}/misunderstood" in fragment
        assert f"/inbox/messages/{bot.id}/misunderstood" not in fragment

        forged = await http.post(f"/inbox/messages/{customer.id}/misunderstood",
                                 data={"csrf": "forged", "handoff": "1"})
        assert forged.status_code == 403
        reply = await http.post(f"/inbox/messages/{bot.id}/misunderstood",
                                data={"csrf": csrf, "handoff": "1"})
        assert reply.status_code == 400 and "not a customer's message" in reply.text
        unknown = await http.post("/inbox/messages/9999/misunderstood",
                                  data={"csrf": csrf, "handoff": "1"})
        assert unknown.status_code == 400 and "no message 9999" in unknown.text
        assert store.misunderstood_messages() == []

        marked = await http.post(f"/inbox/messages/{customer.id}/misunderstood",
                                 data={"csrf": csrf, "handoff": "1"})
        assert marked.status_code == 303 and marked.headers["location"] == "/inbox/handoffs/1"
        assert "marked: bot misunderstood · Sam Patel" in (
            await http.get("/inbox/handoffs/1/transcript")).text


async def test_an_agent_marks_what_the_bot_misunderstood_in_the_browser(tmp_path, rasa,
                                                                      browser_page):
    page = browser_page
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        store = await agent_and_handoff(app, http)
        base = f"http://{settings.host}:{settings.port}"
        await page.goto(f"{base}/inbox/handoffs/1")
        await page.fill("input[name=username]", "sam")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button:has-text('Sign in')")
        await page.locator("tr[data-handoff='1'] a").click()

        customer = page.locator(".msg.in", has_text="human please")
        assert await page.locator(".msg.out button:has-text('Bot misunderstood')").count() == 0
        await customer.locator("button:has-text('Bot misunderstood')").click()
        await customer.locator("text=marked: bot misunderstood · Sam Patel").wait_for()
        [mark] = store.misunderstood_messages()
        assert (mark["text"], mark["agent"]) == ("human please", "Sam Patel")

        await customer.locator("button:has-text('Undo')").click()
        await customer.locator("button:has-text('Bot misunderstood')").wait_for()
        assert await customer.locator("text=marked:").count() == 0
        assert store.misunderstood_messages() == []


HOSTILE = '<script>alert(1)</script>"onmouseover='  # one word: a first name fits it too
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&#34;onmouseover="


async def test_what_customers_and_agents_write_shows_as_text_not_html(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings,
                                                        await bridge_auth(settings)) as http:
        store = app.ctx.gateway.store
        add_agent(store, "sam", "Sam Patel", PASSWORD)
        for text, message_id in (("human please", "m1"), ("see " + HOSTILE, "m2")):
            await http.post("/api/v1/messages",
                            json={**dm(text, message_id), "sender_name": HOSTILE + " Okafor"})
            await eventually(lambda: store.handoff(1))
        await app.ctx.gateway.idle()
        await inbox_sign_in(http, "sam", PASSWORD)
        page = (await http.get("/inbox/handoffs/1")).text
        csrf = re.search(r"name=csrf value='([^']+)'", page).group(1)
        await http.post("/inbox/handoffs/1/notes", data={"csrf": csrf, "text": "note " + HOSTILE})

        page = (await http.get("/inbox/handoffs/1")).text
        queue = (await http.get("/inbox/queue")).text  # the live feed's fragments
        transcript = (await http.get("/inbox/handoffs/1/transcript")).text
        for html in (page, queue, transcript):
            assert "<script>alert(" not in html and '"onmouseover=' not in html
        for shown in (f"<h2>{ESCAPED} · ", "see " + ESCAPED, "note " + ESCAPED):
            assert shown in page
        assert f">{ESCAPED}</a>" in queue and "see " + ESCAPED in transcript
