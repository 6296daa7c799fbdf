"""Customer messages agents marked "bot misunderstood", for the NLU trainers' review."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.gateway.store.base import StoreBase
from bot.gateway.store.schema import messages, misunderstood_marks


class MarkStore(StoreBase):
    def mark_misunderstood(self, message_id: int, agent: str, note: str = "",
                           now: Optional[float] = None) -> None:
        """Flag a customer's message as misread by the bot; marking again updates it.

        Only inbound customer messages qualify: the bot's own replies are not NLU input.
        """
        with self._write() as db:
            row = db.execute(sa.select(messages.c.direction, messages.c.kind,
                                       messages.c.conversation_id)
                             .where(messages.c.id == message_id)).first()
            if row is None:
                raise ValueError(f"There is no message {message_id}.")
            if (row.direction, row.kind) != ("in", "message"):
                raise ValueError(f"Message {message_id} is not a customer's message; only "
                                 "what a customer wrote can be marked as misunderstood.")
            update = (misunderstood_marks.update()
                      .where(misunderstood_marks.c.message_id == message_id)
                      .values(agent=agent, note=note))
            if db.execute(update).rowcount:
                return
            try:
                with db.begin_nested():
                    db.execute(misunderstood_marks.insert().values(
                        message_id=message_id, conversation_id=row.conversation_id,
                        agent=agent, note=note, created_at=now or time.time()))
            except IntegrityError:  # another agent marked it a moment ago
                db.execute(update)

    def unmark_misunderstood(self, message_id: int) -> None:
        """Take a mark back (an agent's mis-click); no mark is fine."""
        with self._write() as db:
            db.execute(misunderstood_marks.delete()
                       .where(misunderstood_marks.c.message_id == message_id))

    def misunderstood_ids(self, conversation_id: str) -> Dict[int, str]:
        """Marked message id -> the agent who marked it, to render a transcript."""
        with self._read() as db:
            rows = db.execute(sa.select(misunderstood_marks.c.message_id,
                                        misunderstood_marks.c.agent)
                              .where(misunderstood_marks.c.conversation_id == conversation_id)
                              ).all()
        return {message_id: agent for message_id, agent in rows}

    def misunderstood_messages(self) -> List[Dict[str, Any]]:
        """Every mark with the customer's text, oldest mark first (the review export)."""
        query = (sa.select(misunderstood_marks.c.message_id,
                           misunderstood_marks.c.conversation_id, messages.c.text,
                           misunderstood_marks.c.agent, misunderstood_marks.c.note,
                           misunderstood_marks.c.created_at.label("marked_at"),
                           messages.c.created_at.label("sent_at"))
                 .join(messages, messages.c.id == misunderstood_marks.c.message_id)
                 .order_by(misunderstood_marks.c.created_at, misunderstood_marks.c.id))
        with self._read() as db:
            return [dict(row) for row in db.execute(query).mappings().all()]

