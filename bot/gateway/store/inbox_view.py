"""What the web inbox's layout reads beyond one handoff: who is waiting on an answer, and a
conversation's earlier cases.

Read-only, over the existing tables: the "new from the customer" marker is
computed from the messages (no per-agent read state is stored), so it is the
same for every agent and clears when any agent answers.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

import sqlalchemy as sa

from bot.gateway.store.base import StoreBase
from bot.gateway.store.schema import handoffs, messages


class InboxViewStore(StoreBase):
    def awaiting_answer(self, conversation_ids: Iterable[str]) -> Dict[str, int]:
        """Per conversation, the id of the customer's newest message when it is newer than
        the newest agent reply (conversations an agent has answered since are left out)."""
        ids = sorted(set(conversation_ids))
        if not ids:
            return {}
        customer = sa.func.max(sa.case(
            (sa.and_(messages.c.direction == "in", messages.c.kind == "message"),
             messages.c.id), else_=None))
        agent = sa.func.max(sa.case((messages.c.kind == "agent", messages.c.id), else_=None))
        query = (sa.select(messages.c.conversation_id, customer.label("customer"),
                           agent.label("agent"))
                 .where(messages.c.conversation_id.in_(ids))
                 .group_by(messages.c.conversation_id))
        with self._read() as db:
            rows = db.execute(query).all()
        return {row.conversation_id: row.customer for row in rows
                if row.customer is not None and (row.agent is None or row.customer > row.agent)}

    def handoffs_of_conversation(self, conversation_id: str) -> List[Dict[str, Any]]:
        """Every handoff of one conversation, newest first, as the history panel shows them
        (no context or notes: those stay on each handoff's own page)."""
        query = (sa.select(handoffs.c.id, handoffs.c.reason, handoffs.c.priority,
                           handoffs.c.summary, handoffs.c.status, handoffs.c.created_at,
                           handoffs.c.resolved_at, handoffs.c.claimed_by, handoffs.c.csat)
                 .where(handoffs.c.conversation_id == conversation_id)
                 .order_by(handoffs.c.id.desc()))
        with self._read() as db:
            return [dict(row) for row in db.execute(query).mappings().all()]
