"""Switch the running Rasa server to a trained model, and say which model is live.

    python -m bot.trainer.deploy [--model PATH] [--rasa-url URL] [--timeout SECONDS]

`make deploy-model` runs this after `make train`. Defaults: the model
bot.train writes (models/juniper-lane.tar.gz); the Rasa server at $RASA_URL,
else http://localhost:5005, as the gateway uses it. If Rasa runs with
--auth-token, set RASA_TOKEN to the same value.

It reads GET /status (the live model), asks Rasa to load the model with
PUT /model, then reads GET /status again and prints one line, for example:

    Live model: /srv/bot/models/juniper-lane.tar.gz (model id 1f0c..., was
    juniper-lane.tar.gz, model id 9a7e...; loaded in 31.2s)

Exit 0 only when the requested model is live; otherwise one line on stderr
says what went wrong and what to do. A model that is already live (same file
name and model id) is not loaded again.

Under `make run` Rasa runs behind bot.rasa_supervisor, which answers
PUT /model itself: it starts a second Rasa with the new model while the first
keeps answering, sends new requests to the new one once its GET /status
names the model (and a few warm-up parses are done), lets the old one finish
the requests it holds, stops it, and only then answers 204. So no message
waits for the load (the switch itself takes as long as a Rasa start at a
lower CPU priority, one to two minutes, and memory briefly doubles). A model
that fails to load, or does not within RASA_SWITCH_LOAD_TIMEOUT (480 s),
leaves the old one live (400, with the reason); a second deploy while one
runs is refused (409).

Against a bare Rasa (`python -m bot.rasa_server`) the same calls work, but
Rasa 3.6 loads the model inside the serving process (rasa/server.py,
rasa/core/agent.py): it builds a new Agent beside the serving one and swaps
it in once ready, so a model that fails to load leaves the old one live (400),
yet loading blocks Rasa's event loop, and every request arriving meanwhile
waits (queued by the OS, up to SANIC_BACKLOG connections) for the whole load,
~25-40 s with our model (bench/model_switch.py --direct).

Either way Rasa reads the model file itself, so the path must exist on Rasa's
machine, and conversations survive the switch only with a persistent tracker
store (SQL in endpoints.yml); with the in-memory store they start afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO

import httpx

from bot.gateway.settings import Settings
from bot.train import MODEL_PATH

# Loading a model here takes tens of seconds, more while something trains.
DEFAULT_LOAD_TIMEOUT = 600.0
STATUS_TIMEOUT = 30.0


class DeployError(RuntimeError):
    """The model was not switched; the text says why and what to do."""


@dataclass(frozen=True)
class LiveModel:
    file_name: Optional[str]  # Rasa reports only the archive's file name
    model_id: Optional[str]

    def describe(self) -> str:
        if self.file_name is None:
            return "no model"
        return f"{self.file_name}, model id {self.model_id}"


def default_rasa_url(env: Dict[str, str] = os.environ) -> str:
    """RASA_URL as the gateway reads it (bot.gateway.settings)."""
    return env.get("RASA_URL", "").strip() or Settings.rasa_url


def model_id_of(archive: Path) -> str:
    """The model id stored in a Rasa 3 model archive's metadata.json.

    Rasa writes metadata.json last, so a truncated archive fails here too.
    """
    try:
        with tarfile.open(archive, mode="r|gz") as tar:  # streamed: stops at metadata.json
            for member in tar:
                if member.isfile() and Path(member.name) == Path("metadata.json"):
                    handle = tar.extractfile(member)
                    metadata = json.load(handle) if handle else {}
                    break
            else:
                metadata = {}
    except (OSError, tarfile.TarError, ValueError, EOFError) as error:
        raise DeployError(f"{archive} is not a Rasa model archive ({error}); "
                          "train one with `make train`") from None
    model_id = metadata.get("model_id") if isinstance(metadata, dict) else None
    if not model_id:
        raise DeployError(f"{archive} is not a Rasa model archive (no metadata.json with a "
                          "model_id); train one with `make train`")
    return str(model_id)


class RasaAdmin:
    """The few calls of Rasa's HTTP API (rasa run --enable-api) that a switch needs."""

    def __init__(self, url: str, token: Optional[str] = None,
                 load_timeout: float = DEFAULT_LOAD_TIMEOUT,
                 transport: Optional[httpx.BaseTransport] = None) -> None:
        self.url = url.rstrip("/")
        self.load_timeout = load_timeout
        # Rasa's --auth-token is checked against the `token` query parameter.
        self._client = httpx.Client(base_url=self.url, transport=transport,
                                    params={"token": token} if token else None)

    def close(self) -> None:
        self._client.close()

    def status(self) -> LiveModel:
        response = self._request("GET", "/status", timeout=STATUS_TIMEOUT,
                                 too_slow="check its log (is it overloaded?) and try again")
        if response.status_code == 409:  # Rasa runs, but no model is loaded
            return LiveModel(None, None)
        self._raise_for(response, "Rasa refused GET /status")
        body = response.json()
        return LiveModel(body.get("model_file"), body.get("model_id"))

    def load(self, model: Path) -> None:
        response = self._request(
            "PUT", "/model", json={"model_file": str(model)}, timeout=self.load_timeout,
            too_slow="it may still switch: check its log and GET /status, or retry with a "
                     "larger --timeout")
        self._raise_for(response, f"Rasa refused to load {model}")

    def _request(self, method: str, path: str, timeout: float, too_slow: str,
                 **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, timeout=timeout, **kwargs)
        except httpx.TimeoutException:
            raise DeployError(f"Rasa at {self.url} did not answer {method} {path} within "
                              f"{timeout:.0f}s; {too_slow}") from None
        except httpx.HTTPError as error:
            raise DeployError(f"Rasa is not reachable at {self.url} "
                              f"({error.__class__.__name__}); start it with `make run`, or "
                              "pass --rasa-url / set RASA_URL") from None

    @staticmethod
    def _raise_for(response: httpx.Response, what: str) -> None:
        if response.is_success:
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        message = " ".join(str(message or response.text).split()) or response.reason_phrase
        hint = {401: " (set RASA_TOKEN to the --auth-token Rasa runs with)",
                403: " (set RASA_TOKEN to the --auth-token Rasa runs with)",
                404: " (is its HTTP API on? Rasa must run with --enable-api, as `make run` "
                     "does)"}.get(response.status_code, "")
        raise DeployError(f"{what} (HTTP {response.status_code}): {message}{hint}")


