"""The incident desk: spots incidents in the gateway's inbound path, answers and closes them.

The pipeline asks ``take(row)`` before a customer's message goes to Rasa.
A message reporting no symptom costs one regex pass and goes on. A symptom
report joins the open incident it matches, or waits in the shared window
(``incident_candidates``) where enough alike reports open a new incident.
When the incident has an agent's answer and this customer has not been
given it yet, the answer is queued instead of asking Rasa (True); otherwise
Rasa answers as usual (False). Agents answer and close through ``answer`` and
``close``; every change is shown on each incident surface (web inbox, Telegram).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from bot.brand import BrandProfile
from bot.gateway.handoffs.errors import HandoffError
from bot.gateway.incidents import matcher
from bot.gateway.messages import OutboundMessage, is_storable
from bot.gateway.store import StoredMessage

log = logging.getLogger(__name__)

PLACEHOLDER = "{first_name}"
TEXT_MAX = 2000
MEMBERS_READ = 50  # an incident's newest reports a new message is compared with


class IncidentError(HandoffError):
    """An agent's action on an incident was refused (mapped like the desk's refusals)."""


class IncidentNotFoundError(IncidentError):
    status = 404

    def __init__(self, incident_id: int) -> None:
        super().__init__(f"no incident {incident_id}")


class IncidentClosedError(IncidentError):
    status = 409

    def __init__(self, incident_id: int) -> None:
        super().__init__(f"incident {incident_id} is already closed")


def check_text(text: Any, what: str) -> str:
    """An agent's answer or closing message, or IncidentError (400) saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise IncidentError(f"the {what} must not be empty")
    text = text.strip()
    if len(text) > TEXT_MAX or not is_storable(text):
        raise IncidentError(f"the {what} must be plain text of at most {TEXT_MAX} characters")
    unknown = [p for p in re.findall(r"\{[^{}]*\}", text) if p != PLACEHOLDER]
    if unknown or text.replace(PLACEHOLDER, "").count("{") or "}" in text.replace(
            PLACEHOLDER, ""):
        raise IncidentError(f"the {what} may use only {PLACEHOLDER} (the customer's first name)")
    return text


def personalised(text: str, first_name: Optional[str]) -> str:
    """``{first_name}`` filled in; without a name, left out with its comma:
    "Thanks for letting us know, {first_name}." -> "Thanks for letting us know."."""
    if first_name:
        return text.replace(PLACEHOLDER, first_name)
    return re.sub(r",?[ \t]*\{first_name\}", "", text)


class IncidentSurface(Protocol):
    """Where agents see incidents (web inbox, Telegram group)."""

    async def on_incident(self, kind: str, incident: Dict[str, Any]) -> None:
        """``kind``: opened | grew | answered | closed."""


