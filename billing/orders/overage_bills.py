"""The bill of an approved overage (seed 002: the client "accepts billing at
the hourly rate").

Approving a priced request places an order for its price in the approval's
transaction (``bill``): net and VAT on the basis of the pack the hourly rate
goes with, a payment reference, and for a transfer or a cheque the mail
with how to pay. Paying it grants nothing (billing.orders): the units were
used already; the money settles the bill. A request without a price (no
hourly rate known: the provider quotes) gets no order; staff see it
approved on the ticket and quote it.

When a correction of the ticket's time shrinks an approved overage, its
bill follows in the correction's transaction (``follow``): unpaid, it is
replaced by one for the new price, or cancelled when nothing is left; paid,
a credit note takes back the difference.

The cancellation's reason and the credit note's are kept as written, so
they are written in the order's language (billing.orders.wording).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.catalogue.pricing import Price, split_vat
from billing.clock import utc
from billing.errors import N_
from billing.ledger import services as ledger
from billing.ledger.models import Lot, Operation, Overage, OverageChange
from billing.orders import references
from billing.orders import services as orders
from billing.orders.invoices import Seller, credited, issue_credit_note
from billing.orders.models import Invoice, Order, Payment
from billing.orders.wording import money, translate
from billing.transaction import atomic

REPLACED = N_("The time of ticket #%(ticket)d was corrected: a new bill for %(amount)s replaces this one.")
NOTHING_LEFT = N_("The time of ticket #%(ticket)d was corrected: nothing is left to bill.")
CREDITED = N_("The time of ticket #%(ticket)d was corrected: %(minutes)d min billed instead of %(billed)d.")


def current_bill(session: Session, overage_id: int) -> Order | None:
    """The overage's bill that is not cancelled: awaiting its money, or paid."""
    return session.scalar(select(Order).where(Order.overage_id == overage_id, Order.status != "cancelled")
                          .order_by(Order.id.desc()).limit(1))


def bill(session: Session, overage: Overage, *, by: User, now: datetime, methods: tuple[str, ...],
         iban: str) -> Order | None:
    """The order for an overage just approved by ``by``, in the caller's
    transaction (which holds the account's lock); None when it has no price.
    ``methods`` are those the shop offers, ``iban`` the provider's (for the
    reference's kind)."""
    currency = overage.currency
    if overage.price is None or currency is None or overage.outstanding == 0:
        return None  # a price has its currency (constraint overage_price)
    placed = current_bill(session, overage.id)
    if placed is not None:
        return placed
    return _place(session, overage, placed_by=by, method=_method(session, overage.account_id, methods),
                  reference=lambda order_id: references.order_reference(order_id, currency, iban),
                  by=by, now=now)


def approve(session: Session, overage: Overage, *, by: User, now: datetime,
            methods: tuple[str, ...] = ("transfer", "cheque"), iban: str = "") -> Overage:
    """The owner approves the overage (billing.ledger.approve_overage) and,
    in the same unit of work, its bill is placed (``methods`` the shop
    offers, ``iban`` the provider's). Approving twice is harmless: one
    answer, one bill."""
    now = utc(now)
    with atomic(session):
        ledger.lock_accounts(session, [overage.account_id])
        current = session.get(Overage, overage.id, populate_existing=True)
        assert current is not None
        was = current.status
        current = ledger.approve_overage(session, current, by=by, now=now)
        if was == "pending":
            bill(session, current, by=by, now=now, methods=methods, iban=iban)
    return current


def follow_correction(session: Session, op: Operation, now: datetime) -> None:
    """After a charge that gave units back (a correction of a ticket's time,
    billing.desk.log_time, in its unit of work): each approved overage the
    correction cut gets a bill that matches what it now asks for. The
    ledger records the cuts as overage changes of the operation."""
    cut = session.scalars(select(Overage).join(OverageChange, OverageChange.overage_id == Overage.id)
                          .where(OverageChange.operation_id == op.id, OverageChange.units < 0)
                          .order_by(OverageChange.id)).unique().all()
    for overage in cut:
        follow(session, overage, op, now)


def bill_by_transfer(session: Session, overage: Overage, *, by: User, now: datetime, iban: str) -> Order | None:
    """Bill again, to be paid by transfer, an approved overage whose bill is
    gone (a card payment that could not be started cancels its order).
    Owns its transaction."""
    now = utc(now)
    with atomic(session):
        ledger.lock_accounts(session, [overage.account_id])
        current = session.get_one(Overage, overage.id, populate_existing=True)
        if current.status != "approved":
            return None
        return bill(session, current, by=by, now=now, methods=("transfer",), iban=iban)


def follow(session: Session, overage: Overage, op: Operation, now: datetime) -> None:
    """Make the bill of an approved overage match what it now asks for,
    after a correction cut its units."""
    if overage.status != "approved":
        return
    placed = current_bill(session, overage.id)
    if placed is None:
        return  # priceless, or its order was cancelled unpaid: nothing billed
    if placed.status == "pending":
        _replace(session, overage, placed, op, now)
    else:
        _credit(session, overage, placed, now, op)


