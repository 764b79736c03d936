"""The ledger's tables: lots, ledger entries and the operations that write
them, overages, warnings. SQLAlchemy only, like billing.models.

Quantities are integers in the lot's unit. A lot keeps its ``remaining`` as a
cache that billing.ledger writes in the same flush as the entry that moves
it; ``flask ledger verify`` proves it equals the sum of the lot's entries.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.clock import UTCDateTime
from billing.models import Base, within

if TYPE_CHECKING:
    from billing.accounts.models import Account, User
    from billing.catalogue.models import Pack, Policy
    from billing.desk.models import Ticket
    from billing.orders.models import Order

LOT_SOURCES = ("purchase", "trial", "rollover", "adjustment", "complimentary")
ENTRY_KINDS = ("grant", "consume", "expire", "refund", "adjust")
OPERATION_KINDS = ("grant", "charge", "refund", "adjust", "expire")
# pending → approved | declined | purchased (covered by a pack bought since);
# debt → paid (by the next grant). Either → withdrawn when time corrected
# downwards leaves nothing to ask for.
OVERAGE_STATUSES = ("pending", "approved", "declined", "purchased", "debt", "paid", "withdrawn")
EVENT_KINDS = ("low_balance", "expiring", "overage_requested")



class Lot(Base):
    """One grant of units to an account, with its own expiry.

    A lot without an owner is pooled: it serves every user's tickets. A lot
    with an owner serves only the tickets that user opens.
    """

    __tablename__ = "lots"
    __table_args__ = (
        CheckConstraint(within("source", LOT_SOURCES), name="lot_source"),
        CheckConstraint("unit IN ('minute', 'credit', 'ticket')", name="lot_unit"),
        CheckConstraint("granted > 0", name="lot_granted"),
        # No lot ever goes negative: a charge beyond the balance is an overage row.
        CheckConstraint("remaining >= 0 AND remaining <= granted", name="lot_remaining"),
        CheckConstraint("rolled_over >= 0", name="lot_rolled_over"),
        # The balance read: the account's lots that still hold units.
        Index(
            "ix_lots_active",
            "account_id",
            "policy_id",
            "unit",
            "expires_at",
            sqlite_where=text("remaining > 0"),
            postgresql_where=text("remaining > 0"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    # Frozen at grant time: a catalogue edit of the policy's unit must not
    # change what was bought.
    unit: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(20))
    pack_id: Mapped[int | None] = mapped_column(ForeignKey("packs.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    granted: Mapped[int]
    remaining: Mapped[int] = mapped_column(default=0)
    # None: never expires. Usable while expires_at > now.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Expired units already granted again by a rollover: they come back once.
    rolled_over: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    account: Mapped[Account] = relationship()
    policy: Mapped[Policy] = relationship()
    pack: Mapped[Pack | None] = relationship()
    order: Mapped[Order | None] = relationship()
    owner: Mapped[User | None] = relationship()


class Operation(Base):
    """One call of a ledger service, under the caller's idempotency key.

    Calling a service again with a key already here returns this operation
    and writes nothing, even when the first call wrote no entry at all (a
    charge whose rounding did not move).
    """

    __tablename__ = "ledger_operations"
    __table_args__ = (CheckConstraint(within("kind", OPERATION_KINDS), name="operation_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    # None for an expiry run across accounts.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    by: Mapped[User | None] = relationship()
    entries: Mapped[list[Entry]] = relationship(back_populates="operation", order_by="Entry.id")

    @property
    def lot(self) -> Lot | None:
        """The lot a grant created (the first one, before any rollover)."""
        return next((entry.lot for entry in self.entries if entry.kind == "grant"), None)


class Entry(Base):
    """One immutable signed movement of units on a lot.

    ``effective_at`` is when the movement counts: the operation's time,
    except for an expiry, which counts from the lot's expiry whenever the
    job writes it. Units given back by a correction are a positive
    ``consume``.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(within("kind", ENTRY_KINDS), name="entry_kind"),
        CheckConstraint(
            "quantity != 0 AND (kind = 'consume' OR (kind = 'grant') = (quantity > 0))", name="entry_sign"
        ),
        CheckConstraint("kind != 'consume' OR ticket_id IS NOT NULL", name="entry_consume_ticket"),
        Index("ix_ledger_entries_account_effective", "account_id", "effective_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("ledger_operations.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    quantity: Mapped[int]
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str] = mapped_column(String(220), unique=True)

    operation: Mapped[Operation] = relationship(back_populates="entries")
    lot: Mapped[Lot] = relationship()
    ticket: Mapped[Ticket | None] = relationship()


