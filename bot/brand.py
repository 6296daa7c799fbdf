"""The brand profile: the facts and voice every reply is built from.

One YAML file (``brand.yml`` at the project root, or ``BRAND_PROFILE``) holds
what differs between brands, so re-skinning the bot never touches dialogue
logic. Loading validates it and fails with a message naming the bad field.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Dict, List, Optional

import yaml
from pydantic import BaseModel, HttpUrl, ValidationError, validator

from bot.business_hours import WEEKDAYS, OpeningHours
from bot.handoff_contract import PRIORITIES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILE = PROJECT_ROOT / "brand.yml"


class BrandProfileError(ValueError):
    """The brand profile is missing or malformed; the message says where."""


class Contacts(BaseModel):
    phone: str
    email: str

    @validator("email")
    def _looks_like_email(cls, value: str) -> str:  # noqa: N805
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("not an email address")
        return value


class Returns(BaseModel):
    window_days: int

    @validator("window_days")
    def _positive(cls, value: int) -> int:  # noqa: N805 - pydantic validator
        if value <= 0:
            raise ValueError("must be a positive number of days")
        return value


class Shipping(BaseModel):
    standard: str
    express: str
    international: str


class Cancellation(BaseModel):
    free_until: str
    fee: str


class Links(BaseModel):
    sign_up: HttpUrl
    password_reset: HttpUrl
    email_preferences: HttpUrl
    orders: HttpUrl


class OrderNumberFormat(BaseModel):
    prefix: str
    digits: int

    @property
    def pattern(self) -> re.Pattern:
        """A whole value that is one order number: JL-204815, jl 204815, #204815, 204815."""
        prefix = re.escape(self.prefix)
        return re.compile(
            rf"^\s*(?:{prefix}[\s-]?|#)?(\d{{{self.digits}}})\s*$", re.IGNORECASE
        )

    def normalise(self, text: str) -> Optional[str]:
        """The canonical form (``JL-204815``) of an order number, or None."""
        match = self.pattern.match(text)
        return self.canonical(match.group(1)) if match else None

    @property
    def in_text(self) -> re.Pattern:
        """An order number anywhere in a text: JL-204815, jl 204815, jl204815, #204815."""
        return re.compile(rf"(?:\b{re.escape(self.prefix)}[\s-]?|#)(\d{{{self.digits}}})\b",
                          re.IGNORECASE)

    def canonical(self, digits: str) -> str:
        return f"{self.prefix.upper()}-{digits}"

    def find(self, text: str) -> Optional[str]:
        """The canonical order number (``JL-204815``) in ``text``, or None.

        The prefixed or ``#`` forms count anywhere in the text; bare digits only
        when they are the only number there (so a phone number is never one).
        """
        text = text or ""
        match = self.in_text.search(text)
        if match:
            return self.canonical(match.group(1))
        numbers = re.findall(r"\d+", text)
        if len(numbers) != 1 or len(numbers[0]) != self.digits:
            return None
        return self.canonical(numbers[0])

    @property
    def example(self) -> str:
        return f"{self.prefix.upper()}-{'204815'[: self.digits].ljust(self.digits, '0')}"


class IncidentSettings(BaseModel):
    """When many customers report one problem (bot/gateway/incidents/): brand.yml ``incidents:``."""

    enabled: bool = True
    min_conversations: int = 5  # distinct customers reporting it ...
    window_minutes: float = 15  # ... within this many minutes
    similarity: float = 0.3  # how alike two reports must read (0-1, word and character n-grams)
    card_update_every: int = 5  # the Telegram card is edited each time this many more report it

    @validator("min_conversations", "card_update_every")
    def _at_least_two(cls, value: int) -> int:  # noqa: N805 - pydantic validator
        if value < 2:
            raise ValueError("must be at least 2")
        return value

    @validator("window_minutes")
    def _positive_window(cls, value: float) -> float:  # noqa: N805 - pydantic validator
        if value <= 0:
            raise ValueError("must be a positive number of minutes")
        return value

    @validator("similarity")
    def _a_fraction(cls, value: float) -> float:  # noqa: N805 - pydantic validator
        if not 0 < value < 1:
            raise ValueError("must be between 0 and 1")
        return value


class FollowUpSettings(BaseModel):
    """Follow-ups of handoffs (bot/gateway/handoffs/follow_ups.py): brand.yml ``follow_up:``."""

    # One honest update to a customer whose promised reply time passed unanswered
    # (their handoff's priority goes up one step with it).
    update_when_overdue: bool = True
    # Agents' "due soon" alert once this much of a handoff's SLA has gone by.
    due_soon_percent: float = 80
    # "Did that sort it out?" this many hours after an agent resolves; 0: never.
    check_back_hours: float = 0

    @validator("due_soon_percent")
    def _a_percentage(cls, value: float) -> float:  # noqa: N805 - pydantic validator
        if not 0 < value < 100:
            raise ValueError("must be between 0 and 100")
        return value

    @validator("check_back_hours")
    def _not_negative(cls, value: float) -> float:  # noqa: N805 - pydantic validator
        if value < 0:
            raise ValueError("must be 0 (off) or a positive number of hours")
        return value


