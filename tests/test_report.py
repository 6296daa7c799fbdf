"""The desk report for team leads: its numbers on known data, the page, the file, a browser.

The store is seeded with explicit timestamps (no clock, no sleeping): three days
in November (GMT, so London time is UTC), eight conversations on four channels,
acknowledgements and replies sent a known number of seconds later, handoffs
answered before and after their targets, ratings and "bot misunderstood" marks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.brand import PROJECT_ROOT, brand
from bot.gateway.agents.accounts import add_agent
from bot.gateway.messages import InboundMessage, OutboundMessage
from bot.gateway.report.data import (
    Period,
    PeriodError,
    build_report,
    parse_period,
    percentile,
)
from bot.gateway.report.plots import response_buckets
from bot.gateway.report.render import build_html
from bot.gateway.store import HandoffRequest, Store
from tests.conftest import service_or_skip
from tests.gateway_support import client, gateway_settings, inbox_sign_in, running_gateway

LONDON = ZoneInfo("Europe/London")
DAY, MIN = 86400.0, 60.0
MON = datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp()  # Monday 00:00 (GMT)
SINCE, UNTIL = "2026-11-02", "2026-11-04"
LATER = MON + 8 * DAY  # "now" for the report: every due time has passed
PASSWORD = "correct horse battery"
SLA = {"urgent": 30, "high": 60, "normal": 240, "low": 1440}
CARD_TEXT = "my card 4242 4242 4242 4242 was charged twice, mail priya.n@example.com"
CHARTS = ("volume-hour", "volume-channel", "first-response", "escalations",
          "csat-distribution", "csat-trend")
SCREENSHOT = PROJECT_ROOT / "reports" / "desk-report.png"


class Seeder:
    """Writes conversations through the store's own calls, at the times given."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.count = 0

    def write(self, channel: str, chat: str, text: str, at: float,
              ack_after: float | None = None) -> int:
        """A customer's message stored at ``at``; its ack (if one is due) sent ``ack_after``
        seconds later."""
        self.count += 1
        received = self.store.receive(
            InboundMessage(channel, chat, f"m{self.count}", text, sender_name="Priya Nair"),
            ack=OutboundMessage("Thanks, we have your message."), now=at)
        ack = self.store.next_outbound(f"{channel}:{chat}")
        if received.acknowledge:
            assert ack is not None and ack.kind == "ack"
            self.store.mark_sent(ack.id, now=at + ack_after)
        return received.message_id

    def answer(self, message_id: int, conversation: str, at: float, sent_after: float | None,
               handoff: HandoffRequest | None = None, replies: int = 1) -> int | None:
        """The bot answers at ``at``; the reply reaches the channel ``sent_after`` s later
        (None: never sent)."""
        handoff_id = self.store.complete_inbound(
            message_id, [OutboundMessage("Here is what I found.")] * replies, handoff, now=at)
        if sent_after is not None:
            reply = self.store.next_outbound(conversation)
            self.store.mark_sent(reply.id, now=at + sent_after)
        return handoff_id

    def agent(self, handoff_id: int, conversation: str, agent: str, at: float) -> None:
        self.store.claim_handoff(handoff_id, agent, now=at)
        self.store.queue_outbound(conversation, "agent", OutboundMessage("Sam here."), now=at)


def handoff(reason: str, priority: str, opened: float, turns: list) -> HandoffRequest:
    return HandoffRequest(reason=reason, priority=priority, summary="", sla_due_at=opened
                          + SLA[priority] * MIN, context={"turns": turns})


def turn(text: str, intent: str, confidence: float, at: float) -> dict:
    return {"text": text, "intent": intent, "confidence": confidence, "at": at}