class Overage(Base):
    """Units a ticket costs beyond its balance, per the policy's overage mode.

    ``ask``: a request the account owner approves (billed at ``hourly_rate``),
    declines, or answers by buying a pack. ``allow``: a debt the next grant
    pays first. Either way nothing is drawn from a lot until a grant covers
    it (``settled``).
    """

    __tablename__ = "overages"
    __table_args__ = (
        CheckConstraint(within("status", OVERAGE_STATUSES), name="overage_status"),
        CheckConstraint("settled >= 0 AND units >= settled", name="overage_units"),
        CheckConstraint("price IS NULL OR (price >= 0 AND currency IS NOT NULL)", name="overage_price"),
        Index("ix_overages_account_status", "account_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    status: Mapped[str] = mapped_column(String(10))
    units: Mapped[int]
    settled: Mapped[int] = mapped_column(default=0)
    # Minor units of ``currency`` for the units not settled; None when no
    # hourly rate is known (the provider quotes) and for debts.
    hourly_rate: Mapped[int | None]
    price: Mapped[int | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    ticket: Mapped[Ticket] = relationship(back_populates="overages")

    @property
    def outstanding(self) -> int:
        return self.units - self.settled


class OverageChange(Base):
    """One immutable, dated change of an overage's ``units`` or ``settled``,
    written with it by billing.ledger (``_change``): an overage's units and
    settled are the sums of its changes, so what was owed at any moment is
    the sum of the changes before it (``flask ledger verify`` proves the
    sums)."""

    __tablename__ = "overage_changes"
    __table_args__ = (
        CheckConstraint(within("status", OVERAGE_STATUSES), name="overage_change_status"),
        CheckConstraint("units != 0 OR settled != 0", name="overage_change_moves"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    overage_id: Mapped[int] = mapped_column(ForeignKey("overages.id"), index=True)
    # None for the rows migration 0011 wrote for the overages it found.
    operation_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_operations.id"))
    # The overage's status as the change was made, before any move it caused
    # (to paid, withdrawn...): a debt's changes say ``debt`` even once it is
    # withdrawn, which the overage itself no longer tells.
    status: Mapped[str] = mapped_column(String(10))
    # Signed deltas.
    units: Mapped[int]
    settled: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    overage: Mapped[Overage] = relationship()
    operation: Mapped[Operation | None] = relationship()


class BalanceThreshold(Base):
    """An account's own low-balance threshold for one balance, overriding
    the default (a share of the last pack bought)."""

    __tablename__ = "balance_thresholds"
    __table_args__ = (
        UniqueConstraint("account_id", "policy_id", "unit"),
        CheckConstraint("units >= 0", name="threshold_units"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    unit: Mapped[str] = mapped_column(String(10))
    units: Mapped[int]


class Event(Base):
    """Something a client should hear about, for the notification work to
    turn into mail (and mark ``notified_at``). The key makes each one happen
    once: once per crossing of a threshold, once per expiring lot."""

    __tablename__ = "ledger_events"
    __table_args__ = (
        CheckConstraint(within("kind", EVENT_KINDS), name="event_kind"),
        Index("ix_ledger_events_pending", "notified_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(220), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    unit: Mapped[str] = mapped_column(String(10))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    overage_id: Mapped[int | None] = mapped_column(ForeignKey("overages.id"))
    # The balance after the crossing, the units expiring, or the units asked for.
    units: Mapped[int]
    threshold: Mapped[int | None]
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
