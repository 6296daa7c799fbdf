"""An audit: seed a customer's personal data through every channel, then look for it where it
must not be: any route called without credentials, the logs, and the agents' Telegram cards.

Routes are read from the app itself, so a route added later is audited too.
"""

from __future__ import annotations

import logging
import re

import pytest

from bot.gateway.channels.meta import WEBHOOK_PATH as META_WEBHOOK_PATH
from bot.gateway.channels.telegram import SECRET_HEADER, WEBHOOK_PATH
from bot.gateway.logs import CONTENT_LOGGERS, URL_LOGGERS, configure_logging
from tests.fake_meta import (
    PAGE_TOKEN,
    fake_meta_fixture,  # noqa: F401 - registers fake_meta
    signed,
    text_event,
    webhook,
)
from tests.gateway_support import (
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    running_gateway,
)

CHAT, AGENTS = 5553001, -100700800
NAME = "Amara Okafor"
EMAIL = "amara.okafor@example.com"
PHONE = "07700 900123"
CARD = "4242 4242 4242 4242"
SEEDED = f"charged twice on {CARD}, call {PHONE} or mail {EMAIL}"
SECRET = "audit-webhook-secret"
META_SECRET, META_VERIFY, PSID = "audit-meta-app-secret", "audit-meta-verify-token", "7045000001"
# What would be a leak: the words, the contacts, the card (whole), the surname.
LEAKS = ("charged twice", EMAIL, PHONE, CARD, CARD.replace(" ", ""), "Okafor")


def leaked(text: str) -> list:
    return [needle for needle in LEAKS if needle in text]


def fill(path: str, values: dict) -> str:
    return "/" + re.sub(r"<(\w+):\w+>", lambda m: str(values[m.group(1)]), path)


@pytest.fixture
def debug_logging(caplog):
    """The gateway's logging as GATEWAY_LOG_LEVEL=DEBUG sets it up (then put back)."""
    names = (*URL_LOGGERS, *CONTENT_LOGGERS)
    before = {name: logging.getLogger(name).level for name in names}
    caplog.set_level(logging.DEBUG)
    configure_logging("DEBUG")
    yield caplog
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


async def test_seeded_personal_data_is_served_to_nobody_without_credentials_nor_logged(
        tmp_path, rasa, fake_telegram, fake_meta, debug_logging):
    caplog = debug_logging
    fake = fake_telegram
    settings = gateway_settings(
        tmp_path, rasa.url, telegram_bot_token=fake.token, telegram_api_base_url=fake.base_url,
        telegram_webhook_url="https://bot.example/telegram/webhook",
        telegram_webhook_secret=SECRET, telegram_agent_chat_id=str(AGENTS),
        agent_api_token="agent-token-for-the-audit", log_level="DEBUG",
        meta_app_secret=META_SECRET, meta_verify_token=META_VERIFY,
        meta_page_access_token=PAGE_TOKEN, meta_graph_url=fake_meta.url)
    # (Meta's webhook serves instagram here, so the bridge seeds whatsapp.)
    auth = await bridge_auth(settings, channels=("whatsapp",))
    async with running_gateway(settings) as app, client(settings) as http:
        gateway = app.ctx.gateway
        # Telegram (webhook), handed to a person so that agents' cards exist too.
        for n, text in enumerate(["human please", SEEDED]):
            update = fake.text_update(CHAT, text, first_name="Amara")
            update["update_id"] = 700 + n
            assert (await http.post(WEBHOOK_PATH, json=update,
                                    headers={SECRET_HEADER: SECRET})).status_code == 200
        # The DM API, by a bridge.
        assert (await http.post("/api/v1/messages", headers=auth, json={
            "channel": "whatsapp", "conversation_id": "17841", "sender_name": NAME,
            "text": SEEDED, "channel_message_id": "m1"})).status_code == 202
        # Messenger, through Meta's signed webhook.
        raw, signature = signed(webhook("page", text_event("page", PSID, SEEDED)), META_SECRET)
        assert (await http.post(META_WEBHOOK_PATH, content=raw,
                                headers=signature)).status_code == 200
        # The web chat.
        chat = (await http.post("/chat/api/sessions")).json()
        chat_auth = {"Authorization": f"Bearer {chat['secret']}"}
        assert (await http.post("/chat/api/messages", headers=chat_auth, json={
            "session": chat["session"], "text": SEEDED, "name": NAME})).status_code == 202
        await eventually(lambda: len(rasa.received) == 5)
        await fake.wait_for_sent(AGENTS, 2)
        await gateway.idle()
        handoff = gateway.store.open_handoff_for(f"telegram:{CHAT}")
        message = gateway.store.transcript(f"telegram:{CHAT}")[-1]
        values = {"conversation_id": f"telegram:{CHAT}", "handoff_id": handoff["id"],
                  "message_id": message.id, "action": "claim", "incident_id": 1}

        # Every route, every method, no credentials; conversations of every channel.
        served, calls = [], 0
        for route in app.router.routes:
            for conversation in (f"telegram:{CHAT}", "whatsapp:17841", f"messenger:{PSID}",
                                 f"webchat:{chat['session']}"):
                path = fill(route.path, {**values, "conversation_id": conversation})
                for method in route.methods:
                    answer = await http.request(
                        method, path, json={"session": chat["session"], "text": "x"},
                        params={"session": chat["session"]}, timeout=3)
                    calls += 1
                    assert answer.status_code < 500, (method, path)
                    if leaked(answer.text):
                        served.append((method, path, answer.status_code))
        print(f"audit: {calls} unauthenticated calls over {len(app.router.routes)} routes, "
              f"{len(served)} served customer data")
        assert served == []

        # The agents' Telegram group sees the message, but not the card nor usable contacts.
        cards = " ".join(m["text"] for m in fake.sent(AGENTS))
        assert "charged twice" in cards  # (it is the agents' job to read it)
        assert leaked(cards) == ["charged twice"]

    logs = caplog.text
    assert leaked(logs) == [], "personal data in the logs"
    assert fake.token not in logs and SECRET not in logs and chat["secret"] not in logs
    assert PAGE_TOKEN not in logs and META_SECRET not in logs and META_VERIFY not in logs
