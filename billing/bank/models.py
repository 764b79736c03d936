"""The bank's lines as imported, the imports, and the CSV mappings.
SQLAlchemy only, like billing.models."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.clock import UTCDateTime
from billing.models import Base, within

if TYPE_CHECKING:
    from billing.accounts.models import User
    from billing.orders.models import Order, Payment

# What became of a line: credited to an order (confirmed: it paid what was
# awaited; partial: less, the rest awaited; overpaid: more, flagged for a
# refund), waiting for staff (suggested: amount and payer's name point at
# an order; unmatched), never credited (ignored: a debit, a reversal,
# another currency, not booked), or put aside by staff (discarded).
LINE_STATUSES = ("confirmed", "partial", "overpaid", "suggested", "unmatched", "ignored", "discarded")
WAITING = ("suggested", "unmatched")
CREDITED = ("confirmed", "partial", "overpaid")
# Why a line is ignored.
IGNORED_BECAUSE = ("debit", "reversal", "currency", "pending")
# How a credited line found its order: its structured reference, a
# reference or an invoice number in its text, a staff member, or it was the
# transfer a staff member had already confirmed by hand.
MATCHED_BY = ("reference", "text", "invoice", "staff", "by_hand")
FORMATS = ("camt053", "camt054", "mt940", "csv")


class BankImport(Base):
    """One statement file imported, by a staff member or by the command line
    (``by`` None). ``results`` says what became of each of its lines in that
    import: ``[line_id, outcome, order_id]``, duplicates included."""

    __tablename__ = "bank_imports"
    __table_args__ = (CheckConstraint(within("format", FORMATS), name="bank_import_format"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(10))
    sha256: Mapped[str] = mapped_column(String(64))
    # The upload form's one-time token: the same form sent twice is one import.
    token: Mapped[str | None] = mapped_column(String(64), unique=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    results: Mapped[list[Any]] = mapped_column(JSON, default=list)

    imported_by: Mapped[User | None] = relationship()


class BankLine(Base):
    """One movement of money the bank reported, once: ``identity`` is unique
    (billing.bank.statements), so a file imported twice, or two statements
    that overlap, credit nothing twice."""

    __tablename__ = "bank_lines"
    __table_args__ = (
        CheckConstraint(within("status", LINE_STATUSES), name="bank_line_status"),
        CheckConstraint("amount >= 0", name="bank_line_amount"),
        CheckConstraint(f"ignored_because IS NULL OR {within('ignored_because', IGNORED_BECAUSE)}",
                        name="bank_line_ignored"),
        CheckConstraint(f"matched_by IS NULL OR {within('matched_by', MATCHED_BY)}", name="bank_line_matched_by"),
        Index("ix_bank_lines_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    identity: Mapped[str] = mapped_column(String(64), unique=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("bank_imports.id"), index=True)
    position: Mapped[str] = mapped_column(String(40))
    account: Mapped[str] = mapped_column(String(64))
    bank_ref: Mapped[str] = mapped_column(String(120), default="")
    booked_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    credit: Mapped[bool] = mapped_column(Boolean)
    reversal: Mapped[bool] = mapped_column(Boolean, default=False)
    return_reason: Mapped[str] = mapped_column(String(35), default="")
    payer: Mapped[str] = mapped_column(String(200), default="")
    reference: Mapped[str] = mapped_column(String(60), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12))
    ignored_because: Mapped[str | None] = mapped_column(String(12))
    matched_by: Mapped[str | None] = mapped_column(String(12))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    suggested_order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    # Still awaited after a partial payment; paid beyond the total.
    missing: Mapped[int] = mapped_column(default=0)
    excess: Mapped[int] = mapped_column(default=0)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")

    order: Mapped[Order | None] = relationship(foreign_keys=[order_id])
    payment: Mapped[Payment | None] = relationship()
    suggested_order: Mapped[Order | None] = relationship(foreign_keys=[suggested_order_id])
    resolved_by: Mapped[User | None] = relationship()
    bank_import: Mapped[BankImport] = relationship()


class BankMapping(Base):
    """How one bank's CSV export reads (billing.bank.statements.Mapping):
    chosen once per bank and remembered under its name."""

    __tablename__ = "bank_mappings"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    delimiter: Mapped[str] = mapped_column(String(1), default=";")
    date_column: Mapped[str] = mapped_column(String(60))
    date_format: Mapped[str] = mapped_column(String(20), default="%Y-%m-%d")
    amount_column: Mapped[str] = mapped_column(String(60), default="")
    credit_column: Mapped[str] = mapped_column(String(60), default="")
    debit_column: Mapped[str] = mapped_column(String(60), default="")
    decimal_comma: Mapped[bool] = mapped_column(Boolean, default=False)
    currency_column: Mapped[str] = mapped_column(String(60), default="")
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    text_column: Mapped[str] = mapped_column(String(60), default="")
    payer_column: Mapped[str] = mapped_column(String(60), default="")
    reference_column: Mapped[str] = mapped_column(String(60), default="")
    bank_ref_column: Mapped[str] = mapped_column(String(60), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