class IncidentDesk:
    def __init__(self, db: Any, profile: BrandProfile, deliver: Callable[[str], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db  # an AsyncStore
        self.profile = profile
        self.settings = profile.incidents
        self.deliver = deliver  # wakes the outbox of a conversation
        self.clock = clock  # the window's clock; tests move it
        self.surfaces: List[IncidentSurface] = []
        self._members: Dict[int, Tuple[int, List[matcher.Report]]] = {}  # id -> (count, reports)

    def add_surface(self, surface: IncidentSurface) -> None:
        self.surfaces.append(surface)

    # --- the inbound path ----------------------------------------------------
    async def take(self, row: StoredMessage) -> bool:
        """Before Rasa: True when the customer was given an incident's answer instead."""
        if not self.settings.enabled or row.payload or row.direction != "in":
            return False
        report = matcher.read(row.text)
        if not report.is_symptom:
            return False
        try:
            incident_id = await self._place(row, report)
        except Exception:  # noqa: BLE001 - spotting incidents must never keep Rasa from a customer
            log.exception("incident matching failed for message %s", row.id)
            return False
        if incident_id is None:
            return False
        incident = await self.db.incident(incident_id)
        if incident is None or not incident["answer"]:
            return False
        reply = OutboundMessage(self.profile.signed(
            personalised(incident["answer"], row.customer_name), incident["answered_by"]))
        return await self.db.tell_incident_answer(incident_id, row.id, row.conversation_id,
                                                  reply, self.clock())

    async def _place(self, row: StoredMessage, report: matcher.Report) -> Optional[int]:
        """The incident this report belongs to, joining or opening one; None if none yet."""
        now = self.clock()
        for incident in await self.db.incidents():
            if matcher.joins(report, await self._reports_of(incident), self.settings):
                if await self.db.add_incident_report(incident["id"], row.conversation_id,
                                                     row.id, now):
                    await self._grew(incident["id"])
                return incident["id"]
        window = self.settings.window_minutes * 60
        await self.db.add_incident_candidate(row.id, row.conversation_id, now, now - window)
        waiting = [matcher.Candidate(key, conversation, matcher.read(text))
                   for key, conversation, text in await self.db.incident_candidates(now - window)]
        group = matcher.find_group(waiting, self.settings)
        if not group:
            return None
        members = [c for c in waiting if c.key in set(group)]
        title = " · ".join(matcher.key_terms([c.report for c in members]))
        incident_id = await self.db.open_incident(
            title or "one problem", [(c.key, c.conversation_id) for c in members], now)
        if incident_id is None:  # another replica made it first; the next message joins it
            return None
        log.info("incident %s opened: %d conversations", incident_id, len(
            {c.conversation_id for c in members}))
        await self.db.claim_incident_card(incident_id, len(members), self.settings
                                          .card_update_every)
        await self._publish("opened", incident_id)
        return incident_id if row.id in group else None

    async def _reports_of(self, incident: Dict[str, Any]) -> List[matcher.Report]:
        cached = self._members.get(incident["id"])
        if cached is None or cached[0] != incident["count"]:
            rows = await self.db.incident_reports(incident["id"], limit=MEMBERS_READ)
            cached = (incident["count"], [matcher.read(r["text"]) for r in rows])
            self._members[incident["id"]] = cached
        return cached[1]

    async def _grew(self, incident_id: int) -> None:
        incident = await self.db.incident(incident_id)
        if incident and await self.db.claim_incident_card(
                incident_id, incident["count"], self.settings.card_update_every):
            await self._publish("grew", incident_id)

    # --- agents' actions -----------------------------------------------------
    async def answer(self, incident_id: int, agent: str, text: Any) -> Dict[str, Any]:
        """Set the answer every customer reporting it from now on is given; the incident."""
        text = check_text(text, "answer")
        agent = check_text(agent, "agent's name")[:100]
        if not await self.db.answer_incident(incident_id, agent, text, self.clock()):
            await self._existing(incident_id)
            raise IncidentClosedError(incident_id)
        return await self._publish("answered", incident_id)

    async def close(self, incident_id: int, agent: str, text: Any) -> Dict[str, Any]:
        """Close it; everyone who was given the answer gets ``text`` once. The incident."""
        text = check_text(text, "closing message")
        agent = check_text(agent, "agent's name")[:100]

        def update(first_name: Optional[str]) -> OutboundMessage:
            return OutboundMessage(self.profile.signed(personalised(text, first_name), agent))

        told = await self.db.close_incident(incident_id, agent, text, update, self.clock())
        if told is None:
            await self._existing(incident_id)
            raise IncidentClosedError(incident_id)
        for conversation_id in told:
            self.deliver(conversation_id)
        self._members.pop(incident_id, None)
        return await self._publish("closed", incident_id)

    async def _existing(self, incident_id: int) -> Dict[str, Any]:
        incident = await self.db.incident(incident_id)
        if incident is None:
            raise IncidentNotFoundError(incident_id)
        return incident

    async def _publish(self, kind: str, incident_id: int) -> Dict[str, Any]:
        incident = await self._existing(incident_id)
        for surface in self.surfaces:
            try:
                await surface.on_incident(kind, incident)
            except Exception:  # noqa: BLE001 - one surface failing must not stop the others
                log.exception("incident surface %s failed on %s", type(surface).__name__, kind)
        return incident
