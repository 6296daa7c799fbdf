"""`make deploy-model`: switch a running Rasa server to another model without downtime.

The cheap tests run the CLI with no server, or against a scripted HTTP
transport. The rest share one real Rasa server (started once for the module)
and check that a switch keeps answering requests, that a model Rasa cannot
load leaves the old one live, and which model `GET /status` then reports.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import httpx
import pytest

from bot.brand import PROJECT_ROOT
from bot.trainer import deploy
from tests.gateway_support import free_port
from tests.stack import RASA_TOKEN, running_rasa

pytestmark = pytest.mark.model

# Examples from data/nlu, so the trained model must get each one right.
PHRASES: List[Tuple[str, str]] = [
    ("where is my order", "order_status"),
    ("cancel my order", "cancel_order"),
    ("how do i reset my password", "password_reset"),
    ("I want to speak to a real person", "request_human"),
]
CLI_TIMEOUT = 900  # seconds; loading competes with other training on 2 cores


def fake_archive(path: Path, files: Dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def model_like(path: Path, model_id: str = "not-a-real-model") -> Path:
    """A tar.gz with a model id but nothing else: Rasa cannot load it."""
    return fake_archive(path, {"metadata.json": json.dumps({"model_id": model_id}).encode()})


def cli_env(token: Optional[str] = None) -> Dict[str, str]:
    """The caller's environment without its Rasa settings; ``token`` as RASA_TOKEN."""
    env = {k: v for k, v in os.environ.items() if k not in {"RASA_URL", "RASA_TOKEN"}}
    return {**env, "PYTHONPATH": str(PROJECT_ROOT), **({"RASA_TOKEN": token} if token else {})}


def run_cli(*args: str, token: Optional[str] = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.trainer.deploy", *args],
                          cwd=PROJECT_ROOT, env=cli_env(token), capture_output=True, text=True,
                          timeout=CLI_TIMEOUT)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("deploy-model: error: ")
    return line


# --- no server needed -------------------------------------------------------------


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    line = one_line_error(run_cli("--model", str(tmp_path / "nope.tar.gz"),
                                  "--rasa-url", f"http://127.0.0.1:{free_port()}"))
    assert f"model file {tmp_path / 'nope.tar.gz'} not found" in line
    assert "make train" in line


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    notes = tmp_path / "notes.tar.gz"
    notes.write_text("not a model\n")
    line = one_line_error(run_cli("--model", str(notes),
                                  "--rasa-url", f"http://127.0.0.1:{free_port()}"))
    assert f"{notes} is not a Rasa model archive" in line
    no_metadata = fake_archive(tmp_path / "empty.tar.gz", {"readme.txt": b"hello"})
    assert "no metadata.json" in one_line_error(run_cli("--model", str(no_metadata)))


