"""Five-field cron expressions for recurring campaigns (minute hour day month weekday).

Parsed here (the core does not import APScheduler) into explicit value sets; the scheduler
builds its trigger from `CronSpec.fields()`, so both sides agree on every expression. Weekdays
are 0-7 or sun..sat (0 and 7 = Sunday, as in crontab). An expression that restricts both the
day of month and the weekday is refused: crontab ORs them, APScheduler ANDs them, and a
marketer should not have to know that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from crm_core.errors import ValidationFailed

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names)
FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("weekday", 0, 7, WEEKDAYS),
)
SEARCH_DAYS = 366 * 5


@dataclass(frozen=True)
class CronSpec:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    any_day: bool
    any_weekday: bool

    def fields(self) -> dict[str, str]:
        """Keyword arguments for APScheduler's `CronTrigger` (weekdays by name, no ambiguity)."""
        return {
            "minute": _join(self.minutes),
            "hour": _join(self.hours),
            "day": "*" if self.any_day else _join(self.days),
            "month": _join(self.months),
            "day_of_week": "*"
            if self.any_weekday
            else ",".join(WEEKDAYS[d] for d in sorted(self.weekdays)),
        }

    def next_after(self, after: datetime, timezone: str) -> datetime | None:
        """The first fire time strictly after `after` (aware), in UTC; None if none in 5 years."""
        zone = ZoneInfo(timezone)
        local = after.astimezone(zone)
        day = local.date()
        for offset in range(SEARCH_DAYS):
            current = day + timedelta(days=offset)
            if not self._day_matches(current):
                continue
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    candidate = datetime(
                        current.year, current.month, current.day, hour, minute, tzinfo=zone
                    )
                    if candidate > local:
                        return candidate.astimezone(after.tzinfo)
        return None

    def _day_matches(self, day: date) -> bool:
        weekday = (day.weekday() + 1) % 7  # Python: Monday = 0 → cron: Sunday = 0
        return day.month in self.months and day.day in self.days and weekday in self.weekdays


def parse_cron(expression: str) -> CronSpec:
    """Parse a five-field cron expression or raise ValidationFailed saying which part is wrong."""
    text = " ".join(str(expression or "").split())
    parts = text.split(" ") if text else []
    if len(parts) != 5:
        raise ValidationFailed(
            f"cron {expression!r}: expected 5 fields (minute hour day month weekday), "
            f"e.g. '0 10 * * mon' = every Monday at 10:00; got {len(parts)}"
        )
    values: list[frozenset[int]] = []
    for part, (name, low, high, names) in zip(parts, FIELDS, strict=True):
        values.append(_parse_field(part.lower(), name, low, high, names, expression))
    weekdays = frozenset(7 % 7 if d == 7 else d for d in values[4])
    any_day, any_weekday = parts[2] in ("*", "?"), parts[4] in ("*", "?")
    if not any_day and not any_weekday:
        raise ValidationFailed(
            f"cron {expression!r}: give a day of month or a weekday, not both (use * for the other)"
        )
    return CronSpec(
        expression=text,
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        any_day=any_day,
        any_weekday=any_weekday,
    )


def _parse_field(
    part: str, name: str, low: int, high: int, names: tuple[str, ...], expression: str
) -> frozenset[int]:
    out: set[int] = set()
    for item in part.split(","):
        if not item:
            raise ValidationFailed(f"cron {expression!r}: empty entry in the {name} field")
        body, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValidationFailed(
                    f"cron {expression!r}: step {step_text!r} in the {name} field is not "
                    "a whole number > 0"
                )
            step = int(step_text)
        if body in ("*", "?"):
            start, end = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            start, end = (
                _value(a, name, low, high, names, expression),
                _value(b, name, low, high, names, expression),
            )
            if start > end:
                raise ValidationFailed(
                    f"cron {expression!r}: range {body!r} in the {name} field runs backwards"
                )
        else:
            start = _value(body, name, low, high, names, expression)
            end = high if step_text else start
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...], expr: str) -> int:
    if text in names:
        return names.index(text) + (1 if name == "month" else 0)
    if text.isdigit() and low <= int(text) <= high:
        return int(text)
    hint = f" or {names[0]}..{names[-1]}" if names else ""
    raise ValidationFailed(f"cron {expr!r}: {text!r} is not a valid {name} ({low}-{high}{hint})")


def _join(values: frozenset[int]) -> str:
    return ",".join(str(v) for v in sorted(values))
