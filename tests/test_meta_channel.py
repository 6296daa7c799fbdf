"""Messenger and Instagram DMs: Meta's webhook in, a loopback fake Send API out."""

from __future__ import annotations

import logging
import time

import pytest
import sqlalchemy as sa

from bot.gateway.acknowledgement import UNSUPPORTED_REPLY
from bot.gateway.channels import meta
from bot.gateway.channels.meta import SIGNATURE_HEADER, WEBHOOK_PATH
from bot.gateway.handoffs.intake import DELIVERY_FAILED
from bot.gateway.settings import Settings, SettingsError
from tests.fake_meta import (
    INSTAGRAM_TOKEN,
    PAGE_TOKEN,
    attachment_event,
    delivery_event,
    echo_event,
    fake_meta_fixture,  # noqa: F401 - the fake_meta fixture
    postback_event,
    quick_reply_event,
    reaction_event,
    read_event,
    signed,
    text_event,
    webhook,
)
from tests.gateway_support import client, eventually, gateway_settings, running_gateway

APP_SECRET = "meta-app-secret-0123456789abcdef"
VERIFY_TOKEN = "meta-verify-token-for-the-tests"
PSID = "7045123456789012"  # a Messenger page-scoped id
IGSID = "17841400000000123"  # an Instagram-scoped id
DAY = 24 * 3600


def meta_settings(tmp_path, rasa, fake, **changes) -> Settings:
    values = dict(meta_app_secret=APP_SECRET, meta_verify_token=VERIFY_TOKEN,
                  meta_page_access_token=PAGE_TOKEN,
                  meta_instagram_access_token=INSTAGRAM_TOKEN, meta_graph_url=fake.url)
    values.update(changes)
    return gateway_settings(tmp_path, rasa.url, webchat=False, **values)


async def post(http, body, secret: str = APP_SECRET, **headers):  # noqa: ANN001, ANN201
    raw, signature = signed(body, secret)
    return await http.post(WEBHOOK_PATH, content=raw, headers={**signature, **headers})


# --- the handshake ---------------------------------------------------------------------------

async def test_the_verification_handshake(tmp_path, rasa, fake_meta):
    settings = meta_settings(tmp_path, rasa, fake_meta)
    async with running_gateway(settings), client(settings) as http:
        good = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "1158201444"}
        answer = await http.get(WEBHOOK_PATH, params=good)
        assert (answer.status_code, answer.text) == (200, "1158201444")
        assert answer.headers["content-type"].startswith("text/plain")
        for wrong in ({**good, "hub.verify_token": "guess"}, {**good, "hub.mode": "unsubscribe"},
                      {k: v for k, v in good.items() if k != "hub.verify_token"}, {}):
            assert (await http.get(WEBHOOK_PATH, params=wrong)).status_code == 403
        hostile = await http.get(WEBHOOK_PATH, params={
            **good, "hub.challenge": "<script>alert(1)</script>"})
        assert hostile.status_code == 400 and "<script>" not in hostile.text


# --- the signature ---------------------------------------------------------------------------

async def test_a_wrong_or_missing_signature_is_refused_and_nothing_stored(
        tmp_path, rasa, fake_meta, caplog):
    caplog.set_level(logging.DEBUG)
    settings = meta_settings(tmp_path, rasa, fake_meta)
    body = webhook("page", text_event("page", PSID, "where is my parcel"))
    raw, headers = signed(body, APP_SECRET)
    async with running_gateway(settings) as app, client(settings) as http:
        store = app.ctx.gateway.store
        other_body, _ = signed(webhook("page", text_event("page", PSID, "other")), APP_SECRET)
        for attempt in (
            {"headers": {"Content-Type": "application/json"}},  # missing
            {"headers": signed(body, "not-the-app-secret")[1]},  # another secret
            {"headers": {SIGNATURE_HEADER: headers[SIGNATURE_HEADER][:-2] + "00"}},
            {"headers": {SIGNATURE_HEADER: headers[SIGNATURE_HEADER].removeprefix("sha256=")}},
            {"headers": {SIGNATURE_HEADER: "sha1=" + "0" * 40}},
            {"headers": headers, "content": other_body},  # a valid signature, another body
        ):
            answer = await http.post(WEBHOOK_PATH, content=attempt.get("content", raw),
                                     headers=attempt["headers"])
            assert answer.status_code == 403
        assert store.conversation(f"messenger:{PSID}") is None
        assert rasa.received == [] and fake_meta.calls == []
        assert (await http.post(WEBHOOK_PATH, content=raw, headers=headers)).status_code == 200
    assert APP_SECRET not in caplog.text and PAGE_TOKEN not in caplog.text


