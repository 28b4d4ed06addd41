"""Export periods: one UTC day or one UTC hour, named the way their folders are."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

PeriodKind = Literal["day", "hour"]
PERIOD_ID = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2})?$")
"""`2026-11-22` (a day) or `2026-11-22T14` (an hour): folder names of an export root."""

_LENGTH = {"day": timedelta(days=1), "hour": timedelta(hours=1)}


@dataclass(frozen=True)
class Period:
    """A half-open UTC interval [start, end) of one day or one hour."""

    kind: PeriodKind
    start: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() != timedelta(0):
            raise ValueError(f"period start must be UTC, got {self.start!r}")
        truncated = self.start.replace(minute=0, second=0, microsecond=0)
        if self.kind == "day":
            truncated = truncated.replace(hour=0)
        if self.start != truncated:
            raise ValueError(f"a {self.kind} period starts on the {self.kind}, not {self.start}")

    @property
    def end(self) -> datetime:
        return self.start + _LENGTH[self.kind]

    @property
    def id(self) -> str:
        """Folder name: `2026-11-22` or `2026-11-22T14`; ids sort in time order per kind."""
        text = self.start.strftime("%Y-%m-%d")
        return text if self.kind == "day" else f"{text}T{self.start:%H}"

    @property
    def label(self) -> str:
        """For people: `2026-11-22 (UTC)` or `2026-11-22 14:00-15:00 UTC`."""
        if self.kind == "day":
            return f"{self.id} (UTC)"
        return f"{self.start:%Y-%m-%d %H:%M}-{self.end:%H:%M} UTC"

    @classmethod
    def parse(cls, kind: PeriodKind, text: str, hour: int | None = None) -> Period:
        """`day` + `2026-11-22`; `hour` + `2026-11-22T14` (or `2026-11-22` with `hour`)."""
        if kind not in _LENGTH:
            raise ValueError(f"period must be day or hour, not {kind!r}")
        match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{1,2})(?::00)?)?Z?", text.strip())
        if not match:
            raise ValueError(f"date must look like 2026-11-22 or 2026-11-22T14, not {text!r}")
        day = date.fromisoformat(match[1])
        given_hour = int(match[2]) if match[2] is not None else None
        if given_hour is not None and hour is not None and given_hour != hour:
            raise ValueError(f"{text!r} and hour {hour} disagree")
        hour = given_hour if given_hour is not None else hour
        if kind == "day":
            if hour is not None:
                raise ValueError("a day period takes no hour")
            return cls("day", datetime(day.year, day.month, day.day, tzinfo=UTC))
        if hour is None:
            raise ValueError("an hour period needs an hour: --date 2026-11-22T14 or --hour 14")
        if not 0 <= hour <= 23:
            raise ValueError(f"hour must be 0..23, not {hour}")
        return cls("hour", datetime(day.year, day.month, day.day, hour, tzinfo=UTC))

    @classmethod
    def from_id(cls, period_id: str) -> Period:
        """The period a folder name (`Period.id`) stands for."""
        if not PERIOD_ID.match(period_id):
            raise ValueError(f"not a period id: {period_id!r}")
        return cls.parse("hour" if "T" in period_id else "day", period_id)

    @classmethod
    def last_complete(cls, kind: PeriodKind, now: datetime) -> Period:
        """The latest period that has ended at `now`: yesterday, or the previous hour."""
        now = now.astimezone(UTC)
        current = now.replace(minute=0, second=0, microsecond=0)
        if kind == "day":
            current = current.replace(hour=0)
        return cls(kind, current - _LENGTH[kind])
