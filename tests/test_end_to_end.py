"""The whole product, end to end: real Rasa, real actions, gateway, fake Telegram.

A hostile message -> escalation card with context in the agents' group ->
agent reply -> the customer receives it -> /resolve -> the bot answers again
-> satisfaction question -> the rating is stored.
"""

from __future__ import annotations

import httpx
import pytest

from bot.handoff_contract import rating_payload
from tests.fake_telegram import FakeTelegram
from tests.stack import running_stack

pytestmark = pytest.mark.model

CUSTOMER = 6660001
AGENTS = -100777888
TOKEN = "e2e-agent-token"


def agent_reply(fake, to_message, text, agent="Sam"):
    update = fake.text_update(AGENTS, text, first_name=agent, chat_type="supergroup")
    update["message"]["reply_to_message"] = to_message
    fake.push_update(update)


async def test_hostile_customer_to_agent_and_back(model_path):
    fake = FakeTelegram()
    await fake.start()
    try:
        async with running_stack(model_path, fake, {"TELEGRAM_AGENT_CHAT_ID": str(AGENTS),
                                                    "AGENT_API_TOKEN": TOKEN}) as stack:
            fake.push_update(fake.text_update(
                CUSTOMER, "you useless f*cking clowns, where is my parcel", first_name="Rob"))
            [card] = await fake.wait_for_sent(AGENTS, 1, timeout=60)
            assert "handoff #1 · Rob (telegram:6660001)" in card["text"]
            assert "Reason: hostile" in card["text"]
            assert "HIGH" in card["text"]
            assert "› you useless f*cking clowns, where is my parcel" in card["text"]
            # The acknowledgement, the empathy line, and who takes over and when.
            told = [m["text"] for m in await fake.wait_for_sent(CUSTOMER, 3, timeout=30)]
            assert told[0].startswith("Hi Rob, thanks for your message!")  # instant ack
            assert any(t.startswith("I'm sorry, Rob") for t in told)
            assert any("reply right here" in t for t in told)

            # While a person has it, the bot stays quiet; follow-ups reach the group.
            fake.push_update(fake.text_update(CUSTOMER, "hello??", first_name="Rob"))
            posts = await fake.wait_for_sent(AGENTS, 2, timeout=30)
            assert posts[1]["text"] == "Rob: hello??"
            assert len(fake.sent(CUSTOMER)) == len(told)

            card_message = fake.sent_messages(AGENTS)[0]
            agent_reply(fake, card_message, "Rob, I'm sorry. Your parcel is at the depot, "
                                            "arriving tomorrow.")
            sent = await fake.wait_for_sent(CUSTOMER, len(told) + 1, timeout=30)
            assert sent[-1]["text"].endswith("— Sam, Juniper Lane")

            agent_reply(fake, card_message, "/resolve")
            sent = await fake.wait_for_sent(CUSTOMER, len(told) + 2, timeout=30)
            assert "How did we do?" in sent[-1]["text"]
            rating_message = fake.sent_messages(CUSTOMER)[-1]["message_id"]

            # The bot has the conversation again.
            count = len(fake.sent(CUSTOMER))
            fake.push_update(fake.text_update(CUSTOMER, "where is my order", first_name="Rob"))
            sent = await fake.wait_for_sent(CUSTOMER, count + 1, timeout=60)
            assert "order number" in sent[-1]["text"]

            fake.push_update(fake.callback_update(CUSTOMER, rating_payload(4), rating_message,
                                                  first_name="Rob"))
            await fake.wait_for_sent(CUSTOMER, count + 2, timeout=30)
            async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
                record = (await http.get("/api/v1/handoffs/1",
                                         headers={"Authorization": f"Bearer {TOKEN}"})).json()
            assert record["csat"] == 4
            assert record["status"] == "resolved"
            assert record["context"]["turns"][0]["sentiment"] == "hostile"
    finally:
        await fake.stop()
