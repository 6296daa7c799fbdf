"""One customer's data as a whole: export it, erase it, and let old conversations go.

A subject access request gets everything the gateway holds about a
conversation (its messages both ways, handoffs with agents' notes, marks);
an erasure request removes all of it, in one transaction, children first.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import sqlalchemy as sa

from bot.gateway.store.base import StoreBase
from bot.gateway.store.schema import (
    agent_posts,
    conversation_leases,
    conversations,
    follow_ups,
    handoffs,
    incident_candidates,
    incident_reports,
    messages,
    misunderstood_marks,
    webchat_sessions,
)

# The newest message either way (an agent's reply counts), else when it was opened.
_LAST_ACTIVITY = sa.func.coalesce(
    sa.select(sa.func.max(messages.c.created_at))
    .where(messages.c.conversation_id == conversations.c.id).scalar_subquery(),
    conversations.c.created_at)


class CustomerDataStore(StoreBase):
    def export_conversation(self, conversation_id: str) -> Dict[str, Any]:
        """Everything stored about one conversation, as plain JSON-ready data ({} if none)."""
        with self._read() as db:
            conversation = db.execute(sa.select(conversations).where(
                conversations.c.id == conversation_id)).mappings().first()
            if conversation is None:
                return {}
            rows = db.execute(sa.select(messages).where(
                messages.c.conversation_id == conversation_id).order_by(messages.c.id)
            ).mappings().all()
            records = db.execute(sa.select(handoffs).where(
                handoffs.c.conversation_id == conversation_id).order_by(handoffs.c.id)
            ).mappings().all()
            marks = db.execute(sa.select(misunderstood_marks).where(
                misunderstood_marks.c.conversation_id == conversation_id)).mappings().all()
        return {
            "conversation": dict(conversation),
            "messages": [_decoded(r, "meta", "buttons") for r in rows],
            "handoffs": [_decoded(r, "context", "notes") for r in records],
            "misunderstood_marks": [dict(m) for m in marks],
        }

    def forget_conversation(self, conversation_id: str) -> Dict[str, int]:
        """Erase one conversation everywhere in the store; rows removed per table."""
        handoff_ids = sa.select(handoffs.c.id).where(
            handoffs.c.conversation_id == conversation_id).scalar_subquery()
        channel, _, external_id = conversation_id.partition(":")
        steps = [
            ("agent_posts", agent_posts.delete().where(agent_posts.c.handoff_id.in_(handoff_ids))),
            ("follow_ups", follow_ups.delete().where(
                follow_ups.c.conversation_id == conversation_id)),
            ("misunderstood_marks", misunderstood_marks.delete().where(
                misunderstood_marks.c.conversation_id == conversation_id)),
            ("handoffs", handoffs.delete().where(handoffs.c.conversation_id == conversation_id)),
            ("incident_reports", incident_reports.delete().where(
                incident_reports.c.conversation_id == conversation_id)),
            ("incident_candidates", incident_candidates.delete().where(
                incident_candidates.c.conversation_id == conversation_id)),
            ("messages", messages.delete().where(messages.c.conversation_id == conversation_id)),
            ("conversations", conversations.delete().where(
                conversations.c.id == conversation_id)),
            # A replica still working on it finds its lease gone and stops.
            ("conversation_leases", conversation_leases.delete().where(
                conversation_leases.c.conversation_id == conversation_id)),
        ]
        if channel == "webchat":  # the chat page's secret goes with its conversation
            steps.append(("webchat_sessions", webchat_sessions.delete().where(
                webchat_sessions.c.session == external_id)))
        with self._write() as db:
            return {table: db.execute(query).rowcount for table, query in steps}

    def conversations_idle_since(self, before: float) -> List[str]:
        """Conversations with no message either way since ``before`` (epoch seconds)."""
        with self._read() as db:
            return list(db.execute(sa.select(conversations.c.id).where(
                _LAST_ACTIVITY < before).order_by(conversations.c.id)).scalars())


def _decoded(row: Any, *json_columns: str) -> Dict[str, Any]:
    data = dict(row)
    for column in json_columns:
        if isinstance(data.get(column), str):
            try:
                data[column] = json.loads(data[column])
            except ValueError:
                pass  # kept as stored
    return data
