"""People who answer customers in the web inbox, and their signed-in sessions.

Sessions are stored as the SHA-256 of their cookie token (the token is 32
random bytes, so a plain digest is enough): a copy of the database lets
nobody in. Changing a password or disabling an account ends its sessions.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import sqlalchemy as sa

from bot.gateway.credentials import digest
from bot.gateway.store.base import StoreBase
from bot.gateway.store.schema import agent_accounts, inbox_sessions


class AccountStore(StoreBase):
    def save_agent(self, username: str, display_name: str, password_hash: str) -> None:
        """Create the agent, or set a new name and password (ending their sessions)."""
        with self._write() as db:
            db.execute(inbox_sessions.delete().where(inbox_sessions.c.username == username))
            changed = db.execute(agent_accounts.update().where(
                agent_accounts.c.username == username).values(
                display_name=display_name, password_hash=password_hash)).rowcount
            if not changed:
                db.execute(agent_accounts.insert().values(
                    username=username, display_name=display_name,
                    password_hash=password_hash, created_at=time.time(), disabled=False))

    def set_agent_disabled(self, username: str, disabled: bool) -> bool:
        """Disable (ending their sessions) or re-enable an agent; False if there is none."""
        with self._write() as db:
            found = db.execute(agent_accounts.update().where(
                agent_accounts.c.username == username).values(disabled=disabled)).rowcount
            if disabled:
                db.execute(inbox_sessions.delete().where(inbox_sessions.c.username == username))
        return bool(found)

    def agent(self, username: str) -> Optional[Dict[str, Any]]:
        with self._read() as db:
            row = db.execute(sa.select(agent_accounts).where(
                agent_accounts.c.username == username)).mappings().first()
        return dict(row) if row else None

    def agents(self) -> List[Dict[str, Any]]:
        """Every account, with how many sessions each has open (no secrets)."""
        open_sessions = (sa.select(sa.func.count()).where(
            inbox_sessions.c.username == agent_accounts.c.username,
            inbox_sessions.c.expires_at > time.time()).scalar_subquery())
        with self._read() as db:
            rows = db.execute(sa.select(
                agent_accounts.c.username, agent_accounts.c.display_name,
                agent_accounts.c.disabled, open_sessions.label("sessions"))
                .order_by(agent_accounts.c.username)).mappings().all()
        return [dict(r) for r in rows]

    def open_session(self, token: str, username: str, csrf: str, expires_at: float) -> None:
        """Remember a sign-in; expired sessions are cleared on the way."""
        with self._write() as db:
            db.execute(inbox_sessions.delete().where(inbox_sessions.c.expires_at <= time.time()))
            db.execute(inbox_sessions.insert().values(token=digest(token), username=username,
                                                      csrf=csrf, expires_at=expires_at))

    def session(self, token: str) -> Optional[Dict[str, Any]]:
        """The live session of an enabled agent for this cookie token, or None."""
        with self._read() as db:
            row = db.execute(sa.select(inbox_sessions, agent_accounts.c.display_name)
                             .join(agent_accounts)
                             .where(inbox_sessions.c.token == digest(token),
                                    inbox_sessions.c.expires_at > time.time(),
                                    agent_accounts.c.disabled == sa.false())
                             ).mappings().first()
        if row is None:
            return None
        return {**dict(row), "token": token}  # callers close it by the token they hold

    def close_session(self, token: str) -> None:
        with self._write() as db:
            db.execute(inbox_sessions.delete().where(inbox_sessions.c.token == digest(token)))

    def end_sessions(self, username: Optional[str] = None) -> int:
        """Sign out one agent everywhere (or, with no name, everyone); how many ended."""
        query = inbox_sessions.delete()
        if username is not None:
            query = query.where(inbox_sessions.c.username == username)
        with self._write() as db:
            return db.execute(query).rowcount
