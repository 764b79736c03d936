"""A quote: one request for a pack priced on request, the terms staff set,
and the order its acceptance placed. SQLAlchemy only, like billing.models."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.clock import UTCDateTime
from billing.models import Base, within

if TYPE_CHECKING:
    from billing.accounts.models import Account, User
    from billing.catalogue.models import Pack
    from billing.orders.models import Order

# requested: waiting for staff → sent: priced, waiting for the client (staff
# may send new terms) → accepted: its order placed | withdrawn by staff.
# A sent quote past its ``valid_until`` is expired: said, not stored.
QUOTE_STATUSES = ("requested", "sent", "accepted", "withdrawn")


class Quote(Base):
    __tablename__ = "quotes"
    __table_args__ = (
        CheckConstraint(within("status", QUOTE_STATUSES), name="quote_status"),
        CheckConstraint("requested_quantity >= 1", name="quote_requested_quantity"),
        CheckConstraint("quantity IS NULL OR quantity >= 1", name="quote_quantity"),
        CheckConstraint("unit_price IS NULL OR unit_price >= 0", name="quote_unit_price"),
        CheckConstraint("vat_rate_bp >= 0 AND vat_rate_bp < 10000", name="quote_vat"),
        CheckConstraint("validity_months IS NULL OR validity_months >= 1", name="quote_validity"),
        CheckConstraint("status IN ('requested', 'withdrawn') OR (unit_price IS NOT NULL AND quantity IS NOT NULL "
                        "AND valid_until IS NOT NULL)", name="quote_priced"),
        CheckConstraint("(status = 'accepted') = (order_id IS NOT NULL)", name="quote_order"),
        Index("ix_quotes_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pack_id: Mapped[int] = mapped_column(ForeignKey("packs.id"))
    # The client's account: the requester's when logged in, else the one
    # that accepted it (a visitor signs up, or logs in, to accept).
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Who asked, as they wrote it (a visitor has no account yet).
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    company: Mapped[str] = mapped_column(String(200), default="")
    country: Mapped[str] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(5), default="en")
    message: Mapped[str] = mapped_column(Text, default="")
    requested_quantity: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(12), default="requested")
    # The terms staff send: per item of the pack, in minor units of
    # ``currency``, stated net or VAT included as the pack states its prices.
    quantity: Mapped[int | None]
    unit_price: Mapped[int | None]
    currency: Mapped[str] = mapped_column(String(3))
    vat_rate_bp: Mapped[int] = mapped_column(default=0)
    price_includes_vat: Mapped[bool] = mapped_column(default=False)
    # The lot's validity in months (None: the pack's) and the last day the
    # client may accept.
    validity_months: Mapped[int | None]
    valid_until: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    # The SHA-256 of the link mailed with the quote: the only way a visitor
    # without an account reaches it. A new sending draws a new link.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The one-time token of the form it was asked with: the same form sent
    # twice (a double click) finds this request, not a second.
    request_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The one-time token of the staff form that sent it last: the same form
    # sent twice is one sending, whose link keeps working.
    send_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True)

    pack: Mapped[Pack] = relationship()
    account: Mapped[Account | None] = relationship()
    requested_by: Mapped[User | None] = relationship(foreign_keys=[requested_by_id])
    sent_by: Mapped[User | None] = relationship(foreign_keys=[sent_by_id])
    accepted_by: Mapped[User | None] = relationship(foreign_keys=[accepted_by_id])
    order: Mapped[Order | None] = relationship()
