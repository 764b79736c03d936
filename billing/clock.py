"""The one clock, and time for the ledger: aware UTC datetimes in, aware
UTC datetimes out.

Services take ``now`` from their caller; every caller (a view, a command, a
job) reads it from ``now()`` here, so that a test moves time for the whole
application by moving this one function (``monkeypatch.setattr(clock,
"now", ...)``), and nothing else keeps a clock of its own.

The database keeps UTC. SQLite drops offsets and hands back naive values,
PostgreSQL hands back aware ones: everything that compares times goes
through here."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def now() -> datetime:
    """This instant, aware, in UTC."""
    return datetime.now(UTC)


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is refused, not guessed."""
    if moment.tzinfo is None:
        raise ValueError("the ledger needs timezone-aware datetimes")
    return moment.astimezone(UTC)


def as_utc(stored: datetime) -> datetime:
    """A datetime read back from the database (naive on SQLite) as aware UTC."""
    return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later, or the month's last day when it is shorter
    (31 January + 1 month = 28 or 29 February)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back aware, in UTC, on every
    engine (SQLite forgets offsets): ledger and order times compare without surprises.
    A naive datetime is refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return utc(value) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value) if value is not None else None