class BrandProfile(BaseModel):
    name: str
    assistant_name: str
    website: HttpUrl
    voice: str
    timezone: str
    hours: Dict[str, str]
    contacts: Contacts
    returns: Returns
    shipping: Shipping
    payment_methods: List[str]
    cancellation: Cancellation
    links: Links
    order_number: OrderNumberFormat
    sla_minutes: Dict[str, int]
    # How agents sign their replies: {agent} is the agent's first name.
    agent_signature: str = "— {agent}, {brand}"
    # What the bot says, by language code, to a message written in a language it
    # does not understand (escalation.yml's other_language); others get English.
    # {brand}, {phone} and {email} are filled in.
    other_language_replies: Dict[str, str] = {}
    incidents: IncidentSettings = IncidentSettings()
    follow_up: FollowUpSettings = FollowUpSettings()

    @validator("hours")
    def _known_days(cls, value: Dict[str, str]) -> Dict[str, str]:  # noqa: N805
        unknown = set(value) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown weekday(s) {sorted(unknown)}; use {WEEKDAYS}")
        return value

    @validator("sla_minutes")
    def _all_priorities(cls, value: Dict[str, int]) -> Dict[str, int]:  # noqa: N805
        missing = [p for p in PRIORITIES if p not in value]
        if missing:
            raise ValueError(f"missing priorities {missing}")
        return value

    @validator("agent_signature")
    def _known_placeholders(cls, value: str) -> str:  # noqa: N805
        try:
            value.format(agent="Sam", brand="Brand")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"use only {{agent}} and {{brand}} ({error})") from None
        return value

    @validator("other_language_replies")
    def _replies_fill_in(cls, value: Dict[str, str]) -> Dict[str, str]:  # noqa: N805
        for code, line in value.items():
            try:
                line.format(brand="Brand", phone="1", email="e@x")
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(f"{code}: use only {{brand}}, {{phone}} and {{email}} "
                                 f"({error})") from None
        return value

    def other_language_reply(self, code: Optional[str]) -> Optional[str]:
        """The configured line for a language the bot cannot read, filled in, or None."""
        line = self.other_language_replies.get(code or "")
        if line is None:
            return None
        return line.format(brand=self.name, phone=self.contacts.phone,
                           email=self.contacts.email)

    @validator("payment_methods")
    def _some_methods(cls, value: List[str]) -> List[str]:  # noqa: N805
        if not value:
            raise ValueError("list at least one payment method")
        return value

    @functools.cached_property
    def opening_hours(self) -> OpeningHours:
        return OpeningHours.parse(self.hours, self.timezone)

    class Config:
        keep_untouched = (functools.cached_property,)

    def signed(self, text: str, agent: str) -> str:
        """An agent's reply as the customer sees it: their words, then the signature."""
        first_name = (agent.split() or [agent])[0]
        return f"{text}\n\n{self.agent_signature.format(agent=first_name, brand=self.name)}"

    def template_values(self) -> Dict[str, str]:
        """Values for the ``brand_*`` slots that responses interpolate."""
        return {
            "brand_name": self.name,
            "brand_assistant": self.assistant_name,
            "brand_phone": self.contacts.phone,
            "brand_email": self.contacts.email,
            "brand_website": str(self.website),
            "brand_hours": self.opening_hours.describe(),
            "return_window_days": str(self.returns.window_days),
            "standard_delivery": self.shipping.standard,
            "express_delivery": self.shipping.express,
            "international_delivery": self.shipping.international,
            "payment_methods_list": _human_list(self.payment_methods),
            "password_reset_link": str(self.links.password_reset),
            "sign_up_link": str(self.links.sign_up),
            "email_preferences_link": str(self.links.email_preferences),
            "orders_link": str(self.links.orders),
            "order_number_example": self.order_number.example,
        }


def _human_list(items: List[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def load_brand(path: Optional[os.PathLike] = None) -> BrandProfile:
    """Read and validate a brand profile; ``BRAND_PROFILE`` overrides the default."""
    path = Path(path or os.environ.get("BRAND_PROFILE") or DEFAULT_PROFILE)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BrandProfileError(f"brand profile not found: {path}") from None
    except yaml.YAMLError as error:
        raise BrandProfileError(f"brand profile {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise BrandProfileError(f"brand profile {path} must be a YAML mapping")
    try:
        profile = BrandProfile(**raw)
        profile.opening_hours  # noqa: B018 - parse now so bad hours fail at load
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise BrandProfileError(f"brand profile {path}: {problems}") from None
    except ValueError as error:
        raise BrandProfileError(f"brand profile {path}: {error}") from None
    return profile


@functools.lru_cache(maxsize=1)
def brand() -> BrandProfile:
    """The profile this process runs with (loaded once)."""
    return load_brand()
