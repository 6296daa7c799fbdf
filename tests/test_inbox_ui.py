"""The inbox agents work in: queue beside the conversation, unread markers, reply-target badges,
earlier cases, canned replies, keyboard shortcuts, accessibility; with and without JavaScript."""

from __future__ import annotations

import html
import re

import pytest
import sqlalchemy as sa

from bot.brand import PROJECT_ROOT, load_brand
from bot.gateway.agents.accounts import add_agent
from bot.gateway.agents.canned import (
    CannedRepliesError,
    CannedReply,
    conversation_values,
    fill,
    load_canned_replies,
    parse_canned_replies,
)
from bot.gateway.agents.inbox_view import sla_badge
from bot.gateway.store.handoffs import HandoffRequest, insert_handoff
from bot.gateway.store.schema import handoffs
from tests.gateway_support import (
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    inbox_sign_in,
    running_gateway,
)
from tests.test_inbox import PASSWORD, dm

SCREENSHOT = PROJECT_ROOT / "reports" / "inbox.png"


def csrf_of(page: str) -> str:
    return re.search(r"name=csrf value='([^']+)'", page).group(1)


# --- canned replies ----------------------------------------------------------
def test_canned_replies_are_filled_with_the_customers_data():
    profile = load_brand()
    replies = load_canned_replies()  # the brand's own file loads and passes the checks
    assert {r.key for r in replies} >= {"greeting", "order_check"}
    values = conversation_values(profile, "Amara Okafor", "Sam Patel", {},
                                 ["hi", "it's about jl 204815 please"])
    order = CannedReply("x", "Order", "Hi {first_name}, {agent} from {brand} here: order "
                        "{order_number}. Call {phone} or mail {email}.")
    assert fill(order, values) == (
        f"Hi Amara, Sam from {profile.name} here: order JL-204815. "
        f"Call {profile.contacts.phone} or mail {profile.contacts.email}.")
    # The case's order number wins over one in the messages.
    case = conversation_values(profile, "Amara", "Sam", {"order_id": "JL-111111"},
                               ["JL-204815"])
    assert "JL-111111" in fill(order, case)
    # Unknown: a friendly word for the name, a visible gap for the order number.
    unknown = conversation_values(profile, None, "Sam", {}, ["no number here"])
    assert fill(order, unknown).startswith("Hi there, Sam") and "[order number]" in fill(
        order, unknown)
    # A customer's braces are data, never placeholders.
    braces = conversation_values(profile, "{brand}", "Sam", {}, [])
    assert fill(order, braces).startswith("Hi {brand}, ")


@pytest.mark.parametrize("raw, problem", [
    ([{"key": "a", "title": "A", "text": "Hi {frist_name}"}], "unknown placeholder"),
    ([{"key": "a", "title": "A", "text": "Hi {first_name"}], "a"),
    ([{"key": "a", "title": "A", "text": "x"}, {"key": "a", "title": "B", "text": "y"}],
     "unique"),
    ([{"key": "a", "title": "A"}], "exactly key, title and text"),
    ({"a": "b"}, "must be a list"),
])
def test_a_broken_canned_replies_file_is_refused_with_the_reason(raw, problem):
    with pytest.raises(CannedRepliesError, match=problem):
        parse_canned_replies(raw)


def test_a_broken_canned_replies_file_stops_the_gateway_starting(tmp_path, monkeypatch):
    broken = tmp_path / "canned.yml"
    broken.write_text("- key: hi\n  title: Hi\n  text: 'Hello {name}'\n", encoding="utf-8")
    monkeypatch.setenv("CANNED_REPLIES", str(broken))
    with pytest.raises(CannedRepliesError, match=r"unknown placeholder\(s\) \['name'\]"):
        load_canned_replies()


# --- badges and unread -------------------------------------------------------
def test_reply_target_badges_count_down_then_show_overdue():
    due = 10_000.0
    assert sla_badge(due, "open", due - 3600) == {"state": "ok", "text": "60 min left"}
    assert sla_badge(due, "claimed", due - 300) == {"state": "soon", "text": "5 min left"}
    assert sla_badge(due, "open", due + 125) == {"state": "overdue", "text": "overdue 2 min"}
    assert sla_badge(due, "open", due + 3 * 3600)["text"] == "overdue 3 h"
    assert sla_badge(due, "resolved", due + 60)["state"] == "none"


