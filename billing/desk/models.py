"""The ticket desk's tables: tickets, the messages of a ticket, their
attachments, the time staff log, and the invitations that bring people into
an account's pool. SQLAlchemy only, like billing.models; the services are in
billing.desk.services.

A ticket carries what the ledger needs (its balance and what it was charged)
and what the desk adds (criticality, assignment, dates, rating): the ledger
reads this table, and never the desk's services.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.clock import UTCDateTime
from billing.models import Base, within

if TYPE_CHECKING:
    # billing.models imports every model module: the others' classes are
    # named by string below, and resolved once all are registered.
    from billing.accounts.models import Account, User
    from billing.catalogue.models import Policy
    from billing.ledger.models import Operation, Overage


# The desk's workflow (billing.desk): open → in_progress ⇄ waiting (for the
# client) → resolved → closed; a resolved ticket can be reopened.
TICKET_STATUSES = ("open", "in_progress", "waiting", "resolved", "closed")
CRITICALITIES = ("low", "normal", "high", "critical")


class Ticket(Base):
    """A request of a client, as far as the ledger needs it: which balance
    it draws from and what it has been charged. The ticket desk extends it."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(within("status", TICKET_STATUSES), name="ticket_status"),
        CheckConstraint("billable_minutes >= 0 AND units_charged >= 0", name="ticket_charge"),
        CheckConstraint(within("criticality", CRITICALITIES), name="ticket_criticality"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ticket_rating"),
        # The staff queue: open work by status.
        Index("ix_tickets_status_created", "status", "created_at"),
        # An account's last activity in the staff's client list: one seek each.
        Index("ix_tickets_account_created", "account_id", "created_at"),
        Index("ix_tickets_account_updated", "account_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    opened_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    unit: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str | None] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="open")
    billable_minutes: Mapped[int] = mapped_column(default=0)
    # units(billable_minutes, kind): what the ticket costs, whether drawn
    # from lots or left as an overage.
    units_charged: Mapped[int] = mapped_column(default=0)
    # Opened under a subscription: it draws nothing, and units_charged stays 0.
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The desk (billing.desk): how urgent, who works it, when it moved.
    criticality: Mapped[str] = mapped_column(String(10), default="normal")
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Last message, time entry or status change: the list's order.
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The client's rating once resolved, and the staff's note for the report.
    rating: Mapped[int | None]
    rating_comment: Mapped[str] = mapped_column(Text, default="")
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    staff_note: Mapped[str] = mapped_column(Text, default="")
    # The one-time token of the staff form that opened it for a client: the
    # same form sent twice (a double click) finds this ticket, not a second.
    opening_key: Mapped[str | None] = mapped_column(String(64), unique=True)

    account: Mapped[Account] = relationship()
    opened_by: Mapped[User] = relationship(foreign_keys=[opened_by_id])
    assigned_to: Mapped[User | None] = relationship(foreign_keys=[assigned_to_id])
    policy: Mapped[Policy] = relationship()
    overages: Mapped[list[Overage]] = relationship(back_populates="ticket", order_by="Overage.id")


class TicketMessage(Base):
    """One message of a ticket's thread. ``body`` is HTML already cleaned by
    billing.desk.sanitise (nh3): templates may mark it safe, nothing else
    writes it. ``internal`` notes are for staff only, never shown to clients."""

    __tablename__ = "ticket_messages"
    __table_args__ = (Index("ix_ticket_messages_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship("Ticket")
    author: Mapped[User] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message", order_by="Attachment.id")


class Attachment(Base):
    """A file sent with a message, stored as ``stored_name`` under the
    attachment folder (instance/attachments/, outside the web root) and
    served only through the views that check who may see the ticket."""

    __tablename__ = "ticket_attachments"
    __table_args__ = (CheckConstraint("size > 0", name="attachment_size"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("ticket_messages.id"), index=True)
    # Denormalised from the message so that the loader checks one row.
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    original_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    # Random, never derived from the client's name: no path tricks.
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    message: Mapped[TicketMessage] = relationship(back_populates="attachments")


class TimeEntry(Base):
    """Minutes a staff member worked on a ticket. The ticket's billable time
    is the sum of its billable entries; each entry is charged through
    billing.ledger.charge_ticket_to under its own key, in the same
    transaction (``operation``: None while nothing was charged)."""

    __tablename__ = "time_entries"
    __table_args__ = (
        CheckConstraint("minutes > 0", name="time_entry_minutes"),
        Index("ix_time_entries_ticket", "ticket_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    minutes: Mapped[int]
    billable: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(Text, default="")
    # The caller's idempotency key: a double click logs the time once.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    operation_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_operations.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship("Ticket")
    staff: Mapped[User] = relationship()
    operation: Mapped[Operation | None] = relationship("Operation")


INVITATION_ROLES = ("owner", "member")


class Invitation(Base):
    """An owner's invitation to join the account's pool. Only the SHA-256 of
    the token is kept: the link in the mail is the only copy of the token."""

    __tablename__ = "invitations"
    __table_args__ = (
        CheckConstraint("role IN ('owner', 'member')", name="invitation_role"),
        Index("ix_invitations_account", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(10), default="member")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    account: Mapped[Account] = relationship()
    invited_by: Mapped[User | None] = relationship(foreign_keys=[invited_by_id])

    def pending(self, now: datetime) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now