# --- receiving and answering -----------------------------------------------------------------

async def test_a_messenger_dm_delivered_twice_is_stored_once_and_answered(
        tmp_path, rasa, fake_meta, caplog):
    caplog.set_level(logging.DEBUG)
    settings = meta_settings(tmp_path, rasa, fake_meta)
    body = webhook("page", text_event("page", PSID, "where is my parcel"))
    async with running_gateway(settings) as app, client(settings) as http:
        first = await post(http, body)
        assert first.status_code == 200
        # Stored by the time Meta got its 200.
        assert app.ctx.gateway.store.conversation(f"messenger:{PSID}") is not None
        assert (await post(http, body)).status_code == 200  # Meta delivers it again
        sent = await fake_meta.wait_for_sent(PSID, 2)
        await app.ctx.gateway.idle()
        assert sent[0]["text"].startswith("Hi, thanks for your message!")
        assert fake_meta.texts(PSID)[1:] == ["echo: where is my parcel"]
        assert rasa.texts_for(f"messenger:{PSID}") == ["where is my parcel"]
        inbound = [m for m in app.ctx.gateway.store.transcript(f"messenger:{PSID}")
                   if m.direction == "in"]
        assert len(inbound) == 1
        await eventually(lambda: "typing_on" in fake_meta.actions(PSID))
    for call in fake_meta.calls:  # the token in a header, never in the URL
        assert call["headers"]["Authorization"] == f"Bearer {PAGE_TOKEN}"
        assert call["path"] == "/v21.0/me/messages" and call["query"] == {}
    reply = fake_meta.message_calls(PSID)[1]["body"]
    assert reply == {"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
                     "message": {"text": "echo: where is my parcel"}}
    assert PAGE_TOKEN not in caplog.text and APP_SECRET not in caplog.text


async def test_an_instagram_dm_is_answered_with_the_instagram_token(tmp_path, rasa, fake_meta):
    settings = meta_settings(tmp_path, rasa, fake_meta)
    async with running_gateway(settings), client(settings) as http:
        assert (await post(http, webhook("instagram", text_event(
            "instagram", IGSID, "hi from insta")))).status_code == 200
        await fake_meta.wait_for_sent(IGSID, 2)
        assert fake_meta.texts(IGSID)[1] == "echo: hi from insta"
        assert rasa.received[0]["sender"] == f"instagram:{IGSID}"
        assert {c["headers"]["Authorization"] for c in fake_meta.message_calls(IGSID)} == {
            f"Bearer {INSTAGRAM_TOKEN}"}


async def test_instagram_falls_back_to_the_page_token(tmp_path, rasa, fake_meta):
    settings = meta_settings(tmp_path, rasa, fake_meta, meta_instagram_access_token=None)
    async with running_gateway(settings) as app, client(settings) as http:
        assert set(app.ctx.meta.channels) == {"messenger", "instagram"}
        assert "instagram" not in app.ctx.api_channels  # the webhook serves it now
        await post(http, webhook("instagram", text_event("instagram", IGSID, "hello")))
        await fake_meta.wait_for_sent(IGSID, 2)
        assert {c["headers"]["Authorization"] for c in fake_meta.message_calls(IGSID)} == {
            f"Bearer {PAGE_TOKEN}"}