def deploy(model: Path, admin: RasaAdmin, out: Optional[TextIO] = None) -> LiveModel:
    """Make `model` the live model; returns it as Rasa reports it."""
    out = out or sys.stdout
    model = model.expanduser().resolve()
    if not model.is_file():
        raise DeployError(f"model file {model} not found; train one with `make train`")
    wanted = LiveModel(model.name, model_id_of(model))
    before = admin.status()
    if before == wanted:
        print(f"Live model: {model} (model id {wanted.model_id}, already live; not reloaded)",
              file=out)
        return before
    started = time.monotonic()
    admin.load(model)
    took = time.monotonic() - started
    after = admin.status()
    if after != wanted:
        raise DeployError(f"Rasa answered the switch, but the live model is {after.describe()}, "
                          f"not {wanted.describe()}; another deploy may have run at the same "
                          "time: check Rasa's log and deploy again")
    print(f"Live model: {model} (model id {after.model_id}, was {before.describe()}; "
          f"loaded in {took:.1f}s)", file=out)
    return after


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.trainer.deploy",
        description="Switch the running Rasa server to a trained model without restarting it, "
                    "and print which model is live. Set RASA_TOKEN if Rasa runs with "
                    "--auth-token.")
    parser.add_argument("--model", type=Path, default=MODEL_PATH,
                        help=f"model archive to deploy (default: {MODEL_PATH})")
    parser.add_argument("--rasa-url", default=default_rasa_url(),
                        help="Rasa server (default: $RASA_URL or http://localhost:5005)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_LOAD_TIMEOUT,
                        help="seconds to wait for Rasa to load the model "
                             f"(default: {DEFAULT_LOAD_TIMEOUT:.0f})")
    args = parser.parse_args(argv)
    token = os.environ.get("RASA_TOKEN", "").strip() or None
    admin = RasaAdmin(args.rasa_url, token=token, load_timeout=args.timeout)
    try:
        deploy(args.model, admin)
    except DeployError as error:
        print(f"deploy-model: error: {error}", file=sys.stderr)
        return 1
    finally:
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
