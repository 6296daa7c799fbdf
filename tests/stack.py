"""The real stack (Rasa server, action server, gateway) as subprocesses, like `make run`.

Used by the end-to-end test and the DM burst benchmark; Telegram is the
loopback fake Bot API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Dict, List

import httpx

from bot.brand import PROJECT_ROOT
from tests.fake_telegram import FakeTelegram
from tests.gateway_support import free_port


@dataclass
class Stack:
    rasa_url: str
    gateway_url: str


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
async def running_stack(model: Path, fake: FakeTelegram,
                        extra_env: Dict[str, str] = None) -> AsyncIterator[Stack]:
    work = Path(tempfile.mkdtemp(prefix="stack-"))
    rasa_port, actions_port, gateway_port = free_port(), free_port(), free_port()
    endpoints = work / "endpoints.yml"
    endpoints.write_text(f"action_endpoint:\n  url: http://localhost:{actions_port}/webhook\n")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT),
           "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_BASE_URL": fake.base_url,
           "RASA_URL": f"http://localhost:{rasa_port}", "GATEWAY_PORT": str(gateway_port),
           "DATABASE_URL": f"sqlite:///{work / 'gateway.db'}", "WEBCHAT": "off",
           **(extra_env or {})}
    bin_dir = Path(sys.executable).parent
    commands: List[List[str]] = [
        [str(bin_dir / "rasa"), "run", "--enable-api", "--port", str(rasa_port),
         "--endpoints", str(endpoints), "--model", str(model)],
        [str(bin_dir / "rasa"), "run", "actions", "--port", str(actions_port),
         "--actions", "actions"],
        [sys.executable, "-m", "bot.gateway"],
    ]
    logs = [open(work / f"{i}.log", "w") for i in range(len(commands))]  # noqa: SIM115
    processes = [subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
                 for command, log in zip(commands, logs, strict=True)]
    try:
        await wait_http(f"http://localhost:{rasa_port}/status", 240)
        await wait_http(f"http://localhost:{actions_port}/health", 60)
        await wait_http(f"http://localhost:{gateway_port}/health", 60)
        yield Stack(f"http://localhost:{rasa_port}", f"http://localhost:{gateway_port}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()