async def test_echoes_receipts_and_reactions_are_ignored(tmp_path, rasa, fake_meta):
    settings = meta_settings(tmp_path, rasa, fake_meta)
    async with running_gateway(settings) as app, client(settings) as http:
        for obj, customer in (("page", PSID), ("instagram", IGSID)):
            body = webhook(obj, echo_event(obj, customer, "echo: earlier reply"),
                           delivery_event(obj, customer), read_event(obj, customer),
                           reaction_event(obj, customer))
            assert (await post(http, body)).status_code == 200
        assert (await post(http, {"object": "page", "entry": [
            {"id": "1", "time": 1, "standby": [{"sender": {"id": PSID}}]},
            {"id": "1", "time": 1, "changes": [{"field": "feed", "value": {}}]}]})
                ).status_code == 200
        assert (await post(http, {"object": "whatsapp_business_account", "entry": []})
                ).status_code == 200
        await app.ctx.gateway.idle()
        store = app.ctx.gateway.store
        assert store.conversation(f"messenger:{PSID}") is None
        assert store.conversation(f"instagram:{IGSID}") is None
        assert fake_meta.calls == [] and rasa.received == []


async def test_buttons_become_quick_replies_and_taps_come_back(tmp_path, rasa, fake_meta):
    settings = meta_settings(tmp_path, rasa, fake_meta)
    async with running_gateway(settings) as app, client(settings) as http:
        await post(http, webhook("page", text_event("page", PSID, "buttons please")))
        sent = await fake_meta.wait_for_sent(PSID, 2)
        assert sent[1] == {"text": "Pick one", "quick_replies": [
            {"content_type": "text", "title": "Yes", "payload": "/affirm"},
            {"content_type": "text", "title": "No", "payload": "/deny"}]}
        # A quick reply tap: its title as text, its payload for Rasa.
        await post(http, webhook("page", quick_reply_event("page", PSID, "Yes", "/affirm")))
        await fake_meta.wait_for_sent(PSID, 3)
        # A button (postback) tap.
        await post(http, webhook("page", postback_event("page", PSID, "No", "/deny")))
        await fake_meta.wait_for_sent(PSID, 4)
        assert rasa.texts_for(f"messenger:{PSID}")[-2:] == ["/affirm", "/deny"]
        transcript = app.ctx.gateway.store.transcript(f"messenger:{PSID}")
        inbound = [(m.text, m.payload) for m in transcript if m.direction == "in"]
        assert inbound[-2:] == [("Yes", "/affirm"), ("No", "/deny")]


def test_quick_replies_keep_to_meta_limits():
    channel = meta.MetaChannel.__new__(meta.MetaChannel)
    channel.name = "messenger"
    from bot.gateway.messages import Button, OutboundMessage

    message = OutboundMessage("Pick", buttons=[
        Button("A title much longer than twenty characters", "/one"),
        Button("too long a payload", "x" * 1001), Button("  ", "/blank"),
        *[Button(f"Option {n}", f"/option{n}") for n in range(20)]])
    replies = channel.quick_replies(message)
    assert len(replies) == 13
    assert replies[0] == {"content_type": "text", "title": "A title much longer ",
                          "payload": "/one"}
    assert all(len(r["title"]) <= 20 and len(r["payload"]) <= 1000 for r in replies)


@pytest.mark.parametrize("obj, customer, channel, limit", [
    ("page", PSID, "messenger", 2000), ("instagram", IGSID, "instagram", 1000)])
async def test_long_replies_are_split_at_the_platform_limit(
        tmp_path, rasa, fake_meta, obj, customer, channel, limit):
    settings = meta_settings(tmp_path, rasa, fake_meta)
    async with running_gateway(settings) as app, client(settings) as http:
        await post(http, webhook(obj, text_event(obj, customer, "long answer please")))
        await eventually(lambda: len(fake_meta.sent(customer)) >= 2)
        await app.ctx.gateway.idle()
        parts = fake_meta.texts(customer)[1:]
        assert len(parts) > 1
        assert all(len(p) <= limit for p in parts)
        assert " ".join(" ".join(parts).split()) == " ".join(("word " * 2000).split())
        assert not app.ctx.gateway.store.dead_letters()


