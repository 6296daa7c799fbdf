"""Shared fixtures: one trained model per test session, services on demand."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Tuple

import pytest
import requests
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings

from bot.brand import PROJECT_ROOT
from tests.browser import browser_page_fixture  # noqa: F401 - registers browser_page
from tests.fake_telegram import fake_telegram_fixture  # noqa: F401 - registers the fixture

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"

# Hypothesis profiles: HYPOTHESIS_PROFILE=ci (the default: make test) or fuzz (make fuzz).
# Each fuzz test sets its own max_examples (tests/fuzz_support.py budget()); these set the
# rest. ci is reproducible (derandomize, no example database); fuzz explores anew each run.
# The fuzz tests never pass fixtures to hypothesis, so no health check needs suppressing for
# that; the ones below are about inputs that are large or slow to make on purpose.
_FUZZ_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                HealthCheck.filter_too_much]
# ci does not shrink: a failure is reported with the request as sent (Probe notes it), and
# shrinking a megabyte body can take minutes; its minimal form belongs in a regression test.
hypothesis_settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True,
                                     database=None, print_blob=True,
                                     phases=[Phase.explicit, Phase.reuse, Phase.generate],
                                     suppress_health_check=_FUZZ_HEALTH)
hypothesis_settings.register_profile("fuzz", deadline=None, database=None, print_blob=True,
                                     suppress_health_check=_FUZZ_HEALTH)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def service_or_skip(name: str, host: str, port: int) -> Tuple[str, int]:
    """(host, port) of a reachable local service; skip, or fail under REQUIRE_SERVICES=1."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return host, port
    except OSError as error:
        message = f"{name} is not reachable at {host}:{port} ({error})"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message}; REQUIRE_SERVICES=1 requires it")
        pytest.skip(f"{message}; start it or set REQUIRE_SERVICES=1 to make this an error")


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The trained model; trains only if data or config changed (bot.train)."""
    from bot.train import train

    return train()


@pytest.fixture(scope="session")
def agent(model_path: Path):
    """The model loaded once, without an action server (NLU and dialogue predictions)."""
    from rasa.core.agent import Agent

    return Agent.load(str(model_path))


@pytest.fixture(scope="session")
def action_server() -> Iterator[str]:
    """A real action server process (rasa_sdk serving actions/); yields its webhook URL."""
    from tests.gateway_support import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("action server did not start within 60 s")
    yield f"{url}/webhook"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def live_agent(model_path: Path, action_server: str):
    """The model loaded once, with the real action server: whole turns, as customers get them."""
    from rasa.core.agent import Agent
    from rasa.utils.endpoints import EndpointConfig

    return Agent.load(str(model_path), action_endpoint=EndpointConfig(url=action_server))


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture
async def rasa():
    """A stand-in for Rasa's REST channel that tests can slow down, stop and restart."""
    from tests.gateway_support import RasaStandIn

    stand_in = RasaStandIn()
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's reporter
    """After fuzz tests: how many cases ran, and how many 5xx and crashes they found."""
    fuzz = sys.modules.get("tests.fuzz_support")
    if fuzz is not None and fuzz.STATS.cases:
        terminalreporter.write_sep("=", "fuzz summary")
        terminalreporter.write_line(fuzz.STATS.summary())
