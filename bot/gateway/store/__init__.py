"""The gateway's durable store, one module per concern, over one schema.

    schema.py    the tables, and the migration older databases need
    queue.py     conversations, inbound and outbound messages, the transcript
    handoffs.py  handoff records, and the Telegram posts that point at them
    accounts.py  inbox agents and their sessions
    marks.py     "bot misunderstood" marks for the NLU review
    bridges.py   DM API bridges' credentials (digests) and their channels
    webchat.py   web chat sessions and the digest of each one's secret
    customers.py one customer's data: export, erase, idle conversations
    leases.py    which replica works on a conversation's inbound or outbox lane
    follow_ups.py  what is scheduled after a handoff: updates, alerts, check-backs
    incidents.py many customers reporting one problem, and who was told what
    telegram_business.py  Telegram Business connections (brand accounts the bot answers for)
    facade.py    AsyncStore: the same calls, awaitable, for the event loop

SQLite (WAL) by default, PostgreSQL via DATABASE_URL.
"""

from __future__ import annotations

from bot.gateway.store.accounts import AccountStore
from bot.gateway.store.base import (
    UNAVAILABLE,
    BlockingStoreCallError,
    StoreBase,
    engine_for,
    store_unavailable,
)
from bot.gateway.store.bridges import Bridge, BridgeExistsError, BridgeStore
from bot.gateway.store.customers import CustomerDataStore
from bot.gateway.store.follow_ups import FollowUpStore
from bot.gateway.store.handoffs import HandoffRequest, HandoffStore
from bot.gateway.store.inbox_view import InboxViewStore
from bot.gateway.store.incidents import IncidentStore
from bot.gateway.store.leases import LANES, Lease, LeaseStore
from bot.gateway.store.marks import MarkStore
from bot.gateway.store.queue import (
    AlreadyFinishedError,
    ConversationQueueFullError,
    QueueStore,
    Received,
    StoredMessage,
)
from bot.gateway.store.telegram_business import TelegramBusinessStore
from bot.gateway.store.webchat import WebchatStore

__all__ = ["AlreadyFinishedError", "BlockingStoreCallError", "Bridge", "BridgeExistsError",
           "ConversationQueueFullError", "HandoffRequest", "LANES", "Lease", "Received", "Store",
           "StoreBase", "StoredMessage", "UNAVAILABLE", "engine_for", "store_unavailable"]


class Store(QueueStore, HandoffStore, AccountStore, MarkStore, BridgeStore,
            WebchatStore, CustomerDataStore, LeaseStore, TelegramBusinessStore,
            InboxViewStore, IncidentStore, FollowUpStore):
    """Every concern over one engine: what the gateway and the trainers' tools open."""
