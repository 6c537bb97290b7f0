"""Five-field cron expressions in UTC, enough for VelocityCluster.spec.backup.schedule.

Fields: minute hour day-of-month month day-of-week, each `*`, `N`, `A-B`, `*/S`, `A-B/S`
or a comma list of those; plus @hourly, @daily (@midnight), @weekly, @monthly and
@yearly (@annually). As in cron, when both day fields are restricted a day matching
either one fires.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["CronError", "Schedule", "parse"]

_SHORTCUTS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


class CronError(ValueError):
    """Not a cron expression this operator understands; the message says which field."""


def _field(text: str, low: int, high: int, index: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = low, high
            elif "-" in base:
                a, b = base.split("-", 1)
                start, end = int(a), int(b)
            else:
                start = end = int(base)
                if step_text:
                    end = high
        except ValueError:
            raise CronError(f"field {index + 1} ({text!r}) is not a number, range or */step") from None
        if step < 1 or start < low or end > high or start > end:
            raise CronError(f"field {index + 1} ({text!r}) is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 folded to 0)
    days_restricted: bool
    weekdays_restricted: bool

    def matches(self, when: dt.datetime) -> bool:
        if when.minute not in self.minutes or when.hour not in self.hours or when.month not in self.months:
            return False
        day_ok = when.day in self.days
        weekday_ok = (when.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def due_between(self, after: dt.datetime, until: dt.datetime) -> dt.datetime | None:
        """The latest firing time in (after, until], or None. Looks back at most 366 days."""
        start = max(after, until - dt.timedelta(days=366))
        t = until.replace(second=0, microsecond=0)
        while t > start:
            if self.matches(t):
                return t
            t -= dt.timedelta(minutes=1)
        return None


def parse(expression: str) -> Schedule:
    text = _SHORTCUTS.get(expression.strip(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"{expression!r} has {len(fields)} fields; cron needs five")
    parsed = [_field(f, lo, hi, i) for i, (f, (lo, hi)) in enumerate(zip(fields, _RANGES, strict=True))]
    weekdays = frozenset(d % 7 for d in parsed[4])
    return Schedule(parsed[0], parsed[1], parsed[2], parsed[3], weekdays,
                    days_restricted=fields[2] != "*", weekdays_restricted=fields[4] != "*")
