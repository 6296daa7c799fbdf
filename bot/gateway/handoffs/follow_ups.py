"""Follow-ups: what happens to a handoff with time, scheduled in the store.

- **The customer's update.** When a handoff's promised reply time (``sla_due_at``,
  which the customer was told) passes with no agent reply, the customer gets one
  honest update, with the brand's phone and email, and the handoff's priority
  goes up one step (normal -> high -> urgent), so the queue puts it higher.
- **Agents' alerts.** Once ``due_soon_percent`` of its SLA has gone by, and once
  it is overdue, the handoff is posted in the agents' Telegram group (one line
  each); the inbox queue marks it "due soon" / "overdue" (``mark_queue``).
- **The check-back.** ``check_back_hours`` after an agent resolves a handoff (moved
  to the next opening time if the team is off then), "Did that sort it out?" with
  Yes/No buttons. "No" (the button, or a plain "no" as their next message) opens a
  new handoff with the earlier one's context, so a person picks it up; "yes" is
  thanked. Either is answered by the gateway itself: Rasa never sees it.

Each follow-up is a row of ``follow_ups`` (store/follow_ups.py) due at a time;
a loop here (every ``interval`` seconds, on every replica) does what is due.
Doing one is claiming its row and queuing its words in one transaction, so it
happens once across restarts and replicas, and is delivered by the outbox with
its retries. Rows are scheduled when the desk reports a handoff opened or
resolved, and by the loop for any it missed (a crash in between). Whether one
still applies is checked when it is due (an agent replied, the handoff was
resolved, a newer handoff opened): then it is cancelled, not sent. Telegram
alerts are posted after the claim commits, so a crash in between loses that
one alert rather than posting it twice.

Time comes from ``now`` (a callable), so tests move a clock instead of waiting.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from bot.brand import BrandProfile
from bot.gateway.handoffs import follow_up_wording as say
from bot.gateway.handoffs.events import HandoffChange
from bot.gateway.handoffs.intake import handoff_request
from bot.gateway.messages import Button, InboundMessage, OutboundMessage
from bot.gateway.store import HandoffRequest
from bot.gateway.store.facade import AsyncStore
from bot.gateway.store.follow_ups import (
    ASKED,
    CANCELLED,
    CHECK_BACK,
    DONE,
    DUE_SOON,
    OVERDUE,
    SLA_KINDS,
    SLA_UPDATE,
    FollowUpAction,
    FollowUpWork,
)
from bot.handoff_contract import DEFAULT_PRIORITY, PRIORITIES, HandoffPayload

if TYPE_CHECKING:
    from bot.gateway.handoffs.desk import HandoffDesk

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 5.0
# Handoffs the loop schedules when nothing did (a crash between a change and its
# scheduling): opened this recently, or resolved within the check-back time and this.
SLA_LOOKBACK_SECONDS = 7 * 24 * 3600
CHECK_BACK_LOOKBACK_SECONDS = 3 * 24 * 3600
REASON_NOT_SORTED = "not_sorted"

# The check-back's buttons: '/check_back{"follow_up":7,"answer":"no"}' (under
# Telegram's 64-byte callback limit for any row id).
PAYLOAD_PREFIX = "/check_back"
_PAYLOAD = re.compile(re.escape(PAYLOAD_PREFIX) + r"(\{.*\})")
_YES = re.compile(r"(yes|yeah|yep|yup|y|sorted|all sorted|it did|yes it did|yes thanks?|"
                  r"yes thank you|yes all sorted|👍)")
_NO = re.compile(r"(no|nope|nah|n|not yet|not really|no not yet|no it didn'?t|"
                 r"no it did not|not sorted|still not sorted|no still not sorted|👎)")
ANSWERS = ("yes", "no")


def check_back_payload(follow_up_id: int, answer: str) -> str:
    """The payload of a check-back button."""
    return PAYLOAD_PREFIX + json.dumps({"follow_up": follow_up_id, "answer": answer},
                                       separators=(",", ":"))


def check_back_from_payload(payload: Optional[str]) -> Optional[Tuple[int, str]]:
    """(follow-up id, "yes" | "no") from a check-back button's payload, or None."""
    match = _PAYLOAD.fullmatch((payload or "").strip())
    if not match:
        return None
    try:
        data = json.loads(match.group(1))
        follow_up_id, answer = data["follow_up"], data["answer"]
    except (ValueError, TypeError, KeyError):
        return None
    if (not isinstance(follow_up_id, int) or isinstance(follow_up_id, bool)
            or not 0 < follow_up_id < 2**31 or answer not in ANSWERS):
        return None
    return follow_up_id, answer


