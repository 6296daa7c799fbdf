"""The agents' Telegram group: handoff cards, replies to customers, /claim, /resolve.

Each handoff posts a card (reason, priority, SLA, summary, case details, last
messages) to TELEGRAM_AGENT_CHAT_ID. An agent answers the customer by replying
to the card, or to any follow-up posted under it; "/claim" and "/resolve" sent
as replies do what they say. The customer's later messages are posted into
the group as replies to the card.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Dict, Optional

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationHandlerStop, MessageHandler, filters

from bot.gateway.rasa_client import RasaUnavailableError
from bot.gateway.service import Gateway
from bot.gateway.store import StoredMessage

log = logging.getLogger(__name__)

BADGE = {"urgent": "🔴 URGENT", "high": "🟠 HIGH", "normal": "🟡 NORMAL", "low": "⚪ LOW"}
LAST_MESSAGES = 5


def card_text(handoff: Dict[str, Any], conversation: Optional[Dict[str, Any]],
              transcript: list, timezone) -> str:  # noqa: ANN001 - a ZoneInfo
    """The card agents read: everything to act on without scrolling."""
    name = (conversation or {}).get("customer_name") or "Customer"
    due = datetime.fromtimestamp(handoff["sla_due_at"], timezone).strftime("%a %H:%M")
    context = handoff.get("context") or {}
    lines = [
        f"{BADGE.get(handoff['priority'], handoff['priority'])} · handoff #{handoff['id']} · "
        f"{name} ({handoff['conversation_id']})",
        f"Reason: {handoff['reason']}" + (f" ({context['detail']})" if context.get("detail")
                                           else ""),
        f"Reply due: {due}",
        f"Summary: {handoff['summary'] or '-'}",
    ]
    turns = context.get("turns") or []
    if turns:
        moods = ", ".join(f"{t.get('intent')}/{t.get('sentiment') or '?'}"
                          for t in turns[-LAST_MESSAGES:])
        lines.append(f"Last turns (intent/sentiment): {moods}")
    customer_lines = [m.text for m in transcript if m.direction == "in"][-LAST_MESSAGES:]
    if customer_lines:
        lines.append("Last messages:")
        lines.extend(f"› {text[:300]}" for text in customer_lines)
    lines.append("Reply to this card to answer; /claim or /resolve as a reply.")
    return "\n".join(lines)


class TelegramAgentGroup:
    """An agent surface in a Telegram group, sharing the customer bot's Application."""

    def __init__(self, application: Application, chat_id: str, gateway: Gateway) -> None:
        self.application = application
        self.chat_id = str(chat_id)
        self.gateway = gateway
        # Ahead of the customer handlers (group 0): agent chat messages stop here.
        application.add_handler(MessageHandler(filters.Chat(chat_id=int(chat_id)),
                                               self._on_agent_message), group=-1)

    async def on_handoff(self, handoff_id: int) -> None:
        store = self.gateway.store
        handoff = await asyncio.to_thread(store.handoff, handoff_id)
        conversation = await asyncio.to_thread(store.conversation, handoff["conversation_id"])
        transcript = await asyncio.to_thread(store.transcript, handoff["conversation_id"])
        text = card_text(handoff, conversation, transcript, self.gateway.profile.opening_hours
                         .zone)
        sent = await self.application.bot.send_message(int(self.chat_id), text)
        await asyncio.to_thread(store.remember_agent_post, self.chat_id, str(sent.message_id),
                                handoff_id)

    async def on_customer_message(self, conversation_id: str, message: StoredMessage) -> None:
        store = self.gateway.store
        handoff = await asyncio.to_thread(store.open_handoff_for, conversation_id)
        card = await asyncio.to_thread(store.card_for, handoff["id"]) if handoff else None
        if card is None:
            return
        name = message.customer_name or "Customer"
        sent = await self.application.bot.send_message(
            int(self.chat_id), f"{name}: {message.text}", reply_to_message_id=int(card[1]),
            allow_sending_without_reply=True)
        await asyncio.to_thread(store.remember_agent_post, self.chat_id, str(sent.message_id),
                                handoff["id"])

    async def _on_agent_message(self, update: Update, context) -> None:  # noqa: ANN001
        try:
            await self._handle_agent_message(update)
        finally:
            raise ApplicationHandlerStop  # the agents' chat is never a customer's DM

    async def _handle_agent_message(self, update: Update) -> None:
        message = update.effective_message
        if message is None or not message.text or message.reply_to_message is None:
            return  # agents' chatter, not addressed to a customer
        store = self.gateway.store
        handoff_id = await asyncio.to_thread(store.handoff_for_agent_post, self.chat_id,
                                             str(message.reply_to_message.message_id))
        if handoff_id is None:
            return
        agent = (update.effective_user.first_name if update.effective_user else None) or "Agent"
        command = message.text.strip().split()[0].split("@")[0].lower()
        try:
            if command == "/claim":
                await asyncio.to_thread(store.claim_handoff, handoff_id, agent)
                await message.reply_text(f"Claimed by {agent}.")
            elif command == "/resolve":
                handoff = await asyncio.to_thread(store.handoff, handoff_id)
                if handoff["status"] == "resolved":
                    await message.reply_text("Already resolved.")
                    return
                await self.gateway.resolve(handoff_id, agent)
                await message.reply_text(f"Resolved by {agent}: the bot has the conversation "
                                         "again and asked for a rating.")
            else:
                await self.gateway.agent_reply(handoff_id, agent, message.text)
        except RasaUnavailableError:
            await message.reply_text("The bot is unavailable right now, so the conversation "
                                     "is still with you. Try /resolve again in a minute.")
        except TelegramError as error:
            log.warning("agent group action failed: %s", error)