async def test_attachments_get_the_text_only_reply_without_nlu(tmp_path, rasa, fake_meta):
    settings = meta_settings(tmp_path, rasa, fake_meta)
    async with running_gateway(settings) as app, client(settings) as http:
        await post(http, webhook("instagram", attachment_event("instagram", IGSID, "image")))
        await post(http, webhook("page", attachment_event("page", PSID, "audio")))
        for customer in (IGSID, PSID):
            sent = await fake_meta.wait_for_sent(customer, 2)
            assert sent[1]["text"] == UNSUPPORTED_REPLY
        assert rasa.received == []
        [stored] = [m for m in app.ctx.gateway.store.transcript(f"instagram:{IGSID}")
                    if m.direction == "in"]
        assert stored.text == "[image]"


# --- failures --------------------------------------------------------------------------------

async def test_a_rate_limit_then_a_server_error_are_retried(tmp_path, rasa, fake_meta):
    fake_meta.retry_after = "0.2"
    fake_meta.fail_next("rate_limit")  # HTTP 429, code 4
    fake_meta.fail_next("server_error")  # HTTP 500
    settings = meta_settings(tmp_path, rasa, fake_meta)
    async with running_gateway(settings) as app, client(settings) as http:
        await post(http, webhook("page", text_event("page", PSID, "hello")))
        sent = await fake_meta.wait_for_sent(PSID, 2, timeout=15)
        assert sent[1]["text"] == "echo: hello"
        assert [c["status"] for c in fake_meta.message_calls(PSID)] == [429, 500, 200, 200]
        assert not app.ctx.gateway.store.dead_letters()


async def test_a_graph_rate_limit_code_waits_as_meta_asks(tmp_path, rasa, fake_meta,
                                                          monkeypatch):
    monkeypatch.setattr(meta, "RATE_LIMIT_RETRY_SECONDS", 0.2)  # production waits a minute
    fake_meta.fail_next("page_rate_limit")  # HTTP 400, code 613: a rate limit, not a refusal
    settings = meta_settings(tmp_path, rasa, fake_meta)
    async with running_gateway(settings) as app, client(settings) as http:
        await post(http, webhook("page", text_event("page", PSID, "hello")))
        await fake_meta.wait_for_sent(PSID, 2, timeout=15)
        assert [c["status"] for c in fake_meta.message_calls(PSID)][:2] == [400, 200]
        assert not app.ctx.gateway.store.dead_letters()


def _delivery_failed(store, conversation: str):  # noqa: ANN001, ANN202
    handoff = store.open_handoff_for(conversation)
    return handoff if handoff and handoff["reason"] == DELIVERY_FAILED else None


async def test_a_reply_after_the_24_hour_window_is_not_sent_and_a_person_is_told(
        tmp_path, rasa, fake_meta):
    """The customer wrote; Rasa's answer is ready only when, by the channel's clock, that
    was 25 hours ago: no Send API call, a dead letter, a delivery_failed handoff."""
    rasa.delay = 0.5
    settings = meta_settings(tmp_path, rasa, fake_meta)
    conversation = f"messenger:{PSID}"
    async with running_gateway(settings) as app, client(settings) as http:
        gateway = app.ctx.gateway
        await post(http, webhook("page", text_event("page", PSID, "where is my refund")))
        await fake_meta.wait_for_sent(PSID, 1)  # the acknowledgement, inside the window
        gateway.channels["messenger"].clock = lambda: time.time() + 25 * 3600
        handoff = await eventually(lambda: _delivery_failed(gateway.store, conversation))
        await gateway.idle()
        assert len(fake_meta.message_calls(PSID)) == 1  # only the acknowledgement
        [dead] = gateway.store.dead_letters()
        assert dead.text == "echo: where is my refund"
        assert "24-hour messaging window" in dead.last_error
        assert handoff["priority"] == "high"


