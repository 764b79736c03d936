"""The published service figures of a catalogue: median and 90th percentile
of the time to first response and to resolution, in opening hours, per
criticality, over the last 30 and 90 days; the average rating and the number
of ratings by month. No figure stands on fewer than ``MIN_TICKETS`` tickets.

What counts: a first response given in the window (timed from the ticket's
opening to the first public reply of staff), a resolution in the window
(from the opening to the last resolution), a rating given in the month.

Computing walks every ticket of the last 90 days through the opening-hours
arithmetic, so ``published`` keeps the result in this process, keyed by what
would change it: the tickets' last answer, resolution, rating and activity,
the service levels (hours, holidays) and the hour of the clock (tickets
leave the windows as time passes). A reply, a resolution, a rating or a
saved setting is seen at the next request; otherwise the figures are
recomputed at most once an hour per process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from billing.catalogue.models import Policy
from billing.desk.models import CRITICALITIES, Ticket
from billing.service import levels as service_levels
from billing.service.hours import Schedule, opening_time_between, percentile

MIN_TICKETS = 5
WINDOWS = (30, 90)
RATING_MONTHS = 12
# Most critical first, then every ticket whatever its criticality.
ROWS = (*reversed(CRITICALITIES), "all")


@dataclass(frozen=True)
class Stat:
    """A median and 90th percentile of ``count`` durations; both None under MIN_TICKETS."""

    count: int
    median: timedelta | None = None
    p90: timedelta | None = None

    @property
    def shown(self) -> bool:
        return self.median is not None


def stat(durations: Iterable[timedelta]) -> Stat:
    seconds = [d.total_seconds() for d in durations]
    if len(seconds) < MIN_TICKETS:
        return Stat(len(seconds))
    return Stat(len(seconds), timedelta(seconds=round(percentile(seconds, 0.5))),
                timedelta(seconds=round(percentile(seconds, 0.9))))


@dataclass(frozen=True)
class Window:
    days: int
    tickets: int  # how many tickets the window's figures stand on
    response: dict[str, Stat]
    resolution: dict[str, Stat]


@dataclass(frozen=True)
class Month:
    month: date  # its first day
    count: int
    average: float | None  # None under MIN_TICKETS ratings


@dataclass(frozen=True)
class Figures:
    computed_at: datetime
    windows: list[Window]
    months: list[Month]
    ratings: int = 0
    timezone: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def any_shown(self) -> bool:
        return any(s.shown for w in self.windows for s in (*w.response.values(), *w.resolution.values())) or any(
            m.average is not None for m in self.months)


@dataclass(frozen=True)
class Times:
    """One ticket as the figures see it: plain values, no database."""

    criticality: str
    created_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None


def _month_start(moment: date) -> date:
    return moment.replace(day=1)


def _months_back(first: date, count: int) -> list[date]:
    months = [first]
    for _ in range(count - 1):
        previous = months[-1] - timedelta(days=1)
        months.append(previous.replace(day=1))
    return list(reversed(months))


def compute(tickets: Iterable[Times], ratings: Iterable[tuple[datetime, int]], schedule: Schedule,
            now: datetime) -> Figures:
    """The figures from plain values: pure, for tests and for ``published``."""
    tickets = list(tickets)
    windows = []
    for days in WINDOWS:
        since = now - timedelta(days=days)
        response: dict[str, list[timedelta]] = {row: [] for row in ROWS}
        resolution: dict[str, list[timedelta]] = {row: [] for row in ROWS}
        based_on = set()
        for index, ticket in enumerate(tickets):
            if ticket.first_response_at is not None and since <= ticket.first_response_at <= now:
                taken = opening_time_between(schedule, ticket.created_at, ticket.first_response_at)
                response[ticket.criticality].append(taken)
                response["all"].append(taken)
                based_on.add(index)
            if ticket.resolved_at is not None and since <= ticket.resolved_at <= now:
                taken = opening_time_between(schedule, ticket.created_at, ticket.resolved_at)
                resolution[ticket.criticality].append(taken)
                resolution["all"].append(taken)
                based_on.add(index)
        windows.append(Window(days, len(based_on), {row: stat(response[row]) for row in ROWS},
                              {row: stat(resolution[row]) for row in ROWS}))
    tz = schedule.zone
    first = _month_start(now.astimezone(tz).date())
    by_month: dict[date, list[int]] = {month: [] for month in _months_back(first, RATING_MONTHS)}
    total = 0
    for rated_at, rating in ratings:
        month = _month_start(rated_at.astimezone(tz).date())
        if month in by_month:
            by_month[month].append(rating)
            total += 1
    months = [Month(month, len(values), sum(values) / len(values) if len(values) >= MIN_TICKETS else None)
              for month, values in by_month.items()]
    return Figures(now, windows, months, total, schedule.timezone)


def _of_catalogue(catalogue_id: int) -> Any:
    return Ticket.policy_id.in_(select(Policy.id).where(Policy.catalogue_id == catalogue_id))


def read(session: Session, catalogue_id: int, now: datetime) -> Figures:
    """The figures of a catalogue's tickets, computed now."""
    schedule = service_levels.levels(session).schedule
    since = now - timedelta(days=max(WINDOWS))
    rows = session.execute(
        select(Ticket.criticality, Ticket.created_at, Ticket.first_response_at, Ticket.resolved_at)
        .where(_of_catalogue(catalogue_id), or_(Ticket.first_response_at >= since, Ticket.resolved_at >= since)))
    tickets = [Times(*row) for row in rows]
    oldest = _months_back(_month_start(now.astimezone(schedule.zone).date()), RATING_MONTHS)[0]
    rated_since = datetime.combine(oldest, datetime.min.time(), tzinfo=schedule.zone) - timedelta(days=1)
    ratings = session.execute(
        select(Ticket.rated_at, Ticket.rating)
        .where(_of_catalogue(catalogue_id), Ticket.rating.is_not(None), Ticket.rated_at >= rated_since.astimezone(UTC)))
    return compute(tickets, [(at, rating) for at, rating in ratings if at is not None and rating is not None],
                   schedule, now)


# ------------------------------------------------------------------ the cache

_CACHE: dict[int, tuple[tuple[Any, ...], Figures]] = {}
_LOCK = threading.Lock()


def fingerprint(session: Session, catalogue_id: int, now: datetime) -> tuple[Any, ...]:
    """What the figures depend on, read in two cheap queries."""
    tickets = session.execute(
        select(func.count(Ticket.id), func.max(Ticket.first_response_at), func.max(Ticket.resolved_at),
               func.max(Ticket.rated_at), func.max(Ticket.updated_at), func.sum(Ticket.rating))
        .where(_of_catalogue(catalogue_id))).one()
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return (*tuple(tickets), *service_levels.version(session), hour)


def published(session: Session, catalogue_id: int, now: datetime) -> Figures:
    """The figures as the public page shows them: from the cache while nothing they depend on moved."""
    key = fingerprint(session, catalogue_id, now)
    with _LOCK:
        cached = _CACHE.get(catalogue_id)
    if cached is not None and cached[0] == key:
        return cached[1]
    figures = read(session, catalogue_id, now)
    with _LOCK:
        _CACHE[catalogue_id] = (key, figures)
    return figures


def forget() -> None:
    """Empty the cache (tests, or after settings change in this process)."""
    with _LOCK:
        _CACHE.clear()
