"""DM API bridges authenticate, post only to their channels and read only their transcripts."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
import sqlalchemy as sa

from bot.gateway.channels import bridge_admin
from bot.gateway.channels.bridge_admin import create_bridge
from bot.gateway.channels.bridges import signature, signing_key
from bot.gateway.credentials import digest
from bot.gateway.messages import InboundMessage
from bot.gateway.store import BridgeExistsError, Store
from bot.gateway.store.schema import bridge_credentials
from tests.gateway_support import client, gateway_settings, running_gateway

CARD = "my card is 4111 1111 1111 1111, email amara@example.com"


def dm(channel="instagram", conversation="17841", text="where is my order?", message_id="m1",
       name="Amara Okafor"):
    return {"channel": channel, "conversation_id": conversation, "sender_name": name,
            "text": text, "channel_message_id": message_id}


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def signed(name, secret, method, target, body=b"", timestamp=None):
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-Bridge-Id": name, "X-Timestamp": ts,
            "X-Signature": signature(signing_key(secret), ts, method, target, body)}


def seed(settings, bridges=(), conversations=()):
    """Bridges (name, channels, signed) -> secrets; and processed customer messages."""
    store = Store(settings.database_url)
    secrets = {name: create_bridge(store, name, channels, signs)
               for name, channels, signs in bridges}
    for channel, external_id in conversations:
        received = store.receive(InboundMessage(channel=channel, external_id=external_id,
                                                channel_message_id="m0", text=CARD,
                                                sender_name="Amara Okafor"))
        store.complete_inbound(received.message_id, [])
    store.engine.dispose()
    return secrets


# --- the CLI and the store -----------------------------------------------------------------

def test_the_cli_prints_the_secret_once_and_stores_only_its_digest(tmp_path, monkeypatch,
                                                                    capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert bridge_admin.main(["add", "insta", "--channels", "instagram,whatsapp"]) == 0
    secret = capsys.readouterr().out.split("once:")[1].split()[0]
    assert len(secret) >= 43  # 32 random bytes, URL-safe base64

    with sa.create_engine(url).connect() as db:
        [row] = db.execute(sa.select(bridge_credentials)).mappings().all()
    assert secret not in json.dumps(dict(row))
    assert row["secret_sha256"] == digest(secret)
    assert row["channels"] == "instagram,whatsapp"

    assert bridge_admin.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "insta" in listing and "instagram,whatsapp" in listing and secret not in listing

    assert bridge_admin.main(["add", "insta", "--channels", "instagram"]) == 2  # active
    assert "revoke it first" in capsys.readouterr().err
    assert bridge_admin.main(["revoke", "insta"]) == 0
    assert bridge_admin.main(["revoke", "insta"]) == 2
    assert bridge_admin.main(["list"]) == 0
    assert "UTC" in capsys.readouterr().out.splitlines()[-1].split("instagram,whatsapp")[1]


@pytest.mark.parametrize(("name", "channels", "problem"), [
    ("insta", ["telegram"], "not DM API channel"),
    ("insta", ["webchat"], "not DM API channel"),
    ("insta", [], "at least one channel"),
    ("Insta Bridge", ["instagram"], "name must be"),
])
def test_bridges_get_dm_api_channels_only(tmp_path, name, channels, problem):
    store = Store(f"sqlite:///{tmp_path / 'b.db'}")
    with pytest.raises(ValueError, match=problem):
        create_bridge(store, name, channels)
    assert store.bridges() == []


def test_a_revoked_name_can_be_issued_again_with_a_new_secret(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'b.db'}")
    first = create_bridge(store, "insta", ["instagram"])
    with pytest.raises(BridgeExistsError):
        create_bridge(store, "insta", ["instagram"])
    store.revoke_bridge("insta")
    second = create_bridge(store, "insta", ["instagram"])
    assert store.active_bridge(secret_sha256=digest(first)) is None
    assert store.active_bridge(secret_sha256=digest(second)).name == "insta"


# --- bearer credentials over HTTP ----------------------------------------------------------

async def test_posting_needs_a_valid_unrevoked_credential(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    secrets = await asyncio.to_thread(seed, settings, [("insta", ["instagram"], False),
                                                       ("gone", ["instagram"], False)])
    async with running_gateway(settings) as app, client(settings) as http:
        await asyncio.to_thread(app.ctx.gateway.store.revoke_bridge, "gone")
        for headers in ({}, bearer("x" * 43), bearer(secrets["gone"]),
                        {"Authorization": secrets["insta"]},  # no scheme
                        {"Authorization": f"Basic {secrets['insta']}"}):
            refused = await http.post("/api/v1/messages", json=dm(), headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json() == {"error": "missing, wrong or revoked bridge credential"}
        assert await asyncio.to_thread(app.ctx.gateway.store.conversation,
                                       "instagram:17841") is None
        accepted = await http.post("/api/v1/messages", json=dm(),
                                   headers=bearer(secrets["insta"]))
        assert accepted.status_code == 202


@pytest.mark.parametrize("authorization", [
    "Bearer", "Bearer  x", "Bearer " + "a" * 5000, "Bearer a b c", "Bearer \u00e9\u00e9\u00e9",
    "Bearer ../../etc/passwd", "Bearer " + "z" * 7000,
])
async def test_malformed_authorization_is_401_not_500(tmp_path, rasa, authorization):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:
        answer = await http.post("/api/v1/messages", json=dm(),
                                 headers={"Authorization": authorization.encode()})
        assert answer.status_code == 401


async def test_a_huge_header_is_a_4xx(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:
        answer = await http.post("/api/v1/messages", json=dm(),
                                 headers={"Authorization": "Bearer " + "a" * 20000})
        assert 400 <= answer.status_code < 500


async def test_a_bridge_cannot_post_to_another_channel_nor_rename_its_customer(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    secrets = await asyncio.to_thread(seed, settings, [("insta", ["instagram"], False)],
                                      [("whatsapp", "4477")])
    async with running_gateway(settings) as app, client(settings) as http:
        forbidden = await http.post("/api/v1/messages", headers=bearer(secrets["insta"]),
                                    json=dm("whatsapp", "4477", "hi", "m9", "Mallory"))
        assert forbidden.status_code == 403
        assert "'whatsapp'" in forbidden.json()["error"]
        conversation = await asyncio.to_thread(app.ctx.gateway.store.conversation,
                                               "whatsapp:4477")
        assert conversation["customer_name"] == "Amara"
        transcript = await asyncio.to_thread(app.ctx.gateway.store.transcript, "whatsapp:4477")
        assert [m.text for m in transcript] == [CARD]


async def test_transcripts_only_of_the_bridges_channels_and_no_enumeration(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    secrets = await asyncio.to_thread(
        seed, settings, [("insta", ["instagram"], False), ("wa", ["whatsapp"], False)],
        [("instagram", "17841"), ("whatsapp", "4477"), ("telegram", "5551001"),
         ("webchat", "guessable-session")])
    async with running_gateway(settings) as app, client(settings) as http:
        own = await http.get("/api/v1/conversations/instagram:17841/messages",
                             headers=bearer(secrets["insta"]))
        assert own.status_code == 200 and own.json()["messages"][0]["text"] == CARD

        # A row edited to claim Telegram still never serves Telegram conversations.
        def widen() -> None:
            with app.ctx.gateway.store.engine.begin() as db:
                db.execute(bridge_credentials.update().where(bridge_credentials.c.name == "wa")
                           .values(channels="telegram,webchat,whatsapp"))
        await asyncio.to_thread(widen)

        for secret, conversation in ((secrets["insta"], "whatsapp:4477"),
                                     (secrets["wa"], "telegram:5551001"),
                                     (secrets["wa"], "webchat:guessable-session"),
                                     (secrets["insta"], "telegram:5551001"),
                                     (secrets["wa"], "instagram:17841"),
                                     (secrets["insta"], "instagram:nobody"),
                                     (secrets["insta"], "nonsense")):
            answer = await http.get(f"/api/v1/conversations/{conversation}/messages",
                                    headers=bearer(secret))
            assert answer.status_code == 404, conversation
            assert answer.json() == {"error": f"no conversation {conversation!r}"}
            assert CARD not in answer.text
        for headers in ({}, bearer("y" * 43)):
            anonymous = await http.get("/api/v1/conversations/telegram:5551001/messages",
                                       headers=headers)
            assert anonymous.status_code == 401
            assert CARD not in anonymous.text


# --- signed (HMAC) requests ------------------------------------------------------------------

async def test_a_signing_bridge_posts_and_reads_with_hmac(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    secrets = await asyncio.to_thread(seed, settings, [("wa", ["whatsapp"], True)])
    secret = secrets["wa"]
    async with running_gateway(settings) as app, client(settings) as http:
        body = json.dumps(dm("whatsapp", "4477")).encode()
        post = await http.post("/api/v1/messages", content=body,
                               headers=signed("wa", secret, "POST", "/api/v1/messages", body))
        assert post.status_code == 202, post.text
        await app.ctx.gateway.idle()
        target = "/api/v1/conversations/whatsapp:4477/messages?after=0"
        read = await http.get(target, headers=signed("wa", secret, "GET", target))
        assert read.status_code == 200, read.text
        assert [m["kind"] for m in read.json()["messages"]] == ["message", "ack", "reply"]
        also_bearer = await http.get(target, headers=bearer(secret))
        assert also_bearer.status_code == 200


async def test_bad_signatures_are_401(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    secrets = await asyncio.to_thread(
        seed, settings, [("wa", ["whatsapp"], True), ("plain", ["whatsapp"], False)],
        [("whatsapp", "4477"), ("whatsapp", "4478")])
    secret = secrets["wa"]
    target = "/api/v1/conversations/whatsapp:4477/messages"
    other = "/api/v1/conversations/whatsapp:4478/messages"
    body = json.dumps(dm("whatsapp", "4477")).encode()
    good = signed("wa", secret, "GET", target)
    cases = [
        ("GET", target, {**good, "X-Signature": "0" * 64}),
        ("GET", target, {**good, "X-Signature": "not hex!" * 8}),
        ("GET", target, {**good, "X-Signature": "ab" * 1000}),
        ("GET", target, {**good, "X-Timestamp": "yesterday"}),
        ("GET", target, {**good, "X-Timestamp": "9" * 40}),
        ("GET", target, {**good, "X-Bridge-Id": "../wa"}),
        ("GET", target, {k: v for k, v in good.items() if k != "X-Signature"}),
        ("GET", target, signed("wa", secret, "GET", target, timestamp=time.time() - 301)),
        ("GET", target, signed("wa", secret, "GET", target, timestamp=time.time() + 301)),
        ("GET", other, good),  # a signature is for one request target only
        ("GET", target, signed("wa", "x" * 43, "GET", target)),  # not the secret's key
        ("GET", target, signed("plain", secrets["plain"], "GET", target)),  # bearer-only
        ("POST", "/api/v1/messages", signed("wa", secret, "POST", "/api/v1/messages", b"{}")),
    ]
    async with running_gateway(settings), client(settings) as http:
        for method, path, headers in cases:
            answer = await http.request(method, path, headers=headers, content=body)
            assert answer.status_code == 401, (path, headers)
        assert (await http.get(target, headers=signed("wa", secret, "GET", target))
                ).status_code == 200


async def test_a_revoked_signing_bridge_is_refused(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    secrets = await asyncio.to_thread(seed, settings, [("wa", ["whatsapp"], True)],
                                      [("whatsapp", "4477")])
    target = "/api/v1/conversations/whatsapp:4477/messages"
    async with running_gateway(settings) as app, client(settings) as http:
        await asyncio.to_thread(app.ctx.gateway.store.revoke_bridge, "wa")
        answer = await http.get(target, headers=signed("wa", secrets["wa"], "GET", target))
        assert answer.status_code == 401


async def test_secrets_are_never_logged(tmp_path, rasa, caplog):
    caplog.set_level(logging.DEBUG)
    settings = gateway_settings(tmp_path, rasa.url)
    secrets = await asyncio.to_thread(seed, settings, [("wa", ["whatsapp"], True)])
    wrong = "w" * 43
    target = "/api/v1/conversations/whatsapp:4477/messages"
    async with running_gateway(settings) as app, client(settings) as http:
        await http.post("/api/v1/messages", json=dm("whatsapp", "4477"),
                        headers=bearer(secrets["wa"]))
        await http.get(target, headers=bearer(wrong))
        bad = signed("wa", wrong, "GET", target)
        await http.get(target, headers=bad)
        await app.ctx.gateway.idle()
    stored = await asyncio.to_thread(lambda: Store(settings.database_url).bridges()[0])
    for needle in (secrets["wa"], wrong, bad["X-Signature"], stored.secret_sha256):
        assert needle not in caplog.text
    assert "wrong signature from wa" in caplog.text  # refusals are logged, by name only
