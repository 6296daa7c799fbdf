"""Web chat sessions: the digest of the secret each chat page was issued.

A web chat conversation id (``webchat:<session>``) is not a credential: the
page must also present the secret it got when the chat started.
"""

from __future__ import annotations

import time
from typing import Optional

import sqlalchemy as sa

from bot.gateway.store.base import StoreBase
from bot.gateway.store.schema import webchat_sessions


class WebchatStore(StoreBase):
    def open_chat(self, session: str, secret_sha256: str) -> None:
        with self._write() as db:
            db.execute(webchat_sessions.insert().values(
                session=session, secret_sha256=secret_sha256, created_at=time.time()))

    def chat_secret_digest(self, session: str) -> Optional[str]:
        with self._read() as db:
            return db.execute(sa.select(webchat_sessions.c.secret_sha256).where(
                webchat_sessions.c.session == session)).scalar()
