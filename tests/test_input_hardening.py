"""Hostile input gets a clear 4xx and changes nothing, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import service_or_skip
from tests.gateway_support import (
    bridge_auth,
    client,
    eventually,
    gateway_settings,
    running_gateway,
)

TOKEN = "agent-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    return f"postgresql://postgres@{host}:{port}/test"


def dm(conversation: str, text: str = "hello", message_id: str = "m1") -> dict:
    return {"channel": "api", "conversation_id": conversation, "sender_name": "Amara",
            "text": text, "channel_message_id": message_id}


def raw_json(conversation: str, text_literal: str) -> bytes:
    """A body with a JSON escape Python's encoder would not write (e.g. a lone surrogate)."""
    return (f'{{"channel": "api", "conversation_id": "{conversation}", "text": "{text_literal}",'
            f' "channel_message_id": "m1"}}').encode()


@pytest.mark.parametrize(("change", "error"), [
    ({"text": "nul \x00 byte"}, "NUL or an unpaired surrogate"),
    ({"conversation_id": "x" * 129}, "external_id must be"),
    ({"conversation_id": "x" * 1_000_000}, "external_id must be"),
    ({"conversation_id": "two words"}, "external_id must be"),
    ({"conversation_id": "zoë"}, "external_id must be"),
    ({"conversation_id": "c1\nINFO forged log line"}, "external_id must be"),
    ({"conversation_id": "x/../../conversations/telegram:999/tracker/events?"},
     "external_id must be"),
    ({"channel_message_id": "m" * 129}, "channel_message_id must be"),
    ({"sender_name": "n" * 201}, "sender_name is longer than 200"),
])
async def test_malformed_messages_are_refused_and_nothing_is_stored(
        tmp_path, rasa, database_url, change, error):
    settings = gateway_settings(tmp_path, rasa.url, database_url=database_url)
    conversation = f"h{uuid.uuid4().hex[:12]}"
    async with running_gateway(settings) as app, client(settings,
                                                        await bridge_auth(settings)) as http:
        response = await http.post("/api/v1/messages", json={**dm(conversation), **change})
        assert response.status_code in (400, 413), response.text
        if response.status_code == 400:
            assert error in response.json()["error"]
        assert await app.ctx.gateway.db.conversation(f"api:{conversation}") is None


async def test_a_lone_surrogate_is_refused_not_a_server_error(tmp_path, rasa, database_url):
    settings = gateway_settings(tmp_path, rasa.url, database_url=database_url)
    conversation = f"h{uuid.uuid4().hex[:12]}"
    async with running_gateway(settings) as app, client(settings,
                                                        await bridge_auth(settings)) as http:
        response = await http.post("/api/v1/messages", content=raw_json(conversation, "\\ud800"),
                                   headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert "unpaired surrogate" in response.json()["error"]
        assert await app.ctx.gateway.db.conversation(f"api:{conversation}") is None


async def test_out_of_range_ids_are_not_found_or_refused(tmp_path, rasa, database_url):
    settings = gateway_settings(tmp_path, rasa.url, database_url=database_url,
                                agent_api_token=TOKEN)
    conversation = f"h{uuid.uuid4().hex[:12]}"
    bridge = await bridge_auth(settings)
    async with running_gateway(settings), client(settings) as http:
        sent = await http.post("/api/v1/messages", json=dm(conversation), headers=bridge)
        assert sent.status_code == 202
        for after in ("99999999999999999999", "-1", "1e9", "2147483648"):
            answer = await http.get(f"/api/v1/conversations/api:{conversation}/messages",
                                    params={"after": after}, headers=bridge)
            assert answer.status_code == 400, after
            assert "after must be a message id" in answer.json()["error"]
        poll = await http.get("/chat/api/messages",
                              params={"session": "s" * 12, "after": "99999999999999999999"})
        assert poll.status_code == 400
        for handoff_id in ("99999999999999999999", "2147483648", "0"):
            found = await http.get(f"/api/v1/handoffs/{handoff_id}", headers=AUTH)
            assert found.status_code == 404, handoff_id
            acted = await http.post(f"/api/v1/handoffs/{handoff_id}/claim", headers=AUTH,
                                    json={"agent": "Sam"})
            assert acted.status_code == 404, handoff_id


async def test_an_oversized_body_is_refused_before_it_is_read(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings, await bridge_auth(settings)) as http:
        response = await http.post("/api/v1/messages", content=b"{" + b" " * 2_000_000 + b"}",
                                   headers={"Content-Type": "application/json"})
        assert response.status_code == 413


# --- found by the fuzz tests (tests/test_fuzz_*.py) ------------------------------------------

async def test_deeply_nested_json_is_refused_not_a_server_error(tmp_path, rasa):
    """json.loads raises RecursionError (not ValueError) past ~1,000 levels of nesting."""
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=TOKEN)
    nested = b"[" * 100_000 + b"]" * 100_000
    async with running_gateway(settings), client(settings) as http:
        bridge = await bridge_auth(settings)
        for path, headers in (("/api/v1/messages", bridge), ("/chat/api/messages", {}),
                              ("/api/v1/handoffs/1/claim", AUTH)):
            answer = await http.post(path, content=nested, headers=headers)
            assert answer.status_code in (400, 401, 404), (path, answer.status_code)


