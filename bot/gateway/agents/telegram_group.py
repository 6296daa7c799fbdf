"""The agents' Telegram group: handoff cards, replies to customers, /claim, /resolve.

Each handoff posts a card (reason, priority, SLA, status, summary, case
details, last messages) to TELEGRAM_AGENT_CHAT_ID. An agent answers the
customer by replying to the card, or to any follow-up posted under it;
"/claim" and "/resolve" sent as replies do what they say, through the
handoff desk. Every change to the handoff, from here or from the web inbox
or the agent API, updates the card and is posted under it, so the group and
the inbox agree.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Dict, Optional

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationHandlerStop, MessageHandler, filters

from bot.gateway.handoffs.errors import (
    AlreadyResolvedError,
    BotUnavailableError,
    HandoffNotFoundError,
)
from bot.gateway.handoffs.events import HandoffChange
from bot.gateway.pipeline import Gateway
from bot.handoff_contract import badge
from bot.privacy import redact_contacts

log = logging.getLogger(__name__)

VIA = "telegram"
LAST_MESSAGES = 5
CARD_CHANGES = {"claimed", "resolved", "rated",  # what the card's status line shows
                "followed_up"}  # (and its priority, raised when a reply is overdue)
# Lines the follow-ups write themselves (handoffs/follow_ups.py): SLA alerts, the update
# sent to a customer past due, a check-back's answer.
FOLLOW_UP_CHANGES = {"due_soon", "overdue", "followed_up", "checked_back"}
SURFACE_NAMES = {"inbox": "web inbox", "api": "agent API", "telegram": "Telegram",
                 "telegram_business": "the Telegram Business chat"}


def card_text(handoff: Dict[str, Any], conversation: Optional[Dict[str, Any]],
              transcript: list, timezone) -> str:  # noqa: ANN001 - a ZoneInfo
    """The card agents read: everything to act on without scrolling."""
    name = (conversation or {}).get("customer_name") or "Customer"
    due = datetime.fromtimestamp(handoff["sla_due_at"], timezone).strftime("%a %H:%M")
    context = handoff.get("context") or {}
    lines = [
        f"{badge(handoff['priority'], upper=True)} · handoff #{handoff['id']} · "
        f"{name} ({handoff['conversation_id']})",
        f"Reason: {handoff['reason']}" + (f" ({context['detail']})" if context.get("detail")
                                           else ""),
        f"Reply due: {due}",
        f"Status: {status_line(handoff)}",
        f"Summary: {redact_contacts(handoff['summary'] or '-')}",
    ]
    turns = context.get("turns") or []
    if turns:
        moods = ", ".join(f"{t.get('intent')}/{t.get('sentiment') or '?'}"
                          for t in turns[-LAST_MESSAGES:])
        lines.append(f"Last turns (intent/sentiment): {moods}")
    customer_lines = [m.text for m in transcript if m.direction == "in"][-LAST_MESSAGES:]
    if customer_lines:
        lines.append("Last messages:")
        lines.extend(f"› {redact_contacts(text[:300])}" for text in customer_lines)
    lines.append("Reply to this card to answer; /claim or /resolve as a reply.")
    return "\n".join(lines)


def status_line(handoff: Dict[str, Any]) -> str:
    status = handoff["status"]
    if handoff.get("claimed_by"):
        status += f" by {handoff['claimed_by']}"
    if handoff.get("csat"):
        status += f" · rated {handoff['csat']}/5"
    return status


def change_line(change: HandoffChange) -> Optional[str]:
    """What to post under the card about a change; None when the card edit says enough."""
    where = f" ({SURFACE_NAMES[change.via]})" if change.via and change.via != VIA else ""
    if change.kind == "claimed":
        return f"Claimed by {change.agent}{where}."
    if change.kind == "resolved":
        return (f"Resolved by {change.agent}{where}: the bot has the conversation again and "
                "asked for a rating.")
    if change.kind == "replied" and change.via != VIA:  # replies made here are already here
        return f"{change.agent}{where} replied: {change.text}"
    if change.kind == "noted":
        return f"Note by {change.agent}{where}: {change.text}"
    if change.kind == "rated":
        return f"The customer rated us {change.text}/5."
    if change.kind in FOLLOW_UP_CHANGES:
        return change.text
    return None


class TelegramAgentGroup:
    """An agent surface in a Telegram group, sharing the customer bot's Application."""

    def __init__(self, application: Application, chat_id: str, gateway: Gateway) -> None:
        self.application = application
        self.chat_id = str(chat_id)
        self.gateway = gateway
        # Ahead of the customer handlers (group 0): agent chat messages stop here.
        application.add_handler(MessageHandler(filters.Chat(chat_id=int(chat_id)),
                                               self._on_agent_message), group=-1)

    async def on_handoff_change(self, change: HandoffChange) -> None:
        if change.kind == "opened":
            await self._post_card(change.handoff_id)
        elif change.kind == "customer_wrote" and change.message is not None:
            name = change.message.customer_name or "Customer"
            await self._post_under_card(change.handoff_id,
                                        f"{name}: {redact_contacts(change.message.text)}")
        else:
            if change.kind in CARD_CHANGES:
                await self._refresh_card(change.handoff_id)
            line = change_line(change)
            if line:
                await self._post_under_card(change.handoff_id, line)

    async def _card_text(self, handoff_id: int) -> str:
        db = self.gateway.db
        handoff = await db.handoff(handoff_id)
        conversation = await db.conversation(handoff["conversation_id"])
        transcript = await db.transcript(handoff["conversation_id"])
        return card_text(handoff, conversation, transcript,
                         self.gateway.profile.opening_hours.zone)

    async def _post_card(self, handoff_id: int) -> None:
        sent = await self.application.bot.send_message(int(self.chat_id),
                                                       await self._card_text(handoff_id))
        await self.gateway.db.remember_agent_post(self.chat_id, str(sent.message_id),
                                                  handoff_id)

    async def _refresh_card(self, handoff_id: int) -> None:
        """Edit the card so its status line says what the handoff is now."""
        card = await self.gateway.db.card_for(handoff_id)
        if card is None:
            return
        try:
            await self.application.bot.edit_message_text(
                await self._card_text(handoff_id), chat_id=int(self.chat_id),
                message_id=int(card[1]))
        except TelegramError as problem:  # e.g. unchanged, or too old to edit
            log.info("handoff card %s not edited: %s", handoff_id, problem)

    async def _post_under_card(self, handoff_id: int, text: str) -> None:
        card = await self.gateway.db.card_for(handoff_id)
        if card is None:
            return
        sent = await self.application.bot.send_message(
            int(self.chat_id), text, reply_to_message_id=int(card[1]),
            allow_sending_without_reply=True)
        await self.gateway.db.remember_agent_post(self.chat_id, str(sent.message_id),
                                                  handoff_id)

    async def _on_agent_message(self, update: Update, context) -> None:  # noqa: ANN001
        try:
            await self._handle_agent_message(update)
        except Exception:  # noqa: BLE001 - logged; the update must still stop here
            log.exception("agent group message failed")
        # The agents' chat is never a customer's DM. Not in a ``finally``: that would
        # swallow a cancellation (shutdown) and leave the poller running.
        raise ApplicationHandlerStop

    async def _handle_agent_message(self, update: Update) -> None:
        message = update.effective_message
        if message is None or not message.text or message.reply_to_message is None:
            return  # agents' chatter, not addressed to a customer
        handoff_id = await self.gateway.db.handoff_for_agent_post(
            self.chat_id, str(message.reply_to_message.message_id))
        if handoff_id is None:
            return
        agent = (update.effective_user.first_name if update.effective_user else None) or "Agent"
        command = message.text.strip().split()[0].split("@")[0].lower()
        desk = self.gateway.handoffs
        try:
            if command == "/claim":
                await desk.claim(handoff_id, agent, VIA)
            elif command == "/resolve":
                await desk.resolve(handoff_id, agent, VIA)
            else:
                await desk.reply(handoff_id, agent, message.text, VIA)
        except AlreadyResolvedError:
            await message.reply_text("Already resolved.")
        except BotUnavailableError:
            await message.reply_text("The bot is unavailable right now, so the conversation "
                                     "is still with you. Try /resolve again in a minute.")
        except HandoffNotFoundError:
            log.warning("agent post points at a missing handoff %s", handoff_id)
        except TelegramError as error:
            log.warning("agent group action failed: %s", error)
