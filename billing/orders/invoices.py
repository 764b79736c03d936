"""Invoices and credit notes: numbered without gaps, immutable once issued.

Numbers run per series and per year (``2026-0001``, ``CN-2026-0001``): a
counter row per series and year, locked FOR UPDATE in the transaction that
issues the document, so concurrent payments queue for the next number and
a rolled-back payment gives its number back (invariant 8). The seller's and
buyer's details and the lines are copied into the document, which
billing.orders.models then refuses to change.

No Flask here: the caller passes the seller's details (``Seller``), built
from the settings by common.payments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from billing.catalogue.pricing import split_vat
from billing.clock import utc
from billing.errors import BillingError
from billing.orders import wording
from billing.orders.models import DocumentCounter, Invoice, InvoiceLine, Order, OrderEvent
from billing.transaction import atomic

# One series per kind of document, each numbered from 1 every year.
PREFIX = {"invoice": "", "credit_note": "CN-"}


class InvoiceError(BillingError):
    """A document that cannot be issued; the message is meant for the user."""


@dataclass(frozen=True)
class Seller:
    """The provider as it appears on its documents."""

    name: str
    address: str
    email: str
    vat_id: str = ""


def next_number(session: Session, series: str, year: int) -> tuple[int, str]:
    """The next sequence and number of ``series`` in ``year``, taken under
    the counter's row lock: it stays taken until the caller's transaction
    ends, and goes back to the pool if it rolls back."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # The first document of a year creates the row; a concurrent first one
    # waits on it, then finds it (ON CONFLICT DO NOTHING) instead of failing.
    session.execute(insert(DocumentCounter).values(series=series, year=year, last=0).on_conflict_do_nothing())
    counter = session.scalar(
        select(DocumentCounter)
        .where(DocumentCounter.series == series, DocumentCounter.year == year)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert counter is not None
    counter.last += 1
    return counter.last, f"{PREFIX[series]}{year}-{counter.last:04d}"


def _document(session: Session, order: Order, kind: str, key: str, seller: Seller, now: datetime,
              net: int, vat: int, note: str, corrects: Invoice | None = None) -> Invoice:
    sequence, number = next_number(session, kind, now.year)
    document = Invoice(
        kind=kind, series=kind, year=now.year, sequence=sequence, number=number, key=key,
        order=order, account_id=order.account_id, corrects=corrects, issued_at=now, language=order.language,
        currency=order.currency, net=net, vat=vat, gross=net + vat,
        seller_name=seller.name, seller_address=seller.address, seller_email=seller.email,
        seller_vat_id=seller.vat_id, note=note, **_buyer(order, corrects),
    )
    session.add(document)
    return document


BUYER_FIELDS = ("buyer_name", "buyer_country", "buyer_email", "buyer_address", "buyer_vat_id")


def _buyer(order: Order, corrects: Invoice | None) -> dict[str, str]:
    """The buyer's block: the account's details as they are now for an
    invoice; for a credit note, those of the invoice it corrects, since it
    takes back what that invoice billed to whom it billed it."""
    if corrects is not None:
        return {field: getattr(corrects, field) for field in BUYER_FIELDS}
    account = order.account
    buyer = order.placed_by or account.users[0]
    return {"buyer_name": account.name, "buyer_country": account.country, "buyer_email": buyer.email,
            "buyer_address": account.address, "buyer_vat_id": account.vat_id}


def issue_invoice(session: Session, order: Order, *, seller: Seller, now: datetime, note: str = "") -> Invoice:
    """The invoice of a paid order, in the caller's transaction (flushed,
    not committed): one per order, whoever asks and however often."""
    now = utc(now)
    key = f"order:{order.id}:invoice"
    existing = session.scalar(select(Invoice).where(Invoice.key == key))
    if existing is not None:
        return existing
    # Before the document: what the line reads may load rows, and that flush would issue it unfinished.
    description = wording.invoice_line(order)
    invoice = _document(session, order, "invoice", key, seller, now, order.net, order.vat, note)
    invoice.lines.append(InvoiceLine(
        # An overage's bill is one item: its quantity counts the units its unit price covers together.
        position=1, description=description, quantity=1 if order.overage_id else order.quantity,
        unit_price=order.unit_price, vat_rate_bp=order.vat_rate_bp, net=order.net, vat=order.vat,
        gross=order.total,
    ))
    session.flush()
    return invoice


def credited(session: Session, invoice: Invoice) -> int:
    """The gross already taken back from ``invoice`` by credit notes."""
    notes = session.scalars(select(Invoice.gross).where(Invoice.corrects_id == invoice.id))
    return sum(notes)


def issue_credit_note(session: Session, order: Order, amount: int, reason: str, *, seller: Seller, key: str,
                      now: datetime, by_id: int | None = None) -> Invoice:
    """A credit note taking back ``amount`` (gross, minor units) of the
    order's invoice, with its VAT in the invoice's proportion. Idempotent by
    ``key`` (a Stripe refund id): the same key returns the same note.

    The order becomes ``refunded`` once credit notes cover its total.
    In a caller's unit of work (a refund that also revokes the lot) it joins it.
    """
    now = utc(now)
    reason = (reason or "").strip()
    with atomic(session):
        existing = session.scalar(select(Invoice).where(Invoice.key == key))
        if existing is not None:
            if existing.order_id != order.id:
                raise InvoiceError(f"the key {key!r} already belongs to credit note {existing.number}")
            return existing
        invoice = session.scalar(select(Invoice).where(Invoice.key == f"order:{order.id}:invoice"))
        if invoice is None:
            raise InvoiceError(f"order #{order.id} has no invoice to credit")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvoiceError("a credit note takes back a whole positive amount in minor units")
        if not reason:
            raise InvoiceError("a credit note needs a reason")
        left = invoice.gross - credited(session, invoice)
        if amount > left:
            raise InvoiceError(f"only {left} minor units of invoice {invoice.number} are left to credit")
        # The whole invoice back gives its exact VAT back; a part, its share.
        vat = invoice.vat if amount == invoice.gross else split_vat(amount, invoice.currency,
                                                                    order.vat_rate_bp, True).vat
        net = amount - vat
        note = _document(session, order, "credit_note", key, seller, now, net, vat, reason, invoice)
        # Amounts taken back are positive, as on the note itself; the unit
        # price is on the basis the invoice states its prices in (the PDF's
        # column says which), so one item at it gives the line's net or gross.
        note.lines.append(InvoiceLine(
            position=1, description=f"{invoice.number}: {reason}", quantity=1,
            unit_price=amount if order.price_includes_vat else net,
            vat_rate_bp=order.vat_rate_bp, net=net, vat=vat, gross=amount,
        ))
        session.add(OrderEvent(order_id=order.id, kind="credit_note", amount=amount, by_id=by_id,
                               note=f"{note.number}: {reason}", created_at=now))
        if amount == left:
            order.status = "refunded"
        session.flush()
    return note
