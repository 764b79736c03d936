"""Service levels as an admin sets them and the desk reads them: the
schedule (opening hours, time zone, holidays) and the target of first
response per criticality, with the due time and lateness of a ticket.

Without a saved row the defaults apply: Monday to Friday 09:00-12:00 and
13:00-18:00 in Paris, and seed 004's "between 1 and 24 hours within opening
hours, the most critical first" as 1, 4, 8 and 24 hours."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import audit
from billing.accounts.models import User
from billing.desk.models import CRITICALITIES, Ticket
from billing.errors import N_
from billing.service.hours import (
    Range,
    Schedule,
    ScheduleError,
    add_opening_time,
    opening_time_between,
    parse_ranges,
    zone,
)
from billing.service.models import Holiday, ServiceLevels
from billing.transaction import atomic

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_TIMEZONE = "Europe/Paris"
DEFAULT_DAY: tuple[Range, ...] = ((9 * 60, 12 * 60), (13 * 60, 18 * 60))
DEFAULT_WEEK: tuple[tuple[Range, ...], ...] = (DEFAULT_DAY,) * 5 + ((), ())
# Minutes of opening time, most critical first (seed 004: between 1 and 24 h).
DEFAULT_TARGETS = {"critical": 60, "high": 4 * 60, "normal": 8 * 60, "low": 24 * 60}
# A target beyond a month of a full-time week is a typing error.
MAX_TARGET_MINUTES = 200 * 60
MAX_HOLIDAY_NAME = 100


@dataclass(frozen=True)
class DueState:
    """A ticket against its target: ``due`` (None if the schedule never
    opens), whether it is ``late``, whether staff ``answered``, and the
    opening time ``left`` before it falls due (not answered, not late) or by
    which it is or was late."""

    due: datetime | None
    late: bool
    answered: bool
    by: timedelta | None


@dataclass(frozen=True)
class Levels:
    """What the desk and the service page need: the schedule and the targets."""

    schedule: Schedule
    targets: dict[str, timedelta]
    updated_at: datetime | None = None

    def due(self, ticket: Ticket) -> datetime | None:
        """When the first response is due, counted in opening hours from the ticket's opening."""
        return add_opening_time(self.schedule, ticket.created_at, self.targets[ticket.criticality])

    def state(self, ticket: Ticket, now: datetime) -> DueState:
        """Where the ticket stands against its first-response target at ``now``."""
        due = self.due(ticket)
        answered = ticket.first_response_at
        if due is None:
            return DueState(None, False, answered is not None, None)
        if answered is not None:
            late = answered > due
            return DueState(due, late, True, opening_time_between(self.schedule, due, answered) if late else None)
        if now > due:
            return DueState(due, True, False, opening_time_between(self.schedule, due, now))
        return DueState(due, False, False, opening_time_between(self.schedule, now, due))

    def overdue(self, ticket: Ticket, now: datetime) -> bool:
        """The first response is late: not given and due before ``now``, or given after it was due."""
        due = self.due(ticket)
        if due is None:
            return False
        answered = ticket.first_response_at
        return answered > due if answered is not None else now > due


def provider_timezone(session: Session) -> str:
    """The provider's time zone (IANA name): the saved one, else the default."""
    return session.scalar(select(ServiceLevels.timezone).where(ServiceLevels.id == 1)) or DEFAULT_TIMEZONE


def levels(session: Session) -> Levels:
    """The service levels in force: the saved ones, else the defaults."""
    row = session.get(ServiceLevels, 1)
    holidays = frozenset(session.scalars(select(Holiday.day)))
    if row is None:
        week, timezone, targets, updated = DEFAULT_WEEK, DEFAULT_TIMEZONE, DEFAULT_TARGETS, None
    else:
        week = tuple(tuple((int(s), int(e)) for s, e in day) for day in row.hours)
        timezone, targets, updated = row.timezone, {**DEFAULT_TARGETS, **row.targets}, row.updated_at
    return Levels(Schedule(timezone, week, holidays),
                  {level: timedelta(minutes=int(targets[level])) for level in CRITICALITIES}, updated)


def holidays(session: Session) -> list[Holiday]:
    return list(session.scalars(select(Holiday).order_by(Holiday.day)))


def version(session: Session) -> tuple[Any, ...]:
    """What changes whenever the service levels do (for caches of what they compute)."""
    updated = session.scalar(select(ServiceLevels.updated_at))
    count, last, latest = session.execute(
        select(func.count(Holiday.id), func.max(Holiday.id), func.max(Holiday.created_at))).one()
    return updated, count, last, latest


# ------------------------------------------------------------------ what an admin types

class SettingsInvalid(ScheduleError):
    """Several fields were wrong: ``errors`` maps each to its message (id and params)."""

    def __init__(self, errors: list[ScheduleError]) -> None:
        super().__init__(errors[0].message, errors[0].field, **errors[0].params)
        self.errors = errors


