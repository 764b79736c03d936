"""Subscriptions (seed 004's unlimited tickets): an account's right to open
tickets that draw nothing, for the periods its orders paid. SQLAlchemy only,
like billing.models; the rules are billing.subscriptions'.

A subscription grants no units, so the ledger never sees it: a ticket opened
under it carries its id and is charged nothing, whatever time is logged.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.clock import UTCDateTime
from billing.models import Base

if TYPE_CHECKING:
    from billing.accounts.models import Account, User
    from billing.catalogue.models import Pack
    from billing.orders.models import Order

# Why a subscription ended: the client cancelled it, a renewal was never
# paid, or the period running was refunded.
END_REASONS = ("cancelled", "lapsed", "refunded")


class Subscription(Base):
    """One run of a subscription, from the first paid period to its end. A
    client who subscribes again after cancelling starts a new run."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint("paid_until > started_at", name="subscription_period"),
        CheckConstraint("ends_at IS NULL OR (ends_at >= started_at AND end_reason IS NOT NULL)",
                        name="subscription_end"),
        CheckConstraint("end_reason IS NULL OR end_reason IN ('cancelled', 'lapsed', 'refunded')",
                        name="subscription_reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    pack_id: Mapped[int] = mapped_column(ForeignKey("packs.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The end of the last period paid for.
    paid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when it stops renewing: tickets are covered until then.
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(10))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The order for the next period while it waits for payment.
    renewal_order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True)

    account: Mapped[Account] = relationship()
    pack: Mapped[Pack] = relationship()
    cancelled_by: Mapped[User | None] = relationship()
    renewal_order: Mapped[Order | None] = relationship()
    periods: Mapped[list[SubscriptionPeriod]] = relationship(order_by="SubscriptionPeriod.starts_at",
                                                             back_populates="subscription")

    @property
    def covered_until(self) -> datetime:
        """Tickets opened before this draw nothing."""
        return self.ends_at if self.ends_at is not None else self.paid_until

    def covers(self, moment: datetime) -> bool:
        """Whether a ticket opened at ``moment`` draws nothing."""
        return self.started_at <= moment < self.covered_until


class SubscriptionPeriod(Base):
    """A period one paid order bought: once per order."""

    __tablename__ = "subscription_periods"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="subscription_period_dates"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)

    subscription: Mapped[Subscription] = relationship(back_populates="periods")
    order: Mapped[Order] = relationship()