async def test_meta_refusing_a_reply_as_outside_the_window_is_a_dead_letter(
        tmp_path, rasa, fake_meta):
    fake_meta.fail_for(PSID, "window")  # code 10, subcode 2018278
    settings = meta_settings(tmp_path, rasa, fake_meta)
    async with running_gateway(settings) as app, client(settings) as http:
        gateway = app.ctx.gateway
        await post(http, webhook("page", text_event("page", PSID, "hello")))
        await eventually(lambda: _delivery_failed(gateway.store, f"messenger:{PSID}"))
        await gateway.idle()
        assert all("outside Meta's 24-hour" in d.last_error for d in gateway.store.dead_letters())
        assert fake_meta.sent(PSID) == []


async def test_a_customer_who_is_unavailable_is_recorded_not_alerted(tmp_path, rasa, fake_meta):
    fake_meta.fail_for(PSID, "unavailable")  # code 551: blocked, or the account is gone
    settings = meta_settings(tmp_path, rasa, fake_meta)
    async with running_gateway(settings) as app, client(settings) as http:
        gateway = app.ctx.gateway
        await post(http, webhook("page", text_event("page", PSID, "bye")))
        await post(http, webhook("page", text_event("page", PSID + "9", "hello")))
        await fake_meta.wait_for_sent(PSID + "9", 2)
        await eventually(lambda: rasa.texts_for(f"messenger:{PSID}") == ["bye"])
        await gateway.idle()
        statuses = {m.status for m in gateway.store.transcript(f"messenger:{PSID}")
                    if m.direction == "out"}
        assert statuses == {"failed"}
        assert gateway.store.open_handoff_for(f"messenger:{PSID}") is None


async def test_a_store_that_cannot_commit_gets_503_so_meta_redelivers(
        tmp_path, rasa, fake_meta, monkeypatch):
    settings = meta_settings(tmp_path, rasa, fake_meta)
    body = webhook("page", text_event("page", PSID, "hello"))
    async with running_gateway(settings) as app, client(settings) as http:
        gateway = app.ctx.gateway
        real_receive = gateway.receive

        async def locked(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

        monkeypatch.setattr(gateway, "receive", locked)
        answer = await post(http, body)
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        monkeypatch.setattr(gateway, "receive", real_receive)
        assert (await post(http, body)).status_code == 200  # Meta's redelivery
        await fake_meta.wait_for_sent(PSID, 2)


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"[]", b"{}", b'{"object": "page"}', b'{"object": "page", "entry": {}}',
    b'{"object": "page", "entry": [1]}', b'{"object": "page", "entry": [{"messaging": {}}]}',
    b'{"object": "page", "entry": [{"messaging": ["x"]}]}',
    b'{"object": "page", "entry": [{"messaging": [{"sender": "1", "message": {}}]}]}',
    b'{"object": "page", "entry": [{"messaging": [{"sender": {"id": 1}, "message": {}}]}]}',
    b'{"object": "page", "entry": [{"messaging": [{"sender": {"id": "1"}, '
    b'"message": {"mid": "m1", "text": 42}}]}]}',
    b'{"object": "page", "entry": [{"messaging": [{"sender": {"id": "1"}, '
    b'"message": {"mid": "m1", "text": "hi", "quick_reply": []}}]}]}',
    b'{"object": 5, "entry": []}', b"[" * 5000 + b"]" * 5000,
])
async def test_malformed_bodies_are_400_and_nothing_is_stored(tmp_path, rasa, fake_meta, raw):
    settings = meta_settings(tmp_path, rasa, fake_meta)
    async with running_gateway(settings) as app, client(settings) as http:
        raw_body, headers = signed(raw, APP_SECRET)
        answer = await http.post(WEBHOOK_PATH, content=raw_body, headers=headers)
        assert answer.status_code == 400, answer.text
        assert "error" in answer.json()
        assert app.ctx.gateway.store.conversation("messenger:1") is None


