"""Personal data stays out of sight: cards cut on arrival, contacts redacted where less private."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.gateway.store import Store
from bot.privacy import mask_cards, redact_contacts
from tests.gateway_support import eventually, gateway_settings, running_gateway

CUSTOMER = 5551001
AGENTS = -100900200
CARD = "4242 4242 4242 4242"  # a Luhn-valid test card number


@pytest.mark.parametrize(("text", "masked"), [
    (f"charged twice on {CARD}!", "charged twice on •••• 4242!"),
    ("card 4000-0000-0000-0002 expired", "card •••• 0002 expired"),
    ("4111111111111111", "•••• 1111"),
    # Not cards: a 14-digit phone with its country code, an order number, a failed checksum.
    ("call 0044 20 7946 0321", "call 0044 20 7946 0321"),
    ("order JL-204815", "order JL-204815"),
    ("4242 4242 4242 4241", "4242 4242 4242 4241"),
])
def test_only_real_card_numbers_are_cut_to_their_last_four(text, masked):
    assert mask_cards(text) == masked


def test_contacts_stay_recognisable_but_not_usable():
    assert (redact_contacts("mail priya.n@example.com or ring 07700 900123, size 12")
            == "mail p***@example.com or ring •••• 123, size 12")


async def test_a_card_number_never_reaches_the_store_rasa_or_agents(tmp_path, rasa, fake_telegram):
    fake = fake_telegram
    settings = gateway_settings(tmp_path, rasa.url, telegram_bot_token=fake.token,
                                telegram_api_base_url=fake.base_url,
                                telegram_agent_chat_id=str(AGENTS))
    async with running_gateway(settings) as app:
        fake.push_update(fake.text_update(CUSTOMER, "human please", first_name="Amara"))
        await fake.wait_for_sent(AGENTS, 1)
        fake.push_update(fake.text_update(
            CUSTOMER, f"you charged {CARD} twice, mail me at amara.o@example.com"))
        posts = await fake.wait_for_sent(AGENTS, 2)
        await eventually(lambda: len(rasa.texts_for(f"telegram:{CUSTOMER}")) == 2)
        await app.ctx.gateway.idle()

        assert posts[1]["text"] == ("Amara: you charged •••• 4242 twice, "
                                    "mail me at a***@example.com")
        assert rasa.texts_for(f"telegram:{CUSTOMER}")[1] == (
            "you charged •••• 4242 twice, mail me at amara.o@example.com")
        stored = [m.text for m in app.ctx.gateway.store.transcript(f"telegram:{CUSTOMER}")]
        assert not any("4242 4242" in text for text in stored)
        # The signed-in inbox still shows the email whole: agents need it.
        assert any("amara.o@example.com" in text for text in stored)


def test_database_errors_never_carry_customers_words(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'gateway.db'}")
    with pytest.raises(sa.exc.DBAPIError) as error, store.engine.connect() as db:
        db.execute(sa.text("INSERT INTO no_such_table VALUES (:text)"),
                   {"text": "my secret address is 12 Elm St"})
    assert "12 Elm St" not in str(error.value)
