"""The service levels an admin sets: opening hours in the provider's time
zone, the targets of first response per criticality (one row, id 1), and
the holidays (one row a date). Read by billing.service.levels; the
arithmetic is billing.service.hours."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.clock import UTCDateTime
from billing.models import Base


class ServiceLevels(Base):
    """The one row of settings (id 1); absent, the defaults of billing.service.levels apply."""

    __tablename__ = "service_levels"
    __table_args__ = (CheckConstraint("id = 1", name="service_levels_single"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # IANA name, e.g. Europe/Paris.
    timezone: Mapped[str] = mapped_column(String(64))
    # Monday .. Sunday: [[start, end], ...] in minutes after local midnight.
    hours: Mapped[list[Any]] = mapped_column(JSON)
    # Criticality -> minutes of opening time for the first response.
    targets: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Holiday(Base):
    """A local date the service is closed all day."""

    __tablename__ = "holidays"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
