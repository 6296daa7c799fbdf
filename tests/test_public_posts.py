"""Public posts, private answers: one safe line in public, the rest in private."""

from __future__ import annotations

from tests.gateway_support import (
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    running_gateway,
)

PRIVATE_DETAILS = "JL-204815 amara.okafor@example.com"


def post(text: str, message_id: str, post_id: str = "post-77", **extra):  # noqa: ANN003
    return {"channel": "api", "conversation_id": "amara", "sender_name": "Amara Okafor",
            "text": text, "channel_message_id": message_id, "visibility": "public",
            "post_id": post_id, **extra}


async def transcript(http):  # noqa: ANN001, ANN201
    response = await http.get("/api/v1/conversations/api:amara/messages")
    return response.json()["messages"]


async def test_a_public_post_gets_one_safe_public_line_and_a_private_conversation(
        tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        text = f"@juniperlane my order {PRIVATE_DETAILS} never came, this is a joke"
        response = await http.post("/api/v1/messages", json=post(text, "c1"))
        assert response.status_code == 202
        await app.ctx.gateway.idle()
        messages = await eventually(lambda: _with_reply(http))

        public = [m for m in messages if m["visibility"] == "public"]
        assert [(m["direction"], m["kind"]) for m in public] == [
            ("inbound", "message"), ("outbound", "public_reply")]
        said_in_public = public[1]["text"]
        assert public[1]["post_id"] == "post-77"
        assert "Amara" in said_in_public and "private message" in said_in_public
        for detail in PRIVATE_DETAILS.split() + ["order", "Okafor"]:
            assert detail not in said_in_public
        # The private side carries on with what the post said: nothing to repeat.
        assert rasa.texts_for("api:amara") == [text]
        assert rasa.received[0]["metadata"]["post_id"] == "post-77"
        private = [m for m in messages if m["visibility"] == "private"]
        assert [m["kind"] for m in private] == ["ack", "reply"]
        assert private[1]["text"] == f"echo: {text}"


async def test_the_public_thread_is_answered_once_however_often_they_post(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        for n, text in enumerate(["still nothing", "hello?? anyone", "worst shop ever"]):
            assert (await http.post("/api/v1/messages",
                                    json=post(text, f"c{n}"))).status_code == 202
        await http.post("/api/v1/messages", json=post("and here too", "d1", post_id="post-78"))
        await app.ctx.gateway.idle()
        public_replies = [m for m in await transcript(http) if m["kind"] == "public_reply"]
        assert [m["post_id"] for m in public_replies] == ["post-77", "post-78"]


async def test_a_direct_message_has_no_public_side(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings) as app, client(settings, auth) as http:
        dm = {k: v for k, v in post("where is my order", "m1").items()
              if k not in ("visibility", "post_id")}
        assert (await http.post("/api/v1/messages", json=dm)).status_code == 202
        await app.ctx.gateway.idle()
        assert {m["visibility"] for m in await transcript(http)} == {"private"}


async def test_public_without_a_post_or_with_a_bad_visibility_is_refused(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    auth = await bridge_auth(settings)
    async with running_gateway(settings), client(settings, auth) as http:
        no_post = {k: v for k, v in post("hi", "m1").items() if k != "post_id"}
        response = await http.post("/api/v1/messages", json=no_post)
        assert response.status_code == 400 and "post_id" in response.json()["error"]
        response = await http.post("/api/v1/messages", json=post("hi", "m2",
                                                                 visibility="everyone"))
        assert response.status_code == 400 and "visibility" in response.json()["error"]
        response = await http.post("/api/v1/messages", json=post("hi", "m3",
                                                                 post_id="a/b?c"))
        assert response.status_code == 400 and "post_id" in response.json()["error"]
        response = await http.post("/api/v1/messages", json=post("hi", "m4", post_id=7))
        assert response.status_code == 400
        assert rasa.received == []


async def _with_reply(http):  # noqa: ANN001, ANN202
    messages = await transcript(http)
    return messages if any(m["kind"] == "reply" for m in messages) else None
