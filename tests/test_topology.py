"""The scaled topology is written once (bot/topology.py): Procfile.scaled is its output, the
chaos benchmark starts its processes, and compose.yaml runs the same ones."""

from __future__ import annotations

import uuid

import pytest
import yaml

from bot.brand import PROJECT_ROOT
from bot.topology import (
    ACTIONS_KEEP_ALIVE_SECONDS,
    SERVICE_DEFAULTS,
    TopologyError,
    check_telegram,
    create_database,
    create_schemas,
    database_urls,
    drop_database,
    procfile,
    topology,
)
from tests.conftest import service_or_skip


def test_procfile_scaled_is_the_topologys_output():
    assert (PROJECT_ROOT / "Procfile.scaled").read_text() == procfile(2), (
        "regenerate it: .venv/bin/python -m bot.topology procfile > Procfile.scaled")


def test_two_of_each_on_their_ports_each_rasa_with_its_own_action_server():
    processes = {p.name: p for p in topology(2)}
    assert {name: p.port for name, p in processes.items()} == {
        "actions1": 5055, "actions2": 5056, "rasa1": 5005, "rasa2": 5006,
        "gateway1": 8080, "gateway2": 8081}
    for i in (1, 2):
        rasa = dict(processes[f"rasa{i}"].fixed_env)
        assert rasa["ACTION_ENDPOINT_URL"] == f"http://127.0.0.1:{5054 + i}/webhook"
        assert "endpoints.production.yml" in processes[f"rasa{i}"].argv
        gateway = dict(processes[f"gateway{i}"].fixed_env)
        assert gateway["RASA_URL"] == "http://127.0.0.1:5005,http://127.0.0.1:5006"
    assert processes["gateway1"].health_url == "http://127.0.0.1:8080/health"
    assert processes["rasa2"].health_url == "http://127.0.0.1:5006/"


def test_services_default_to_the_local_ones_and_are_overridable():
    [gateway] = [p for p in topology(1) if p.name == "gateway1"]
    assert gateway.environment({})["DATABASE_URL"] == SERVICE_DEFAULTS["DATABASE_URL"]
    assert gateway.environment({"DATABASE_URL": ""})["DATABASE_URL"] == \
        SERVICE_DEFAULTS["DATABASE_URL"]  # as ${DATABASE_URL:-default} in the Procfile
    mine = "postgresql://u:p@db.internal/gw"
    assert gateway.environment({"DATABASE_URL": mine})["DATABASE_URL"] == mine
    [rasa] = [p for p in topology(1) if p.name == "rasa1"]
    env = rasa.environment({"REDIS_HOST": "redis.internal", "RASA_TOKEN": "t"})
    assert (env["REDIS_HOST"], env["TRACKER_DB_NAME"], env["RASA_TOKEN"]) == (
        "redis.internal", "juniper_trackers", "t")
    assert database_urls({})[1] == "postgresql://postgres@127.0.0.1:5432/juniper_trackers"


def test_a_telegram_token_needs_webhook_mode_with_several_gateways():
    with pytest.raises(TopologyError, match="TELEGRAM_WEBHOOK_URL"):
        check_telegram({"TELEGRAM_BOT_TOKEN": "1:x"}, replicas=2)
    check_telegram({"TELEGRAM_BOT_TOKEN": "1:x"}, replicas=1)  # one poller is fine
    check_telegram({}, replicas=2)  # web chat and DM API only
    check_telegram({"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_WEBHOOK_URL": "https://b/t",
                    "TELEGRAM_WEBHOOK_SECRET": "s"}, replicas=2)


def test_compose_runs_the_same_processes():
    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    services = compose["services"]
    for process in topology(2):
        service = services[process.name]
        command = service["command"]
        if command[:2] == ["sh", "-c"]:  # the gateway checks Telegram's mode first
            assert command[2].endswith("exec " + " ".join(process.argv))
        else:
            assert command == list(process.argv)
        env = service["environment"]
        for name, value in process.fixed_env:
            if name == "RASA_URL":  # the same servers, by their compose names
                assert env[name] == "http://rasa1:5005,http://rasa2:5006"
            elif name == "ACTION_ENDPOINT_URL":
                assert env[name] == value.replace("127.0.0.1", f"actions{process.replica}")
            else:
                assert env[name] == value, (process.name, name)
        for name in process.services:
            assert name in env, (process.name, name)
        if process.kind == "actions":
            assert env["SANIC_KEEP_ALIVE_TIMEOUT"] == str(ACTIONS_KEEP_ALIVE_SECONDS)
        assert process.health_url in " ".join(service["healthcheck"]["test"])
    assert {"postgres", "redis", "databases"} <= set(services)


def test_create_databases_makes_missing_ones_once_with_their_tables():
    import sqlalchemy as sa

    host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
    gateway, tracker = (f"postgresql://postgres@{host}:{port}/topology_{uuid.uuid4().hex[:8]}"
                        for _ in range(2))
    try:
        assert create_database(gateway) is True
        assert create_database(gateway) is False  # present: left alone
        assert create_database(tracker) is True
        create_schemas(gateway, tracker)
        create_schemas(gateway, tracker)  # again: nothing to do
        for url, table in ((gateway, "messages"), (tracker, "events")):
            engine = sa.create_engine(url)
            assert sa.inspect(engine).has_table(table)
            engine.dispose()
    finally:
        drop_database(gateway)
        drop_database(tracker)
    with pytest.raises(TopologyError):
        create_database(f"postgresql://postgres@{host}:{port}/bad-name")


def test_the_action_server_waits_for_a_busy_rasa_to_write_its_request():
    """A new connection idle past Sanic's keep-alive timeout is closed before the call."""
    [actions] = [p for p in topology(1) if p.kind == "actions"]
    assert int(actions.environment({})["SANIC_KEEP_ALIVE_TIMEOUT"]) >= 60
    assert "SANIC_KEEP_ALIVE_TIMEOUT=75" in (PROJECT_ROOT / "Procfile").read_text()
