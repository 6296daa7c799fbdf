"""bot.rasa_supervisor: a new model goes live in a second Rasa while the first keeps answering.

Most tests run the real supervisor process in front of a fake Rasa child
(``fake_rasa`` below, through RASA_CHILD_COMMAND): a loopback HTTP server
that, like Rasa, listens only once its "model" is loaded, answers
``GET /status`` with the token, and has routes to echo a request, stream an
answer, or take its time. Its "model" is a tar.gz with a metadata.json (so
that bot.trainer.deploy takes it) saying how it behaves: how long it loads,
whether it exits or comes up without a model. The last test switches the real
Rasa with the real model while customers talk to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import httpx
import pytest

from bot.brand import PROJECT_ROOT
from bot.rasa_supervisor import (
    DEFAULT_SWITCH_NICE,
    MissingTokenError,
    OptionsError,
    Supervisor,
    free_port,
    parse_options,
    redact,
)

TOKEN = "sup-" + uuid.uuid4().hex
FAKE_CHILD = [sys.executable, "-c",
              "import sys; from tests.test_rasa_supervisor import fake_rasa; fake_rasa()"]
START_TIMEOUT = 30.0


# --- the fake Rasa child --------------------------------------------------------------


def fake_rasa(argv: Optional[Sequence[str]] = None) -> None:
    """A stand-in for `python -m bot.rasa_server`: what the supervisor needs of Rasa."""
    import argparse
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model")
    parser.add_argument("--enable-api", action="store_true")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    metadata: Dict[str, Any] = {}
    with contextlib.suppress(OSError, tarfile.TarError, ValueError, KeyError, TypeError):
        with tarfile.open(args.model, "r:gz") as tar:
            metadata = json.load(tar.extractfile("metadata.json"))
    spec = metadata.get("fake", {})
    if spec.get("pid_file"):
        Path(spec["pid_file"]).write_text(str(os.getpid()))
    time.sleep(spec.get("load_seconds", 0))  # Rasa listens only once its model is loaded
    if "exit" in spec:
        sys.exit(spec["exit"])
    token = os.environ["RASA_TOKEN"]
    model_file = Path(args.model).name if args.model else None
    host = os.environ.get("RASA_HOST", "")
    lock = threading.Lock()
    served = {"requests": 0, "parses": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                    if size == 0:
                        return b"".join(parts)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, body: Any, headers: Sequence[Tuple[str, str]] = ()
                  ) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Fake-Pid", str(os.getpid()))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _route(self) -> None:
            with lock:
                served["requests"] += 1
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            body = self._body()
            if url.path == "/status":
                if query.get("token", [""])[0] != token:
                    return self._send(401, {"reason": "NotAuthenticated"})
                if spec.get("no_model"):
                    return self._send(409, {"reason": "Conflict", "message": "No agent"})
                return self._send(200, {"model_file": model_file,
                                        "model_id": metadata.get("model_id"),
                                        "num_active_training_jobs": 0,
                                        "pid": os.getpid(), "host": host,
                                        "parses": served["parses"], "nice": os.nice(0)})
            if url.path == "/model/parse" and self.command == "POST":
                with lock:
                    served["parses"] += 1
                return self._send(200, {"text": json.loads(body)["text"],
                                        "intent": {"name": "greet", "confidence": 1.0}})
            if url.path == "/slow":
                started = time.time()
                time.sleep(float(query["seconds"][0]))
                return self._send(200, {"pid": os.getpid(), "model": model_file,
                                        "started": started, "ended": time.time()})
            if url.path == "/stream":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(int(query["chunks"][0])):
                    data = f"chunk {i}\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    time.sleep(0.05)
                self.wfile.write(b"0\r\n\r\n")
                return None
            if url.path == "/broken":  # the answer breaks off halfway, as if Rasa died
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"5\r\nhalf \r\n")
                self.wfile.flush()
                self.close_connection = True
                return None
            if url.path.startswith("/echo"):
                status = int(query.get("status", ["200"])[0])
                return self._send(status, {
                    "method": self.command, "raw_path": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                    "body_sha256": hashlib.sha256(body).hexdigest(), "body_len": len(body),
                    "pid": os.getpid(), "model": model_file},
                    headers=[("X-Echo", "one"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                             ("Content-Encoding", "identity")])
            return self._send(404, {"reason": "NotFound"})

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _route  # noqa: N815

    server = ThreadingHTTPServer((host or "127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def fake_model(path: Path, model_id: Optional[str] = None, **spec: Any) -> Path:
    """A tar.gz that bot.trainer.deploy takes for a model; ``spec`` drives the fake child."""
    data = json.dumps({"model_id": model_id or uuid.uuid4().hex, "fake": spec}).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("metadata.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


# --- running the supervisor ----------------------------------------------------------


@dataclass
class Running:
    url: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text()

    def status(self) -> Dict[str, Any]:
        response = httpx.get(f"{self.url}/status", params={"token": TOKEN}, timeout=10)
        response.raise_for_status()
        return response.json()


def supervisor_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RASA_", "SANIC_"))}
    return {**env, "PYTHONPATH": str(PROJECT_ROOT), "RASA_TOKEN": TOKEN,
            "RASA_HOST": "127.0.0.1", **extra}


def start_supervisor(work: Path, model: Path, child: Optional[List[str]] = None,
                     **extra_env: str) -> Running:
    port = free_port()
    log = work / f"supervisor-{port}.log"
    env = supervisor_env(**extra_env)
    if child is None:
        env["RASA_CHILD_COMMAND"] = shlex.join(FAKE_CHILD)
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.rasa_supervisor", "--enable-api", "--port", str(port),
             "--endpoints", "endpoints.yml", "--model", str(model)],
            cwd=PROJECT_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    return Running(f"http://127.0.0.1:{port}", process, log)


def wait_up(running: Running, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            pytest.fail(f"the supervisor exited ({running.process.returncode}):\n"
                        f"{running.log_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{running.url}/status", params={"token": TOKEN},
                         timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"the supervisor did not come up within {timeout}s:\n{running.log_text()}")


def stop_supervisor(running: Running) -> int:
    if running.process.poll() is None:
        running.process.terminate()
    try:
        return running.process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        running.process.kill()
        return running.process.wait()


@contextlib.contextmanager
def supervising(work: Path, model: Path, **extra_env: str) -> Iterator[Running]:
    running = start_supervisor(work, model, **extra_env)
    try:
        wait_up(running)
        yield running
    finally:
        stop_supervisor(running)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def children_of(pid: int) -> List[int]:
    found: List[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def wait_gone(pids: Sequence[int], timeout: float = 30) -> List[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def put_model(url: str, body: Any = None, token: Optional[str] = TOKEN, content: bytes = None,
              timeout: float = 120) -> httpx.Response:
    params = {} if token is None else {"token": token}
    if content is not None:
        return httpx.put(f"{url}/model", params=params, content=content, timeout=timeout)
    return httpx.put(f"{url}/model", params=params, json=body, timeout=timeout)


# --- options and logs, in-process -----------------------------------------------------


def test_port_model_and_interface_are_the_supervisors_and_the_rest_goes_to_each_child():
    options = parse_options(["--enable-api", "-p", "6000", "--model=models", "--endpoints",
                             "endpoints.yml", "--cors", "*"], {"RASA_HOST": "10.0.0.2"})
    assert (options.host, options.port, options.model) == ("10.0.0.2", 6000, "models")
    assert options.child_options == ["--enable-api", "--endpoints", "endpoints.yml",
                                     "--cors", "*"]
    assert parse_options(["--enable-api"], {}).port == 5005
    assert parse_options(["--enable-api", "-i", "0.0.0.0"], {}).host == "0.0.0.0"
    for bad in (["--port", "5005"], ["--enable-api", "--ssl-certificate", "c.pem"],
                ["--enable-api", "--port", "http"], ["--enable-api", "--port"]):
        with pytest.raises(OptionsError):
            parse_options(bad, {})
    with pytest.raises(MissingTokenError):
        Supervisor(["--enable-api"], env={})
    for name, value in (("RASA_SWITCH_NICE", "-5"), ("RASA_SWITCH_NICE", "20"),
                        ("RASA_SWITCH_LOAD_TIMEOUT", "nan"), ("RASA_TIMEOUT_SECONDS", "0")):
        with pytest.raises(OptionsError, match=name):
            Supervisor(["--enable-api"], env={"RASA_TOKEN": "t", name: value})


def test_tokens_are_redacted_from_log_lines():
    line = "GET http://127.0.0.1:5005/status?token=abc123&x=1 failed; token abc123 again"
    assert redact(line, "abc123") == ("GET http://127.0.0.1:5005/status?token=[redacted]&x=1 "
                                      "failed; token [redacted] again")


def test_without_a_token_it_refuses_to_start(tmp_path):
    env = {k: v for k, v in supervisor_env().items() if k != "RASA_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "bot.rasa_supervisor", "--enable-api"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "RASA_TOKEN is not set" in done.stderr


# --- the proxy -----------------------------------------------------------------------


def test_requests_and_answers_pass_through_unchanged(tmp_path):
    with supervising(tmp_path, fake_model(tmp_path / "a.tar.gz")) as running:
        status = running.status()
        assert status["model_file"] == "a.tar.gz"
        assert status["host"] == "127.0.0.1"  # the child listens on loopback only
        body = os.urandom(1_500_000)
        headers = [("X-Custom", "first"), ("X-Custom", "second"), ("Accept-Encoding", "br"),
                   ("Content-Type", "application/x-thing"), ("Authorization", "Bearer x")]
        path = "/echo/a%2Fb/%C3%A9?x=1&x=2&token=abc&empty="
        with httpx.Client(timeout=30) as client:
            response = client.request("PATCH", running.url + path + "&status=418",
                                      headers=headers, content=body)
            echoed = response.json()
            assert response.status_code == 418
            assert response.headers["X-Echo"] == "one"
            assert response.headers.get_list("Set-Cookie") == ["a=1", "b=2"]
            assert response.headers["Content-Encoding"] == "identity"
            assert echoed["method"] == "PATCH"
            assert echoed["raw_path"] == path + "&status=418"
            assert echoed["body_len"] == len(body)
            assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest()
            sent = [(k.lower(), v) for k, v in echoed["headers"]]
            for name, value in headers:
                assert (name.lower(), value) in sent
            assert ("user-agent", client.headers["User-Agent"]) in sent
            assert ("content-length", str(len(body))) in sent

            # A GET adds no body or headers of the proxy's own.
            plain = client.get(running.url + "/echo", headers={"Accept": "text/plain"})
            sent = {k.lower() for k, _ in plain.json()["headers"]}
            assert "content-type" not in sent and "content-length" not in sent
            assert plain.json()["body_len"] == 0

            # A chunked request body, and a streamed (chunked) answer.
            def chunks():
                yield b"part one, "
                yield b"part two"
            chunked = client.post(running.url + "/echo", content=chunks())
            assert chunked.json()["body_sha256"] == hashlib.sha256(
                b"part one, part two").hexdigest()
            with client.stream("GET", running.url + "/stream?chunks=20") as streamed:
                arrivals = []
                for _ in streamed.iter_raw():
                    arrivals.append(time.monotonic())
            assert streamed.headers["Transfer-Encoding"] == "chunked"
            assert arrivals[-1] - arrivals[0] > 0.5, "the answer was buffered, not streamed"

            # An answer that breaks off is broken off for the caller too, not completed.
            with pytest.raises(httpx.RemoteProtocolError):
                client.get(running.url + "/broken")

            head = client.head(running.url + "/echo")
            assert head.status_code == 200 and head.content == b""
            assert client.get(running.url + "/nowhere").status_code == 404
            # Rasa's own token rule for its API, forwarded as is.
            assert client.get(running.url + "/status").status_code == 401
    assert TOKEN not in running.log_text()


def test_put_model_without_the_right_token_is_401(tmp_path):
    other = fake_model(tmp_path / "b.tar.gz")
    with supervising(tmp_path, fake_model(tmp_path / "a.tar.gz")) as running:
        for token in (None, "", "wrong", TOKEN[:-1], TOKEN + "x", "é"):
            response = put_model(running.url, {"model_file": str(other)}, token=token)
            assert response.status_code == 401, (token, response.text)
            assert response.json()["reason"] == "NotAuthenticated"
        assert running.status()["model_file"] == "a.tar.gz"
        assert len(children_of(running.process.pid)) == 1


@pytest.mark.parametrize("content", [
    b"", b"   ", b"not json", b"[1, 2]", b'"models"', b"{}", b'{"model_file": 3}',
    b'{"model_file": ""}', b'{"model_file": "/no/such/model.tar.gz"}',
    b'{"model_file": "a\\u0000b"}', b'{"model_file": "\\ud800"}',
    b'{"model_file": "models", "model_server": {"url": "http://x"}}',
    b"\xff\xfe", b'{"model_file": "' + b"x" * 70_000 + b'"}',
])
def test_put_model_with_a_bad_body_is_400(tmp_path, content):
    with supervising(tmp_path, fake_model(tmp_path / "a.tar.gz")) as running:
        response = put_model(running.url, content=content)
        assert response.status_code == 400, response.text
        assert response.json()["status"] == "failure" and response.json()["message"]
        assert running.status()["model_file"] == "a.tar.gz"


@dataclass
class Sample:
    started: float
    seconds: float
    pid: Optional[int]
    error: str = ""


async def keep_asking(url: str, stop: asyncio.Event, samples: List[Sample]) -> None:
    """GET /echo one after another until ``stop``: which child answered, and how fast."""
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = await client.get(f"{url}/echo")
                pid = response.json()["pid"] if response.status_code == 200 else None
                error = "" if pid else f"HTTP {response.status_code}"
            except httpx.HTTPError as error_:
                pid, error = None, repr(error_)
            samples.append(Sample(started, time.monotonic() - started, pid, error))
            await asyncio.sleep(0.02)


async def test_a_switch_keeps_answering_then_hands_over_and_stops_the_old_child(tmp_path):
    from bot.trainer import deploy

    pid_file = tmp_path / "new.pid"
    new_model = fake_model(tmp_path / "b.tar.gz", "id-b", load_seconds=3, pid_file=str(pid_file))
    with supervising(tmp_path, fake_model(tmp_path / "a.tar.gz", "id-a")) as running:
        old_pid = running.status()["pid"]
        stop = asyncio.Event()
        samples: List[Sample] = []
        asking = asyncio.create_task(keep_asking(running.url, stop, samples))
        async with httpx.AsyncClient(timeout=60) as client:
            slow = asyncio.create_task(client.post(f"{running.url}/slow?seconds=7"))
            await asyncio.sleep(0.5)
            started = time.monotonic()
            admin = deploy.RasaAdmin(running.url, token=TOKEN, load_timeout=60)
            out = io.StringIO()
            deploying = asyncio.create_task(asyncio.to_thread(deploy.deploy, new_model, admin,
                                                              out))
            while not pid_file.exists():
                await asyncio.sleep(0.05)
            loading_nice = nice_of(int(pid_file.read_text()))
            try:
                live = await deploying
            finally:
                admin.close()
            switched = time.monotonic()
            slow_answer = await slow
        await asyncio.sleep(0.5)
        stop.set()
        await asking

        assert live == deploy.LiveModel("b.tar.gz", "id-b")
        assert out.getvalue().startswith(f"Live model: {new_model} (model id id-b, was "
                                         "a.tar.gz, model id id-a; loaded in ")
        new_pid = running.status()["pid"]
        assert new_pid != old_pid
        assert running.status()["parses"] == 3  # warmed up before it went live
        # It loaded at a lower CPU priority, and has the supervisor's once live (as root,
        # or with CAP_SYS_NICE; otherwise it keeps it, and says so).
        assert loading_nice == DEFAULT_SWITCH_NICE > 0
        if os.geteuid() == 0:
            assert nice_of(new_pid) == 0 and running.status()["nice"] == 0
        # The request in flight on the old child when the new one went live was finished
        # there, and only then was the old child stopped (before the switch was answered).
        assert slow_answer.status_code == 200
        assert slow_answer.json()["pid"] == old_pid
        assert switched >= started + 3
        assert not alive(old_pid)
        assert children_of(running.process.pid) == [new_pid]

        failed = [s for s in samples if s.error]
        assert failed == [], failed[:5]
        during = [s for s in samples if started <= s.started <= switched]
        assert len(during) > 50
        assert max(s.seconds for s in samples) < 1.0, max(s.seconds for s in samples)
        pids = [s.pid for s in samples]
        handover = pids.index(new_pid)
        assert set(pids[:handover]) == {old_pid} and set(pids[handover:]) == {new_pid}
        assert samples[handover].started >= started + 3  # only once the new one was ready

        lines = [line for line in running.log_text().splitlines() if "model switch:" in line]
        assert len(lines) == 1, running.log_text()
        held, drained = re.search(rf"old pid {old_pid} finished (\d+) in-flight requests in "
                                  r"([\d.]+)s", lines[0]).groups()
        assert int(held) >= 1 and float(drained) > 1  # the slow one, maybe a quick one too
        assert TOKEN not in running.log_text()


@pytest.mark.parametrize("spec, reason", [
    ({"exit": 3, "load_seconds": 0.5}, "Rasa exited with status 3 before it was ready"),
    ({"no_model": True}, "Rasa started without a model"),
    ({"load_seconds": 60}, "Rasa was not ready within 2s"),
])
def test_a_new_child_that_fails_is_killed_and_the_old_stays_live(tmp_path, spec, reason):
    from bot.trainer import deploy

    pid_file = tmp_path / "new.pid"
    broken = fake_model(tmp_path / "broken.tar.gz", pid_file=str(pid_file), **spec)
    with supervising(tmp_path, fake_model(tmp_path / "a.tar.gz"),
                     RASA_SWITCH_LOAD_TIMEOUT="2") as running:
        old_pid = running.status()["pid"]
        response = put_model(running.url, {"model_file": str(broken)})
        assert response.status_code == 400, response.text
        message = response.json()["message"]
        assert message.startswith(f"Agent with name '{broken}' could not be loaded: ")
        assert reason in message
        assert not alive(int(pid_file.read_text()))
        assert running.status()["pid"] == old_pid
        assert children_of(running.process.pid) == [old_pid]
        assert httpx.get(f"{running.url}/echo", timeout=10).json()["pid"] == old_pid
        assert "model switch to" in running.log_text() and "failed" in running.log_text()

        # deploy-model turns it into one clear error.
        admin = deploy.RasaAdmin(running.url, token=TOKEN, load_timeout=60)
        try:
            with pytest.raises(deploy.DeployError, match=r"Rasa refused to load .* \(HTTP 400\)"):
                deploy.deploy(broken, admin, out=io.StringIO())
        finally:
            admin.close()


async def test_a_second_switch_while_one_runs_is_409(tmp_path):
    slow_model = fake_model(tmp_path / "b.tar.gz", load_seconds=3)
    other = fake_model(tmp_path / "c.tar.gz")
    with supervising(tmp_path, fake_model(tmp_path / "a.tar.gz")) as running:
        async with httpx.AsyncClient(timeout=60, params={"token": TOKEN}) as client:
            first = asyncio.create_task(client.put(f"{running.url}/model",
                                                   json={"model_file": str(slow_model)}))
            await asyncio.sleep(1)
            started = time.monotonic()
            second = await client.put(f"{running.url}/model", json={"model_file": str(other)})
            assert second.status_code == 409, second.text
            assert time.monotonic() - started < 1
            assert (await first).status_code == 204
            # Once it is over, the next one may go.
            third = await client.put(f"{running.url}/model", json={"model_file": str(other)})
            assert third.status_code == 204, third.text
        assert running.status()["model_file"] == "c.tar.gz"


def test_sigterm_stops_every_child_even_mid_switch(tmp_path):
    pid_file = tmp_path / "loading.pid"
    loading = fake_model(tmp_path / "b.tar.gz", load_seconds=60, pid_file=str(pid_file))
    running = start_supervisor(tmp_path, fake_model(tmp_path / "a.tar.gz"))
    try:
        wait_up(running)
        live_pid = running.status()["pid"]
        with contextlib.suppress(httpx.HTTPError):
            httpx.put(f"{running.url}/model", params={"token": TOKEN},
                      json={"model_file": str(loading)}, timeout=1)
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        loading_pid = int(pid_file.read_text())
        assert sorted(children_of(running.process.pid)) == sorted([live_pid, loading_pid])
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=30) == 0
        assert wait_gone([live_pid, loading_pid], timeout=5) == []
    finally:
        stop_supervisor(running)


def test_if_the_live_child_dies_the_supervisor_exits_non_zero(tmp_path):
    running = start_supervisor(tmp_path, fake_model(tmp_path / "a.tar.gz"))
    try:
        wait_up(running)
        os.kill(running.status()["pid"], signal.SIGKILL)
        assert running.process.wait(timeout=30) == 1
        assert "exited unexpectedly" in running.log_text()
    finally:
        stop_supervisor(running)


def test_a_supervisor_killed_outright_takes_its_children_with_it(tmp_path):
    running = start_supervisor(tmp_path, fake_model(tmp_path / "a.tar.gz"))
    try:
        wait_up(running)
        children = children_of(running.process.pid)
        assert len(children) == 1
        running.process.kill()  # no chance to clean up: the kernel's PDEATHSIG does
        running.process.wait()
        assert wait_gone(children, timeout=10) == []
    finally:
        stop_supervisor(running)


def test_the_supervisor_itself_stays_small(tmp_path):
    from bench.load import tree_rss_mb

    with supervising(tmp_path, fake_model(tmp_path / "a.tar.gz")) as running:
        for _ in range(50):
            httpx.get(f"{running.url}/echo", timeout=10)
        own = tree_rss_mb(running.process.pid) - sum(
            tree_rss_mb(pid) for pid in children_of(running.process.pid))
        modules = Path(f"/proc/{running.process.pid}/maps").read_text()
    print(f"\nsupervisor RSS: {own:.0f} MB")
    assert own < 80
    assert "tensorflow" not in modules and "/rasa/" not in modules


# --- the real thing ------------------------------------------------------------------


async def say(client: httpx.AsyncClient, url: str, sender: str, text: str
              ) -> Tuple[float, float, list]:
    started = time.monotonic()
    response = await client.post(f"{url}/webhooks/rest/webhook",
                                 json={"sender": sender, "message": text})
    response.raise_for_status()
    return started, time.monotonic() - started, response.json()


@pytest.mark.model
async def test_the_real_rasa_switches_models_while_customers_keep_talking(
        model_path, action_server, tmp_path):
    from bench.servers import project_endpoints
    from bot.trainer import deploy

    actions_port = int(action_server.rsplit(":", 1)[1].split("/")[0])
    endpoints = project_endpoints(tmp_path, actions_port)
    assert "sqlite" in endpoints.read_text()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "supervisor.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.rasa_supervisor", "--enable-api", "--port", str(port),
             "--endpoints", str(endpoints), "--credentials", "credentials.yml",
             "--model", str(model_path)],
            cwd=PROJECT_ROOT, env=supervisor_env(), stdout=handle, stderr=subprocess.STDOUT)
    copy = tmp_path / "juniper-lane-switched.tar.gz"
    shutil.copyfile(model_path, copy)
    try:
        deadline = time.monotonic() + 300
        async with httpx.AsyncClient(timeout=120) as client:
            while True:
                assert process.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "Rasa did not start within 300 s"
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/status", params={"token": TOKEN})
                            ).status_code == 200:
                        break
                await asyncio.sleep(1)
            old_pid = children_of(process.pid)
            # One conversation's first turns, before the switch.
            kept = f"kept-{uuid.uuid4().hex[:8]}"
            for text in ("hi there", "do you deliver to ireland?"):
                *_, replies = await say(client, url, kept, text)
                assert replies

            stop = asyncio.Event()
            turns: List[Tuple[float, float, list]] = []

            async def customer(number: int) -> None:
                texts = ("hello", "how can i pay for an order?", "where is my parcel?",
                         "thanks, bye")
                i = 0
                while not stop.is_set():
                    turns.append(await say(client, url, f"load-{number}-{i // 4}",
                                           texts[i % 4]))
                    i += 1

            customers = [asyncio.create_task(customer(n)) for n in range(3)]
            await asyncio.sleep(3)
            admin = deploy.RasaAdmin(url, token=TOKEN, load_timeout=600)
            out = io.StringIO()
            started = time.monotonic()
            try:
                live = await asyncio.to_thread(deploy.deploy, copy, admin, out)
            finally:
                admin.close()
            switched = time.monotonic()
            await asyncio.sleep(3)
            stop.set()
            await asyncio.gather(*customers)

            assert live.file_name == copy.name, out.getvalue()
            during = [t for t in turns if t[0] + t[1] >= started and t[0] <= switched]
            worst = max(t[1] for t in turns)
            print(f"\nreal switch: {switched - started:.1f}s, {len(turns)} turns "
                  f"({len(during)} during the switch), longest wait {worst:.2f}s")
            assert len(during) > 20
            assert worst < 5, worst
            assert all(replies for *_, replies in turns)
            assert wait_gone(old_pid, timeout=5) == []

            *_, replies = await say(client, url, kept, "how can i pay for an order?")
            assert replies
            tracker = (await client.get(f"{url}/conversations/{kept}/tracker",
                                        params={"token": TOKEN})).json()
            said = [e.get("text") for e in tracker["events"] if e.get("event") == "user"]
            assert said == ["hi there", "do you deliver to ireland?",
                            "how can i pay for an order?"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "model switch:" in text and TOKEN not in text
