"""Rasa's HTTP API and the action server are not open to the network.

`make run` runs the Procfile: Rasa through bot.rasa_server (127.0.0.1 and a
token, or it does not start) and the action server on 127.0.0.1; the token
comes from RASA_TOKEN or var/rasa-token (0600), never printed. The real
Rasa refusing calls without the token is checked live in
test_trainer_deploy.py and test_conversation_ids.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import httpx
import pytest

from bot.brand import PROJECT_ROOT
from bot.gateway.settings import Settings
from bot.rasa_server import MissingTokenError, rasa_run_argv
from bot.rasa_token import rasa_token
from tests.gateway_support import free_port
from tests.stack import listening_addresses

HONCHO = str(PROJECT_ROOT / ".venv" / "bin" / "honcho")


def test_a_token_is_made_once_privately_and_reused(tmp_path):
    path = tmp_path / "var" / "rasa-token"
    first = rasa_token({}, path)
    assert len(first) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert rasa_token({}, path) == first
    assert rasa_token({"RASA_TOKEN": " shared-by-hosts "}, path) == "shared-by-hosts"
    path.chmod(0o644)
    assert rasa_token({}, path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_wrapper_passes_the_token_in_the_environment_and_prints_nothing(tmp_path):
    script = "import os; open(os.environ['OUT'], 'w').write(os.environ['RASA_TOKEN'])"
    env = {**os.environ, "RASA_TOKEN": "from-the-caller", "OUT": str(tmp_path / "seen"),
           "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-m", "bot.rasa_token", sys.executable, "-c",
                           script], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "seen").read_text() == "from-the-caller"
    assert done.stdout == "" and "from-the-caller" not in done.stderr


def test_a_token_beginning_with_a_dash_reaches_rasa_as_the_token():
    """token_urlsafe begins one token in 64 with "-"; Rasa's CLI must not take it for an option."""
    from rasa.__main__ import create_argument_parser

    for token in ("-wTGAIHdcBX5VJ", "--x", "plain-token"):
        argv = rasa_run_argv(["--enable-api"], {"RASA_TOKEN": token})
        assert create_argument_parser().parse_args(argv[1:]).auth_token == token


def test_rasa_runs_on_loopback_with_the_token_and_never_without_one():
    argv = rasa_run_argv(["--enable-api", "--port", "5005"], {"RASA_TOKEN": "t0ken"})
    assert argv[:4] == ["rasa", "run", "--interface", "127.0.0.1"]
    assert argv[-2:] == ["--auth-token", "t0ken"]
    other = rasa_run_argv([], {"RASA_TOKEN": "t0ken", "RASA_HOST": "10.0.0.5"})
    assert other[2:4] == ["--interface", "10.0.0.5"]
    for env in ({}, {"RASA_TOKEN": "  "}):
        with pytest.raises(MissingTokenError):
            rasa_run_argv(["--enable-api"], env)


def test_the_gateway_reads_the_token_and_keeps_it_out_of_its_repr():
    settings = Settings.from_env({"RASA_TOKEN": "t0ken", "TELEGRAM_BOT_TOKEN": "1:abc"})
    assert settings.rasa_token == "t0ken"
    assert "t0ken" not in repr(settings) and "1:abc" not in repr(settings)


def procfile_env(**values: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in {"RASA_TOKEN", "RASA_HOST", "ACTIONS_HOST", "SANIC_HOST"}}
    return {**env, **values}


def test_the_procfile_refuses_to_start_rasa_without_a_token():
    done = subprocess.run([HONCHO, "start", "-f", "Procfile", "rasa"], cwd=PROJECT_ROOT,
                          env=procfile_env(RASA_PORT=str(free_port())), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "RASA_TOKEN is not set" in done.stdout + done.stderr


def test_the_procfile_action_server_listens_on_loopback_only():
    port = free_port()
    process = subprocess.Popen([HONCHO, "start", "-f", "Procfile", "actions"],
                               cwd=PROJECT_ROOT, env=procfile_env(ACTIONS_PORT=str(port)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("the action server did not come up")
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        process.terminate()  # honcho stops its children
        process.wait(timeout=30)