def seed(store: Store) -> None:
    s = Seeder(store)
    # Outside the period, either side: counted nowhere.
    s.answer(s.write("telegram", "9", "hello", MON - 30 * MIN, 1), "telegram:9",
             MON - 30 * MIN + 1, 2)
    s.answer(s.write("telegram", "9", "hello again", MON + 3 * DAY + 30 * MIN, 1),
             "telegram:9", MON + 3 * DAY + 30 * MIN, 2)
    # Monday. C1 on Telegram: two questions, answered in 4 s and 6 s (one ack).
    t = MON + 9 * 3600
    s.answer(s.write("telegram", "1", "where is my order JL-204815", t, 1), "telegram:1",
             t + 2, 2)
    s.answer(s.write("telegram", "1", "and can I change the address?", t + 120), "telegram:1",
             t + 121, 5)
    # C2 on the web chat: acknowledged in 2 s, answered in 10 s.
    t = MON + 10 * 3600
    s.answer(s.write("webchat", "w2", "do you ship to Ireland?", t, 2), "webchat:w2", t + 5, 5)
    # C3 on the DM API: handed to Sam (high, 60 min) who answers in 20 min: met. Rated 5.
    t = MON + 14 * 3600
    opened = t + 3
    c3 = s.answer(s.write("api", "a3", "I want a person", t, 1), "api:a3", opened, 0,
                  handoff("customer_request", "high", opened,
                          [turn("I want a person", "human_handoff", 0.97, t)]))
    store.complete_inbound(s.write("api", "a3", "hello?", t + 13 * MIN), [], now=t + 13 * MIN)
    s.agent(c3, "api:a3", "Sam Patel", opened + 20 * MIN)
    store.resolve_handoff(c3, "Sam Patel", now=opened + 40 * MIN)
    store.record_csat("api:a3", 5)

    # Tuesday. C4 on Telegram: answered in 20 s, but misread (marked).
    t = MON + DAY + 9.5 * 3600
    refund_4 = s.write("telegram", "4", "where's my refund for JL-222222", t, 1)
    s.answer(refund_4, "telegram:4", t + 10, 10)
    store.mark_misunderstood(refund_4, "Sam Patel", now=t + 3600)
    # C5 on Instagram: card and email (masked in the report); urgent (30 min), Alex
    # answers in 45 min: missed. Rated 2.
    t = MON + DAY + 11 * 3600
    card = s.write("instagram", "5", CARD_TEXT, t, 1)
    opened = t + 8
    c5 = s.answer(card, "instagram:5", opened, 0, handoff(
        "payment_problem", "urgent", opened, [turn(CARD_TEXT, "payment_problem", 0.41, t)]))
    store.mark_misunderstood(card, "Alex Kim", now=t + 3600)
    s.agent(c5, "instagram:5", "Alex Kim", opened + 45 * MIN)
    store.resolve_handoff(c5, "Alex Kim", now=opened + 60 * MIN)
    store.record_csat("instagram:5", 2)
    # C6 on Telegram: normal (240 min), Sam answers in 100 min (met), twice. Rated 4.
    t = MON + DAY + 15 * 3600
    opened = t + 3
    c6 = s.answer(s.write("telegram", "6", "talk to a human", t, 1), "telegram:6", opened, 0,
                  handoff("customer_request", "normal", opened,
                          [turn("hi", "greet", 0.99, t - 60),
                           turn("talk to a human", "human_handoff", 0.95, t)]))
    s.agent(c6, "telegram:6", "Sam Patel", opened + 100 * MIN)
    store.queue_outbound("telegram:6", "agent", OutboundMessage("Done."), now=opened + 110 * MIN)
    store.resolve_handoff(c6, "Sam Patel", now=opened + 120 * MIN)
    store.record_csat("telegram:6", 4)

    # Wednesday. C7 on the web chat: answered in 2 s, misread like C4.
    t = MON + 2 * DAY + 20 * 3600
    refund_7 = s.write("webchat", "w7", "where's my refund for JL-111111", t, 1)
    s.answer(refund_7, "webchat:w7", t + 1, 1)
    store.mark_misunderstood(refund_7, "Sam Patel", now=t + 600)
    # C8 on the DM API: the bot failed; a high handoff nobody answered (missed by now).
    t = MON + 2 * DAY + 21 * 3600
    store.dead_letter(s.write("api", "a8", "are you there", t, 1), "Rasa is down",
                      handoff("bot_failed", "high", t + 60, []), now=t + 60)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seeded(request, tmp_path_factory) -> Store:
    """The seeded store, on SQLite and on a PostgreSQL database of its own."""
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path_factory.mktemp('report') / 'gateway.db'}")
        seed(store)
        yield store
        store.engine.dispose()
        return
    host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    name = f"report_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"postgresql://postgres@{host}:{port}/postgres",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as db:
        db.execute(sa.text(f"CREATE DATABASE {name}"))
    store = Store(f"postgresql://postgres@{host}:{port}/{name}")
    try:
        seed(store)
        yield store
    finally:
        store.engine.dispose()
        with admin.connect() as db:
            db.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def period() -> Period:
    return parse_period(SINCE, UNTIL, LONDON, date(2026, 11, 20))


