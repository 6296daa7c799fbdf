"""The gateway's tables, in one place, and the one migration older databases need.

Tables new since a database was made are added by ``create_all``; a column
dropped since is dropped by ``migrate`` (SQLite 3.35+ and PostgreSQL both
support ``ALTER TABLE ... DROP COLUMN``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("external_id", sa.String(200), nullable=False),
    sa.Column("customer_name", sa.String(100)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_inbound_at", sa.Float),
    sa.Column("last_ack_at", sa.Float),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), sa.ForeignKey("conversations.id"),
              nullable=False),
    sa.Column("direction", sa.String(3), nullable=False),  # "in" | "out"
    # in: message; out: ack | reply | agent | csat (what the bot says on taking a handoff back)
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("channel_message_id", sa.String(200)),
    sa.Column("text", sa.Text, nullable=False, default=""),
    sa.Column("payload", sa.Text),  # inbound: what to send Rasa instead of text
    sa.Column("buttons", sa.Text),  # outbound: JSON list of {title, payload}
    sa.Column("image", sa.Text),
    sa.Column("meta", sa.Text),  # inbound: JSON channel metadata; public_reply: its post_id
    sa.Column("status", sa.String(16), nullable=False),  # see the statuses below
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    # When it (re)entered the queue: retries give up a while after this (redrive resets it).
    sa.Column("queued_at", sa.Float),
    sa.Column("done_at", sa.Float),
    sa.UniqueConstraint("conversation_id", "direction", "channel_message_id",
                        name="uq_channel_message"),
)
handoffs = sa.Table(
    "handoffs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), sa.ForeignKey("conversations.id"),
              nullable=False, index=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text, nullable=False, default=""),
    sa.Column("context", sa.Text, nullable=False, default="{}"),  # details, turns, detail
    sa.Column("status", sa.String(16), nullable=False),  # open | claimed | resolved
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("sla_due_at", sa.Float, nullable=False),
    sa.Column("claimed_by", sa.String(100)),
    sa.Column("claimed_at", sa.Float),
    sa.Column("resolved_at", sa.Float),
    sa.Column("csat", sa.Integer),
    sa.Column("notes", sa.Text, nullable=False, default="[]"),  # internal, JSON list
)

# Messages agents see in their Telegram group, and the handoff each belongs to,
# so a reply to any of them reaches the right customer.
agent_posts = sa.Table(
    "agent_posts",
    metadata,
    sa.Column("chat_id", sa.String(64), primary_key=True),
    sa.Column("message_id", sa.String(64), primary_key=True),
    sa.Column("handoff_id", sa.Integer, sa.ForeignKey("handoffs.id"), nullable=False),
)

# People who answer customers in the web inbox (created with `make agent`).
agent_accounts = sa.Table(
    "agent_accounts",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("display_name", sa.String(100), nullable=False),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # A disabled agent cannot sign in; their sessions end when it is set.
    sa.Column("disabled", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
)

inbox_sessions = sa.Table(
    "inbox_sessions",
    metadata,
    # SHA-256 of the cookie's token: a copy of the database signs nobody in.
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), sa.ForeignKey("agent_accounts.username"),
              nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# Customer messages an agent flagged as misread by the bot, for the NLU
# trainers' review export. One mark per message; agents can undo it.
misunderstood_marks = sa.Table(
    "misunderstood_marks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False,
              unique=True),
    sa.Column("conversation_id", sa.String(255), sa.ForeignKey("conversations.id"),
              nullable=False, index=True),
    sa.Column("agent", sa.String(100), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False),
)

# DM API bridges' credentials (created with `make bridge`). Only the SHA-256
# digest of each secret is kept. For a bridge that signs requests (HMAC) that
# digest is also its signing key, so this table must be guarded like a secret.
bridge_credentials = sa.Table(
    "bridge_credentials",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("channels", sa.String(200), nullable=False),  # comma-separated
    sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("signs", sa.Boolean, nullable=False, default=False),  # HMAC, not bearer
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
)

# Web chat conversations and the digest of the secret the page was given when
# the chat started; it must be shown to post and to read the transcript.
webchat_sessions = sa.Table(
    "webchat_sessions",
    metadata,
    sa.Column("session", sa.String(64), primary_key=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Which replica processes a conversation's inbound messages (lane "in") or
# delivers its outbox (lane "out") until ``expires_at``: several gateway
# processes share one database, each conversation is worked by one at a time.
# A row exists only while some replica holds (or last held) the lease; times
# are the database's clock (see store/leases.py). No foreign key: a lease is
# coordination, not customer data, and erasing a conversation deletes its
# leases too, which tells a replica still working on it to stop.
conversation_leases = sa.Table(
    "conversation_leases",
    metadata,
    sa.Column("conversation_id", sa.String(255), primary_key=True),
    sa.Column("lane", sa.String(3), primary_key=True),  # "in" | "out", as messages.direction
    sa.Column("owner", sa.String(200), nullable=False),  # the replica's id
    sa.Column("expires_at", sa.Float, nullable=False),
)

# Telegram Business: the brands' Telegram accounts connected to the bot (their
# owner chose it under Telegram Business -> Chatbots), as Telegram last described
# each one, so a restart still knows whose messages are the owner's and whether
# the bot may answer. Ids only: no names. Telegram's ids need 52 bits (BigInteger).
telegram_business_connections = sa.Table(
    "telegram_business_connections",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),  # Telegram's business_connection_id
    sa.Column("owner_user_id", sa.BigInteger, nullable=False),  # the business account
    sa.Column("user_chat_id", sa.BigInteger, nullable=False),  # the owner's chat with the bot
    sa.Column("is_enabled", sa.Boolean, nullable=False),
    sa.Column("can_reply", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Incidents (bot/gateway/incidents/): many customers reporting one problem, answered
# once by an agent. ``title`` is the reports' shared words, never a customer's text.
incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("status", sa.String(16), nullable=False),  # open | closed
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_report_at", sa.Float, nullable=False),
    sa.Column("answer", sa.Text),  # an agent's, given to every matching customer until closed
    sa.Column("answered_by", sa.String(100)),
    sa.Column("answered_at", sa.Float),
    sa.Column("closing_message", sa.Text),  # sent once to everyone who was given the answer
    sa.Column("closed_by", sa.String(100)),
    sa.Column("closed_at", sa.Float),
    sa.Column("card_count", sa.Integer, nullable=False, default=0),  # the count cards last showed
)

# Who reported an incident: one row per conversation, the first matching message,
# and when they were given its answer and its closing update (each at most once).
incident_reports = sa.Table(
    "incident_reports",
    metadata,
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("conversation_id", sa.String(255), sa.ForeignKey("conversations.id"),
              primary_key=True),
    sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False),
    sa.Column("reported_at", sa.Float, nullable=False),
    sa.Column("told_at", sa.Float),
    sa.Column("updated_at", sa.Float),  # the closing update was queued
)

# Symptom reports waiting for enough alike ones to make an incident, shared by
# replicas. ``seen_at`` is the incident desk's clock; rows older than the window go.
incident_candidates = sa.Table(
    "incident_candidates",
    metadata,
    sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), primary_key=True),
    sa.Column("conversation_id", sa.String(255), sa.ForeignKey("conversations.id"),
              nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False, index=True),
)

# What is scheduled after a handoff opens or is resolved (handoffs/follow_ups.py): the
# customer's one update once the promised reply time passes unanswered (sla_update), the
# agents' alerts as it nears (due_soon) and passes (overdue) that time, and "Did that sort
# it out?" after a resolve (check_back). One row per handoff and kind; each is done once,
# by whichever replica moves it out of "due" (UPDATE ... WHERE status = 'due').
follow_ups = sa.Table(
    "follow_ups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("handoff_id", sa.Integer, sa.ForeignKey("handoffs.id"), nullable=False),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # sla_update|due_soon|overdue|check_back
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # due | asked | done | cancelled
    sa.Column("outcome", sa.String(16)),  # check_back: the customer's answer, yes | no
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("done_at", sa.Float),
    sa.UniqueConstraint("handoff_id", "kind", name="uq_follow_up"),
)
sa.Index("ix_follow_ups_due", follow_ups.c.status, follow_ups.c.due_at)

sa.Index("ix_messages_queue", messages.c.direction, messages.c.status, messages.c.id)
sa.Index("ix_messages_conversation", messages.c.conversation_id, messages.c.id)

QUEUED, DONE, SENT, FAILED = "queued", "done", "sent", "failed"
# Inbound only: kept from Rasa while the sender floods (HELD); when the burst
# passes the newest held message is queued and the rest are SKIPPED (stored,
# shown to agents, never a Rasa turn of their own).
HELD, SKIPPED = "held", "skipped"
# Retried for as long as the retry policy allows, then given up on: agents are
# alerted with a handoff, and `make redrive` queues it again.
DEAD = "dead"
# The kind of an outbound row to post in public, under the post its meta names;
# every other outbound row is private.
PUBLIC_REPLY = "public_reply"
# Row ids fit a 32-bit integer column everywhere; a larger id names no row (and
# would overflow the database driver instead of simply not matching).
MAX_ID = 2**31 - 1


def is_row_id(value: int) -> bool:
    return 0 < value <= MAX_ID

# Columns earlier versions wrote and nothing reads any more: (table, column).
DROPPED_COLUMNS = [("conversations", "mode")]  # the open handoff says who answers
# Columns added since: (table, column), created from the table's definition.
ADDED_COLUMNS = [("agent_accounts", "disabled"), ("messages", "queued_at")]


# Any fixed 64-bit number: the PostgreSQL advisory lock replicas migrate under.
MIGRATION_LOCK = 0x6A756E6970657231


def migrate(engine: Engine) -> None:
    """Bring a database of any earlier version to this schema (idempotent).

    On PostgreSQL under an advisory lock: replicas starting together on a new
    database would otherwise race in CREATE TABLE, and the loser fails to start
    (duplicate key in pg_type), as two gateways of ``make run-scaled`` did.
    """
    if engine.dialect.name != "postgresql":
        _migrate(engine)
        return
    with engine.connect() as lock:  # a session lock, held on its own connection
        lock.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            _migrate(engine)
        finally:
            lock.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})


def _migrate(engine: Engine) -> None:
    metadata.create_all(engine)  # also adds tables new since a database was made
    inspector = sa.inspect(engine)
    for table, column in DROPPED_COLUMNS:
        if column in {c["name"] for c in inspector.get_columns(table)}:
            with engine.begin() as db:
                db.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    for table, column in ADDED_COLUMNS:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            definition = metadata.tables[table].c[column]
            kind = definition.type.compile(dialect=engine.dialect)
            constraint = ""
            if definition.server_default is not None:
                default = definition.server_default.arg.compile(dialect=engine.dialect)
                constraint = f" NOT NULL DEFAULT {default}"
            with engine.begin() as db:
                db.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"
                                   f"{constraint}"))
