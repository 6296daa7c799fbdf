"""The agents' Telegram group, through python-telegram-bot and the fake Bot API."""

from __future__ import annotations

from bot.handoff_contract import rating_payload
from tests.gateway_support import eventually, gateway_settings, running_gateway

CUSTOMER = 5551001
AGENTS = -100900200


def settings_for(tmp_path, rasa, fake):
    return gateway_settings(tmp_path, rasa.url, telegram_bot_token=fake.token,
                            telegram_api_base_url=fake.base_url,
                            telegram_agent_chat_id=str(AGENTS))


def agent_reply(fake, to_message, text, agent="Sam"):
    """An agent in the group replying to one of the bot's posts."""
    update = fake.text_update(AGENTS, text, first_name=agent, chat_type="supergroup")
    update["message"]["reply_to_message"] = to_message
    fake.push_update(update)


async def test_handoff_card_agent_reply_claim_resolve_and_rating(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(settings_for(tmp_path, rasa, fake)) as app:
        store = app.ctx.gateway.store
        fake.push_update(fake.text_update(CUSTOMER, "human please", first_name="Amara"))
        [card] = await fake.wait_for_sent(AGENTS, 1)
        assert "🟠 HIGH · handoff #1 · Amara (telegram:5551001)" in card["text"]
        assert "Summary: Wants: Check on an order; order: JL-204815" in card["text"]
        assert "› human please" in card["text"]
        card_message = fake.sent_messages(AGENTS)[0]

        # The customer's follow-up reaches the group under the card.
        fake.push_update(fake.text_update(CUSTOMER, "hello? anyone there?"))
        posts = await fake.wait_for_sent(AGENTS, 2)
        assert posts[1]["text"] == "Amara: hello? anyone there?"
        assert posts[1]["reply_to_message_id"] == card_message["message_id"]

        # An agent answers by replying to the card; the customer gets it, signed.
        agent_reply(fake, card_message, "Hi Amara, Sam here. Looking now!")
        sent = await fake.wait_for_sent(CUSTOMER, 3)
        assert sent[-1]["text"] == "Hi Amara, Sam here. Looking now!\n\n— Sam, Juniper Lane"
        assert store.handoff(1)["status"] == "claimed"

        agent_reply(fake, card_message, "/claim", agent="Priya")
        await eventually(lambda: store.handoff(1)["claimed_by"] == "Priya")

        agent_reply(fake, card_message, "/resolve")
        await eventually(lambda: store.handoff(1)["status"] == "resolved")
        assert rasa.resumed and rasa.resumed[0]["events"][0] == {"event": "resume"}
        sent = await fake.wait_for_sent(CUSTOMER, 4)
        assert "How did we do?" in sent[-1]["text"]
        rating = fake.sent_messages(CUSTOMER)[-1]["message_id"]

        # The bot is back, and the one-tap rating is stored on the record.
        fake.push_update(fake.text_update(CUSTOMER, "thanks!"))
        sent = await fake.wait_for_sent(CUSTOMER, 5)
        assert sent[-1]["text"] == "echo: thanks!"
        fake.push_update(fake.callback_update(CUSTOMER, rating_payload(4), rating))
        await eventually(lambda: store.handoff(1)["csat"] == 4)


async def test_agents_chatter_is_not_sent_anywhere(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    async with running_gateway(settings_for(tmp_path, rasa, fake)) as app:
        fake.push_update(fake.text_update(AGENTS, "morning all ☕", chat_type="supergroup"))
        fake.push_update(fake.text_update(CUSTOMER, "hello"))
        await fake.wait_for_sent(CUSTOMER, 2)
        await app.ctx.gateway.idle()
        assert fake.sent(AGENTS) == []
        assert rasa.texts_for(f"telegram:{AGENTS}") == []