@pytest.mark.parametrize("after", ["²", "①", "١"])
async def test_after_takes_ascii_digits_only(tmp_path, rasa, after):
    """str.isdigit() is true for '²' and '①', which int() refuses: a 500, unauthenticated."""
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:
        poll = await http.get("/chat/api/messages", params={"session": "s" * 12, "after": after})
        assert poll.status_code == 400, poll.text


@pytest.mark.parametrize("path", ["/no-such-page", "/api/v1/no-such-call", "/inbox/logout"])
async def test_an_odd_accept_header_on_an_error_is_not_a_server_error(tmp_path, rasa, path):
    """Sanic's default error page parses Accept and fails on a value without '/': 500."""
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:
        answer = await http.get(path, headers={"Accept": "x"})  # 404, or 405 for the logout
        assert answer.status_code in (404, 405), answer.text


async def test_errors_sanic_raises_under_api_say_error_too(tmp_path, rasa):
    """No route, wrong method, too large: JSON with an "error" key, like the API's own."""
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:
        headers = {"Accept": "application/json"}
        for answer in (await http.get("/api/v1/no-such-call", headers=headers),
                       await http.get("/api/v1/messages", headers=headers),
                       await http.post("/api/v1/messages", content=b"x" * 2_000_000,
                                       headers=headers)):
            assert answer.status_code in (404, 405, 413)
            assert "error" in answer.json(), answer.text


async def test_unstorable_agent_input_is_refused_not_a_server_error(tmp_path, rasa):
    """A lone surrogate in the agent's name or reply reaches SQLite's encoder: a 500."""
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=TOKEN)
    async with running_gateway(settings) as app, client(settings) as http:
        await http.post("/api/v1/messages", json=dm("c1", "human please"),
                        headers=await bridge_auth(settings))
        await eventually(lambda: app.ctx.gateway.store.handoff(1))
        for action, body in (("claim", '{"agent": "S\\ud800m"}'),
                             ("reply", '{"agent": "Sam", "text": "hi \\ud800"}')):
            answer = await http.post(f"/api/v1/handoffs/1/{action}", content=body.encode(),
                                     headers={**AUTH, "Content-Type": "application/json"})
            assert answer.status_code == 400, (action, answer.text)
        assert app.ctx.gateway.store.handoff(1)["status"] == "open"  # nothing changed


async def test_a_lone_surrogate_in_the_sign_in_form_is_not_a_server_error(tmp_path, rasa):
    """A multipart part may name its charset; unicode_escape turns '\\ud800' into a lone
    surrogate, which the password hash cannot encode: a 500, before anyone signed in."""
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:
        form = await http.get("/inbox/login")
        csrf = form.cookies["inbox_login"]
        for field in ("password", "username"):
            parts = {"username": "sam", "password": "x" * 12, "csrf": csrf, field: "\\ud800"}
            body = b"".join(
                (f'--b\r\nContent-Disposition: form-data; name="{name}"\r\n'
                 f"Content-Type: text/plain; charset=unicode_escape\r\n\r\n{value}\r\n").encode()
                for name, value in parts.items()) + b"--b--\r\n"
            answer = await http.post("/inbox/login", content=body, headers={
                "Content-Type": "multipart/form-data; boundary=b",
                "Cookie": f"inbox_login={csrf}"})
            # A wrong sign-in (401), or the form refused as expired (403): never a 500.
            assert answer.status_code in (401, 403), (field, answer.status_code)
            assert "Set-Cookie" not in answer.headers or "inbox_session" not in str(
                answer.headers.get("Set-Cookie"))


