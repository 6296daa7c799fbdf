"""The scaled topology, defined once: N gateways, N Rasa servers, N action servers.

    python -m bot.topology procfile [--replicas 2]   # prints Procfile.scaled
    python -m bot.topology check                     # refuses two Telegram pollers
    python -m bot.topology create-databases          # the two PostgreSQL databases and schemas

``make run-scaled`` runs ``check`` and ``create-databases``, then honcho on
Procfile.scaled, which is this module's ``procfile`` output (a test keeps
the committed file equal to it). The chaos benchmark (bench/chaos.py) starts
the very same processes from ``topology()`` as subprocesses, on ports of its
own, so that it can kill -9 and restart each one.

Replica ``i`` (1-based) of each kind listens on its base port + i - 1:

    gatewayI  :8080+  web chat, DM API, Telegram webhook; GET /health
    rasaI     :5005+  endpoints.production.yml: trackers in PostgreSQL, locks in Redis; GET /
    actionsI  :5055+  the action server rasaI calls; GET /health

Every gateway feeds every Rasa (``RASA_URL`` lists them all; a conversation
sticks to one and fails over), and all gateways share one PostgreSQL store
(``DATABASE_URL``), where conversation leases keep them apart. The shared
services' variables may be overridden from the environment; unset or empty,
they default to the local PostgreSQL and Redis (``SERVICE_DEFAULTS``).

Telegram: two gateways must not both poll getUpdates (Telegram serves one
poller per bot and answers the other 409), so with ``TELEGRAM_BOT_TOKEN``
set and more than one gateway, ``TELEGRAM_WEBHOOK_URL`` (and its secret) is
required: Telegram posts each update to that URL, a load balancer in front
of the gateways' ``/telegram/webhook``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

GATEWAY, RASA, ACTIONS = "gateway", "rasa", "actions"
BASE_PORTS = {GATEWAY: 8080, RASA: 5005, ACTIONS: 5055}
HEALTH_PATHS = {GATEWAY: "/health", RASA: "/", ACTIONS: "/health"}
# Sanic starts a new connection in its keep-alive stage, so the action server
# closes one whose request has not begun within KEEP_ALIVE_TIMEOUT (5 s by
# default). Rasa's event loop, busy with other conversations' NLU on a loaded
# machine, can take that long between connecting and writing; the call then
# fails ("Cannot write to closing transport"), Rasa drops the action's events
# and the customer gets no reply. A minute and a quarter leaves room for that.
ACTIONS_KEEP_ALIVE_SECONDS = 75
GATEWAY_DATABASE = "juniper_gateway"
TRACKER_DATABASE = "juniper_trackers"

# Shared services: variable -> default (the local PostgreSQL and Redis).
SERVICE_DEFAULTS: Dict[str, str] = {
    "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{GATEWAY_DATABASE}",
    "TRACKER_DB_HOST": "127.0.0.1",
    "TRACKER_DB_PORT": "5432",
    "TRACKER_DB_NAME": TRACKER_DATABASE,
    "TRACKER_DB_USER": "postgres",
    "TRACKER_DB_PASSWORD": "",
    "REDIS_HOST": "127.0.0.1",
    "REDIS_PORT": "6379",
}
GATEWAY_SERVICES = ("DATABASE_URL",)
RASA_SERVICES = tuple(name for name in SERVICE_DEFAULTS if name != "DATABASE_URL")


class TopologyError(ValueError):
    """The environment asks for something the scaled topology cannot do; the text says why."""


@dataclass(frozen=True)
class Process:
    """One process of the topology, as the Procfile line and a subprocess both need it."""

    name: str  # gateway1, rasa2, ...
    kind: str  # GATEWAY | RASA | ACTIONS
    replica: int  # 1-based
    port: int
    fixed_env: Tuple[Tuple[str, str], ...]  # set for this process whatever the environment
    services: Tuple[str, ...]  # SERVICE_DEFAULTS names it reads (overridable)
    argv: Tuple[str, ...]  # relative to the project root; .venv/bin/... as in Procfile

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{HEALTH_PATHS[self.kind]}"

    def procfile_line(self) -> str:
        assignments = [f"{name}={value}" for name, value in self.fixed_env]
        assignments += [f"{name}=${{{name}:-{SERVICE_DEFAULTS[name]}}}" for name in self.services]
        if self.kind == ACTIONS:  # rasa-sdk reads its interface from SANIC_HOST
            assignments.append("SANIC_HOST=${ACTIONS_HOST:-127.0.0.1}")
            assignments.append(f"SANIC_KEEP_ALIVE_TIMEOUT={ACTIONS_KEEP_ALIVE_SECONDS}")
        return f"{self.name}: {' '.join([*assignments, *self.argv])}"

    def environment(self, env: Mapping[str, str]) -> Dict[str, str]:
        """``env`` with this process's variables, as the shell resolves its Procfile line."""
        resolved = dict(env)
        resolved.update(self.fixed_env)
        for name in self.services:
            resolved[name] = env.get(name) or SERVICE_DEFAULTS[name]
        if self.kind == ACTIONS:
            resolved["SANIC_HOST"] = env.get("ACTIONS_HOST") or "127.0.0.1"
            resolved["SANIC_KEEP_ALIVE_TIMEOUT"] = str(ACTIONS_KEEP_ALIVE_SECONDS)
        return resolved

    def command(self, venv_bin: Optional[Path] = None) -> List[str]:
        """The argv, with ``.venv/bin/`` replaced by ``venv_bin`` when given."""
        if venv_bin is None:
            return list(self.argv)
        return [str(venv_bin / a.removeprefix(".venv/bin/")) if a.startswith(".venv/bin/")
                else a for a in self.argv]


