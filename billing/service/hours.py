"""Opening hours: "N opening hours after T" and "opening hours between T1
and T2", in the provider's time zone, past weekends, holidays and clock
changes. Pure functions of a ``Schedule``; no database, no Flask.

A schedule is seven lists of ranges (Monday first), each range a start and
an end in minutes after local midnight (``end`` may be 1440: midnight that
ends the day), and a set of holidays (local dates: closed all day). Ranges
are wall-clock times: 09:00–18:00 is nine hours on the day the clocks change
at 02:00, and a range that spans the change counts the hour that really
passed (00:00–24:00 is 23 hours on the spring day, 25 in the autumn). A time
in the hour skipped in spring is read before the change (fold 0, as
``zoneinfo`` does).

Everything given and returned is an aware datetime; durations are
``timedelta`` of opening time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from billing.errors import N_, BillingError

DAY_MINUTES = 24 * 60
# How far ahead a due time is looked for before giving up (a schedule open
# one day in three years is a mistake, not a promise).
HORIZON_DAYS = 3 * 366

Range = tuple[int, int]


class ScheduleError(BillingError):
    """Opening hours, a holiday or a target that cannot be understood."""


@dataclass(frozen=True)
class Schedule:
    timezone: str
    # Monday .. Sunday: the ranges open that weekday, sorted, not overlapping.
    week: tuple[tuple[Range, ...], ...]
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if len(self.week) != 7:
            raise ValueError("a week has seven days")
        for ranges in self.week:
            check_ranges(ranges)
        zone(self.timezone)

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def ever_open(self) -> bool:
        return any(self.week)


def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (IANA: ``Europe/Zurich``); ScheduleError when unknown."""
    try:
        if name and name in _zones():
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    raise ScheduleError(N_("Choose a time zone from the list, such as Europe/Paris."), "timezone")


_ZONES: frozenset[str] = frozenset()


def _zones() -> frozenset[str]:
    global _ZONES
    if not _ZONES:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def timezones() -> list[str]:
    """Every time zone a provider may choose, sorted."""
    return sorted(name for name in _zones() if "/" in name and not name.startswith(("Etc/", "SystemV/")))


def check_ranges(ranges: Iterable[Range]) -> None:
    previous_end = -1
    for start, end in ranges:
        if not (0 <= start < end <= DAY_MINUTES):
            raise ValueError(f"range {start}-{end} is not within a day")
        if start < previous_end:
            raise ValueError("ranges must be sorted and must not overlap")
        previous_end = end


# ------------------------------------------------------------------ the arithmetic

def _local_moment(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """Wall-clock ``minutes`` after local midnight of ``day``, as UTC (24:00 is the next midnight)."""
    wall = datetime.combine(day + timedelta(days=minutes // DAY_MINUTES), time(*divmod(minutes % DAY_MINUTES, 60)))
    return wall.replace(tzinfo=tz).astimezone(UTC)


def open_intervals(schedule: Schedule, since: datetime,
                   days: int = HORIZON_DAYS) -> Iterator[tuple[datetime, datetime]]:
    """The opening intervals, in UTC and in order, of the local days from the
    one holding ``since`` on (at most ``days`` of them)."""
    tz = schedule.zone
    day = since.astimezone(tz).date() - timedelta(days=1)  # a range of the day before may still run
    for _ in range(days + 1):
        if day not in schedule.holidays:
            for start, end in schedule.week[day.weekday()]:
                yield _local_moment(day, start, tz), _local_moment(day, end, tz)
        day += timedelta(days=1)


def opening_time_between(schedule: Schedule, start: datetime, end: datetime) -> timedelta:
    """How much opening time passes from ``start`` to ``end`` (zero if ``end`` is not later)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    total = timedelta(0)
    if end <= start:
        return total
    days = (end - start).days + 2
    for opens, closes in open_intervals(schedule, start, days):
        if opens >= end:
            break
        overlap = min(closes, end) - max(opens, start)
        if overlap > timedelta(0):
            total += overlap
    return total


def add_opening_time(schedule: Schedule, start: datetime, amount: timedelta) -> datetime | None:
    """The moment ``amount`` of opening time after ``start``: counted from
    the next opening when ``start`` is outside hours. None when the schedule
    opens too seldom to reach it (no hours at all, or beyond the horizon)."""
    start = start.astimezone(UTC)
    left = amount
    if left <= timedelta(0):
        return start
    if not schedule.ever_open:
        return None
    for opens, closes in open_intervals(schedule, start):
        begin = max(opens, start)
        if closes <= begin:
            continue
        if begin + left <= closes:
            return begin + left
        left -= closes - begin
    return None


# ------------------------------------------------------------------ figures

def percentile(values: Iterable[float], share: float) -> float:
    """The ``share`` (0–1) percentile of ``values``, interpolated between the
    two closest ranks (the "inclusive" method: Excel's PERCENTILE, numpy's
    default): the median of 1, 2, 3, 10 is 2.5, its 90th percentile 7.9."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    if not 0 <= share <= 1:
        raise ValueError("share is between 0 and 1")
    rank = (len(ordered) - 1) * share
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ------------------------------------------------------------------ reading what an admin types

_RANGE = re.compile(r"^(\d{1,2})(?:[:h.](\d{2})?)?\s*(?:-|–|—|to|à|a)\s*(\d{1,2})(?:[:h.](\d{2})?)?$", re.IGNORECASE)


def parse_ranges(text: str, field: str) -> tuple[Range, ...]:
    """``09:00-12:00, 13:30-18:00`` as ranges in minutes; empty: closed.
    ScheduleError naming ``field`` for anything else."""
    text = text.strip()
    if not text:
        return ()
    if len(text) > 200:
        raise ScheduleError(N_("Write the hours as 09:00-12:00, 13:30-18:00, or leave empty when closed."), field)
    ranges = []
    for part in re.split(r"[,;]", text):
        match = _RANGE.match(part.strip())
        if not match:
            raise ScheduleError(N_("Write the hours as 09:00-12:00, 13:30-18:00, or leave empty when closed."),
                                field)
        sh, sm, eh, em = (int(group or 0) for group in match.groups())
        if sh > 24 or eh > 24 or sm > 59 or em > 59 or (sh == 24 and sm) or (eh == 24 and em):
            raise ScheduleError(N_("%(text)s is not a time of day."), field, text=part.strip())
        start, end = sh * 60 + sm, eh * 60 + em
        if start >= end:
            raise ScheduleError(N_("%(text)s ends before it starts."), field, text=part.strip())
        ranges.append((start, end))
    ranges.sort()
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        if start < end:
            raise ScheduleError(N_("These ranges overlap."), field)
    return tuple(ranges)


def format_ranges(ranges: Iterable[Range]) -> str:
    """The ranges as an admin types them: ``09:00-12:00, 13:30-18:00``."""
    return ", ".join(f"{_hhmm(start)}-{_hhmm(end)}" for start, end in ranges)


def _hhmm(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours:02d}:{rest:02d}"