# --- the numbers ---------------------------------------------------------------------------


def test_percentiles_are_nearest_rank():
    values = [20, 2, 3, 3, 4, 6, 8, 10]
    assert [percentile(values, p) for p in (50, 90, 99)] == [4, 20, 20]
    assert percentile(list(range(1, 101)), 90) == 90 and percentile([], 50) is None


def test_volume_response_times_and_targets(seeded):
    r = build_report(seeded.engine, period(), SLA, LATER)
    assert r.inbound == 10
    assert r.by_channel == [("telegram", 4), ("api", 3), ("webchat", 2), ("instagram", 1)]
    assert {h: n for h, n in enumerate(r.by_hour) if n} == {9: 3, 10: 1, 11: 1, 14: 2, 15: 1,
                                                              20: 1, 21: 1}
    # Waits for the bot: 4, 6, 10, 3, 20, 8, 3, 2 s; C3's "hello?" was the person's to answer.
    assert r.first_response_seconds == [2, 3, 3, 4, 6, 8, 10, 20]
    assert (r.first_response.p50, r.first_response.p90, r.first_response.p99) == (4, 20, 20)
    assert r.unanswered == 1  # C8: the bot never replied
    assert (r.ack.count, r.ack.p50, r.ack.p90) == (8, 1, 2)
    targets = {t.priority: t for t in r.targets}
    assert [t.priority for t in r.targets] == ["urgent", "high", "normal", "low"]
    high = targets["high"]
    assert (high.handoffs, high.answered, high.met, high.missed, high.verdict) == (
        2, 1, 1, 1, "missed")  # C3 in 20 min; C8 never answered
    assert (high.spread.p50, high.target_minutes) == (20 * MIN, 60)
    assert (targets["urgent"].met, targets["urgent"].missed, targets["urgent"].verdict) == (
        0, 1, "missed")
    assert (targets["normal"].met, targets["normal"].verdict) == (1, "met")
    assert (targets["low"].handoffs, targets["low"].verdict) == (0, "no data")
    assert (r.time_to_human.p50, r.time_to_human.p90) == (45 * MIN, 100 * MIN)


def test_an_unanswered_handoff_not_yet_due_is_pending_not_missed(seeded):
    opened_c8 = MON + 2 * DAY + 21 * 3600 + 60
    r = build_report(seeded.engine, period(), SLA, now=opened_c8 + 10 * MIN)
    high = {t.priority: t for t in r.targets}["high"]
    assert (high.met, high.missed, high.pending, high.verdict) == (1, 0, 1, "met")


def test_containment_escalations_ratings_intents_and_agents(seeded):
    r = build_report(seeded.engine, period(), SLA, LATER)
    assert (r.conversations, r.contained, r.containment) == (8, 4, 0.5)
    assert r.escalations == [("customer_request", 2), ("payment_problem", 1), ("bot_failed", 1)]
    assert r.csat == {1: 0, 2: 1, 3: 0, 4: 1, 5: 1} and r.csat_mean == pytest.approx(11 / 3)
    assert r.csat_by_day == [(date(2026, 11, 2), 1, 5.0), (date(2026, 11, 3), 2, 3.0),
                             (date(2026, 11, 4), 0, None)]
    assert r.intents == [("human_handoff", 2), ("greet", 1), ("payment_problem", 1)]
    agents = [(a.agent, a.handoffs, a.replies, a.median_first_reply) for a in r.agents]
    assert agents == [("Sam Patel", 2, 3, 20 * MIN), ("Alex Kim", 1, 1, 45 * MIN)]


