"""Agent accounts a team lead can run: reset, disable, sign out; sign-in that resists guessing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from bot.brand import PROJECT_ROOT
from bot.gateway.agents import sign_in
from bot.gateway.agents.accounts import add_agent
from bot.gateway.agents.sign_in import LoginThrottle
from bot.gateway.rate_limits import RateLimitedError
from bot.gateway.store import Store
from bot.gateway.store.schema import inbox_sessions
from tests.gateway_support import client, gateway_settings, inbox_sign_in, running_gateway

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


async def sign_in_as(http, username="sam", password=PASSWORD, **headers):
    return await inbox_sign_in(http, username, password, **headers)


async def test_a_password_reset_works_for_a_signed_in_agent_and_signs_them_out(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings) as http:
        store = app.ctx.gateway.store
        add_agent(store, "sam", "Sam Patel", PASSWORD)
        assert (await sign_in_as(http)).status_code == 303
        assert (await http.get("/inbox/")).status_code == 200

        add_agent(store, "sam", "Sam Patel", NEW_PASSWORD)  # used to fail: sessions' FK
        assert (await http.get("/inbox/")).headers["location"] == "/inbox/login"
        assert (await sign_in_as(http)).status_code == 401
        assert (await sign_in_as(http, password=NEW_PASSWORD)).status_code == 303


async def test_a_disabled_agent_is_signed_out_and_cannot_sign_in_until_enabled(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings) as http:
        store = app.ctx.gateway.store
        add_agent(store, "sam", "Sam Patel", PASSWORD)
        await sign_in_as(http)
        assert store.set_agent_disabled("sam", True)
        assert (await http.get("/inbox/queue")).status_code == 401
        refused = await sign_in_as(http)
        assert refused.status_code == 401 and "Wrong username or password" in refused.text
        assert store.set_agent_disabled("sam", False)
        assert (await sign_in_as(http)).status_code == 303
        assert not store.set_agent_disabled("nobody", True)


async def test_sessions_are_stored_only_as_digests(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings) as http:
        store = app.ctx.gateway.store
        add_agent(store, "sam", "Sam Patel", PASSWORD)
        cookie = (await sign_in_as(http)).cookies["inbox_session"]
        with store.engine.connect() as db:
            tokens = db.execute(sa.select(inbox_sessions.c.token)).scalars().all()
        assert len(tokens) == 1 and cookie not in tokens[0]


async def test_guessing_is_throttled_per_account_even_with_the_right_password(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings) as http:
        add_agent(app.ctx.gateway.store, "sam", "Sam Patel", PASSWORD)
        for guess in range(5):
            assert (await sign_in_as(http, password=f"guess {guess}")).status_code == 401
        blocked = await sign_in_as(http)
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["retry-after"]) <= 900
        assert "Too many attempts" in blocked.text


def test_the_throttle_counts_accounts_and_addresses_and_forgets_after_its_window():
    throttle = LoginThrottle(per_account=2, per_address=3, window_seconds=60)
    throttle.failed("sam", "10.0.0.1", now=0)
    throttle.failed("sam", "10.0.0.2", now=1)
    with pytest.raises(RateLimitedError) as refused:
        throttle.check("sam", "10.0.0.3", now=2)  # another address, the same account
    assert refused.value.retry_after == 58
    throttle.check("sam", "10.0.0.3", now=61)  # the window moved on
    for name in ("ann", "bo", "cy"):  # one address trying many accounts
        throttle.failed(name, "10.0.0.9", now=100)
    with pytest.raises(RateLimitedError):
        throttle.check("dee", "10.0.0.9", now=101)
    throttle.succeeded("sam")
    throttle.check("sam", "10.0.0.1", now=101)


async def test_unknown_and_disabled_usernames_cost_the_same_password_check(monkeypatch):
    checked = []
    real = sign_in.check_password
    monkeypatch.setattr(sign_in, "check_password",
                        lambda password, stored: checked.append(stored) or real(password, stored))
    assert await sign_in.verify(None, PASSWORD) is False
    disabled = {"password_hash": sign_in.hash_password(PASSWORD), "disabled": True}
    assert await sign_in.verify(disabled, PASSWORD) is False
    assert len(checked) == 2 and all(s.startswith("scrypt$") for s in checked)


async def test_every_response_carries_the_browser_security_headers(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings), client(settings) as http:
        for path in ("/inbox/login", "/chat/", "/health", "/api/v1/handoffs/"):
            headers = (await http.get(path)).headers
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
            assert "strict-transport-security" not in headers  # plain HTTP here


async def test_behind_a_trusted_https_proxy_the_session_cookie_is_secure(tmp_path, rasa):
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    for trust, secure in ((True, True), (False, False)):
        settings = gateway_settings(tmp_path, rasa.url, trust_proxy=trust)
        async with running_gateway(settings) as app, client(settings) as http:
            add_agent(app.ctx.gateway.store, "sam", "Sam Patel", PASSWORD)
            response = await sign_in_as(http, **https)
            cookie = response.headers["set-cookie"].lower()
            assert ("secure" in cookie.split("; ")) is secure, cookie
            assert ("strict-transport-security" in response.headers) is secure


def test_an_older_database_gains_the_disabled_column(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.execute(sa.text("CREATE TABLE agent_accounts (username VARCHAR(64) PRIMARY KEY, "
                           "display_name VARCHAR(100) NOT NULL, password_hash VARCHAR(300) "
                           "NOT NULL, created_at FLOAT NOT NULL)"))
        db.execute(sa.text("INSERT INTO agent_accounts VALUES ('sam', 'Sam', 'x', 0)"))
    store = Store(url)
    assert store.agent("sam")["disabled"] is False


def test_the_cli_lists_disables_enables_and_signs_out(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}"}

    def cli(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "bot.gateway.agents.accounts", *args],
                              input=stdin, text=True, capture_output=True, cwd=PROJECT_ROOT,
                              env=env)

    assert cli("add", "sam", "--name", "Sam Patel", "--password-stdin",
               stdin=PASSWORD + "\n").returncode == 0
    assert cli("disable", "sam").returncode == 0
    listed = cli("list").stdout
    assert "sam" in listed and "disabled" in listed and PASSWORD not in listed
    assert cli("enable", "sam").returncode == 0
    assert "enabled" in cli("list").stdout
    assert cli("sign-out").stdout.strip() == "0 session(s) ended."
    missing = cli("disable", "nobody")
    assert missing.returncode == 2 and "no agent 'nobody'" in missing.stderr


async def test_a_sign_in_posted_without_the_forms_token_is_refused(tmp_path, rasa):
    settings = gateway_settings(tmp_path, rasa.url)
    async with running_gateway(settings) as app, client(settings) as http:
        add_agent(app.ctx.gateway.store, "sam", "Sam Patel", PASSWORD)
        credentials = {"username": "sam", "password": PASSWORD}
        forged = await http.post("/inbox/login", data=credentials)  # another site's form
        assert forged.status_code == 403 and "inbox_session" not in forged.cookies
        await http.get("/inbox/login")  # the cookie, but a wrong token in the form
        wrong = await http.post("/inbox/login", data={**credentials, "csrf": "guess"})
        assert wrong.status_code == 403
        assert (await sign_in_as(http)).status_code == 303
