"""Chaos benchmark: the scaled stack keeps every DM while its processes die.

    python -m bench.chaos                       # make chaos: the full run
    python -m bench.chaos --customers 40 --messages 200 --kill gateway1,rasa1 --no-db-restart
    python -m bench.chaos --replicas 1 --kill none --no-db-restart --no-telegram-faults

Starts the processes of ``bot.topology`` (the same commands as Procfile.scaled,
on free ports) as subprocesses on a fresh PostgreSQL database pair, with
Telegram pointed at the loopback fake Bot API (tests/fake_telegram.py, in this
process) in webhook mode. Simulated customers then send messages at a steady
rate, half as Telegram updates POSTed to a random gateway's webhook (retried on
anything but 200, as Telegram does), half through the DM API with a bridge
credential (retried on anything but 2xx, after Retry-After on 429). A
customer's next message leaves only after the previous one was acknowledged.

Meanwhile the harness ``kill -9``s each process in turn and restarts it,
restarts PostgreSQL once, and has the fake Telegram answer bursts of 429
(retry_after) and 5xx to sendMessage. Then it waits for the queues to drain and
checks, from the gateway store and Rasa's tracker store:

- lost: acknowledged messages not stored, not processed, or with no reply
  (the reply rows ``complete_inbound`` stores with the message's done time)
  sent by the drain deadline;
- duplicated_to_rasa: user events in the tracker store whose message_id
  (``gw-<row id>``) appears more than once;
- duplicated_to_customers: a stored outbound message that reached the fake
  Telegram twice, outside the documented window: a reply Telegram accepted
  just before its gateway was killed (or the database went away) cannot be
  marked sent, so it is sent again. Those inside the window (first copy at
  most WINDOW_SECONDS before a gateway kill or during the database restart)
  are counted apart, as ``in_window``;
- reordered: per conversation, Rasa's user events out of the gateway's id
  order (which is the customer's order).

With two gateways it then measures the takeover: a burst of new
conversations is posted to one gateway, which is killed at once, and the time
until the other replica has answered each of them is recorded (its leases
run out after 30 s; the sweep looks every 5 s).

The last line is for scripts:
``chaos: messages=N lost=N duplicated_to_rasa=N duplicated_to_customers=N reordered=N msgs_per_s=F``
and the full figures go to reports/chaos.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import aiohttp
import sqlalchemy as sa

from bench.report import write_report
from bot.brand import PROJECT_ROOT
from bot.topology import ACTIONS, GATEWAY, RASA, Process, create_database, drop_database, topology
from tests.fake_telegram import FakeTelegram

REPORT = PROJECT_ROOT / "reports" / "chaos.json"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# A reply Telegram accepted this long before its gateway died (or while the
# database was away) may be sent again: the documented window.
WINDOW_SECONDS = 5.0
# What customers write: FAQs and small talk the model is sure about, none of
# which hands the conversation to a person however often it is asked (FAQs
# and chit-chat are not "requests" to the escalation policy), none read as
# negative (three in a row would), so that every message must get the bot's
# own answer.
TEXTS = [
    "what hours are you open on saturdays", "whats the validity on a gift card",
    "do your products have a warranty", "do you have a size guide",
    "is delivery available to germany", "do you do student discount",
    "where is your nearest store", "is your packaging recyclable",
    "how do i wash my jumper", "is there a loyalty club i can join",
    "can i get it gift wrapped", "is there a juniper lane app",
    "is paying with my card on juniper lane safe",
    "will there be import charges on delivery to the us", "is this automated",
    "how do lane points work", "thanks", "hi",
]


@dataclass
class Config:
    customers: int = 500
    messages: int = 10_000
    rate: float = 8.0  # messages offered per second, all customers together
    replicas: int = 2
    kill: Sequence[str] = ("all",)  # process names (gateway1, rasa2, ...), "all" or "none"
    db_restart: bool = True
    telegram_faults: bool = True
    takeover: bool = True
    telegram_share: float = 0.5
    drain_seconds: float = 300.0  # give up draining after this long without progress
    startup_seconds: float = 300.0
    seed: int = 7
    keep: bool = False  # keep the databases and logs for a post-mortem
    # Wait for each restarted process to answer before the next step (no two Rasa
    # servers down at once). Off, the steps follow their schedule and a restarted
    # process is only checked to be running at the end (the short run in make test).
    wait_for_restarts: bool = True
    report: Optional[Path] = REPORT
    work: Optional[Path] = None  # logs; default var/chaos/<run>


# --- the stack -------------------------------------------------------------
def free_ports(count: int) -> List[int]:
    import socket

    sockets, ports = [], []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in sockets:
        sock.close()
    return ports


class Stack:
    """The topology's processes, each startable, killable (SIGKILL) and restartable."""

    def __init__(self, processes: List[Process], env: Dict[str, str], work: Path) -> None:
        self.processes = {p.name: p for p in processes}
        self.env = env
        self.work = work
        self.running: Dict[str, subprocess.Popen] = {}
        self.venv_bin = Path(sys.executable).parent

    def start(self, name: str) -> None:
        process = self.processes[name]
        with open(self.work / f"{name}.log", "a") as log:  # the child keeps its own handle
            log.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n")
            log.flush()
            self.running[name] = subprocess.Popen(
                process.command(self.venv_bin), cwd=PROJECT_ROOT,
                env=process.environment(self.env), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def kill(self, name: str) -> None:
        """kill -9, the process and anything it started."""
        child = self.running.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()

    async def healthy(self, name: str, timeout: float) -> float:
        """Wait until ``name`` answers its health check; the seconds it took."""
        started = time.monotonic()
        url = self.processes[name].health_url
        async with aiohttp.ClientSession() as http:
            while time.monotonic() - started < timeout:
                child = self.running.get(name)
                if child is not None and child.poll() is not None:
                    raise RuntimeError(f"{name} exited with {child.returncode}; see "
                                       f"{self.work / (name + '.log')}")
                try:
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as answer:
                        if answer.status < 500:
                            return time.monotonic() - started
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.5)
        raise RuntimeError(f"{name} did not answer {url} within {timeout:.0f}s")

    def stop_all(self) -> None:
        for name in list(self.running):
            child = self.running.pop(name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    def running_now(self, name: str) -> bool:
        child = self.running.get(name)
        return child is not None and child.poll() is None

    def names(self, kind: str) -> List[str]:
        return [p.name for p in self.processes.values() if p.kind == kind]


class RecordingTelegram(FakeTelegram):
    """The fake Bot API, noting when each message reached "Telegram"."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: List[Tuple[int, str, float]] = []  # chat, text, monotonic time

    async def _send_message(self, params: Dict[str, Any]) -> Dict[str, Any]:
        message = await super()._send_message(params)
        self.deliveries.append((int(params["chat_id"]), str(params.get("text")),
                                time.monotonic()))
        return message


def restart_postgresql() -> Tuple[bool, str]:
    """Restart the local cluster the way this machine starts it (root, pg_ctlcluster)."""
    if os.geteuid() != 0:
        return False, "not root: PostgreSQL restart skipped"
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        return False, "no /etc/postgresql: PostgreSQL restart skipped"
    done = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main",
                           "restart"], capture_output=True, text=True, timeout=120)
    return done.returncode == 0, (done.stdout + done.stderr).strip()


# --- customers -------------------------------------------------------------
@dataclass
class Customer:
    index: int
    channel: str  # "telegram" | "api"
    external_id: str  # chat id, or the DM API conversation id
    texts: List[str]
    acked: List[str] = field(default_factory=list)  # channel message ids, in order

    @property
    def conversation_id(self) -> str:
        return f"{self.channel}:{self.external_id}"


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    wall_started: float = field(default_factory=time.time)
    events: List[Dict[str, Any]] = field(default_factory=list)

    def note(self, what: str, **details: Any) -> Dict[str, Any]:
        event = {"t": round(time.monotonic() - self.started, 2), "what": what, **details}
        self.events.append(event)
        print(f"[{event['t']:7.1f}s] {what} {details if details else ''}", file=sys.stderr,
              flush=True)
        return event


class Load:
    """Customers sending at a steady rate, each message after the previous one's 2xx."""

    def __init__(self, config: Config, stack: Stack, fake: RecordingTelegram, bridge: str,
                 secret: str, run_id: str, timeline: Timeline) -> None:
        self.config = config
        self.stack = stack
        self.fake = fake
        self.bridge_auth = {"Authorization": f"Bearer {bridge}"}
        self.secret = secret
        self.timeline = timeline
        self.rng = random.Random(config.seed)
        per = max(1, config.messages // config.customers)
        extra = config.messages - per * config.customers
        chat_base = 1_000_000_000 + self.rng.randrange(10**8)  # fresh ids: fresh Redis locks
        self.customers = []
        for i in range(config.customers):
            count = per + (1 if i < extra else 0)
            texts = [TEXTS[(i + k) % len(TEXTS)] for k in range(count)]
            telegram = self.rng.random() < config.telegram_share
            self.customers.append(Customer(
                i, "telegram" if telegram else "api",
                str(chat_base + i) if telegram else f"chaos{run_id}-{i}", texts))
        self.gateways = [stack.processes[n] for n in stack.names(GATEWAY)]
        self.ack_seconds: List[float] = []  # first try to 2xx, retries included
        self.retries = collections.Counter()
        self.acked_total = 0

    async def run(self) -> None:
        ready = collections.deque(c for c in self.customers if c.texts)
        in_flight: set = set()
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as http:
            start = time.monotonic()
            sent = 0
            while sent < self.config.messages:
                due = start + sent / self.config.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                while not ready:  # everyone is waiting for an acknowledgement
                    await asyncio.sleep(0.05)
                customer = ready.popleft()
                task = asyncio.create_task(self._send_next(http, customer, ready))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                sent += 1
            while in_flight:
                await asyncio.gather(*list(in_flight))

    async def _send_next(self, http: aiohttp.ClientSession, customer: Customer,
                         ready: collections.deque) -> None:
        k = len(customer.acked)
        text = customer.texts[k]
        if customer.channel == "telegram":
            chat = int(customer.external_id)
            update = self.fake.text_update(chat, text, first_name=f"Customer{customer.index}")
            update["update_id"] = chat * 100 + k  # unique per run and message
            key = str(update["message"]["message_id"])
        else:
            key = f"m{k}"
        began = time.monotonic()
        await self._deliver(http, customer, text, key, update if customer.channel ==
                            "telegram" else None)
        customer.acked.append(key)
        self.acked_total += 1
        self.ack_seconds.append(time.monotonic() - began)
        if len(customer.acked) < len(customer.texts):
            ready.append(customer)

    async def _deliver(self, http: aiohttp.ClientSession, customer: Customer, text: str,
                       key: str, update: Optional[Dict[str, Any]]) -> None:
        attempt = 0
        while True:
            attempt += 1
            gateway = self.rng.choice(self.gateways)
            base = f"http://127.0.0.1:{gateway.port}"
            retry_after = min(10.0, 0.25 * 2 ** min(attempt, 6))
            try:
                if update is not None:
                    request = http.post(base + WEBHOOK_PATH, json=update,
                                        headers={SECRET_HEADER: self.secret},
                                        timeout=aiohttp.ClientTimeout(total=20))
                else:
                    request = http.post(base + "/api/v1/messages", json={
                        "channel": "api", "conversation_id": customer.external_id,
                        "sender_name": f"Customer {customer.index}", "text": text,
                        "channel_message_id": key}, headers=self.bridge_auth,
                        timeout=aiohttp.ClientTimeout(total=20))
                async with request as answer:
                    await answer.read()
                    if (answer.status == 200 if update is not None
                            else 200 <= answer.status < 300):
                        return
                    self.retries[f"{customer.channel}:{answer.status}"] += 1
                    if answer.status == 429:
                        retry_after = float(answer.headers.get("Retry-After", retry_after))
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                self.retries[f"{customer.channel}:{type(error).__name__}"] += 1
            await asyncio.sleep(retry_after)


# --- chaos -----------------------------------------------------------------
class Chaos:
    """Kills and restarts each process in turn, restarts PostgreSQL, makes Telegram fail."""

    def __init__(self, config: Config, stack: Stack, fake: RecordingTelegram,
                 timeline: Timeline) -> None:
        self.config = config
        self.stack = stack
        self.fake = fake
        self.timeline = timeline
        self.kills: List[Dict[str, Any]] = []  # {"name", "kind", "at": monotonic}
        self.db_outages: List[Tuple[float, float]] = []
        self.faults = collections.Counter()
        names = list(config.kill)
        if names == ["all"]:  # interleaved: gateway1, rasa1, actions1, gateway2, ...
            names = [f"{kind}{i}" for i in range(1, config.replicas + 1)
                     for kind in (GATEWAY, RASA, ACTIONS)]
        elif names == ["none"]:
            names = []
        unknown = [n for n in names if n not in stack.processes]
        if unknown:
            raise SystemExit(f"--kill: no such process {unknown}; have {list(stack.processes)}")
        self.plan: List[str] = names
        if config.db_restart:
            self.plan.insert(len(self.plan) // 2, "postgresql")

    async def run(self, duration: float, done: asyncio.Event) -> None:
        """Spread the plan over ``duration`` seconds of load, one step at a time."""
        start = time.monotonic()
        gap = duration / (len(self.plan) + 1)
        for step, name in enumerate(self.plan, start=1):
            await asyncio.sleep(max(0.0, start + step * gap - time.monotonic()))
            if name == "postgresql":
                began = time.monotonic()
                self.timeline.note("restart PostgreSQL")
                ok, output = await asyncio.to_thread(restart_postgresql)
                self.db_outages.append((began, time.monotonic()))
                self.timeline.note("PostgreSQL back" if ok else "PostgreSQL restart failed",
                                   seconds=round(time.monotonic() - began, 1), detail=output)
                continue
            await self.kill_and_restart(name)
        done.set()

    async def kill_and_restart(self, name: str, down_for: float = 2.0) -> None:
        kind = self.stack.processes[name].kind
        self.kills.append({"name": name, "kind": kind, "at": time.monotonic()})
        self.timeline.note(f"kill -9 {name}")
        self.stack.kill(name)
        await asyncio.sleep(down_for)
        self.stack.start(name)
        if not self.config.wait_for_restarts:
            self.timeline.note(f"{name} restarted")
            return
        seconds = await self.stack.healthy(name, self.config.startup_seconds)
        self.timeline.note(f"{name} back", seconds_to_health=round(seconds, 1))

    async def telegram_faults(self, stop: asyncio.Event, every: float = 15.0) -> None:
        """Alternate bursts of 429 (retry_after 1-3 s) and of 500/502 on sendMessage."""
        kinds = [(429, "429"), (502, "502"), (429, "429"), (500, "500")]
        turn = 0
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if stop.is_set():
                return
            status, label = kinds[turn % len(kinds)]
            times = 12
            if status == 429:
                self.fake.fail_next("sendMessage", 429, retry_after=1 + turn % 3, times=times)
            else:
                self.fake.fail_next("sendMessage", status, times=times)
            self.faults[label] += times
            turn += 1

    def in_window(self, first_sent: float) -> bool:
        """Could the first copy have been accepted and then not committed as sent?"""
        for kill in self.kills:
            if kill["kind"] == GATEWAY and first_sent <= kill["at"] <= first_sent + \
                    WINDOW_SECONDS:
                return True
        return any(began - WINDOW_SECONDS <= first_sent <= ended + WINDOW_SECONDS
                   for began, ended in self.db_outages)


# --- checks ----------------------------------------------------------------
def descents(sequence: Sequence[int]) -> int:
    """How many items come after a larger one: 0 when in order."""
    return sum(1 for i in range(1, len(sequence)) if sequence[i] < sequence[i - 1])


def read_gateway_store(url: str) -> List[Dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            rows = db.execute(sa.text(
                "SELECT id, conversation_id, direction, kind, channel_message_id, text, "
                "status, created_at, done_at, attempts FROM messages ORDER BY id")).mappings()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()


def read_user_events(url: str) -> List[Tuple[str, str]]:
    """(sender, message_id) of every user event in Rasa's tracker store, in stored order."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            rows = db.execute(sa.text("SELECT sender_id, data FROM events "
                                      "WHERE type_name = 'user' ORDER BY id")).all()
    finally:
        engine.dispose()
    return [(sender, json.loads(data).get("message_id") or "") for sender, data in rows]


def check(load: Load, chaos: Chaos, fake: RecordingTelegram, rows: List[Dict[str, Any]],
          user_events: List[Tuple[str, str]]) -> Dict[str, Any]:
    inbound = {(r["conversation_id"], r["channel_message_id"]): r for r in rows
               if r["direction"] == "in"}
    outbound: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
    for r in rows:
        if r["direction"] == "out":
            outbound[r["conversation_id"]].append(r)
    replies: Dict[Tuple[str, float], List[Dict[str, Any]]] = collections.defaultdict(list)
    for conversation, out in outbound.items():
        for r in out:
            if r["kind"] == "reply":  # stored with its message's done time, atomically
                replies[(conversation, r["created_at"])].append(r)

    ours = {c.conversation_id: c for c in load.customers}
    lost = collections.Counter()
    lost_examples: List[Dict[str, Any]] = []
    processed = 0
    for customer in load.customers:
        for key in customer.acked:
            row = inbound.get((customer.conversation_id, key))
            reason = None
            if row is None:
                reason = "not stored"
            elif row["status"] != "done":
                reason = f"not processed ({row['status']})"
            else:
                processed += 1
                answer = replies.get((customer.conversation_id, row["done_at"]), [])
                if not answer:
                    reason = "processed, no reply"
                elif any(r["status"] != "sent" for r in answer):
                    reason = "reply not delivered (" + ",".join(
                        sorted({r["status"] for r in answer})) + ")"
            if reason:
                lost[reason] += 1
                if len(lost_examples) < 20:
                    lost_examples.append({"conversation": customer.conversation_id,
                                          "key": key, "row": row and row["id"],
                                          "reason": reason})

    seen = collections.Counter(mid for sender, mid in user_events if sender in ours)
    duplicated_to_rasa = sum(n - 1 for n in seen.values() if n > 1)
    done_ids = {f"gw-{r['id']}" for r in inbound.values()
                if r["status"] == "done" and r["conversation_id"] in ours}
    never_in_rasa = len(done_ids - set(seen))

    # Rasa's user events per conversation, first sight of each message, in stored order.
    sequences: Dict[str, List[int]] = collections.defaultdict(list)
    firsts: set = set()
    for sender, mid in user_events:
        if sender in ours and mid.startswith("gw-") and mid not in firsts:
            firsts.add(mid)
            sequences[sender].append(int(mid[3:]))
    reordered = sum(descents(sequence) for sequence in sequences.values())
    # The gateway's ids follow each customer's order (the next message leaves after
    # the previous one's 2xx); were it not so, Rasa's order would not be theirs.
    store_out_of_customer_order = 0
    for customer in load.customers:
        ids = [inbound[(customer.conversation_id, key)]["id"] for key in customer.acked
               if (customer.conversation_id, key) in inbound]
        store_out_of_customer_order += descents(ids)

    deliveries: Dict[int, List[Tuple[str, float]]] = collections.defaultdict(list)
    for chat, text, at in fake.deliveries:
        deliveries[chat].append((text, at))
    in_window = outside = unexpected = missing = 0
    duplicate_examples: List[Dict[str, Any]] = []
    for customer in load.customers:
        if customer.channel != "telegram":
            continue
        expected = [r for r in outbound.get(customer.conversation_id, [])
                    if r["status"] == "sent"]
        got = deliveries.get(int(customer.external_id), [])
        i = 0
        first_at: Dict[int, float] = {}
        for text, at in got:
            if i < len(expected) and text == expected[i]["text"]:
                first_at[i] = at
                i += 1
            elif i > 0 and text == expected[i - 1]["text"]:
                if chaos.in_window(first_at[i - 1]):
                    in_window += 1
                else:
                    outside += 1
                if len(duplicate_examples) < 20:
                    duplicate_examples.append({
                        "conversation": customer.conversation_id,
                        "row": expected[i - 1]["id"], "text": text[:60],
                        "gap_s": round(at - first_at[i - 1], 2),
                        "in_window": chaos.in_window(first_at[i - 1])})
            else:
                unexpected += 1
        missing += len(expected) - i

    done_rows = [r for r in inbound.values() if r["status"] == "done"
                 and r["conversation_id"] in ours]
    span = (max(r["done_at"] for r in done_rows) - min(r["created_at"] for r in done_rows)
            if done_rows else 0.0)
    return {
        "messages": load.acked_total,
        "lost": sum(lost.values()),
        "lost_by_reason": dict(lost),
        "lost_examples": lost_examples,
        "duplicated_to_rasa": duplicated_to_rasa,
        "never_in_rasa": never_in_rasa,
        "duplicated_to_customers": outside,
        "duplicated_to_customers_in_window": in_window,
        "duplicate_examples": duplicate_examples,
        "telegram_sends_unexpected": unexpected,
        "telegram_sends_missing": missing,
        "reordered": reordered + store_out_of_customer_order,
        "store_out_of_customer_order": store_out_of_customer_order,
        "processed": processed,
        "processing_span_s": round(span, 1),
        "msgs_per_s": round(processed / span, 2) if span else 0.0,
    }


# --- takeover ---------------------------------------------------------------
async def measure_takeover(stack: Stack, load: Load, chaos: Chaos, store_url: str,
                           conversations: int = 20, deadline: float = 120.0) -> Dict[str, Any]:
    """Post a burst to gateway1 only, kill it at once: how long until gateway2 answers?"""
    victim = stack.processes[f"{GATEWAY}1"]
    ids = [f"takeover{secrets.token_hex(3)}-{n}" for n in range(conversations)]
    async with aiohttp.ClientSession() as http:
        async def post(conversation: str) -> None:
            async with http.post(f"http://127.0.0.1:{victim.port}/api/v1/messages", json={
                    "channel": "api", "conversation_id": conversation, "sender_name": "Tess",
                    "text": "do you have a size guide", "channel_message_id": "m0"},
                    headers=load.bridge_auth) as answer:
                assert answer.status == 202, await answer.text()
        await asyncio.gather(*(post(c) for c in ids))
    chaos.timeline.note("takeover: burst acknowledged by gateway1; kill -9 gateway1",
                        conversations=conversations)
    killed_wall, killed = time.time(), time.monotonic()
    stack.kill(victim.name)
    answered: Dict[str, float] = {}
    engine = sa.create_engine(store_url)
    wanted = [f"api:{c}" for c in ids]
    try:
        while len(answered) < len(ids) and time.monotonic() - killed < deadline:
            with engine.connect() as db:
                rows = db.execute(sa.text(
                    "SELECT conversation_id, min(created_at) FROM messages WHERE direction = "
                    "'out' AND kind = 'reply' AND status = 'sent' AND conversation_id = "
                    "ANY(:ids) GROUP BY conversation_id"), {"ids": wanted}).all()
            for conversation, created in rows:
                answered.setdefault(conversation, created - killed_wall)
            await asyncio.sleep(0.25)
    finally:
        engine.dispose()
    stack.start(victim.name)
    await stack.healthy(victim.name, 120)
    taken = sorted(s for s in answered.values() if s > 0)
    result = {
        "conversations": conversations,
        "answered_before_kill": sum(1 for s in answered.values() if s <= 0),
        "taken_over": len(taken),
        "unanswered_after_s": None if len(answered) == len(ids) else deadline,
        "takeover_p50_s": round(statistics.median(taken), 1) if taken else None,
        "takeover_max_s": round(max(taken), 1) if taken else None,
    }
    chaos.timeline.note("takeover measured", **result)
    return result


# --- the run ------------------------------------------------------------------
def log_lines_about(work: Path, conversations: set, per_log: int = 12) -> Dict[str, List[str]]:
    """The last lines of each process's log that mention one of ``conversations``
    (by id or by the Telegram chat id in it)."""
    needles = conversations | {c.partition(":")[2] for c in conversations}
    found: Dict[str, List[str]] = {}
    for log in sorted(work.glob("*.log")):
        lines = [line.rstrip()[:300] for line in log.read_text(errors="replace").splitlines()
                 if any(n and n in line for n in needles)]
        if lines:
            found[log.stem] = lines[-per_log:]
    return found


async def wait_drained(store_url: str, load: Load, stalled_after: float,
                       timeline: Timeline) -> float:
    """Wait until nothing is queued, held or unsent; the seconds it took, or -1.

    Gives up once nothing has moved for ``stalled_after`` seconds (a backlog
    draining slowly is waited for; a stuck one is not).
    """
    started = time.monotonic()
    engine = sa.create_engine(store_url, pool_pre_ping=True)
    last_report = 0.0
    best, moved = None, time.monotonic()
    try:
        while time.monotonic() - moved < stalled_after:
            try:
                with engine.connect() as db:
                    pending = db.execute(sa.text(
                        "SELECT count(*) FROM messages WHERE status IN ('queued', 'held')"
                    )).scalar_one()
                    stored = db.execute(sa.text(
                        "SELECT count(*) FROM messages WHERE direction = 'in'")).scalar_one()
            except sa.exc.OperationalError:
                pending, stored = -1, -1
            if pending == 0:  # idle; an acknowledged message not stored by now never will be
                return time.monotonic() - started
            if pending >= 0 and (best is None or pending < best):
                best, moved = pending, time.monotonic()
            if time.monotonic() - last_report > 15:
                timeline.note("draining", pending=pending, stored=stored,
                              acknowledged=load.acked_total)
                last_report = time.monotonic()
            await asyncio.sleep(1.0)
    finally:
        engine.dispose()
    return -1.0


async def run(config: Config) -> Dict[str, Any]:
    from bot.gateway.channels.bridge_admin import create_bridge
    from bot.gateway.store import Store

    run_id = secrets.token_hex(3)
    work = config.work or PROJECT_ROOT / "var" / "chaos" / f"{time.strftime('%H%M%S')}-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    store_url = f"postgresql://postgres@127.0.0.1:5432/chaos_{run_id}_gateway"
    tracker_db = f"chaos_{run_id}_trackers"
    tracker_url = f"postgresql://postgres@127.0.0.1:5432/{tracker_db}"
    timeline = Timeline()
    for url in (store_url, tracker_url):
        create_database(url)
    fake = RecordingTelegram()
    await fake.start()
    secret = secrets.token_urlsafe(24)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT),
           "RASA_TOKEN": secrets.token_urlsafe(24),
           "DATABASE_URL": store_url, "TRACKER_DB_NAME": tracker_db,
           "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_BASE_URL": fake.base_url,
           "TELEGRAM_WEBHOOK_URL": "https://bot.example.com/telegram/webhook",
           "TELEGRAM_WEBHOOK_SECRET": secret, "WEBCHAT": "off", "GATEWAY_LOG_LEVEL": "INFO"}
    for name in ("TELEGRAM_AGENT_CHAT_ID", "AGENT_API_TOKEN"):
        env.pop(name, None)
    ports = free_ports(3 * config.replicas)
    processes = topology(config.replicas, ports={
        GATEWAY: ports[:config.replicas], RASA: ports[config.replicas:2 * config.replicas],
        ACTIONS: ports[2 * config.replicas:]})
    stack = Stack(processes, env, work)
    bridge = create_bridge(Store(store_url), "chaos", ["api"])
    result: Dict[str, Any] = {"config": {k: (str(v) if isinstance(v, Path) else v)
                                         for k, v in asdict(config).items()},
                              "work": str(work)}
    try:
        timeline.note("starting", processes=list(stack.processes), logs=str(work))
        for name in stack.processes:
            stack.start(name)
        await asyncio.gather(*(stack.healthy(n, config.startup_seconds)
                               for n in stack.processes))
        timeline.note("stack up")
        load = Load(config, stack, fake, bridge, secret, run_id, timeline)
        chaos = Chaos(config, stack, fake, timeline)
        chaos_done, load_done = asyncio.Event(), asyncio.Event()
        duration = config.messages / config.rate
        timeline.note("load", customers=config.customers, messages=config.messages,
                      rate=config.rate, plan=chaos.plan)
        chaos_task = asyncio.create_task(chaos.run(duration, chaos_done))
        faults_task = asyncio.create_task(chaos.telegram_faults(load_done)) \
            if config.telegram_faults else None
        load_started = time.monotonic()
        await load.run()
        timeline.note("all messages acknowledged", seconds=round(
            time.monotonic() - load_started, 1), retries=dict(load.retries))
        load_done.set()
        await chaos_task
        if faults_task is not None:
            await faults_task
        drained = await wait_drained(store_url, load, config.drain_seconds, timeline)
        timeline.note("drained" if drained >= 0 else "drain deadline passed",
                      seconds=round(drained, 1))
        rows = await asyncio.to_thread(read_gateway_store, store_url)
        events = await asyncio.to_thread(read_user_events, tracker_url)
        result.update(check(load, chaos, fake, rows, events))
        result["drain_s"] = round(drained, 1)
        if result["lost"]:  # what the processes said about them, to explain a failure
            result["lost_logs"] = log_lines_about(
                work, {e["conversation"] for e in result["lost_examples"]})
        result["load_s"] = round(time.monotonic() - load_started, 1)
        result["retries"] = dict(load.retries)
        acks = sorted(load.ack_seconds)
        if acks:
            result["acknowledged_p50_ms"] = round(1000 * acks[len(acks) // 2])
            result["acknowledged_p99_ms"] = round(1000 * acks[int(0.99 * (len(acks) - 1))])
            result["acknowledged_max_s"] = round(acks[-1], 1)
        result["telegram_faults_injected"] = dict(chaos.faults)
        result["kills"] = [k["name"] for k in chaos.kills]
        # Rasa goes on without a custom action it could not reach, and says so once a time.
        result["rasa_dropped_action_events"] = sum(
            (work / f"{name}.log").read_text(errors="replace").count(
                "Bot will continue, but the actions events are lost")
            for name in stack.names(RASA))
        result["db_restarts"] = len(chaos.db_outages)
        result["restarted_running"] = sorted(
            {k["name"] for k in chaos.kills if stack.running_now(k["name"])})
        if config.takeover and config.replicas > 1:
            result["takeover"] = await measure_takeover(stack, load, chaos, store_url)
    finally:
        stack.stop_all()
        await fake.stop()
        if not config.keep:
            for url in (store_url, tracker_url):
                with contextlib.suppress(Exception):
                    drop_database(url)
    result["timeline"] = timeline.events
    return result


def summary_line(result: Dict[str, Any]) -> str:
    return (f"chaos: messages={result['messages']} lost={result['lost']} "
            f"duplicated_to_rasa={result['duplicated_to_rasa']} "
            f"duplicated_to_customers={result['duplicated_to_customers']} "
            f"reordered={result['reordered']} msgs_per_s={result['msgs_per_s']}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=Config.customers)
    parser.add_argument("--messages", type=int, default=Config.messages)
    parser.add_argument("--rate", type=float, default=Config.rate,
                        help="messages offered per second (above capacity measures capacity)")
    parser.add_argument("--replicas", type=int, default=Config.replicas)
    parser.add_argument("--kill", default="all",
                        help="comma-separated process names to kill -9 in turn, all, or none")
    parser.add_argument("--no-db-restart", action="store_true")
    parser.add_argument("--no-telegram-faults", action="store_true")
    parser.add_argument("--no-takeover", action="store_true")
    parser.add_argument("--drain-seconds", type=float, default=Config.drain_seconds,
                        help="stop waiting for the queues after this long without progress")
    parser.add_argument("--keep", action="store_true",
                        help="keep the databases (chaos_<run>_*) for a post-mortem")
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    config = Config(customers=args.customers, messages=args.messages, rate=args.rate,
                    replicas=args.replicas, kill=tuple(args.kill.split(",")),
                    db_restart=not args.no_db_restart,
                    telegram_faults=not args.no_telegram_faults,
                    takeover=not args.no_takeover, drain_seconds=args.drain_seconds,
                    keep=args.keep, report=args.report)
    result = asyncio.run(run(config))
    if config.report is not None:
        write_report(config.report, result)
    print(f"chaos: lost_by_reason={result['lost_by_reason']} never_in_rasa="
          f"{result['never_in_rasa']} rasa_dropped_action_events="
          f"{result['rasa_dropped_action_events']} takeover={result.get('takeover')}")
    print(f"chaos: duplicated_to_customers_in_window={result['duplicated_to_customers_in_window']}"
          " (accepted by Telegram just before a gateway kill -9 or the database restart, "
          "so never marked sent)")
    print(summary_line(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