def topology(replicas: int = 2, ports: Optional[Mapping[str, Sequence[int]]] = None,
             endpoints: str = "endpoints.production.yml") -> List[Process]:
    """The processes, actions first (Rasa calls them), then Rasa, then the gateways.

    ``ports`` maps a kind to its replicas' ports (default: consecutive from
    BASE_PORTS). Rasa ``i`` calls action server ``i``; every gateway lists every Rasa.
    """
    if replicas < 1:
        raise TopologyError("replicas must be at least 1")
    chosen = {kind: list((ports or {}).get(kind) or range(base, base + replicas))
              for kind, base in BASE_PORTS.items()}
    if any(len(p) != replicas for p in chosen.values()):
        raise TopologyError(f"give {replicas} port(s) for each kind")
    rasa_url = ",".join(f"http://127.0.0.1:{port}" for port in chosen[RASA])
    processes: List[Process] = []
    for i, port in enumerate(chosen[ACTIONS], start=1):
        processes.append(Process(
            f"{ACTIONS}{i}", ACTIONS, i, port, (), (),
            (".venv/bin/rasa", "run", "actions", "--port", str(port), "--actions", "actions")))
    for i, port in enumerate(chosen[RASA], start=1):
        processes.append(Process(
            f"{RASA}{i}", RASA, i, port,
            (("RASA_PORT", str(port)),
             ("ACTION_ENDPOINT_URL", f"http://127.0.0.1:{chosen[ACTIONS][i - 1]}/webhook")),
            RASA_SERVICES,
            (".venv/bin/python", "-m", "bot.rasa_server", "--enable-api", "--port", str(port),
             "--endpoints", endpoints, "--credentials", "credentials.yml", "--model",
             "models")))
    for i, port in enumerate(chosen[GATEWAY], start=1):
        processes.append(Process(
            f"{GATEWAY}{i}", GATEWAY, i, port,
            (("GATEWAY_PORT", str(port)), ("RASA_URL", rasa_url)), GATEWAY_SERVICES,
            (".venv/bin/python", "-m", "bot.gateway")))
    return processes


def procfile(replicas: int = 2) -> str:
    header = [
        "# The scaled topology for `make run-scaled` (honcho). Generated: "
        "python -m bot.topology procfile > Procfile.scaled",
        f"# {replicas} gateways (:8080+), {replicas} Rasa servers (:5005+) and {replicas} "
        "action servers (:5055+) on one PostgreSQL and Redis.",
        "# Override DATABASE_URL, TRACKER_DB_*, REDIS_* to use other servers. With "
        "TELEGRAM_BOT_TOKEN set, TELEGRAM_WEBHOOK_URL is required (README, Deployment).",
    ]
    return "\n".join([*header, *(p.procfile_line() for p in topology(replicas))]) + "\n"


