"""When the brand's human team is at work.

Replies must be honest about when a person will answer, so the bot needs to
know whether the team is in now and, if not, when it is back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Dict, List, Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _parse_time(text: str) -> time:
    hours, minutes = text.strip().split(":")
    return time(int(hours), int(minutes))


def _clock(value: time) -> str:
    """08:00 -> 8am, 17:30 -> 5:30pm."""
    hour = value.hour % 12 or 12
    suffix = "am" if value.hour < 12 else "pm"
    return f"{hour}{suffix}" if value.minute == 0 else f"{hour}:{value.minute:02d}{suffix}"


@dataclass(frozen=True)
class OpeningHours:
    """Opening windows per weekday (0 = Monday) in one time zone."""

    zone: ZoneInfo
    windows: Dict[int, Tuple[time, time]]

    @classmethod
    def parse(cls, hours: Dict[str, str], timezone: str) -> OpeningHours:
        """Parse ``{"mon": "08:00-20:00", ...}``; raises ValueError with the culprit."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {timezone!r}") from None
        windows: Dict[int, Tuple[time, time]] = {}
        for day, span in hours.items():
            try:
                start_text, end_text = span.split("-")
                start, end = _parse_time(start_text), _parse_time(end_text)
            except ValueError:
                raise ValueError(f"hours.{day}: {span!r} is not like '08:00-20:00'") from None
            if end <= start:
                raise ValueError(f"hours.{day}: closing time must be after opening time")
            windows[WEEKDAYS.index(day)] = (start, end)
        return cls(zone, windows)

    def is_open(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        window = self.windows.get(local.weekday())
        return bool(window) and window[0] <= local.time() < window[1]

    def next_opening(self, moment: datetime) -> Optional[datetime]:
        """The next time the team starts work after ``moment`` (None if never open)."""
        local = moment.astimezone(self.zone)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            window = self.windows.get(day.weekday())
            if not window:
                continue
            start = datetime.combine(day, window[0], tzinfo=self.zone)
            if start > local:
                return start
        return None

    def add_business_minutes(self, moment: datetime, minutes: float) -> datetime:
        """When ``minutes`` of opening time have passed after ``moment`` (SLA due times)."""
        local = moment.astimezone(self.zone)
        remaining = timedelta(minutes=minutes)
        for _ in range(366):
            window = self.windows.get(local.weekday())
            if window:
                start = datetime.combine(local.date(), window[0], tzinfo=self.zone)
                end = datetime.combine(local.date(), window[1], tzinfo=self.zone)
                begin = max(local, start)
                if begin < end:
                    if begin + remaining <= end:
                        return begin + remaining
                    remaining -= end - begin
            local = datetime.combine(local.date() + timedelta(days=1), time(0),
                                     tzinfo=self.zone)
        return moment + timedelta(minutes=minutes)  # never open: plain minutes

    def describe_return(self, moment: datetime) -> str:
        """'at 8am', 'tomorrow at 8am' or 'on Monday at 8am', relative to ``moment``."""
        opening = self.next_opening(moment)
        if opening is None:
            return "as soon as possible"
        days = (opening.date() - moment.astimezone(self.zone).date()).days
        when = "" if days == 0 else "tomorrow " if days == 1 else f"on {opening:%A} "
        return f"{when}at {_clock(opening.time())}"

    def describe(self) -> str:
        """'Mon-Fri 8am-8pm, Sat 9am-5pm (UK time)': consecutive equal days grouped."""
        groups: List[Tuple[int, int, Tuple[time, time]]] = []
        for day in range(7):
            window = self.windows.get(day)
            if window is None:
                continue
            if groups and groups[-1][1] == day - 1 and groups[-1][2] == window:
                groups[-1] = (groups[-1][0], day, window)
            else:
                groups.append((day, day, window))
        parts = []
        for first, last, (start, end) in groups:
            days = _DAY_NAMES[first] if first == last else f"{_DAY_NAMES[first]}-{_DAY_NAMES[last]}"
            parts.append(f"{days} {_clock(start)}-{_clock(end)}")
        zone = "UK time" if self.zone.key == "Europe/London" else self.zone.key
        return f"{', '.join(parts)} ({zone})"