async def test_an_event_the_gateway_cannot_store_is_skipped_and_the_rest_stored(
        tmp_path, rasa, fake_meta):
    settings = meta_settings(tmp_path, rasa, fake_meta)
    body = webhook("page", text_event("page", "not an id\nforged log line", "hi"),
                   text_event("page", PSID, "hello"))
    async with running_gateway(settings) as app, client(settings) as http:
        assert (await post(http, body)).status_code == 200
        assert app.ctx.gateway.store.conversation(f"messenger:{PSID}") is not None
        await fake_meta.wait_for_sent(PSID, 2)


# --- configuration ---------------------------------------------------------------------------

def test_a_partial_configuration_is_refused():
    full = {"META_APP_SECRET": APP_SECRET, "META_VERIFY_TOKEN": VERIFY_TOKEN,
            "META_PAGE_ACCESS_TOKEN": PAGE_TOKEN}
    settings = Settings.from_env(full)
    assert settings.meta_webhook
    for secret in (APP_SECRET, VERIFY_TOKEN, PAGE_TOKEN):
        assert secret not in repr(settings)
    assert Settings.from_env({**full, "META_PAGE_ACCESS_TOKEN": "",
                              "META_INSTAGRAM_ACCESS_TOKEN": INSTAGRAM_TOKEN}).meta_webhook
    assert not Settings.from_env({}).meta_webhook
    for missing in full:
        with pytest.raises(SettingsError, match="partly configured") as refused:
            Settings.from_env({k: v for k, v in full.items() if k != missing})
        assert missing in str(refused.value)
    with pytest.raises(SettingsError, match="META_GRAPH_VERSION"):
        Settings.from_env({**full, "META_GRAPH_VERSION": "latest"})


async def test_without_meta_settings_there_is_no_webhook(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings) as http:
        assert app.ctx.meta is None
        assert (await http.post(WEBHOOK_PATH, content=b"{}")).status_code == 404
        assert (await http.get(WEBHOOK_PATH)).status_code == 404


async def test_python_m_bot_gateway_serves_meta_from_the_environment_and_logs_no_secret(
        tmp_path, rasa, fake_meta):
    """As `make run` starts it, at DEBUG: the webhook answers, the reply goes out, and the
    log holds neither a secret nor the customer's words."""
    import asyncio
    import os
    import subprocess
    import sys

    from tests.gateway_support import free_port
    from tests.stack import stop, wait_http

    port = free_port()
    env = {**os.environ, "META_APP_SECRET": APP_SECRET, "META_VERIFY_TOKEN": VERIFY_TOKEN,
           "META_PAGE_ACCESS_TOKEN": PAGE_TOKEN, "META_INSTAGRAM_ACCESS_TOKEN": INSTAGRAM_TOKEN,
           "META_GRAPH_URL": fake_meta.url, "RASA_URL": rasa.url, "GATEWAY_PORT": str(port),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}", "WEBCHAT": "off",
           "GATEWAY_LOG_LEVEL": "DEBUG"}
    log_path = tmp_path / "gateway.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "bot.gateway"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        await wait_http(f"http://127.0.0.1:{port}/health", 60)
        import httpx

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            handshake = await http.get(WEBHOOK_PATH, params={
                "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"})
            assert handshake.text == "42"
            answer = await post(http, webhook("instagram", text_event(
                "instagram", IGSID, "where is my parcel")))
            assert answer.status_code == 200
            await post(http, webhook("instagram", read_event("instagram", IGSID)))
            await fake_meta.wait_for_sent(IGSID, 2, timeout=30)
        await asyncio.sleep(0.3)
    finally:
        stop(process)
    assert fake_meta.texts(IGSID)[1] == "echo: where is my parcel"
    text = log_path.read_text()
    assert "DEBUG bot.gateway.channels.meta: instagram: ignored read" in text, text[-2000:]
    for secret in (APP_SECRET, VERIFY_TOKEN, PAGE_TOKEN, INSTAGRAM_TOKEN):
        assert secret not in text
    assert "where is my parcel" not in text


