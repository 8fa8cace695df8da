"""The schedules of ``retrain_schedule``: standard 5-field cron, and pg_cron's seconds interval.

Theory of operation
-------------------
A schedule is what pg_cron accepts, so that one text means the same on both engines:

- ``minute hour day-of-month month day-of-week`` (UTC), each field ``*``, a number, a range
  ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of those; months and days of the week
  also by their English three-letter names (``jan``, ``mon``), Sunday 0 or 7. As in cron, when
  both day fields are restricted a day matches either of them.
- ``N seconds`` (N from 1 to 59): every N seconds (pg_cron 1.5's interval jobs; Debian's 1.4
  refuses them).

``parse`` checks one (22023 with the field at fault); ``Schedule.latest_due`` is the last time
at or before ``now`` that the schedule fires after ``since``: a scheduler that was down for three
firings runs once, not three times.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from sqlml import errors

_FIELDS = (  # (name, lowest, highest)
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_SECONDS = re.compile(r"^\s*(\d{1,2})\s+seconds?\s*$", re.IGNORECASE)
_YEARS_AHEAD = 5  # how far next_after looks (a 31 February never fires)
# latest_due looks in the last hour, day, month, year, then since the last run (a schedule that
# fires every minute must not walk a year of minutes)
_WINDOWS = (
    datetime.timedelta(hours=1),
    datetime.timedelta(days=1),
    datetime.timedelta(days=32),
    datetime.timedelta(days=366),
    None,
)


@dataclass(frozen=True)
class Schedule:
    """A checked schedule: the cron fields' allowed values, or an interval in seconds."""

    text: str  # as written
    fields: tuple[frozenset[int], ...] = ()  # minute, hour, day of month, month, day of week
    restricted: tuple[bool, bool] = (False, False)  # day of month, day of week given (not *)
    seconds: int | None = None  # 'N seconds'

    def fires(self, at: datetime.datetime) -> bool:
        """Whether the cron schedule fires at the minute ``at``."""
        minute, hour, dom, month, dow = self.fields
        if at.minute not in minute or at.hour not in hour or at.month not in month:
            return False
        weekday = (at.weekday() + 1) % 7  # Sunday 0
        by_dom, by_dow = at.day in dom, weekday in dow or (weekday == 0 and 7 in dow)
        if all(self.restricted):
            return by_dom or by_dow
        return by_dom and by_dow

    def next_after(self, since: datetime.datetime) -> datetime.datetime | None:
        """The first firing after ``since`` (None: none in the next years)."""
        if self.seconds is not None:
            return since + datetime.timedelta(seconds=self.seconds)
        at = since.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
        end = since + datetime.timedelta(days=366 * _YEARS_AHEAD)
        while at <= end:
            if at.month not in self.fields[3]:
                at = _next_month(at)
            elif not self._day(at):
                at = (at + datetime.timedelta(days=1)).replace(hour=0, minute=0)
            elif at.hour not in self.fields[1]:
                at = (at + datetime.timedelta(hours=1)).replace(minute=0)
            elif at.minute not in self.fields[0]:
                at += datetime.timedelta(minutes=1)
            else:
                return at
        return None

    def _day(self, at: datetime.datetime) -> bool:
        return self.fires(at.replace(hour=min(self.fields[1]), minute=min(self.fields[0])))

    def latest_due(
        self, since: datetime.datetime, now: datetime.datetime
    ) -> datetime.datetime | None:
        """The last firing after ``since`` and at or before ``now`` (None: none is due)."""
        if self.seconds is not None:
            if since + datetime.timedelta(seconds=self.seconds) > now:
                return None
            steps = int((now - since).total_seconds() // self.seconds)
            return since + datetime.timedelta(seconds=self.seconds * steps)
        for window in _WINDOWS:  # the latest firing in the nearest window that has one
            start = since if window is None else max(since, now - window)
            found = self._last_between(start, now)
            if found is not None or start == since:
                return found
        return None

    def _last_between(
        self, start: datetime.datetime, now: datetime.datetime
    ) -> datetime.datetime | None:
        due = self.next_after(start)
        if due is None or due > now:
            return None
        while True:
            following = self.next_after(due)
            if following is None or following > now:
                return due
            due = following


def _next_month(at: datetime.datetime) -> datetime.datetime:
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return at.replace(year=year, month=month, day=1, hour=0, minute=0)


def parse(text: str) -> Schedule:
    """A schedule checked (22023, naming the field at fault)."""
    interval = _SECONDS.match(text)
    if interval is not None:
        seconds = int(interval.group(1))
        if not 1 <= seconds <= 59:
            raise _bad(text, f"an interval is 1 to 59 seconds, not {seconds}")
        return Schedule(text, seconds=seconds)
    parts = text.split()
    if len(parts) != 5:
        raise _bad(text, f"a cron schedule has 5 fields, not {len(parts)}")
    fields = tuple(_field(part, *spec, text) for part, spec in zip(parts, _FIELDS, strict=True))
    schedule = Schedule(text, fields, (parts[2] != "*", parts[4] != "*"))
    if schedule.next_after(datetime.datetime(2000, 1, 1)) is None:  # (a 31 February)
        raise _bad(text, "it never fires")
    return schedule


def _bad(text: str, why: str) -> errors.InvalidParameterValue:
    return errors.InvalidParameterValue(
        f"invalid value {text!r} for option RETRAIN_SCHEDULE: {why}",
        hint="a 5-field cron schedule in UTC, minute hour day-of-month month day-of-week"
        " ('0 3 * * *': every day at 03:00), or 'N seconds' (1 to 59)",
    )


def _field(part: str, name: str, low: int, high: int, text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        values |= _item(item, name, low, high, text)
    return frozenset(values)


def _item(item: str, name: str, low: int, high: int, text: str) -> set[int]:
    span, _, step_text = item.partition("/")
    step = _number(step_text, name, text) if step_text else 1
    if step < 1:
        raise _bad(text, f"the step of the {name} field must be at least 1")
    if span == "*":
        first, last = low, high
    elif "-" in span:
        left, _, right = span.partition("-")
        first, last = _value(left, name, text), _value(right, name, text)
    else:
        first = _value(span, name, text)
        last = high if step_text else first
    for value in (first, last):
        if not low <= value <= high:
            raise _bad(text, f"{value} is out of range for the {name} field ({low}-{high})")
    if first > last:
        raise _bad(text, f"the range {span} of the {name} field is backwards")
    return set(range(first, last + 1, step))


def _value(word: str, name: str, text: str) -> int:
    names = _MONTHS if name == "month" else _DAYS if name == "day of week" else ()
    lowered = word.lower()
    if lowered in names:
        return names.index(lowered) + (1 if name == "month" else 0)
    return _number(word, name, text)


def _number(word: str, name: str, text: str) -> int:
    if not word.isdigit():
        raise _bad(text, f"{word!r} is not a value of the {name} field")
    return int(word)