def check_telegram(env: Mapping[str, str], replicas: int = 2) -> None:
    """Two polling gateways would fight over getUpdates: demand webhook mode."""
    token = (env.get("TELEGRAM_BOT_TOKEN") or "").strip()
    if token and replicas > 1 and not (env.get("TELEGRAM_WEBHOOK_URL") or "").strip():
        raise TopologyError(
            "TELEGRAM_BOT_TOKEN is set but TELEGRAM_WEBHOOK_URL is not: with several gateways "
            "Telegram must post to a webhook (set TELEGRAM_WEBHOOK_URL and "
            "TELEGRAM_WEBHOOK_SECRET), since only one getUpdates poller is allowed per bot")
    if token and not (env.get("TELEGRAM_WEBHOOK_SECRET") or "").strip() and replicas > 1:
        raise TopologyError("TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET")


# --- databases -------------------------------------------------------------
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def database_urls(env: Mapping[str, str]) -> List[str]:
    """The gateway store's and the tracker store's SQLAlchemy URLs, as the processes see them."""
    import sqlalchemy as sa

    def value(name: str) -> str:
        return env.get(name) or SERVICE_DEFAULTS[name]

    tracker = sa.engine.URL.create(
        "postgresql", username=value("TRACKER_DB_USER"),
        password=value("TRACKER_DB_PASSWORD") or None, host=value("TRACKER_DB_HOST"),
        port=int(value("TRACKER_DB_PORT")), database=value("TRACKER_DB_NAME"))
    return [value("DATABASE_URL"), tracker.render_as_string(hide_password=False)]


def create_database(url: str) -> bool:
    """Create the PostgreSQL database ``url`` names if it is missing; True if created."""
    import sqlalchemy as sa

    if not sa.engine.make_url(url).drivername.startswith("postgresql"):
        return False  # SQLite makes its file itself
    with _server(url) as (db, name):
        exists = db.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                            {"name": name}).scalar()
        if not exists:
            db.execute(sa.text(f'CREATE DATABASE "{name}"'))
        return not exists


def create_schemas(gateway_url: str, tracker_url: str) -> None:
    """The gateway store's tables and Rasa's tracker table, before any replica starts.

    Two Rasa servers starting together on an empty tracker database race in
    CREATE TABLE, and Rasa 3.6 survives only some of the errors that gives
    (not the duplicate key in pg_type); made here once, nobody races.
    """
    import sqlalchemy as sa

    from bot.gateway.store import Store

    Store(gateway_url).engine.dispose()  # migrates (under a lock, for the replicas)
    from rasa.core.tracker_store import SQLTrackerStore

    engine = sa.create_engine(tracker_url)
    try:
        SQLTrackerStore.Base.metadata.create_all(engine)
    finally:
        engine.dispose()


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database ``url`` names, disconnecting its clients (the chaos runs)."""
    import sqlalchemy as sa

    with _server(url) as (db, name):
        db.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def _server(url: str) -> Iterator[Tuple[Any, str]]:
    """A connection to the server ``url`` is on (its ``postgres`` database), and ``url``'s
    database name, checked, since it is spliced into CREATE/DROP DATABASE."""
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    name = target.database or ""
    if not _NAME.fullmatch(name):
        raise TopologyError(f"database name {name!r}: use letters, digits and _")
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as db:
            yield db, name
    finally:
        admin.dispose()


def main(argv: Optional[List[str]] = None) -> int:
    import os

    parser = argparse.ArgumentParser(description="The scaled topology (make run-scaled)")
    parser.add_argument("command", choices=["procfile", "check", "create-databases"])
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        if args.command == "procfile":
            sys.stdout.write(procfile(args.replicas))
        elif args.command == "check":
            check_telegram(os.environ, args.replicas)
        else:
            urls = database_urls(os.environ)
            for url in urls:
                name = url.rsplit("/", 1)[-1]
                print(f"database {name}: " + ("created" if create_database(url) else "present"))
            create_schemas(*urls)
            print("schemas: gateway store and Rasa tracker store ready")
    except TopologyError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