def test_misunderstood_messages_are_masked_and_grouped(seeded):
    r = build_report(seeded.engine, period(), SLA, LATER)
    shown = [(m.text, m.count, m.bot_read) for m in r.misunderstood]
    assert shown == [("where's my refund for <order_number>", 2, ""),
                     ("my card <card> was charged twice, mail <email>", 1,
                      "payment_problem (0.41)")]
    html = build_html(seeded.engine, period(), SLA, now=LATER)
    for personal in ("4242", "priya.n@example.com", "JL-111111", "JL-204815", "Priya"):
        assert personal not in html


def test_a_period_outside_the_data_is_empty_not_an_error(seeded):
    empty = parse_period("2025-01-01", "2025-01-07", LONDON, date(2026, 11, 20))
    r = build_report(seeded.engine, empty, SLA, LATER)
    assert (r.inbound, r.conversations, r.containment, r.first_response.p50) == (0, 0, None,
                                                                                None)
    assert all(f'data-chart="{name}"' in build_html(seeded.engine, empty, SLA, now=LATER)
               for name in CHARTS)


@pytest.mark.parametrize("since, until, message", [
    ("2026-13-01", None, "since must be a date"),
    ("yesterday", None, "since must be a date"),
    ("2026-11-02T00:00", None, "since must be a date"),
    (None, "2026-11-31", "until must be a date"),
    ("2026-11-05", "2026-11-01", "must not be after"),
    ("2024-01-01", "2026-01-01", "at most 366 days"),
    ("0001-01-01", None, "between"),
    (None, "9999-12-31", "between"),
])
def test_bad_periods_say_what_is_wrong(since, until, message):
    with pytest.raises(PeriodError, match=message):
        parse_period(since, until, LONDON, date(2026, 11, 20))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=20), st.dates().map(str)),
       st.one_of(st.none(), st.text(max_size=20), st.dates().map(str)))
def test_any_since_and_until_make_a_period_or_say_why(since, until):
    try:
        chosen = parse_period(since, until, LONDON, date(2026, 11, 20))
    except PeriodError as error:
        assert str(error)
    else:
        assert chosen.start < chosen.end and len(chosen.days) <= 366


def test_the_default_period_is_the_last_seven_days():
    default = parse_period(None, "", LONDON, date(2026, 11, 20))
    assert (default.since, default.until) == (date(2026, 11, 14), date(2026, 11, 20))
    assert parse_period(None, "2026-11-04", LONDON, date(2026, 11, 20)).since == date(2026, 10, 29)
    assert parse_period("2026-11-18", None, LONDON, date(2026, 11, 20)).until == date(2026, 11, 20)


def test_first_response_chart_buckets():
    # The seeded waits: four under 5 s, three under 15 s, one under 30 s.
    assert response_buckets([2, 3, 3, 4, 6, 8, 10, 20]) == (4, 3, 1, 0, 0, 0, 0, 0)
    assert response_buckets([59.9, 60, 900, 10**6]) == (0, 0, 0, 1, 1, 0, 0, 2)


def test_charts_are_deterministic(seeded):
    first = build_html(seeded.engine, period(), SLA, now=LATER)
    assert first == build_html(seeded.engine, period(), SLA, now=LATER)


# --- the file --------------------------------------------------------------------------------