@pytest.mark.parametrize("head", [
    b"\xff /health HTTP/1.1\r\n",  # non-ASCII method: Sanic 21.12 answered 500
    b"GET /h\xc3\xa9alth HTTP/1.1\r\n",  # non-ASCII target: it dropped the connection
    b"GET  HTTP/1.1\r\n",  # empty target: 500
    b"GET /health?\x00 HTTP/1.1\r\n",  # a control character
    b"GET http://[ HTTP/1.1\r\n",  # a target httptools cannot parse
    b"POST /api/v1/messages HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n",  # 500
    b"POST /api/v1/messages HTTP/1.1\r\nContent-Length: five\r\n",  # 500
])
def test_a_malformed_request_head_is_a_client_error_and_the_next_request_is_served(
        tmp_path, head):
    from tests.fuzz_support import raw_exchange
    from tests.gateway_support import GatewayThread

    with GatewayThread(lambda stand_in, _: gateway_settings(tmp_path, stand_in.url)) as served:
        host, port = served.settings.host, served.settings.port
        status = raw_exchange(host, port, head + b"Host: x\r\nConnection: close\r\n\r\nhello")
        assert status == 400
        assert raw_exchange(host, port, b"GET /health HTTP/1.1\r\nHost: x\r\n"
                                        b"Connection: close\r\n\r\n") == 200


def test_a_body_that_arrives_after_its_answer_is_not_read_as_the_next_request(tmp_path):
    """Sanic may answer (a 404, say) before a request's body has arrived, then drain it on
    the kept-alive connection: those bytes are a body, not a malformed next request."""
    import socket

    from tests.gateway_support import GatewayThread

    with GatewayThread(lambda stand_in, _: gateway_settings(tmp_path, stand_in.url)) as served:
        with socket.create_connection((served.settings.host, served.settings.port),
                                      timeout=5) as sock:
            sock.sendall(b"POST /no-such-page HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 12\r\n\r\n")
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 404"), first[:100]
            sock.sendall(b'{"text": ""}GET /health HTTP/1.1\r\nHost: x\r\n'
                         b"Connection: close\r\n\r\n")
            second = b""
            while chunk := sock.recv(65536):
                second += chunk
            assert second.startswith(b"HTTP/1.1 200"), second[:100]