def _replace(session: Session, overage: Overage, placed: Order, op: Operation, now: datetime) -> None:
    if placed.quantity == overage.outstanding:
        return
    if orders.received(session, placed.id):
        # Cancelling would take that money off every page staff read, as billing.orders.cancel_order refuses to.
        raise ledger.LedgerError(N_("Order %(number)d, the bill of this overage, has received part of its money: "
                                    "record the rest or refund it before correcting the time."), number=placed.id)
    price = split_vat(overage.price or 0, placed.currency, placed.vat_rate_bp, placed.price_includes_vat)
    if overage.outstanding:
        reason = translate(REPLACED, placed.language, ticket=overage.ticket_id,
                           amount=money(price.gross, placed.currency, placed.language))
    else:
        reason = translate(NOTHING_LEFT, placed.language, ticket=overage.ticket_id)
    orders.mark_cancelled(session, placed, reason, now, op.by)
    # The replaced bill leaves the pending index before its successor enters it.
    session.flush()
    if overage.outstanding:
        _place(session, overage, placed_by=placed.placed_by, method=placed.method,
               reference=lambda order_id: _reference_like(placed.reference, order_id, placed.currency),
               by=op.by, now=now)


def _credit(session: Session, overage: Overage, paid: Order, now: datetime, op: Operation) -> None:
    invoice = session.scalar(select(Invoice).where(Invoice.key == f"order:{paid.id}:invoice"))
    if invoice is None:
        return
    owed = split_vat(overage.price or 0, paid.currency, paid.vat_rate_bp, paid.price_includes_vat).gross
    back = invoice.gross - credited(session, invoice) - owed
    if back <= 0:
        return
    minutes = overage.ticket.policy.unit_minutes
    reason = translate(CREDITED, paid.language, ticket=overage.ticket_id, minutes=overage.outstanding * minutes,
                       billed=paid.quantity * minutes)
    # The note corrects the invoice: it comes from the seller that invoice names.
    seller = Seller(name=invoice.seller_name, address=invoice.seller_address, email=invoice.seller_email,
                    vat_id=invoice.seller_vat_id)
    issue_credit_note(session, paid, back, reason, seller=seller, key=f"overage:{overage.id}:units:{overage.units}",
                      now=now, by_id=op.by_id)


def _place(session: Session, overage: Overage, *, placed_by: User | None, method: str,
           reference: Callable[[int], str], by: User | None, now: datetime) -> Order:
    """An order for the overage's price, awaiting its payment."""
    if overage.price is None or overage.currency is None:
        raise ValueError(f"overage {overage.id} has no price to bill")
    vat_rate_bp, includes_vat = _vat_basis(session, overage)
    price = split_vat(overage.price, overage.currency, vat_rate_bp, includes_vat)
    order = Order(account_id=overage.account_id, overage=overage, placed_by=placed_by, quantity=overage.outstanding,
                  method=method, unit_price=overage.price, price_includes_vat=includes_vat, vat_rate_bp=vat_rate_bp,
                  net=price.net, vat=price.vat, total=price.gross, currency=overage.currency,
                  language=placed_by.language if placed_by is not None else "en", created_at=now)
    session.add(order)
    session.flush()
    order.reference = reference(order.id)
    # A transfer or a cheque is awaited at once; a card waits for its Stripe session (the view starts it).
    manual = method in orders.MANUAL_METHODS
    payment = Payment(order=order, provider=method, status="pending" if manual else "created", amount=order.total,
                      currency=order.currency, created_at=now)
    session.add(payment)
    session.flush()
    orders.log_event(session, order, "placed", now, by=by, payment=payment, amount=order.total)
    if manual:
        orders.tell_buyer(session, "order_received", order, now, payment_id=payment.id)
    return order


def _method(session: Session, account_id: int, methods: tuple[str, ...]) -> str:
    """How the account paid last, when that is still offered; else a transfer."""
    last = session.scalar(
        select(Order.method)
        .where(Order.account_id == account_id, Order.paid_at.is_not(None), Order.method != "free")
        .order_by(Order.paid_at.desc(), Order.id.desc())
        .limit(1)
    )
    return last if last in methods else "transfer"


def price(session: Session, overage: Overage) -> Price | None:
    """What approving ``overage`` bills, net, VAT and gross, on the basis its
    bill will use (None without an hourly rate): the figure the owner is
    asked to decide on is the one on the bill."""
    if overage.price is None or overage.currency is None:
        return None
    vat_rate_bp, includes_vat = _vat_basis(session, overage)
    return split_vat(overage.price, overage.currency, vat_rate_bp, includes_vat)


def _vat_basis(session: Session, overage: Overage) -> tuple[int, bool]:
    """VAT rate and basis of the pack the hourly rate goes with: the last the
    account bought on the ticket's balance, else the policy's first on sale
    (an hourly rate is stated on the same basis as the packs' prices)."""
    ticket = overage.ticket
    pack = session.scalar(
        select(Pack).join(Lot, Lot.pack_id == Pack.id)
        .where(Lot.account_id == ticket.account_id, Lot.policy_id == ticket.policy_id)
        .order_by(Lot.created_at.desc(), Lot.id.desc())
        .limit(1)
    ) or session.scalar(select(Pack).where(Pack.policy_id == ticket.policy_id).order_by(Pack.position, Pack.id)
                        .limit(1))
    return (pack.vat_rate_bp, pack.price_includes_vat) if pack is not None else (0, False)


def _reference_like(previous: str | None, order_id: int, currency: str) -> str:
    """A reference of the kind the replaced bill had: the provider's IBAN,
    which decides it, is a setting billing cannot read."""
    if previous is not None and references.is_qr_reference(previous):
        return references.qr_reference(str(order_id))
    return references.order_reference(order_id, currency, "")
