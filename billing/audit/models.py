"""The audit log's table: one row per admin action (billing.audit.record)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing import clock
from billing.models import Base

if TYPE_CHECKING:
    from billing.accounts.models import User


class AuditEntry(Base):
    """Who did what to which object, and when, with the object's fields
    before and after (only those the action touched). Written in the unit of
    work of the action itself: the entry exists exactly when the change does.
    Rows are never updated nor deleted."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_at", "at"),
        Index("ix_audit_entries_actor", "actor_id", "at"),
        Index("ix_audit_entries_subject", "subject_kind", "subject_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None: the command line (``flask staff create``), where nobody is logged in.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # What was done, a dotted name: "staff.invite", "staff.role", "pack.update".
    action: Mapped[str] = mapped_column(String(60))
    # What it was done to: a kind ("user", "pack", "account") and its id.
    subject_kind: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[int | None]
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(clock.UTCDateTime)

    actor: Mapped[User | None] = relationship()