def plain_answer(text: str) -> Optional[str]:
    """"yes" / "no" for a short typed answer ("No, not yet!"), else None."""
    words = re.sub(r"[^\w\s'👍👎]", " ", (text or "").lower().replace("’", "'"))
    words = " ".join(words.split())
    if len(words) > 40:
        return None
    if _YES.fullmatch(words):
        return "yes"
    if _NO.fullmatch(words):
        return "no"
    return None


def one_step_up(priority: str) -> Optional[str]:
    """The next more urgent priority, or None when it is already the most urgent."""
    if priority not in PRIORITIES:
        return DEFAULT_PRIORITY
    rank = PRIORITIES.index(priority)
    return PRIORITIES[rank - 1] if rank > 0 else None


@dataclass(frozen=True)
class PendingAnswer:
    """A customer's message that answers a check-back: the reply, and what to record."""

    conversation_id: str
    answer: str
    reply: OutboundMessage
    follow_up_id: Optional[int]  # None: answered before (a second tap), nothing to record


Fit = Callable[[str, List[OutboundMessage]], List[OutboundMessage]]


class FollowUps:
    """The follow-up scheduler and its answers; also an agent surface (told of every change)."""

    def __init__(self, db: AsyncStore, profile: BrandProfile, desk: HandoffDesk,
                 deliver: Callable[[str], None], fit: Fit,
                 now: Callable[[], float] = time.time,
                 interval: float = INTERVAL_SECONDS,
                 channels: Optional[Dict[str, Any]] = None) -> None:
        self.db = db
        self.profile = profile
        self.desk = desk
        self.now = now  # the clock; tests replace it
        self.interval = interval
        self._deliver = deliver
        self._fit = fit
        # The gateway's channels (by name): one with a ``reply_window_seconds`` (Meta's 24
        # hours) cannot be written to once the customer's last message is older.
        self._channels = channels if channels is not None else {}
        self._stopping = asyncio.Event()
        self._task: Optional[asyncio.Task] = None

    @property
    def settings(self):  # noqa: ANN201 - bot.brand.FollowUpSettings
        return self.profile.follow_up

    # --- the loop ------------------------------------------------------------------
    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - e.g. the database is down: try again later
                log.exception("follow-ups failed; trying again in %.0f s", self.interval)
            try:
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    async def tick(self) -> int:
        """Schedule what was missed, then do everything due; how many were done."""
        await self.schedule_missed()
        return await self.run_due()

    # --- scheduling ----------------------------------------------------------------
    async def schedule_missed(self) -> None:
        now = self.now()
        for handoff in await self.db.handoffs_to_schedule(SLA_UPDATE, resolved=False,
                                                          since=now - SLA_LOOKBACK_SECONDS):
            await self._schedule_sla(handoff)
        if self.settings.check_back_hours > 0:
            since = now - self.settings.check_back_hours * 3600 - CHECK_BACK_LOOKBACK_SECONDS
            for handoff in await self.db.handoffs_to_schedule(CHECK_BACK, resolved=True,
                                                              since=since):
                await self._schedule_check_back(handoff)

    def due_soon_at(self, handoff: Dict[str, Any]) -> float:
        """When the last (100 - due_soon_percent) % of the handoff's SLA minutes begin."""
        minutes = self.profile.sla_minutes.get(handoff["priority"],
                                               self.profile.sla_minutes[DEFAULT_PRIORITY])
        left = (100 - self.settings.due_soon_percent) / 100 * minutes * 60
        return max(handoff["created_at"], handoff["sla_due_at"] - left)

    def check_back_at(self, resolved_at: float) -> float:
        """``check_back_hours`` after the resolve, or the next opening time if the team
        is off then: nobody is asked "did that sort it out?" at 3am."""
        due = resolved_at + self.settings.check_back_hours * 3600
        moment = datetime.fromtimestamp(due, timezone.utc)
        hours = self.profile.opening_hours
        if hours.is_open(moment):
            return due  # not moment.timestamp(): datetime keeps only whole microseconds
        opening = hours.next_opening(moment)
        return (opening or moment).timestamp()

    async def _schedule_sla(self, handoff: Dict[str, Any]) -> None:
        due = handoff["sla_due_at"]
        await self.db.schedule_follow_ups(
            handoff["id"], handoff["conversation_id"],
            [(SLA_UPDATE, due), (DUE_SOON, self.due_soon_at(handoff)), (OVERDUE, due)],
            self.now())

    async def _schedule_check_back(self, handoff: Dict[str, Any]) -> None:
        if self.settings.check_back_hours <= 0 or handoff.get("resolved_at") is None:
            return
        await self.db.schedule_follow_ups(
            handoff["id"], handoff["conversation_id"],
            [(CHECK_BACK, self.check_back_at(handoff["resolved_at"]))], self.now())

    async def on_handoff_change(self, change: HandoffChange) -> None:
        """Schedule on open and resolve; cancel what no longer applies at once."""
        if change.kind == "opened":
            handoff = await self.db.handoff(change.handoff_id)
            if handoff is None:
                return
            await self._schedule_sla(handoff)
            await self.db.cancel_follow_ups([CHECK_BACK],  # a new handoff: no "did that..."
                                            conversation_id=handoff["conversation_id"],
                                            now=self.now())
        elif change.kind == "replied":
            await self.db.cancel_follow_ups(SLA_KINDS, handoff_id=change.handoff_id,
                                            now=self.now())
        elif change.kind == "resolved":
            await self.db.cancel_follow_ups(SLA_KINDS, handoff_id=change.handoff_id,
                                            now=self.now())
            handoff = await self.db.handoff(change.handoff_id)
            if handoff is not None:
                await self._schedule_check_back(handoff)

    # --- doing what is due -------------------------------------------------------------
    async def run_due(self) -> int:
        done = 0
        for row in await self.db.due_follow_ups(self.now()):
            now = self.now()
            result = await self.db.run_follow_up(
                row["id"], functools.partial(self._decide, now=now), now)
            if result is None:
                continue  # another replica did it, or it was cancelled
            action, work = result
            if action.status != CANCELLED:
                done += 1
                await self._announce(action, work, now)
        return done

    def _decide(self, work: FollowUpWork, now: float) -> FollowUpAction:
        """What a due follow-up does, if it still applies (runs inside the store's transaction)."""
        kind, handoff = work.follow_up["kind"], work.handoff
        name = work.conversation.get("customer_name")
        channel = work.conversation.get("channel", "")
        if kind in SLA_KINDS:
            if handoff["status"] == "resolved" or work.answered:
                return FollowUpAction(CANCELLED)
            if kind != SLA_UPDATE:
                return FollowUpAction(DONE)
            if not self.settings.update_when_overdue:
                return FollowUpAction(CANCELLED)
            raised = one_step_up(handoff["priority"])
            if not self._reachable(work.conversation, now):  # agents still see it move up
                return FollowUpAction(DONE, (), raised)
            words = say.still_waiting(self.profile, name, raised is not None, now)
            return FollowUpAction(DONE, self._fit(channel, [OutboundMessage(words)]), raised)
        if kind == CHECK_BACK:
            if (self.settings.check_back_hours <= 0 or work.later_handoff
                    or handoff["status"] != "resolved"
                    or not self._reachable(work.conversation, now)):
                return FollowUpAction(CANCELLED)
            follow_up_id = work.follow_up["id"]
            question = OutboundMessage(say.check_back_question(self.profile, name), buttons=[
                Button(say.YES_TITLE, check_back_payload(follow_up_id, "yes")),
                Button(say.NO_TITLE, check_back_payload(follow_up_id, "no"))])
            return FollowUpAction(ASKED, self._fit(channel, [question]))
        return FollowUpAction(CANCELLED)

    def _reachable(self, conversation: Dict[str, Any], now: float) -> bool:
        """Whether the channel lets us write to the customer now (a message it would refuse
        would only become a dead letter and a needless delivery_failed handoff)."""
        window = getattr(self._channels.get(conversation.get("channel")),
                         "reply_window_seconds", None)
        last = conversation.get("last_inbound_at")
        return window is None or (last is not None and now - last < window)

    async def _announce(self, action: FollowUpAction, work: FollowUpWork, now: float) -> None:
        """After the commit: wake the outbox, tell agents."""
        kind, handoff = work.follow_up["kind"], work.handoff
        name = work.conversation.get("customer_name") or "Customer"
        if action.messages:
            self._deliver(handoff["conversation_id"])
        if kind == SLA_UPDATE:
            priority = action.priority or handoff["priority"]
            line = say.followed_up_line(priority, action.priority is not None)
            await self.desk.surfaces.publish(HandoffChange(handoff["id"], "followed_up",
                                                           text=line))
        elif kind == DUE_SOON:
            await self.desk.surfaces.publish(HandoffChange(
                handoff["id"], "due_soon", text=say.due_soon_alert(handoff, name, now)))
        elif kind == OVERDUE:
            zone = self.profile.opening_hours.zone
            await self.desk.surfaces.publish(HandoffChange(
                handoff["id"], "overdue", text=say.overdue_alert(handoff, name, zone)))

    # --- the customer's answer to a check-back -------------------------------------------
    async def answer_to(self, message: InboundMessage) -> Optional[PendingAnswer]:
        """The reply to ``message`` if it answers a check-back (read only: nothing recorded).

        A check-back button always counts (a second tap is thanked, not sent to
        Rasa); a typed "yes" or "no" only as the customer's first message since
        the question.
        """
        conversation_id = message.conversation_id
        parsed = check_back_from_payload(message.payload)
        if parsed is not None:
            follow_up_id, answer = parsed
            awaiting = await self.db.check_back_awaiting(conversation_id, follow_up_id)
            if awaiting is None:
                return PendingAnswer(conversation_id, answer, OutboundMessage(
                    say.already_answered(message.first_name)), None)
        else:
            answer = None if message.payload else plain_answer(message.text)
            if answer is None:
                return None
            awaiting = await self.db.check_back_awaiting(conversation_id)
            if awaiting is None:
                return None
        if answer == "yes":
            reply = say.sorted_reply(message.first_name)
        else:
            with_person = await self.db.open_handoff_for(conversation_id) is not None
            reply = say.not_sorted_reply(self.profile, message.first_name, with_person,
                                         self.now())
        return PendingAnswer(conversation_id, answer, OutboundMessage(reply), awaiting["id"])

    async def answered(self, pending: PendingAnswer) -> None:
        """Record the answer (once, after the message is stored); "no" opens a handoff."""
        if pending.follow_up_id is None:
            return
        reopen = self._not_sorted_handoff if pending.answer == "no" else None
        result = await self.db.answer_check_back(pending.follow_up_id, pending.conversation_id,
                                                 pending.answer, reopen, self.now())
        if result is None:
            return  # answered a moment ago (another tap, another replica)
        await self.desk.surfaces.publish(HandoffChange(
            result.previous_handoff_id, "checked_back",
            text=say.checked_back_line(pending.answer, result.handoff_id)))
        if result.handoff_id is not None:
            await self.desk.opened(result.handoff_id)

    def _not_sorted_handoff(self, previous: Dict[str, Any]) -> HandoffRequest:
        """A new handoff carrying the resolved one's context: nobody starts from nothing."""
        context = previous.get("context") or {}
        by = f", resolved by {previous['claimed_by']}" if previous.get("claimed_by") else ""
        priority = previous["priority"] if previous["priority"] != "low" else DEFAULT_PRIORITY
        summary = f"Not sorted after handoff #{previous['id']}: {previous['summary'] or '-'}"
        payload = HandoffPayload(
            reason=REASON_NOT_SORTED, priority=priority, summary=summary,
            detail=f"the customer answered the check-back: not sorted (handoff "
                   f"#{previous['id']}{by})",
            details=dict(context.get("details") or {}), turns=list(context.get("turns") or []),
            language=context.get("language"))
        return handoff_request(payload, self.profile,
                               datetime.fromtimestamp(self.now(), timezone.utc))

    # --- the inbox queue --------------------------------------------------------------------
    async def mark_queue(self, handoffs: List[Dict[str, Any]],
                         rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Mark the queue's rows: ``alert`` is {"state": "due-soon" | "overdue", "label"}
        for a handoff nobody has replied to in the last part of its SLA or past it, else None."""
        now = self.now()
        answered = await self.db.answered_handoffs([h["id"] for h in handoffs])
        by_id = {h["id"]: h for h in handoffs}
        for row in rows:
            handoff = by_id.get(row["id"])
            state = ""
            if handoff and handoff["status"] != "resolved" and handoff["id"] not in answered:
                if now >= handoff["sla_due_at"]:
                    state = "overdue"
                elif now >= self.due_soon_at(handoff):
                    state = "due-soon"
            row["alert"] = ({"state": state, "label": state.replace("-", " ")} if state
                            else None)
        return rows