async def signed_in_with_a_handoff(app, http):
    store = app.ctx.gateway.store
    add_agent(store, "sam", "Sam Patel", PASSWORD)
    await http.post("/api/v1/messages", json=dm("human please", "m1"))
    await eventually(lambda: store.handoff(1))
    await app.ctx.gateway.idle()
    await inbox_sign_in(http, "sam", PASSWORD)
    return store


def unread_in(queue: str) -> bool:
    row = re.search(r"<tr data-handoff=1 [^>]*>.*?</tr>", queue, re.S).group(0)
    classes = re.search(r"class='([^']*)'", row).group(1).split()
    return "unread" in classes and "New from the customer" in row


async def test_unread_until_an_agent_answers_and_again_when_the_customer_writes(tmp_path,
                                                                                 rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings,
                                                        await bridge_auth(settings)) as http:
        await signed_in_with_a_handoff(app, http)
        queue = (await http.get("/inbox/queue")).text
        assert unread_in(queue)
        assert "<div class='sla sla-ok'>" in queue and " left</div>" in queue

        page = (await http.get("/inbox/handoffs/1")).text
        await http.post("/inbox/handoffs/1/reply", data={"csrf": csrf_of(page),
                                                         "text": "On it, Amara."})
        assert not unread_in((await http.get("/inbox/queue")).text)

        await http.post("/api/v1/messages", json=dm("thanks!", "m2"))
        await app.ctx.gateway.idle()
        assert unread_in((await http.get("/inbox/queue")).text)


async def test_the_open_handoff_lists_the_customers_earlier_cases(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings,
                                                        await bridge_auth(settings)) as http:
        store = await signed_in_with_a_handoff(app, http)
        opened = store.handoff(1)["created_at"] - 7 * 86400  # a week before
        with store.engine.begin() as db:
            earlier = insert_handoff(db, "api:c1", HandoffRequest(
                "complaint", "normal", "Parcel arrived damaged", {}, opened + 3600), opened)
            db.execute(handoffs.update().where(handoffs.c.id == earlier).values(
                status="resolved", resolved_at=opened + 1800, claimed_by="Lee Wong", csat=4))

        page = (await http.get("/inbox/handoffs/1")).text
        panel = re.search(r"Earlier conversations</h3>(.*?)</section>", page, re.S).group(1)
        assert f"href=/inbox/handoffs/{earlier}>" in panel
        for shown in ("complaint", "resolved", "Lee Wong", "CSAT 4/5", "Parcel arrived damaged"):
            assert shown in panel
        assert "href=/inbox/handoffs/1>" not in panel  # not the open one itself

        # The earlier case lists the later one, and the queue is beside it.
        older = (await http.get(f"/inbox/handoffs/{earlier}")).text
        assert "href=/inbox/handoffs/1>" in re.search(
            r"Earlier conversations</h3>(.*?)</section>", older, re.S).group(1)
        assert "<nav class=pane aria-label=Queue>" in older


async def test_a_canned_reply_fills_the_reply_box_without_javascript(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings,
                                                        await bridge_auth(settings)) as http:
        await signed_in_with_a_handoff(app, http)
        page = (await http.get("/inbox/handoffs/1?canned=order_check")).text
        box = re.search(r"<textarea id=reply [^>]*>(.*?)</textarea>", page, re.S).group(1)
        assert html.unescape(box).startswith("Thanks, Amara. I'm checking order JL-204815")
        # Every canned button carries its filled text for the script, and a GET fallback.
        assert "name=canned value=greeting" in page
        assert "data-text='Hi Amara, thanks for waiting. I&#39;m Sam from the Juniper Lane" in page
        unknown = (await http.get("/inbox/handoffs/1?canned=%3Cscript%3E")).text
        assert re.search(r"<textarea id=reply [^>]*></textarea>", unknown)