def test_make_reports_command_writes_one_self_contained_file(seeded, tmp_path):
    out = tmp_path / "desk-report.html"
    done = subprocess.run(
        [sys.executable, "-m", "bot.gateway.report", "--since", SINCE, "--until", UNTIL,
         "--out", str(out)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DATABASE_URL": str(seeded.engine.url)})
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    for name in CHARTS:
        assert len(re.findall(rf'<svg [^>]*data-chart="{name}"', html)) == 1, name
    # Nothing fetched, from another host or this one: no stylesheet, script, image or font,
    # and every href/url() points inside the document (the charts' own clip paths).
    assert not re.search(r"<link|<script|<img|<iframe|<object|@import|\bsrc\s*=", html, re.I)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, re.I)
    assert all(target.startswith("#") for target in re.findall(
        r"""href\s*=\s*["']?([^"'\s>]*)""", html, re.I))
    assert all(target.startswith("#") for target in re.findall(r"url\(\s*['\"]?([^)'\"]*)", html))
    assert "id=kpi-inbound>10<" in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "six charts in one document: no id twice"
    assert "Sign out" not in html  # nobody is signed in to a file


def test_the_command_refuses_a_bad_date(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bot.gateway.report", "--since", "someday",
                           "--out", str(tmp_path / "r.html")], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ,
                               "DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"})
    assert done.returncode == 2 and "since must be a date" in done.stderr
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "none.db").exists()


# --- the page --------------------------------------------------------------------------------


async def seeded_gateway_settings(tmp_path, rasa):  # noqa: ANN001, ANN201
    settings = gateway_settings(tmp_path, rasa.url)
    store = Store(settings.database_url)
    seed(store)
    add_agent(store, "sam", "Sam Patel", PASSWORD)
    store.engine.dispose()
    return settings


async def test_the_page_needs_a_signed_in_agent_and_good_dates(tmp_path, rasa):
    settings = await seeded_gateway_settings(tmp_path, rasa)
    async with running_gateway(settings), client(settings) as http:
        signed_out = await http.get(f"/inbox/report?since={SINCE}&until={UNTIL}")
        assert signed_out.status_code == 302 and signed_out.headers["location"] == "/inbox/login"
        assert "Desk report" not in signed_out.text
        assert (await http.get("/inbox/report?since=nonsense")).status_code == 302
        assert (await inbox_sign_in(http, "sam", PASSWORD)).status_code == 303
        for query in ("since=2026-02-30", "until=tomorrow", f"since={UNTIL}&until={SINCE}",
                      "since=2020-01-01&until=2026-01-01", "since=%00", "until=" + "9" * 5000):
            refused = await http.get(f"/inbox/report?{query}")
            assert refused.status_code == 400, query
            assert "Dates look like 2026-12-01" in refused.text
        page = await http.get(f"/inbox/report?since={SINCE}&until={UNTIL}")
        assert page.status_code == 200
        assert "Sign out" in page.text and "href=/inbox/report" in page.text
        assert "id=kpi-inbound>10<" in page.text and "50%" in page.text
        default = await http.get("/inbox/report")
        assert default.status_code == 200 and "7 days" in default.text


async def test_a_lead_reads_the_report_in_the_browser(tmp_path, rasa, browser_page):
    page = browser_page
    settings = await seeded_gateway_settings(tmp_path, rasa)
    async with running_gateway(settings):
        base = f"http://{settings.host}:{settings.port}"
        await page.set_viewport_size({"width": 1200, "height": 900})
        await page.goto(f"{base}/inbox/")
        await page.fill("input[name=username]", "sam")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button:has-text('Sign in')")
        await page.click("a:has-text('Report')")
        await page.locator("h1:has-text('Desk report')").wait_for()
        await page.fill("input[name=since]", SINCE)
        await page.fill("input[name=until]", UNTIL)
        await page.click("button:has-text('Show')")
        await page.wait_for_url(re.compile(rf"since={SINCE}&until={UNTIL}"))
        for name in CHARTS:
            chart = page.locator(f'svg[data-chart="{name}"]')
            assert await chart.count() == 1, name
            assert await chart.is_visible(), name
            box = await chart.bounding_box()
            assert box["width"] > 200 and box["height"] > 80, (name, box)
        assert await page.locator("#kpi-inbound").inner_text() == "10"
        assert "missed" in await page.locator("#targets tr[data-priority=urgent]").inner_text()
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000


def test_brand_targets_are_the_ones_the_page_uses():
    assert dict(brand().sla_minutes) == SLA  # the seeded due times assume them
