"""Servers a benchmark starts and stops: the project's brain, and a vanilla `rasa init` bot.

The project's processes are started as the Procfile starts them, with the
project's own endpoints.yml (its SQL tracker store, on SQLite) rewritten only
for free ports and a throwaway database folder, so the figures are those of
`make run`. The vanilla bot is Rasa's starter project, built with
`rasa init` once and cached under var/bench/ (its training takes minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Dict, List, Optional

import httpx
import yaml

from bot.brand import PROJECT_ROOT
from bot.trainer.deploy import DeployError, model_id_of
from tests.gateway_support import free_port
from tests.stack import stop

BIN = Path(sys.executable).parent
VANILLA_DIR = PROJECT_ROOT / "var" / "bench" / "vanilla-rasa-init"


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen


@dataclass
class Brain:
    """A Rasa server and what it needs, as started; ``rasa`` takes the load."""

    rasa: Server
    others: List[Server] = field(default_factory=list)

    @property
    def servers(self) -> List[Server]:
        return [self.rasa, *self.others]


def vanilla_bot() -> Path:
    """The folder of a trained `rasa init` bot, made once (about two minutes)."""
    if _has_model(VANILLA_DIR):
        return VANILLA_DIR
    building = VANILLA_DIR.with_name(VANILLA_DIR.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    print("building the vanilla `rasa init` bot (once; cached in var/bench/)...",
          file=sys.stderr)
    subprocess.run([str(BIN / "rasa"), "init", "--no-prompt", "--init-dir", str(building)],
                   cwd=building, check=True, stdout=subprocess.DEVNULL)
    if not _has_model(building):
        raise RuntimeError(f"`rasa init` in {building} made no model; see its output above")
    shutil.rmtree(VANILLA_DIR, ignore_errors=True)
    building.rename(VANILLA_DIR)
    return VANILLA_DIR


def _has_model(folder: Path) -> bool:
    """A whole model archive is there (a truncated one has no readable metadata)."""
    for archive in (folder / "models").glob("*.tar.gz"):
        try:
            model_id_of(archive)
            return True
        except DeployError:
            archive.unlink()
    return False


async def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: the process exited ({process.returncode})")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url, timeout=2)).status_code == 200:
                    return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


def start(name: str, command: List[str], cwd: Path, env: Dict[str, str], log: Path
          ) -> subprocess.Popen:
    with open(log, "w") as handle:  # the child keeps its own handle
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=handle,
                                stderr=subprocess.STDOUT)


def stop_all(processes: List[subprocess.Popen]) -> None:
    """All asked to stop at once, then each waited for (killed after a grace)."""
    for process in processes:
        process.terminate()
    for process in processes:
        stop(process)


@contextlib.asynccontextmanager
async def vanilla_rasa(work: Path) -> AsyncIterator[Brain]:
    """`rasa run` on the vanilla bot, exactly as `rasa init` made it."""
    folder = vanilla_bot()
    port = free_port()
    # --enable-api only for /status, which answers 200 once the model is loaded.
    process = start("vanilla", [str(BIN / "rasa"), "run", "--enable-api", "--port", str(port)],
                    folder, dict(os.environ), work / "vanilla-rasa.log")
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(f"{url}/status", process)
        yield Brain(Server("vanilla rasa", url, process))
    finally:
        stop_all([process])


def project_endpoints(work: Path, actions_port: int) -> Path:
    """endpoints.yml as `make run` uses it, on this run's action port and database folder."""
    endpoints = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text())
    endpoints["action_endpoint"]["url"] = f"http://127.0.0.1:{actions_port}/webhook"
    store = endpoints.get("tracker_store") or {}
    if store.get("dialect") == "sqlite":
        store["db"] = str(work / "rasa_tracker.db")
    path = work / "endpoints.yml"
    path.write_text(yaml.safe_dump(endpoints))
    return path


@contextlib.asynccontextmanager
async def project_brain(work: Path, model: Path, token: str,
                        extra_env: Optional[Dict[str, str]] = None,
                        gateway: bool = True) -> AsyncIterator[Brain]:
    """The project's Rasa (behind its supervisor), action server and (idle) gateway, as the
    Procfile starts them."""
    rasa_port, actions_port, gateway_port = free_port(), free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "RASA_TOKEN": token,
           "RASA_PORT": str(rasa_port), "ACTIONS_PORT": str(actions_port),
           "GATEWAY_PORT": str(gateway_port), "RASA_URL": f"http://127.0.0.1:{rasa_port}",
           "DATABASE_URL": f"sqlite:///{work / 'gateway.db'}", **(extra_env or {})}
    endpoints = project_endpoints(work, actions_port)
    actions = start("actions", [str(BIN / "rasa"), "run", "actions", "--port",
                                str(actions_port), "--actions", "actions"],
                    PROJECT_ROOT, {**env, "SANIC_HOST": "127.0.0.1",
                                   "SANIC_KEEP_ALIVE_TIMEOUT": "75"}, work / "actions.log")
    rasa = start("rasa", [sys.executable, "-m", "bot.rasa_supervisor", "--enable-api", "--port",
                          str(rasa_port), "--endpoints", str(endpoints), "--credentials",
                          "credentials.yml", "--model", str(model)],
                 PROJECT_ROOT, env, work / "rasa.log")
    processes = [actions, rasa]
    servers = [Server("action server", f"http://127.0.0.1:{actions_port}", actions)]
    try:
        if gateway:
            process = start("gateway", [sys.executable, "-m", "bot.gateway"], PROJECT_ROOT,
                            env, work / "gateway.log")
            processes.append(process)
            servers.append(Server("gateway", f"http://127.0.0.1:{gateway_port}", process))
            await wait_until_up(f"{servers[-1].url}/health", process)
        await wait_until_up(f"{servers[0].url}/health", actions)
        url = f"http://127.0.0.1:{rasa_port}"
        await wait_until_up(f"{url}/status?token={token}", rasa)
        yield Brain(Server("rasa", url, rasa), servers)
    finally:
        stop_all(processes)


def work_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="bench-"))