async def test_the_script_and_stylesheet_are_served_from_the_package_under_the_csp(tmp_path,
                                                                                    rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings, await bridge_auth(settings)) as http:
        login = await http.get("/inbox/login")
        assert "<link rel=stylesheet href=/inbox/static/inbox.css>" in login.text
        assert "<script src=/inbox/static/inbox.js defer></script>" in login.text
        script = await http.get("/inbox/static/inbox.js")
        style = await http.get("/inbox/static/inbox.css")
        assert script.status_code == style.status_code == 200  # public: the sign-in page
        assert script.headers["content-type"].startswith("text/javascript")
        assert style.headers["content-type"].startswith("text/css")
        assert script.headers["x-content-type-options"] == "nosniff"
        assert "addEventListener('keydown'" in script.text and ".sla-overdue" in style.text
        policy = dict(part.strip().split(" ", 1) for part in
                      login.headers["content-security-policy"].split(";"))
        assert "'self'" in policy["script-src"].split() and "'self'" in policy[
            "style-src"].split()
        assert "http" not in policy["script-src"]  # nothing from another origin


# --- in a real browser -------------------------------------------------------
# An axe-like check, small: every visible control has an accessible name, every visible
# text meets WCAG AA contrast against its background, and the landmarks are there.
AUDIT = """() => {
  const visible = (el) => el.getClientRects().length > 0 &&
    getComputedStyle(el).visibility !== 'hidden';
  const named = (el) => (el.labels && el.labels.length) || el.getAttribute('aria-label') ||
    el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim());
  const unlabelled = [...document.querySelectorAll(
      'input:not([type=hidden]), textarea, select, button')]
    .filter((el) => visible(el) && !named(el)).map((el) => el.outerHTML.slice(0, 80));
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => { for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3); }
    return [255, 255, 255]; };
  const low = [];
  for (const el of document.querySelectorAll('body *')) {
    const text = [...el.childNodes].filter((n) => n.nodeType === 3)
      .map((n) => n.textContent.trim()).join('').replace(/[^\\p{L}\\p{N}]/gu, '');
    if (!text || !visible(el)) continue;
    const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push(`${text.slice(0, 30)}: ${ratio.toFixed(2)}`);
  }
  const landmarks = ['header', 'nav', 'main'].filter((s) => !document.querySelector(s));
  return {unlabelled, low, missing: landmarks};
}"""
FOCUS_SHOWN = """() => { const s = getComputedStyle(document.activeElement);
  return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; }"""


def box_of(element):
    return element.bounding_box()


async def sign_in(page, base):
    await page.goto(f"{base}/inbox/")
    await page.fill("input[name=username]", "sam")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button:has-text('Sign in')")