@dataclass(frozen=True)
class Settings:
    timezone: str
    week: tuple[tuple[Range, ...], ...]
    targets: dict[str, int]


_HOURS = re.compile(r"^(\d{1,3})(?:[.,](\d{1,2}))?$|^(\d{1,3}):(\d{2})$")


def parse_target(text: str, field: str) -> int:
    """``4``, ``1.5``, ``1,5`` or ``1:30`` hours as minutes."""
    text = text.strip()
    match = _HOURS.match(text)
    if not match:
        raise ScheduleError(N_("Write a number of hours, such as 4 or 1.5."), field)
    if match.group(3) is not None:
        hours, minutes = int(match.group(3)), int(match.group(4))
        if minutes > 59:
            raise ScheduleError(N_("Write a number of hours, such as 4 or 1.5."), field)
        total = hours * 60 + minutes
    else:
        decimals = (match.group(2) or "0").ljust(2, "0")
        total = int(match.group(1)) * 60 + int(decimals) * 60 // 100
    if not 1 <= total <= MAX_TARGET_MINUTES:
        raise ScheduleError(N_("Choose between 1 minute and %(max)d hours."), field, max=MAX_TARGET_MINUTES // 60)
    return total


def read_settings(timezone: str, days: dict[str, str], targets: dict[str, str]) -> Settings:
    """The settings as typed, checked: SettingsInvalid names every wrong field."""
    errors: list[ScheduleError] = []
    try:
        zone(timezone.strip())
    except ScheduleError as error:
        errors.append(error)
    week = []
    for day in WEEKDAYS:
        try:
            week.append(parse_ranges(days.get(day, ""), day))
        except ScheduleError as error:
            errors.append(error)
    if not errors and not any(week):
        errors.append(ScheduleError(N_("Open at least one day: due times are counted in opening hours."), "monday"))
    minutes: dict[str, int] = {}
    for level in CRITICALITIES:
        try:
            minutes[level] = parse_target(targets.get(level, ""), f"target_{level}")
        except ScheduleError as error:
            errors.append(error)
    # The most critical first: a more critical request never waits longer.
    ordered = [level for level in reversed(CRITICALITIES) if level in minutes]
    for more, less in zip(ordered, ordered[1:], strict=False):
        if minutes[more] > minutes[less]:
            errors.append(ScheduleError(N_("A more critical request cannot wait longer than a less critical one."),
                                        f"target_{more}"))
    if errors:
        raise SettingsInvalid(errors)
    return Settings(timezone.strip(), tuple(week), minutes)


def _as_saved(row: ServiceLevels | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"timezone": row.timezone, "hours": row.hours, "targets": row.targets}


def save_settings(session: Session, settings: Settings, by: User | None, now: datetime) -> ServiceLevels:
    """Save the settings with their audit entry (``by`` None: the command line)."""
    with atomic(session):
        row = session.get(ServiceLevels, 1)
        before = _as_saved(row)
        if row is None:
            row = ServiceLevels(id=1)
            session.add(row)
        row.timezone = settings.timezone
        row.hours = [[list(r) for r in day] for day in settings.week]
        row.targets = dict(settings.targets)
        row.updated_at = now
        session.flush()
        audit.record(by, "service.levels", "service_levels", row.id, before=before, after=_as_saved(row),
                     session=session)
    return row


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleError(N_("Write the date as 2026-12-25."), "day") from None


def add_holiday(session: Session, day: str, name: str, by: User | None, now: datetime) -> Holiday:
    """A closed day, named; the same date twice is refused on its field."""
    errors: list[ScheduleError] = []
    try:
        when = parse_day(day)
    except ScheduleError as error:
        errors.append(error)
    name = " ".join(name.split())
    if not 1 <= len(name) <= MAX_HOLIDAY_NAME:
        errors.append(ScheduleError(N_("Name the holiday in 1 to %(max)d characters."), "name",
                                    max=MAX_HOLIDAY_NAME))
    if errors:
        raise SettingsInvalid(errors)
    if session.scalar(select(Holiday.id).where(Holiday.day == when)) is not None:
        raise SettingsInvalid([ScheduleError(N_("This date is already a holiday."), "day")])
    with atomic(session):
        holiday = Holiday(day=when, name=name, created_at=now)
        session.add(holiday)
        session.flush()
        audit.record(by, "service.holiday.add", "holiday", holiday.id, after={"day": when, "name": name},
                     session=session)
    return holiday


def remove_holiday(session: Session, holiday: Holiday, by: User | None) -> None:
    with atomic(session):
        audit.record(by, "service.holiday.remove", "holiday", holiday.id,
                     before={"day": holiday.day, "name": holiday.name}, session=session)
        session.delete(holiday)
