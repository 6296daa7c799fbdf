"""The web chat page in a real headless Chromium."""

from __future__ import annotations

from tests.gateway_support import gateway_settings, running_gateway


async def test_a_customer_chats_from_the_browser(tmp_path, rasa, browser_page):
    page = browser_page
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app:
        await page.goto(f"http://{settings.host}:{settings.port}/chat/?name=Priya")
        assert await page.title() == "Message Juniper Lane"
        await page.fill("#text", "where is my order?")
        await page.press("#text", "Enter")
        ack = page.locator(".msg.outbound[data-kind=ack]")
        await ack.wait_for()
        assert (await ack.inner_text()).startswith("Hi Priya, thanks for your message!")
        reply = page.locator(".msg.outbound[data-kind=reply]").first
        await reply.wait_for()
        assert await reply.inner_text() == "echo: where is my order?"
        assert await page.locator(".msg.inbound").first.inner_text() == "where is my order?"

        # Buttons are clickable and send their payload.
        await page.fill("#text", "buttons please")
        await page.click("form button[type=submit]")
        button = page.locator(".buttons button", has_text="Yes")
        await button.wait_for()
        await button.click()
        await page.locator(".msg.inbound", has_text="Yes").wait_for()
        await page.locator(".msg.outbound", has_text="echo: /affirm").wait_for()
        session = await page.evaluate("localStorage.getItem('webchat-session')")
        assert rasa.texts_for(f"webchat:{session}")[-1] == "/affirm"

        # The conversation survives a reload (same session, transcript from the store).
        await page.reload()
        await page.locator(".msg.outbound", has_text="echo: /affirm").wait_for()
        assert app.ctx.gateway.store.conversation(f"webchat:{session}")["customer_name"] == (
            "Priya")

        # The page's transcript needs its secret: the id alone reads nothing.
        assert await page.evaluate("localStorage.getItem('webchat-secret')")
        status = await page.evaluate(
            f"fetch('api/messages?session={session}').then(r => r.status)")
        assert status == 401


async def test_a_chat_the_gateway_does_not_know_starts_afresh(tmp_path, rasa, browser_page):
    page = browser_page
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings):
        await page.goto(f"http://{settings.host}:{settings.port}/chat/")
        # As a page from before chat secrets would have it: an id it chose, no secret.
        await page.evaluate("localStorage.setItem('webchat-session', 'guessable-id-1234');"
                            "localStorage.setItem('webchat-secret', 'x'.repeat(43))")
        await page.reload()
        await page.fill("#text", "hello again")
        await page.press("#text", "Enter")
        await page.locator(".msg.outbound", has_text="echo: hello again").wait_for()
        session = await page.evaluate("localStorage.getItem('webchat-session')")
        assert session != "guessable-id-1234"
        assert rasa.texts_for(f"webchat:{session}") == ["hello again"]
