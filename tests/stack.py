"""The real stack (Rasa server, action server, gateway) as subprocesses, like `make run`.

Used by the end-to-end test and the DM burst benchmark; Telegram is the
loopback fake Bot API server. As under `make run`, Rasa and the action server
listen on 127.0.0.1 only, and Rasa's HTTP API needs ``RASA_TOKEN`` (this test
process's own random one), which the gateway is given too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Dict, List, Optional

import httpx

from bot.brand import PROJECT_ROOT
from tests.fake_telegram import FakeTelegram
from tests.gateway_support import free_port

# Rasa's --auth-token for every server these helpers start; never a fixed value.
RASA_TOKEN = secrets.token_urlsafe(24)


@dataclass
class Stack:
    rasa_url: str
    gateway_url: str
    rasa_token: str = RASA_TOKEN  # for calls to Rasa's HTTP API (?token=)


async def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url, timeout=2)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


@contextlib.asynccontextmanager
async def running_rasa(model: Path, work: Path, port: Optional[int] = None,
                       endpoints: str = "{}\n", env: Optional[Dict[str, str]] = None,
                       timeout: float = 240) -> AsyncIterator[str]:
    """`rasa run --enable-api` serving ``model`` (on a free port if none given); yields its URL.

    Started as the Procfile does (bot.rasa_server): on 127.0.0.1, with
    ``RASA_TOKEN`` as its --auth-token. ``endpoints`` is the text of its
    endpoints.yml; its log is work/rasa.log.
    """
    port = port or free_port()
    (work / "endpoints.yml").write_text(endpoints)
    command = [sys.executable, "-m", "bot.rasa_server", "--enable-api",
               "--port", str(port), "--endpoints", str(work / "endpoints.yml"),
               "--model", str(model)]
    url = f"http://127.0.0.1:{port}"
    with open(work / "rasa.log", "w") as log:  # the child keeps its own handle
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log,
                                   stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT),
                                        **(env or {}), "RASA_TOKEN": RASA_TOKEN,
                                        "RASA_HOST": "127.0.0.1"})
    try:
        await wait_http(f"{url}/status?token={RASA_TOKEN}", timeout)
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.asynccontextmanager
async def running_stack(model: Path, fake: FakeTelegram,
                        extra_env: Dict[str, str] = None) -> AsyncIterator[Stack]:
    work = Path(tempfile.mkdtemp(prefix="stack-"))
    rasa_port, actions_port, gateway_port = free_port(), free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT),
           "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_BASE_URL": fake.base_url,
           "RASA_URL": f"http://127.0.0.1:{rasa_port}", "RASA_TOKEN": RASA_TOKEN,
           "GATEWAY_PORT": str(gateway_port), "SANIC_HOST": "127.0.0.1",  # actions' host
           "DATABASE_URL": f"sqlite:///{work / 'gateway.db'}", "WEBCHAT": "off",
           **(extra_env or {})}
    commands: Dict[str, List[str]] = {
        "actions": [str(Path(sys.executable).parent / "rasa"), "run", "actions",
                    "--port", str(actions_port), "--actions", "actions"],
        "gateway": [sys.executable, "-m", "bot.gateway"],
    }
    processes: List[subprocess.Popen] = []
    try:
        for name, command in commands.items():
            with open(work / f"{name}.log", "w") as log:  # the child keeps its own handle
                processes.append(subprocess.Popen(command, cwd=PROJECT_ROOT, env=env,
                                                  stdout=log, stderr=subprocess.STDOUT))
        endpoints = f"action_endpoint:\n  url: http://127.0.0.1:{actions_port}/webhook\n"
        async with running_rasa(model, work, rasa_port, endpoints, env) as rasa_url:
            await wait_http(f"http://127.0.0.1:{actions_port}/health", 60)
            await wait_http(f"http://127.0.0.1:{gateway_port}/health", 60)
            yield Stack(rasa_url, f"http://127.0.0.1:{gateway_port}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            stop(process)


def listening_addresses(port: int) -> set:
    """The local addresses a TCP socket listens on at ``port`` (Linux /proc/net/tcp*)."""
    addresses = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    addresses.add(_ip(address, width))
    return addresses


def _ip(hex_address: str, width: int) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    # The kernel prints each 32-bit word in host (little-endian) order.
    ordered = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(ordered if width == 32 else ordered[:4]))
