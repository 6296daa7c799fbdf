"""Incidents: many customers report one problem, the desk sees it once and answers it once."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bot.brand import IncidentSettings, brand
from bot.gateway.agents.accounts import add_agent
from bot.gateway.incidents import matcher
from bot.gateway.incidents.desk import IncidentError, check_text, personalised
from tests.gateway_support import (
    bridge_auth,
    client,
    gateway_settings,
    inbox_sign_in,
    running_gateway,
)

FIXTURE = Path(__file__).parent / "fixtures" / "incident_dms.yml"
PASSWORD = "correct horse battery"
ANSWER = ("Thanks for letting us know, {first_name}. Our checkout in the app is crashing "
          "for some customers and we're fixing it now. We'll message you here once it's "
          "sorted.")
CLOSING = "Good news, {first_name}: the app's checkout is working again. Sorry for the trouble."
CRASHES = ["the app keeps crashing when I try to check out",
           "App crashed at checkout twice now",
           "every time I go to checkout in the app it crashes",
           "app crashes at the checkout page, mail me at amara.o@example.com",
           "checkout in the app keeps crashing on me",
           "is your app crashing at checkout for everyone?"]


def load_dms():
    return yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))["messages"]


def evaluate(dms, settings):
    """(incidents found, false alarms, ordinary messages drawn into incidents, missed reports)."""
    messages = [matcher.Message(i, d["conversation"], d["text"], d["at"] * 60)
                for i, d in enumerate(dms)]
    found = matcher.replay(messages, settings)
    hidden = {d["incident"] for d in dms if d.get("incident")}
    named, false_alarms = set(), 0
    for incident in found:
        label, votes = Counter(dms[k].get("incident") for k in incident.keys).most_common(1)[0]
        if label is None or label in named or votes * 2 <= len(incident.keys):
            false_alarms += 1
        else:
            named.add(label)
    drawn_in = sum(1 for f in found for k in f.keys if not dms[k].get("incident"))
    captured = {k for f in found for k in f.keys}
    missed = sum(1 for i, d in enumerate(dms) if d.get("incident") and i not in captured)
    return len(named & hidden), false_alarms, drawn_in, missed


# --- the matcher --------------------------------------------------------------------------

def test_the_fixture_is_100_dms_with_three_hidden_incidents_over_two_hours():
    dms = load_dms()
    assert len(dms) == 100 and len({d["conversation"] for d in dms}) == 100
    assert Counter(d.get("incident") for d in dms if d.get("incident")) == {
        "checkout_crash": 8, "card_payment": 6, "tracking_down": 5}
    assert max(d["at"] for d in dms) - min(d["at"] for d in dms) > 110


def test_the_matcher_finds_all_three_incidents_and_no_false_alarm():
    found, false_alarms, drawn_in, missed = evaluate(load_dms(), IncidentSettings())
    print(f"incidents found 3/{found}, false alarms {false_alarms}, ordinary messages drawn "
          f"in {drawn_in}, incident messages missed {missed}")
    assert (found, false_alarms) == (3, 0)
    assert drawn_in == 0 and missed == 0


def test_the_brand_profile_configures_it_with_the_defaults():
    assert brand().incidents == IncidentSettings()


def test_a_rush_of_ordinary_questions_is_no_incident():
    """All 81 ordinary DMs within ten minutes: many "where is my order?", no incident."""
    ordinary = [d for d in load_dms() if not d.get("incident")]
    messages = [matcher.Message(i, d["conversation"], d["text"], i * 7.0)
                for i, d in enumerate(ordinary)]
    assert sum("where" in m.text.lower() for m in messages) >= 20
    assert matcher.replay(messages, IncidentSettings()) == []


def test_the_same_reports_spread_beyond_the_window_are_no_incident():
    spread = [matcher.Message(i, f"c{i}", text, i * 16 * 60.0) for i, text in enumerate(CRASHES)]
    assert matcher.replay(spread, IncidentSettings()) == []
    close = [matcher.Message(i, f"c{i}", text, i * 60.0) for i, text in enumerate(CRASHES)]
    assert len(matcher.replay(close, IncidentSettings())) == 1


def test_one_customer_writing_many_times_is_not_many_customers():
    same = [matcher.Message(i, "c1", text, i * 30.0) for i, text in enumerate(CRASHES)]
    assert matcher.replay(same, IncidentSettings()) == []


def test_the_answer_uses_the_first_name_when_known_and_reads_well_without():
    assert personalised(ANSWER, "Amara").startswith("Thanks for letting us know, Amara. Our")
    assert personalised(ANSWER, None).startswith("Thanks for letting us know. Our")
    assert personalised("Hi {first_name}, fixed.", None) == "Hi, fixed."
    for bad in ("", "   ", "Hi {name}", "Hi {first_name", "x" * 2001, "a\x00b"):
        with pytest.raises(IncidentError):
            check_text(bad, "answer")


# --- through the gateway ------------------------------------------------------------------

def dm(conversation, text, name="Amara Okafor", message_id="m1"):
    return {"channel": "api", "conversation_id": conversation, "sender_name": name,
            "text": text, "channel_message_id": message_id}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def texts_out(store, conversation):
    rows = await asyncio.to_thread(store.transcript, f"api:{conversation}")
    return [m.text for m in rows if m.direction == "out" and m.kind != "ack"]


async def csrf_of(http, path):
    page = await http.get(path)
    assert page.status_code == 200, page.text
    return re.search(r"name=csrf value='([^']+)'", page.text).group(1), page.text


async def test_a_burst_becomes_one_incident_answered_once_and_closed_once(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        gateway = app.ctx.gateway
        store = gateway.store
        gateway.incidents.clock = Clock()
        await asyncio.to_thread(add_agent, store, "sam", "Sam Patel", PASSWORD)
        for i, text in enumerate(CRASHES[:5]):
            assert (await http.post("/api/v1/messages",
                                    json=dm(f"c{i}", text, f"Cust{i} X"))).status_code == 202
            await gateway.idle()
        assert len(await asyncio.to_thread(store.incidents)) == 1
        assert (await http.get("/inbox/incidents/")).status_code == 302  # not signed in yet

        assert (await inbox_sign_in(http, "sam", PASSWORD)).status_code == 303
        csrf, listing = await csrf_of(http, "/inbox/incidents/")
        assert "5 customers" in listing and "no answer yet" in listing
        incident = (await asyncio.to_thread(store.incidents))[0]
        _, page = await csrf_of(http, f"/inbox/incidents/{incident['id']}")
        assert "amara.o@" not in page and "&lt;email&gt;" in page  # details hidden

        # A sixth customer before the answer: counted, and Rasa answers as usual.
        await http.post("/api/v1/messages", json=dm("c5", CRASHES[5], "Cust5 X"))
        await gateway.idle()
        assert "echo: " + CRASHES[5] in await texts_out(store, "c5")
        assert "6 customers" in (await http.get("/inbox/incidents/list")).text

        answered = await http.post(f"/inbox/incidents/{incident['id']}/answer",
                                   data={"csrf": csrf, "text": ANSWER})
        assert answered.status_code == 303

        seen_by_rasa = len(rasa.received)
        await http.post("/api/v1/messages", json=dm("late", "app crashing at checkout again??",
                                                    "Priya Shah"))
        await http.post("/api/v1/messages", json=dm("other", "where is my order JL-204815",
                                                    "Tom Reed"))
        await gateway.idle()
        late = await texts_out(store, "late")
        assert late == [personalised(ANSWER, "Priya") + "\n\n— Sam, Juniper Lane"]
        assert rasa.texts_for("api:late") == []  # Rasa never saw it
        assert rasa.texts_for("api:other") == ["where is my order JL-204815"]
        assert len(rasa.received) == seen_by_rasa + 1

        # Writing again: no second answer; Rasa has it this time.
        await http.post("/api/v1/messages", json=dm("late", "still crashing at checkout in the "
                                                    "app", "Priya Shah", "m2"))
        # A customer who reported it before the answer now gets it, once.
        await http.post("/api/v1/messages", json=dm("c0", "app still crashes at checkout",
                                                    "Cust0 X", "m2"))
        await gateway.idle()
        assert len(await texts_out(store, "late")) == 2
        assert (await texts_out(store, "late"))[1].startswith("echo: ")
        assert (await texts_out(store, "c0"))[-1].startswith("Thanks for letting us know, Cust0.")

        closed = await http.post(f"/inbox/incidents/{incident['id']}/close",
                                 data={"csrf": csrf, "text": CLOSING})
        assert closed.status_code == 303
        again = await http.post(f"/inbox/incidents/{incident['id']}/close",
                                data={"csrf": csrf, "text": CLOSING})
        assert again.status_code == 409
        await gateway.idle()
        update = "Good news, {}: the app's checkout is working again."
        for conversation, name in (("late", "Priya"), ("c0", "Cust0")):
            texts = await texts_out(store, conversation)
            assert sum(t.startswith(update.format(name)) for t in texts) == 1
        assert not any(t.startswith("Good news") for t in await texts_out(store, "c1"))
        assert not any(t.startswith("Good news") for t in await texts_out(store, "other"))

        # Closed: matching messages go to Rasa again.
        await http.post("/api/v1/messages", json=dm("after", "app crashing at checkout",
                                                    "Lee Chan"))
        await gateway.idle()
        assert rasa.texts_for("api:after") == ["app crashing at checkout"]
        assert "No open incidents" in (await http.get("/inbox/incidents/list")).text


async def test_reports_further_apart_than_the_window_make_no_incident(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        gateway = app.ctx.gateway
        clock = Clock()
        gateway.incidents.clock = clock
        for i, text in enumerate(CRASHES[:5]):
            await http.post("/api/v1/messages", json=dm(f"c{i}", text))
            await gateway.idle()
            clock.now += 4 * 60  # five reports over 16 minutes: never five in 15
        assert await asyncio.to_thread(gateway.store.incidents) == []
        clock.now -= 4 * 60  # a sixth customer at minute 16: the last five are within 15
        await http.post("/api/v1/messages", json=dm("c9", CRASHES[5]))
        await gateway.idle()
        assert len(await asyncio.to_thread(gateway.store.incidents)) == 1


async def test_incident_pages_need_a_signed_in_agent_and_forms_their_token(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings) as http:
        assert (await http.get("/inbox/incidents/")).headers["location"] == "/inbox/login"
        assert (await http.get("/inbox/incidents/1")).headers["location"] == "/inbox/login"
        assert (await http.get("/inbox/incidents/list")).status_code == 401
        unsigned = await http.post("/inbox/incidents/1/answer", data={"text": "x"})
        assert unsigned.headers["location"] == "/inbox/login"
        await asyncio.to_thread(add_agent, app.ctx.gateway.store, "sam", "Sam Patel", PASSWORD)
        await inbox_sign_in(http, "sam", PASSWORD)
        forged = await http.post("/inbox/incidents/1/answer", data={"csrf": "forged", "text": "x"})
        assert forged.status_code == 403
        csrf, _ = await csrf_of(http, "/inbox/incidents/")
        missing = await http.post("/inbox/incidents/1/answer", data={"csrf": csrf, "text": "x"})
        assert missing.status_code == 404
        assert (await http.get("/inbox/incidents/99")).status_code == 404
        empty = await http.post("/inbox/incidents/1/answer", data={"csrf": csrf, "text": " "})
        assert empty.status_code == 400
        unknown = await http.post("/inbox/incidents/1/rename", data={"csrf": csrf})
        assert unknown.status_code == 404