# --- fuzzing the webhook ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """One gateway with Meta configured (the Graph API unreachable: replies just retry)."""
    from tests.fuzz_support import CrashLog, Probe, without_rate_limits
    from tests.gateway_support import GatewayThread

    folder = tmp_path_factory.mktemp("fuzz-meta")

    def make(rasa, _telegram):  # noqa: ANN001, ANN202
        return without_rate_limits(gateway_settings(
            folder, rasa.url, meta_app_secret=APP_SECRET, meta_verify_token=VERIFY_TOKEN,
            meta_page_access_token=PAGE_TOKEN, meta_graph_url="http://127.0.0.1:9"))

    with CrashLog() as crash_log, GatewayThread(make) as served:
        probe = Probe(served.base_url)
        try:
            yield probe, crash_log
            assert probe.healthy(), "the gateway stopped serving"
        finally:
            probe.close()


def _meta_posts():  # noqa: ANN202
    from hypothesis import strategies as st

    from tests import fuzz_support as fuzz

    def w(strategy):  # noqa: ANN001, ANN202 - mostly the right type, sometimes any scalar
        return st.sampled_from([True] * 9 + [False]).flatmap(
            lambda right: strategy if right else fuzz.json_scalars())

    text = fuzz.hostile_texts(60)
    ids = st.one_of(st.from_regex(r"[0-9]{6,20}", fullmatch=True), fuzz.hostile_texts(30))
    message = st.fixed_dictionaries({}, optional={
        "mid": w(ids), "text": w(text), "is_echo": w(st.booleans()),
        "quick_reply": w(st.fixed_dictionaries({}, optional={"payload": w(text)})),
        "attachments": w(st.lists(w(st.fixed_dictionaries({"type": w(text)})), max_size=2))})
    postback = st.fixed_dictionaries({}, optional={"mid": w(ids), "title": w(text),
                                                   "payload": w(text)})
    event = st.fixed_dictionaries({"sender": w(st.fixed_dictionaries({"id": w(ids)}))},
                                  optional={"message": w(message), "postback": w(postback),
                                            "timestamp": w(st.integers()),
                                            "read": w(st.fixed_dictionaries({}))})
    entry = st.fixed_dictionaries({"id": w(ids)}, optional={
        "messaging": w(st.lists(w(event), max_size=3)), "time": w(st.integers())})
    body = st.fixed_dictionaries({"object": w(st.sampled_from(["page", "instagram", "user"])),
                                  "entry": w(st.lists(w(entry), max_size=3))})
    raw = st.one_of(body.map(fuzz.dumps), body.map(fuzz.dumps), fuzz.bodies(fuzz.json_values()))
    secret = st.sampled_from([APP_SECRET, APP_SECRET, APP_SECRET, None, "wrong"])
    return st.tuples(raw, secret)


def test_any_signed_or_unsigned_body_gets_an_answer_not_a_server_error(fuzzed):
    from tests import fuzz_support as fuzz
    from tests.fuzz_support import budget

    def body(example) -> None:  # noqa: ANN001
        raw, secret = example
        headers = signed(raw, secret)[1] if secret else {"Content-Type": "application/json"}
        answer = probe.send("POST", WEBHOOK_PATH, raw, headers)
        if secret != APP_SECRET:
            assert answer.status in (403, 413), (answer.status, answer.text)
        else:
            assert answer.status in (200, 400, 413), (answer.status, answer.text)

    probe, crash_log = fuzzed
    fuzz.run(budget(60, 8_000), _meta_posts(), body, crash_log)