def test_rasa_not_running_is_a_clear_error_that_says_make_run(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    line = one_line_error(run_cli("--model", str(model_like(tmp_path / "m.tar.gz")),
                                  "--rasa-url", url))
    assert f"Rasa is not reachable at {url}" in line
    assert "start it with `make run`" in line


def test_the_rasa_url_comes_from_rasa_url_like_the_gateway():
    assert deploy.default_rasa_url({}) == "http://localhost:5005"
    assert deploy.default_rasa_url({"RASA_URL": " http://rasa:5005 "}) == "http://rasa:5005"


class ScriptedRasa:
    """Answers like Rasa's HTTP API; records requests. `live` is (file name, model id)."""

    def __init__(self, live: Tuple[str, str], put_status: int = 204,
                 put_message: str = "", swaps_to: Optional[Tuple[str, str]] = None) -> None:
        self.live = live
        self.put_status = put_status
        self.put_message = put_message
        self.swaps_to = swaps_to
        self.requests: List[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "GET" and request.url.path == "/status":
            return httpx.Response(200, json={"model_file": self.live[0],
                                             "model_id": self.live[1],
                                             "num_active_training_jobs": 0})
        if request.method == "PUT" and request.url.path == "/model":
            if self.put_status >= 400:
                return httpx.Response(self.put_status, json={
                    "version": "3.6.21", "status": "failure", "message": self.put_message,
                    "reason": "BadRequest", "details": {}, "help": None,
                    "code": self.put_status})
            self.live = self.swaps_to or self.live
            return httpx.Response(204)
        return httpx.Response(404, text="Not Found")


def admin_for(rasa: ScriptedRasa, token: Optional[str] = None) -> deploy.RasaAdmin:
    return deploy.RasaAdmin("http://rasa.test", token=token,
                            transport=httpx.MockTransport(rasa))


def test_status_then_switch_then_status_and_the_token_goes_as_a_query_parameter(tmp_path):
    model = model_like(tmp_path / "new.tar.gz", "id-new")
    rasa = ScriptedRasa(live=("old.tar.gz", "id-old"), swaps_to=("new.tar.gz", "id-new"))
    out = io.StringIO()
    live = deploy.deploy(model, admin_for(rasa, token="s3cret"), out=out)
    assert live == deploy.LiveModel("new.tar.gz", "id-new")
    assert [(r.method, r.url.path) for r in rasa.requests] == [
        ("GET", "/status"), ("PUT", "/model"), ("GET", "/status")]
    assert all(r.url.params["token"] == "s3cret" for r in rasa.requests)
    assert json.loads(rasa.requests[1].content) == {"model_file": str(model)}
    assert out.getvalue().startswith(
        f"Live model: {model} (model id id-new, was old.tar.gz, model id id-old; loaded in ")


def test_a_retrained_model_under_the_same_file_name_is_told_apart_by_its_model_id(tmp_path):
    model = model_like(tmp_path / "juniper-lane.tar.gz", "id-retrained")
    rasa = ScriptedRasa(live=("juniper-lane.tar.gz", "id-old"),
                        swaps_to=("juniper-lane.tar.gz", "id-retrained"))
    assert deploy.deploy(model, admin_for(rasa), out=io.StringIO()).model_id == "id-retrained"
    # The same file name and id again: already live, not loaded twice.
    out = io.StringIO()
    deploy.deploy(model, admin_for(rasa), out=out)
    assert "already live; not reloaded" in out.getvalue()
    assert [r.method for r in rasa.requests[3:]] == ["GET"]


def test_a_switch_that_does_not_take_effect_is_an_error(tmp_path):
    model = model_like(tmp_path / "new.tar.gz", "id-new")
    rasa = ScriptedRasa(live=("old.tar.gz", "id-old"))  # answers 204, keeps the old one
    with pytest.raises(deploy.DeployError, match="the live model is old.tar.gz, model id "
                                                 "id-old, not new.tar.gz, model id id-new"):
        deploy.deploy(model, admin_for(rasa), out=io.StringIO())


@pytest.mark.parametrize("status, message, expected", [
    (401, "User is not authenticated.", "(set RASA_TOKEN to the --auth-token"),
    (403, "User has insufficient permissions.", "(set RASA_TOKEN to the --auth-token"),
    (400, "Agent with name 'x' could not be loaded.", "could not be loaded."),
    (500, "An unexpected error occurred. Error: boom", "Error: boom"),
])
def test_a_refusal_shows_rasas_own_message(tmp_path, status, message, expected):
    model = model_like(tmp_path / "new.tar.gz")
    rasa = ScriptedRasa(live=("old.tar.gz", "id-old"), put_status=status, put_message=message)
    with pytest.raises(deploy.DeployError) as error:
        deploy.deploy(model, admin_for(rasa), out=io.StringIO())
    assert str(error.value).startswith(f"Rasa refused to load {model} (HTTP {status}): "
                                       f"{message}")
    assert expected in str(error.value)


# --- one real Rasa server for the rest of the module -----------------------------


@pytest.fixture(scope="module")
def event_loop():
    """One loop for the module, so that the Rasa server fixture can span its tests."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
async def rasa_url(model_path, tmp_path_factory):
    async with running_rasa(model_path, tmp_path_factory.mktemp("rasa")) as url:
        yield url


# Rasa's HTTP API, with the token the test servers run with.
API = {"token": RASA_TOKEN}


async def live_model(url: str) -> Tuple[str, str]:
    async with httpx.AsyncClient(timeout=60, params=API) as client:
        response = await client.get(f"{url}/status")
    response.raise_for_status()
    return response.json()["model_file"], response.json()["model_id"]


@dataclass
class Sample:
    started: float
    latency: float
    expected: str
    got: str


async def parse_stream(url: str, done: asyncio.Event, samples: List[Sample],
                       offset: int) -> None:
    """POST /model/parse one after another until ``done``; a new connection each time."""
    limits = httpx.Limits(max_keepalive_connections=0)  # new connections must be accepted too
    async with httpx.AsyncClient(base_url=url, timeout=CLI_TIMEOUT, limits=limits,
                                 params=API) as client:
        for i in range(offset, offset + 5000):
            if done.is_set():
                return
            text, intent = PHRASES[i % len(PHRASES)]
            started = time.monotonic()
            try:
                response = await client.post("/model/parse", json={"text": text})
                got = (response.json()["intent"]["name"] if response.status_code == 200
                       else f"HTTP {response.status_code}: {response.text[:200]}")
            except httpx.HTTPError as error:
                got = f"{error.__class__.__name__}: {error}"
            samples.append(Sample(started, time.monotonic() - started, intent, got))


async def status_stream(url: str, done: asyncio.Event, seen: List[Tuple[float, str]]) -> None:
    """GET /status every 0.2 s until ``done``: which model answered, and when."""
    async with httpx.AsyncClient(base_url=url, timeout=CLI_TIMEOUT, params=API) as client:
        for _ in range(5000):
            if done.is_set():
                return
            try:
                response = await client.get("/status")
                got = (response.json()["model_file"] if response.status_code == 200
                       else f"HTTP {response.status_code}")
            except httpx.HTTPError as error:
                got = f"{error.__class__.__name__}: {error}"
            seen.append((time.monotonic(), got))
            await asyncio.sleep(0.2)


async def test_rasa_refuses_its_api_without_the_token_and_deploy_says_so(rasa_url, model_path):
    before = await live_model(rasa_url)
    async with httpx.AsyncClient(timeout=60) as client:
        for token in (None, "", "wrong"):
            params = {} if token is None else {"token": token}
            response = await client.get(f"{rasa_url}/status", params=params)
            assert response.status_code == 401, (token, response.text)
        response = await client.put(f"{rasa_url}/model", json={"model_file": str(model_path)})
        assert response.status_code == 401
    line = one_line_error(await asyncio.to_thread(
        run_cli, "--model", str(model_path), "--rasa-url", rasa_url))
    assert "(HTTP 401)" in line and "set RASA_TOKEN to the --auth-token" in line
    assert await live_model(rasa_url) == before


async def test_a_model_rasa_cannot_load_is_refused_and_the_old_one_stays_live(
        rasa_url, tmp_path):
    before = await live_model(rasa_url)
    broken = model_like(tmp_path / "broken.tar.gz")
    result = await asyncio.to_thread(run_cli, "--model", str(broken), "--rasa-url", rasa_url,
                                     token=RASA_TOKEN)
    line = one_line_error(result)
    assert f"Rasa refused to load {broken} (HTTP 400): Agent with name '{broken}' could " \
           "not be loaded." in line
    assert await live_model(rasa_url) == before

    # Rasa itself, asked directly for a tar.gz that is no model at all: the same.
    junk = fake_archive(tmp_path / "junk.tar.gz", {"readme.txt": b"hello"})
    async with httpx.AsyncClient(timeout=CLI_TIMEOUT, params=API) as client:
        response = await client.put(f"{rasa_url}/model", json={"model_file": str(junk)})
    assert response.status_code == 400, response.text
    assert await live_model(rasa_url) == before


async def test_deploy_switches_the_live_model_while_requests_keep_being_answered(
        rasa_url, model_path, tmp_path):
    old_file, model_id = await live_model(rasa_url)
    copy = tmp_path / "juniper-lane-candidate.tar.gz"
    shutil.copyfile(model_path, copy)
    assert copy.name != old_file

    done = asyncio.Event()
    samples: List[Sample] = []
    statuses: List[Tuple[float, str]] = []
    streams = [asyncio.create_task(parse_stream(rasa_url, done, samples, offset))
               for offset in range(3)]
    streams.append(asyncio.create_task(status_stream(rasa_url, done, statuses)))
    await asyncio.sleep(2)  # the stream is flowing before the deploy starts
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.trainer.deploy", "--model", str(copy),
        "--rasa-url", rasa_url, cwd=PROJECT_ROOT, env=cli_env(RASA_TOKEN),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    deploy_seconds = time.monotonic() - started
    await asyncio.sleep(2)  # and goes on after it
    done.set()
    await asyncio.gather(*streams)

    output, errors = stdout.decode(), stderr.decode()
    assert process.returncode == 0, errors
    assert output.startswith(f"Live model: {copy} (model id {model_id}, "
                             f"was {old_file}, model id {model_id}; loaded in "), output
    assert await live_model(rasa_url) == (copy.name, model_id)

    failed = [s for s in samples if s.got != s.expected]
    assert failed == [], f"{len(failed)} of {len(samples)} requests failed: {failed[:5]}"
    models_seen = [name for _, name in statuses]
    assert set(models_seen) == {old_file, copy.name}, models_seen
    switched_at = models_seen.index(copy.name)
    assert models_seen[:switched_at] == [old_file] * switched_at  # old, then only new
    assert models_seen[switched_at:] == [copy.name] * (len(models_seen) - switched_at)

    loaded_in = float(re.search(r"loaded in ([\d.]+)s", output).group(1))
    during = [s for s in samples if s.started < started + deploy_seconds
              and s.started + s.latency > started]
    assert during, "no request was made while the deploy ran"
    worst = max(samples, key=lambda s: s.latency)
    print(f"\ndeploy: CLI {deploy_seconds:.1f}s, Rasa loaded the model in {loaded_in:.1f}s; "
          f"{len(samples)} parse requests, {len(during)} during the deploy, 0 failed; "
          f"longest {worst.latency:.1f}s; {len(statuses)} status polls, "
          f"longest {max_gap(statuses):.1f}s between answers")

    # Deploying it again: already live, nothing reloaded.
    again = await asyncio.to_thread(run_cli, "--model", str(copy), "--rasa-url", rasa_url,
                                    token=RASA_TOKEN)
    assert again.returncode == 0, again.stderr
    assert "already live; not reloaded" in again.stdout


def max_gap(seen: List[Tuple[float, str]]) -> float:
    times = [t for t, _ in seen]
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
