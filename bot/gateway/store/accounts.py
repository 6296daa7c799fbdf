"""People who answer customers in the web inbox, and their signed-in sessions."""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

import sqlalchemy as sa

from bot.gateway.store.base import StoreBase
from bot.gateway.store.schema import agent_accounts, inbox_sessions


class AccountStore(StoreBase):
    def save_agent(self, username: str, display_name: str, password_hash: str) -> None:
        with self._write() as db:
            db.execute(agent_accounts.delete().where(agent_accounts.c.username == username))
            db.execute(agent_accounts.insert().values(
                username=username, display_name=display_name, password_hash=password_hash,
                created_at=time.time()))

    def agent(self, username: str) -> Optional[Dict[str, Any]]:
        with self._read() as db:
            row = db.execute(sa.select(agent_accounts).where(
                agent_accounts.c.username == username)).mappings().first()
        return dict(row) if row else None

    def open_session(self, token: str, username: str, csrf: str, expires_at: float) -> None:
        with self._write() as db:
            db.execute(inbox_sessions.insert().values(token=token, username=username,
                                                      csrf=csrf, expires_at=expires_at))

    def session(self, token: str) -> Optional[Dict[str, Any]]:
        with self._read() as db:
            row = db.execute(sa.select(inbox_sessions, agent_accounts.c.display_name)
                             .join(agent_accounts)
                             .where(inbox_sessions.c.token == token,
                                    inbox_sessions.c.expires_at > time.time())
                             ).mappings().first()
        return dict(row) if row else None

    def close_session(self, token: str) -> None:
        with self._write() as db:
            db.execute(inbox_sessions.delete().where(inbox_sessions.c.token == token))