async def test_agents_work_from_the_keyboard_with_the_queue_beside_the_conversation(
        tmp_path, rasa, browser_page):
    page = browser_page
    await page.set_viewport_size({"width": 1366, "height": 768})
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings,
                                                        await bridge_auth(settings)) as http:
        store = app.ctx.gateway.store
        add_agent(store, "sam", "Sam Patel", PASSWORD)
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        await eventually(lambda: store.handoff(1))
        base = f"http://{settings.host}:{settings.port}"
        await sign_in(page, base)
        row = page.locator("tr[data-handoff='1']")
        assert "New from the customer" in await row.locator(".dot").get_attribute("aria-label")

        # j moves to the first conversation in the queue; Enter opens it.
        await page.keyboard.press("j")
        assert await page.evaluate("document.activeElement.textContent") == "Amara"
        await page.keyboard.press("Enter")
        await page.locator("#reply").wait_for()

        # Two panes and the case beside them, in a row.
        queue, main = page.locator("nav.pane"), page.locator("main")
        aside = page.locator("aside.context")
        q, m, a = await queue.bounding_box(), await main.bounding_box(), await aside.bounding_box()
        assert q["x"] + q["width"] <= m["x"] and m["x"] + m["width"] <= a["x"]
        assert abs(q["y"] - m["y"]) < 5 and q["width"] >= 250 and m["width"] >= 500
        assert await page.locator("nav.pane tr[aria-current=true]").count() == 1

        # Shortcuts never fire while typing; outside a text box they do.
        await page.focus("#note")
        await page.keyboard.type("ce")
        assert store.handoff(1)["status"] == "open"
        await page.locator("#note").fill("")
        await page.locator("main h2").click()
        async with page.expect_navigation():
            await page.keyboard.press("c")
        await page.locator("#status", has_text="claimed").wait_for()
        assert store.handoff(1)["claimed_by"] == "Sam Patel"
        await page.keyboard.press("r")
        assert await page.evaluate("document.activeElement.id") == "reply"

        # A canned reply by click, filled for Amara, sent: it reaches her transcript.
        await page.keyboard.type("Hello again.")
        await page.click("button:has-text('Checking the order')")
        typed = await page.input_value("#reply")
        assert typed == ("Hello again. Thanks, Amara. I'm checking order JL-204815 with our "
                         "warehouse and will come back to you here shortly.")
        await page.click("button:has-text('Send reply')")
        await page.locator(".msg.out", has_text="checking order JL-204815").wait_for()
        await app.ctx.gateway.idle()
        [sent] = [m.text for m in store.transcript("api:c1") if m.kind == "agent"]
        assert sent.startswith(typed) and sent.endswith("— Sam, Juniper Lane")

        # The number keys insert canned replies too; ? opens the help, Esc closes it.
        await page.locator("main h2").click()
        await page.keyboard.press("1")
        assert (await page.input_value("#reply")).startswith("Hi Amara, thanks for waiting.")
        await page.locator("main h2").click()
        await page.keyboard.press("?")
        await page.locator("#shortcuts").wait_for()
        assert "Claim the conversation" in await page.locator("#shortcuts").inner_text()
        await page.keyboard.press("Escape")
        await page.locator("#shortcuts").wait_for(state="hidden")

        # Accessibility: names, contrast, landmarks, and focus that shows.
        audit = await page.evaluate(AUDIT)
        assert audit == {"unlabelled": [], "low": [], "missing": []}
        assert await page.locator("aside").count() == 1
        for _ in range(4):
            await page.keyboard.press("Tab")
            assert await page.evaluate(FOCUS_SHOWN), await page.evaluate(
                "document.activeElement.outerHTML.slice(0, 80)")

        # A new customer message is announced to screen readers.
        await http.post("/api/v1/messages", json=dm("where is it?", "m2"))
        await page.locator("#announce", has_text="New message from the customer").wait_for(
            timeout=10_000)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT))


async def test_on_a_phone_the_conversation_fills_the_screen_with_a_way_back(tmp_path, rasa,
                                                                          browser_page):
    page = browser_page
    await page.set_viewport_size({"width": 390, "height": 844})
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings,
                                                        await bridge_auth(settings)) as http:
        store = app.ctx.gateway.store
        add_agent(store, "sam", "Sam Patel", PASSWORD)
        await http.post("/api/v1/messages", json=dm("human please", "m1"))
        await eventually(lambda: store.handoff(1))
        await sign_in(page, f"http://{settings.host}:{settings.port}")
        await page.locator("tr[data-handoff='1'] a").click()
        await page.locator("#reply").wait_for()

        assert not await page.locator("nav.pane").is_visible()
        main, aside = await page.locator("main").bounding_box(), await page.locator(
            "aside.context").bounding_box()
        assert main["width"] >= 340 and aside["y"] >= main["y"] + main["height"] - 1  # stacked
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        assert (await page.evaluate(AUDIT))["low"] == []
        await page.click("a.back")
        await page.locator("tr[data-handoff='1']").wait_for()
        assert page.url.endswith("/inbox/")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390


def test_no_customer_data_leaves_the_handoffs_table_for_the_history_panel(tmp_path):
    """The panel's query reads only the columns it shows: no context, no notes."""
    from bot.gateway.store import Store

    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    with store.engine.begin() as db:
        db.execute(sa.text("INSERT INTO conversations (id, channel, external_id, created_at) "
                           "VALUES ('api:c1', 'api', 'c1', 1)"))
        insert_handoff(db, "api:c1", HandoffRequest("complaint", "low", "s",
                                                    {"details": {"email": "a@b.c"}}, 2.0), 1.0)
    [row] = store.handoffs_of_conversation("api:c1")
    assert "context" not in row and "notes" not in row and row["reason"] == "complaint"
    assert store.awaiting_answer([]) == {}
