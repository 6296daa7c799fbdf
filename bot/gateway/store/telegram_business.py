"""Telegram Business connections: which brand accounts the bot may answer for.

One row per connection, as Telegram last described it (``business_connection``
updates, or ``getBusinessConnection``), so a restarted gateway still knows each
account's owner and whether replies may go out. Ids and flags only.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.gateway.store.base import StoreBase
from bot.gateway.store.schema import telegram_business_connections as connections


class TelegramBusinessStore(StoreBase):
    def save_business_connection(self, connection_id: str, owner_user_id: int,
                                 user_chat_id: int, is_enabled: bool, can_reply: bool,
                                 now: Optional[float] = None) -> None:
        """Insert or update a connection (the newest description wins)."""
        values = dict(owner_user_id=owner_user_id, user_chat_id=user_chat_id,
                      is_enabled=is_enabled, can_reply=can_reply, updated_at=now or time.time())
        with self._write() as db:
            update = connections.update().where(connections.c.id == connection_id)
            if db.execute(update.values(**values)).rowcount:
                return
            try:
                with db.begin_nested():
                    db.execute(connections.insert().values(id=connection_id, **values))
            except IntegrityError:  # saved a moment ago by another replica
                db.execute(update.values(**values))

    def business_connection(self, connection_id: str) -> Optional[Dict[str, Any]]:
        with self._read() as db:
            row = db.execute(sa.select(connections).where(connections.c.id == connection_id)
                             ).mappings().first()
        return dict(row) if row else None
