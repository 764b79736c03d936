"""Payments, the order's log, invoices and credit notes, trial claims.
SQLAlchemy only, like billing.models.

Money is integer minor units of an ISO currency. An order and its payments
are two state machines (pretix's shape): a payment is one attempt to
receive money by one provider; the order is paid when its confirmed
payments cover its total (billing.orders).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event, text
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from billing import clock
from billing.clock import UTCDateTime
from billing.models import Base, within

if TYPE_CHECKING:
    from billing.accounts.models import Account, User
    from billing.catalogue.models import Catalogue, Pack
    from billing.ledger.models import Overage

# created: the provider has not been asked yet (prepare) → pending: money is
# expected (a transfer, a cheque, a Stripe session) → confirmed | failed |
# cancelled. A confirmed payment is never undone; refunds are credit notes.
# pending: waiting for payments to cover the total → paid (credited and
# invoiced) | cancelled; paid → refunded once credit notes cover the total.
ORDER_STATUSES = ("pending", "paid", "cancelled", "refunded")
# How the order is paid: the identifiers of common.payments' providers, and
# ``free`` for the trial.
ORDER_METHODS = ("card", "transfer", "cheque", "free")


class Order(Base):
    """A request to buy a pack, or the bill of an approved overage
    (billing.orders.overage_bills). Its payments are billing.orders.models.Payment
    rows: a separate state machine, and the order is paid when its confirmed
    payments cover ``total``. The price is copied from the pack when the
    order is placed, so that a catalogue edit never changes what was sold."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="order_quantity"),
        CheckConstraint("status IN ('pending', 'paid', 'cancelled', 'refunded')", name="order_status"),
        CheckConstraint("method IN ('card', 'transfer', 'cheque', 'free')", name="order_method"),
        CheckConstraint("net >= 0 AND vat >= 0 AND total = net + vat", name="order_amounts"),
        CheckConstraint("(pack_id IS NULL) != (overage_id IS NULL)", name="order_item"),
        CheckConstraint("validity_months IS NULL OR validity_months >= 1", name="order_validity"),
        # One bill of an overage awaits its money at a time: approving twice,
        # or two owners at once, places one. A bill replaced after a
        # correction is cancelled, so its successor can wait in turn.
        Index("ix_orders_overage_pending", "overage_id", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
        # An account's last order, for the staff's client list.
        Index("ix_orders_account_created", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    # What is ordered: a pack, or the bill of an overage; exactly one of them.
    pack_id: Mapped[int | None] = mapped_column(ForeignKey("packs.id"))
    # use_alter: orders → overages → tickets → subscriptions → orders is a
    # cycle, which create_all can only build with one key added afterwards.
    overage_id: Mapped[int | None] = mapped_column(ForeignKey("overages.id", use_alter=True))
    placed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Items of the pack; for an overage, the units billed, which its
    # ``unit_price`` covers together (the overage may shrink later; the bill
    # keeps what it billed).
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    method: Mapped[str] = mapped_column(String(20), default="transfer")
    # Minor units of ``currency``: the pack's price per item as stated, and
    # the order's net, VAT and gross (``total``) from billing.catalogue.pricing.
    unit_price: Mapped[int] = mapped_column(default=0)
    price_includes_vat: Mapped[bool] = mapped_column(default=False)
    vat_rate_bp: Mapped[int] = mapped_column(default=0)
    net: Mapped[int] = mapped_column(default=0)
    vat: Mapped[int] = mapped_column(default=0)
    total: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # What the payer writes on a transfer or a cheque (billing.orders.references).
    reference: Mapped[str | None] = mapped_column(String(40), unique=True)
    # The one-time token of the checkout form that placed it: the same form
    # sent twice (a double click, a reload) finds this order again.
    checkout_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The lot's validity in months when a quote agreed one other than the
    # pack's (billing.quotes); None: the pack's own.
    validity_months: Mapped[int | None]
    # Mail about the order goes out in the language of whoever placed it.
    language: Mapped[str] = mapped_column(String(5), default="en")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    paid_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str] = mapped_column(Text, default="")

    pack: Mapped[Pack | None] = relationship()
    overage: Mapped[Overage | None] = relationship()
    account: Mapped[Account] = relationship()
    placed_by: Mapped[User | None] = relationship()

    @property
    def ordered_pack(self) -> Pack:
        """The pack ordered, for an order that is not an overage's bill
        (constraint order_item: an order has a pack or an overage, never both)."""
        if self.pack is None:
            raise ValueError(f"order {self.id} bills overage {self.overage_id}: it has no pack")
        return self.pack

    @property
    def billed_overage(self) -> Overage:
        """The overage an overage's bill is for (see ``ordered_pack``)."""
        if self.overage is None:
            raise ValueError(f"order {self.id} is for pack {self.pack_id}: it bills no overage")
        return self.overage


PAYMENT_STATUSES = ("created", "pending", "confirmed", "failed", "cancelled")
ORDER_EVENTS = ("placed", "payment", "paid", "overpaid", "reminded", "cancelled", "credit_note")
DOCUMENT_KINDS = ("invoice", "credit_note")



class Payment(Base):
    """One attempt to receive money for an order, by one provider."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(within("status", PAYMENT_STATUSES), name="payment_status"),
        CheckConstraint("amount >= 0", name="payment_amount"),
        # The staff page lists what is awaited without scanning every payment.
        Index("ix_payments_status_provider", "status", "provider"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default="created")
    # Expected while pending; what was received once confirmed.
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # The provider's own id for it (a Stripe Checkout Session): one each.
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Whatever else the provider keeps (never card data).
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the money arrived (the date on the bank statement), and when and
    # by whom it was recorded; by None: a provider's webhook or return page.
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    order: Mapped[Order] = relationship()
    confirmed_by: Mapped[User | None] = relationship()


class OrderEvent(Base):
    """What happened to an order, when, and by whom: the log staff and
    clients read. ``by`` None is the system (a job, a webhook)."""

    __tablename__ = "order_events"
    __table_args__ = (CheckConstraint(within("kind", ORDER_EVENTS), name="order_event_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int | None]
    by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    by: Mapped[User | None] = relationship()


class TrialClaim(Base):
    """A free trial taken: once per account and once per verified email
    address, in each catalogue (a provider's offer)."""

    __tablename__ = "trial_claims"
    __table_args__ = (
        UniqueConstraint("catalogue_id", "account_id", name="uq_trial_claims_account"),
        UniqueConstraint("catalogue_id", "email", name="uq_trial_claims_email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    catalogue_id: Mapped[int] = mapped_column(ForeignKey("catalogues.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    email: Mapped[str] = mapped_column(String(254))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    catalogue: Mapped[Catalogue] = relationship()


class DocumentCounter(Base):
    """The last number issued in a series and year. Issuing locks this row
    (FOR UPDATE) in the paying transaction: numbers are gapless and unique."""

    __tablename__ = "document_counters"

    series: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    last: Mapped[int] = mapped_column(default=0)


class Invoice(Base):
    """An invoice or a credit note, immutable once issued: the seller's and
    the buyer's details and the lines are copied in, so that nothing edited
    later (the catalogue, the account, the settings) changes it.

    Amounts are positive for both kinds; a credit note says by its kind
    that it takes them back, and names the invoice it corrects.
    """

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(within("kind", DOCUMENT_KINDS), name="invoice_kind"),
        CheckConstraint("net >= 0 AND vat >= 0 AND gross = net + vat", name="invoice_amounts"),
        CheckConstraint("kind = 'invoice' OR corrects_id IS NOT NULL", name="invoice_credit_corrects"),
        UniqueConstraint("series", "year", "sequence"),
        Index("ix_invoices_account_issued", "account_id", "issued_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    series: Mapped[str] = mapped_column(String(20))
    year: Mapped[int]
    sequence: Mapped[int]
    number: Mapped[str] = mapped_column(String(40), unique=True)
    # Issuing again under the same key returns this document (a webhook retried).
    key: Mapped[str] = mapped_column(String(200), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    language: Mapped[str] = mapped_column(String(5))
    currency: Mapped[str] = mapped_column(String(3))
    net: Mapped[int]
    vat: Mapped[int]
    gross: Mapped[int]
    seller_name: Mapped[str] = mapped_column(String(200))
    seller_address: Mapped[str] = mapped_column(Text)
    seller_email: Mapped[str] = mapped_column(String(254))
    seller_vat_id: Mapped[str] = mapped_column(String(40))
    buyer_name: Mapped[str] = mapped_column(String(200))
    buyer_country: Mapped[str] = mapped_column(String(2))
    buyer_email: Mapped[str] = mapped_column(String(254))
    buyer_address: Mapped[str] = mapped_column(Text, default="", server_default="")
    buyer_vat_id: Mapped[str] = mapped_column(String(40), default="", server_default="")
    # Paid by (a transfer, a card...), or why the credit note was issued.
    note: Mapped[str] = mapped_column(Text, default="")

    order: Mapped[Order] = relationship()
    account: Mapped[Account] = relationship()
    corrects: Mapped[Invoice | None] = relationship(remote_side=[id])
    lines: Mapped[list[InvoiceLine]] = relationship(order_by="InvoiceLine.position", back_populates="invoice")

    @property
    def is_credit_note(self) -> bool:
        return self.kind == "credit_note"


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (
        UniqueConstraint("invoice_id", "position"),
        CheckConstraint("quantity >= 1 AND net >= 0 AND vat >= 0 AND gross = net + vat", name="invoice_line_amounts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    position: Mapped[int]
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[int]
    # Per item, on the basis the price is stated in (net, or VAT included).
    unit_price: Mapped[int]
    vat_rate_bp: Mapped[int]
    net: Mapped[int]
    vat: Mapped[int]
    gross: Mapped[int]

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class ImmutableDocument(RuntimeError):
    """Something tried to change or delete an issued invoice or credit note."""


@event.listens_for(Session, "before_flush")
def _issued_documents_never_change(session: Session, _context: Any, _instances: Any) -> None:
    """Invoices are immutable by law as well as by design: a correction is a
    credit note. Refuse any update or delete of one that is already stored."""
    for row in (*session.dirty, *session.deleted):
        if isinstance(row, (Invoice, InvoiceLine)) and (row in session.deleted or session.is_modified(row)):
            raise ImmutableDocument(f"{type(row).__name__} #{row.id} is issued: it cannot change")