def test_only_a_malformed_request_head_is_refused():
    from bot.gateway.request_head import framing_is_sound, request_line_is_sound

    for sound in (b"GET /health HTTP/1.1", b"POST /api/v1/messages?x=%C3%A9 HTTP/1.0",
                  b"OPTIONS * HTTP/1.1", b"GET http://bot.example/health HTTP/1.1"):
        assert request_line_is_sound(sound), sound
    for malformed in (b"GET /health", b"GET /a b HTTP/1.1", b"G\x00T / HTTP/1.1",
                      b"GET /\x7f HTTP/1.1", b" / HTTP/1.1", b"GET / HTTP/1.1 "):
        assert not request_line_is_sound(malformed), malformed
    for sound in ([], [b"Host: x"], [b"Content-Length: 12"], [b"content-length:  7 "],
                  [b"Transfer-Encoding: chunked"], [b"Content-Length: 5", b"X: y"]):
        assert framing_is_sound(sound), sound
    for malformed in ([b"Transfer-Encoding: gzip, chunked"], [b"Transfer-Encoding: Chunked "],
                      [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
                      [b"Content-Length: -1"], [b"Content-Length: 0x10"],
                      [b"Content-Length: \xd9\xa1"]):
        assert not framing_is_sound(malformed), malformed


def _webhook_settings(tmp_path, rasa, fake):  # noqa: ANN001, ANN202
    return gateway_settings(tmp_path, rasa.url, telegram_bot_token=fake.token,
                            telegram_api_base_url=fake.base_url,
                            telegram_webhook_url="https://bot.example/telegram/webhook",
                            telegram_webhook_secret="s3cret-token")


@pytest.mark.parametrize(("field", "value"), [
    ("message_id", ""),  # a string where Telegram sends a number: no valid channel_message_id
    ("first_name", "x" * 201),  # longer than a sender name may be
])
async def test_a_telegram_update_the_gateway_cannot_store_is_handled(
        tmp_path, rasa, fake_telegram, caplog, field, value):
    """Refused in the handler, which raises: python-telegram-bot logs it as an unhandled
    error ("No error handlers are registered") and the update is silently dropped."""
    from bot.gateway.channels.telegram import SECRET_HEADER, WEBHOOK_PATH

    settings = _webhook_settings(tmp_path, rasa, fake_telegram)
    update = fake_telegram.text_update(5551001, "hello")
    update["update_id"] = 900001
    target = update["message"] if field == "message_id" else update["message"]["from"]
    target[field] = value
    async with running_gateway(settings), client(settings) as http:
        answer = await http.post(WEBHOOK_PATH, json=update,
                                 headers={SECRET_HEADER: "s3cret-token"})
        assert answer.status_code in (200, 400)
    assert not [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info], \
        caplog.text


async def test_a_telegram_chat_id_that_is_not_a_number_does_not_crash_the_outbox(
        tmp_path, rasa, fake_telegram, caplog):
    """chat.id false (or 1.5) is stored as telegram:False; the outbox's int('False') then
    raises ValueError, not SendError: "outbox worker ... failed", retried forever."""
    from bot.gateway.channels.telegram import SECRET_HEADER, WEBHOOK_PATH

    settings = _webhook_settings(tmp_path, rasa, fake_telegram)
    update = fake_telegram.text_update(5551001, "hello")
    update["update_id"] = 900002
    update["message"]["chat"]["id"] = False
    async with running_gateway(settings) as app, client(settings) as http:
        answer = await http.post(WEBHOOK_PATH, json=update,
                                 headers={SECRET_HEADER: "s3cret-token"})
        assert answer.status_code in (200, 400)
        await app.ctx.gateway.idle()
    assert not [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info], \
        caplog.text


async def test_a_non_ascii_agent_token_is_refused_not_a_server_error(tmp_path, rasa):
    """Sanic reads header bytes >= 0x80 as surrogates; encoding them for the constant-time
    comparison raised UnicodeEncodeError: a 500 for anyone, no token needed."""
    settings = gateway_settings(tmp_path, rasa.url, agent_api_token=TOKEN)
    async with running_gateway(settings), client(settings) as http:
        answer = await http.get("/api/v1/handoffs", headers={"Authorization": b"Bearer \xe5"})
        assert answer.status_code == 401, answer.text


async def test_an_out_of_range_handoff_page_is_not_found(tmp_path, rasa):
    """/inbox/handoffs/<id> passes any int to SQLite: OverflowError, a 500 (signed in)."""
    from bot.gateway.agents.accounts import add_agent
    from tests.gateway_support import inbox_sign_in

    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings) as http:
        add_agent(app.ctx.gateway.store, "sam", "Sam Patel", "correct horse battery")
        assert (await inbox_sign_in(http, "sam", "correct horse battery")).status_code == 303
        for path in ("/inbox/handoffs/99999999999999999999",
                     "/inbox/handoffs/99999999999999999999/transcript"):
            answer = await http.get(path)
            assert answer.status_code == 404, (path, answer.status_code)


async def test_a_cookie_header_that_cannot_be_parsed_is_no_session(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:
        for path in ("/inbox/", "/inbox/queue", "/inbox/login"):
            answer = await http.get(path, headers={"Cookie": "=; a=b; \x7f=\"x"})
            assert answer.status_code < 500, (path, answer.status_code)
            # Bytes that are not UTF-8 in a session cookie (the long fuzz: a 500 at its digest)
            answer = await http.get(path, headers={"Cookie": b'inbox_session="\xaa5}A\xdd\x8c"'})
            assert answer.status_code < 500, (path, answer.status_code)
