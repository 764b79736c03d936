"""Refunds of paid orders: a credit note, and the units the money paid for
taken back in proportion.

The rule (``units_to_revoke``) is pure: the units a refund takes back are
the lot's in proportion to the money refunded, rounded up, so that a
refund never leaves the client credit that no money pays for any more;
they come only from what is still unused and not expired, since consumed
units were charged for work done and those charges stand. It works from
running totals: two refunds of half revoke what one of the whole would.

``refund_order`` is the staff's refund of any paid order, in one
transaction; ``record`` is its part that joins a caller's transaction
(card refunds, settled by common.payments.card from what Stripe says).
No Flask here: the caller passes the seller's details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.accounts.models import User
from billing.clock import utc
from billing.errors import N_
from billing.ledger import services as ledger
from billing.ledger.models import Entry, Lot, Operation
from billing.orders.invoices import Seller, credited, issue_credit_note
from billing.orders.models import Invoice, Order
from billing.orders.services import OrderError, mark_cancelled
from billing.subscriptions import services as subscriptions
from billing.transaction import atomic

# --- The rule (pure) ----------------------------------------------------------

def units_to_revoke(*, granted: int, unused: int, revoked: int, total: int, credited: int, amount: int,
                    usable: bool = True) -> int:
    """The units a refund of ``amount`` takes back from a lot of ``granted``
    units bought for ``total``, when ``credited`` was refunded before and
    took back ``revoked`` units, and ``unused`` are left (``usable``: the lot
    has not expired). Amounts are gross minor units."""
    if total <= 0 or amount <= 0 or credited < 0 or credited + amount > total:
        raise ValueError(f"a refund of {amount} after {credited} does not fit in a total of {total}")
    if not usable:
        return 0
    # Ceiling division, in integers: a share of a unit refunded is the whole unit.
    due = -(-granted * (credited + amount) // total)
    return max(0, min(unused, due - revoked))


# --- Reading ------------------------------------------------------------------

def invoice_of(session: Session, order: Order) -> Invoice | None:
    return session.scalar(select(Invoice).where(Invoice.key == f"order:{order.id}:invoice"))


def left_to_credit(session: Session, order: Order) -> int:
    """What of the order's invoice credit notes have not taken back yet."""
    invoice = invoice_of(session, order)
    return invoice.gross - credited(session, invoice) if invoice is not None else 0


def lot_of(session: Session, order: Order) -> Lot | None:
    """The lot the order granted; None for a subscription, which grants none."""
    return session.scalar(select(Lot).where(Lot.order_id == order.id, Lot.source == "purchase"))


def revocable(session: Session, order: Order, amount: int, *, now: datetime) -> int:
    """The units a refund of ``amount`` would take back now (0 without a lot)."""
    invoice = invoice_of(session, order)
    lot = lot_of(session, order)
    if invoice is None or lot is None:
        return 0
    revoked = -session.execute(select(func.coalesce(func.sum(Entry.quantity), 0))
                               .where(Entry.lot_id == lot.id, Entry.kind == "refund")).scalar_one()
    return units_to_revoke(granted=lot.granted, unused=lot.remaining, revoked=revoked, total=invoice.gross,
                           credited=credited(session, invoice), amount=amount,
                           usable=lot.expires_at is None or lot.expires_at > utc(now))


# --- Writing ------------------------------------------------------------------

@dataclass(frozen=True)
class Refund:
    """What a refund did: its credit note and the units it took back.
    ``duplicate``: the key had been used, nothing was written."""

    note: Invoice
    units: int
    duplicate: bool = False


def _revoke_key(key: str) -> str:
    return f"{key}:revoke"


def done(session: Session, key: str) -> Refund | None:
    """The refund already recorded under ``key``, if any."""
    note = session.scalar(select(Invoice).where(Invoice.key == key))
    if note is None:
        return None
    revoked = session.scalar(select(Operation).where(Operation.key == _revoke_key(key)))
    return Refund(note, -sum(entry.quantity for entry in revoked.entries) if revoked else 0, duplicate=True)


def check(session: Session, order: Order, amount: int, reason: str, *, by: User | None) -> None:
    """Raise OrderError unless ``by`` (an admin, or None for a payment
    provider) may refund ``amount`` of ``order`` with ``reason`` now."""
    if by is not None and not by.is_admin:
        raise OrderError(N_("Only an administrator refunds an order."))
    if not (reason or "").strip():
        raise OrderError(N_("Say why the order is refunded."), "reason")
    check_amount(session, order, amount)


def check_amount(session: Session, order: Order, amount: int) -> None:
    """Raise OrderError unless ``amount`` of ``order`` can be refunded now."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise OrderError(N_("The amount to refund must be more than zero."), "amount")
    if order.status not in ("paid", "refunded"):
        raise OrderError(N_("Order %(number)d is %(status)s: only a paid order can be refunded."),
                         number=order.id, status=order.status)
    left = left_to_credit(session, order)
    if left == 0:
        raise OrderError(N_("Order %(number)d has nothing left to credit."), number=order.id)
    if amount > left:
        raise OrderError(N_("That is more than is left to credit on this order."), "amount")


def record(session: Session, order: Order, amount: int, reason: str, *, key: str, now: datetime, seller: Seller,
           by: User | None = None) -> Refund:
    """The credit note for ``amount`` and the units it takes back, in the
    caller's transaction (flushed, not committed), which holds the
    account's lock; once per ``key``. Raises OrderError for a refund the
    order cannot take."""
    now = utc(now)
    already = done(session, key)
    if already is not None and already.note.order_id == order.id:
        return already
    check(session, order, amount, reason, by=by)
    units = revocable(session, order, amount, now=now)
    note = issue_credit_note(session, order, amount, reason, seller=seller, key=key, now=now,
                             by_id=by.id if by is not None else None)
    lot = lot_of(session, order)
    if units and lot is not None:  # revocable finds no units without a lot
        ledger.refund(session, lot, by=by, key=_revoke_key(key), now=now, quantity=units,
                      note=f"order #{order.id}: {note.number}")
    if order.status == "refunded":
        renewal = subscriptions.refunded(session, order, now)
        if renewal is not None:
            mark_cancelled(session, renewal, note.note, now, by)
    return Refund(note, units)


def refund_order(session: Session, order: Order, amount: int, reason: str, *, by: User, now: datetime, key: str,
                 seller: Seller) -> Refund:
    """Staff refund ``amount`` (gross, minor units) of a paid order, paid
    whichever way: a credit note and its share of the units, in one
    transaction, once per ``key``. The money itself goes back outside
    Forfait (a transfer from the bank); a card's goes through Stripe
    (common.payments.card), whose settling calls ``record``."""
    with atomic(session):
        if by is None:
            raise OrderError(N_("Only an administrator refunds an order."))
        ledger.lock_accounts(session, [order.account_id])
        current = session.get_one(Order, order.id, populate_existing=True)
        return record(session, current, amount, (reason or "").strip(), key=key, now=now, seller=seller, by=by)
