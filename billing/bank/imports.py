"""Import a bank statement: each credit line is matched to its order and
confirmed as a staff member's confirmation is (billing.orders.services.
confirm_payment: the same transaction, invoice and mail), or waits for staff.

One import is one unit of work: the file is read whole first (a malformed
one raises ``MalformedStatement`` and nothing is written), then every line
is recorded and settled in one transaction. Each line has a stable identity
with a unique constraint: a line already recorded (the same file again, two
statements that overlap, a line the bank repeats) is a ``duplicate`` and
credits nothing. Imports are serialised (a PostgreSQL advisory lock; SQLite
writes one at a time anyway), so two imports of one file at once credit once.

Outcomes, per line: ``confirmed`` (the order received what it awaited),
``partial`` (less: recorded, the client told what remains), ``overpaid``
(more: recorded and flagged for a refund), ``suggested`` (amount and
payer's name point at an order: staff decide), ``unmatched``, ``duplicate``,
``ignored`` (debits, reversals, other currencies, entries not booked).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import exists, func, select, text
from sqlalchemy.orm import Session

from billing import audit
from billing.accounts.models import User
from billing.bank import matching, statements
from billing.bank.models import WAITING, BankImport, BankLine, BankMapping
from billing.bank.statements import MalformedStatement, Mapping, StatementLine
from billing.clock import utc
from billing.errors import N_, BillingError
from billing.orders import services as orders
from billing.orders.invoices import Seller
from billing.orders.models import Invoice, Order, Payment
from billing.transaction import atomic

OUTCOMES = ("confirmed", "partial", "overpaid", "suggested", "unmatched", "duplicate", "ignored")
# The advisory lock every import takes on PostgreSQL ("BANK" in ASCII).
_IMPORT_LOCK = 0x42414E4B

__all__ = ["OUTCOMES", "BankError", "Imported", "LineOutcome", "MalformedStatement", "assign", "discard",
           "import_statement", "mapping_of", "waiting"]


class BankError(BillingError):
    """A staff action on a bank line that was refused."""


@dataclass(frozen=True)
class LineOutcome:
    line: BankLine
    outcome: str
    order_id: int | None


@dataclass(frozen=True)
class Imported:
    bank_import: BankImport
    lines: list[LineOutcome]


def mapping_of(row: BankMapping) -> Mapping:
    return Mapping(name=row.name, delimiter=row.delimiter, date_column=row.date_column, date_format=row.date_format,
                   amount_column=row.amount_column, credit_column=row.credit_column, debit_column=row.debit_column,
                   decimal_comma=row.decimal_comma, currency_column=row.currency_column, currency=row.currency,
                   text_column=row.text_column, payer_column=row.payer_column, reference_column=row.reference_column,
                   bank_ref_column=row.bank_ref_column)


def results(session: Session, bank_import: BankImport) -> list[LineOutcome]:
    """What became of each line of ``bank_import``, in the file's order."""
    ids = [line_id for line_id, _outcome, _order in bank_import.results]
    found = {line.id: line for line in session.scalars(select(BankLine).where(BankLine.id.in_(ids)))}
    return [LineOutcome(found[line_id], outcome, order_id) for line_id, outcome, order_id in bank_import.results]


def import_statement(session: Session, data: bytes, *, format: str, filename: str, seller: Seller, now: datetime,
                     by: User | None = None, mapping: Mapping | None = None, token: str | None = None) -> Imported:
    """Read ``data`` as a statement of ``format`` and settle each line (see
    the module's docstring). ``token``: the upload form's one-time token,
    under which a second submission finds the first import."""
    now = utc(now)
    if by is not None and not by.is_staff:
        raise BankError(N_("Only staff import bank statements."))
    read = statements.read(data, format, mapping)  # raises before anything is written
    with atomic(session):
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _IMPORT_LOCK})
        if token is not None:
            earlier = session.scalar(select(BankImport).where(BankImport.token == token))
            if earlier is not None:
                return Imported(earlier, results(session, earlier))
        bank_import = BankImport(filename=filename[:200], format=format, sha256=hashlib.sha256(data).hexdigest(),
                                 token=token, imported_at=now, imported_by_id=by.id if by else None, results=[])
        session.add(bank_import)
        session.flush()
        done = []
        for line in read:
            done.append(_import_line(session, bank_import, line, seller=seller, now=now, by=by))
        bank_import.results = [[d.line.id, d.outcome, d.order_id] for d in done]
        return Imported(bank_import, done)


def _import_line(session: Session, bank_import: BankImport, line: StatementLine, *, seller: Seller, now: datetime,
                 by: User | None) -> LineOutcome:
    known = session.scalar(select(BankLine).where(BankLine.identity == line.identity))
    if known is not None:
        return LineOutcome(known, "duplicate", known.order_id)
    row = BankLine(identity=line.identity, import_id=bank_import.id, position=line.position[:40],
                   account=line.account[:64], bank_ref=line.bank_ref[:120], booked_on=line.booked_on,
                   amount=line.amount, currency=line.currency, credit=line.credit, reversal=line.reversal,
                   return_reason=line.return_reason[:35], payer=line.payer[:200], reference=line.reference[:60],
                   text=line.text, status="unmatched")
    session.add(row)
    session.flush()
    ignored = _ignored(line)
    if ignored is not None:
        row.status, row.ignored_because = "ignored", ignored
        return LineOutcome(row, "ignored", None)
    order, matched_by = find_order(session, line.reference, line.text)
    if order is not None:
        if order.currency != line.currency:
            row.status, row.ignored_because, row.order_id = "ignored", "currency", order.id
            return LineOutcome(row, "ignored", order.id)
        return _credit(session, row, order, matched_by, seller=seller, now=now, by=by)
    suggested = suggest(session, row)
    if suggested is not None:
        row.status, row.suggested_order_id = "suggested", suggested.id
        return LineOutcome(row, "suggested", suggested.id)
    return LineOutcome(row, "unmatched", None)


def _ignored(line: StatementLine) -> str | None:
    if not line.booked:
        return "pending"
    if line.reversal:
        return "reversal"
    if not line.credit:
        return "debit"
    if line.account_currency and line.currency != line.account_currency:
        return "currency"
    return None


def _by_reference(session: Session, reference: str) -> Order | None:
    """The order whose reference this is, leading zeros of the payload or not."""
    exact = session.scalar(select(Order).where(func.replace(Order.reference, " ", "") == reference))
    if exact is not None:
        return exact
    order_id = matching.order_id_of(reference)
    order = session.get(Order, order_id) if order_id is not None else None
    if order is not None and order.reference and matching.canonical(order.reference) == matching.canonical(reference):
        return order
    return None


def find_order(session: Session, reference: str, text: str) -> tuple[Order | None, str]:
    """The order a line pays, and how it was found: its structured
    reference, else one reference (or one cut reference) in its text, else
    one invoice number in its text."""
    structured = matching.structured(reference)
    if structured is not None:
        order = _by_reference(session, structured)
        if order is not None:
            return order, "reference"
    found = matching.read_text(f"{text} {reference if structured is None else ''}")
    named = {order.id: order for order in (_by_reference(session, ref) for ref in found.references) if order}
    if len(named) == 1:
        return next(iter(named.values())), "text"
    if not named:
        prefixed: dict[int, Order] = {}
        for cut in found.cut:
            for order in session.scalars(select(Order).where(Order.status == "pending",
                                                             func.replace(Order.reference, " ", "").like(f"{cut}%"))):
                prefixed[order.id] = order
        if len(prefixed) == 1:
            return next(iter(prefixed.values())), "text"
        invoiced = {invoice.order_id: invoice.order for invoice in session.scalars(
            select(Invoice).where(Invoice.kind == "invoice", Invoice.number.in_(found.invoices)))}
        if len(invoiced) == 1:
            return next(iter(invoiced.values())), "invoice"
    return None, ""


def suggest(session: Session, line: BankLine) -> Order | None:
    """The one order awaiting exactly this amount whose account or users
    bear a name the payer's shares: a suggestion for staff, never credited."""
    if not line.payer:
        return None
    candidates = session.scalars(
        select(Order).join(Payment, Payment.order_id == Order.id)
        .where(Order.status == "pending", Payment.status == "pending", Order.currency == line.currency,
               Payment.amount == line.amount).order_by(Order.id)).unique().all()
    agreeing = []
    for order in candidates:
        names = [order.account.name, *session.scalars(select(User.name).where(User.account_id == order.account_id))]
        if matching.names_agree(line.payer, names):
            agreeing.append(order)
    return agreeing[0] if len(agreeing) == 1 else None


def _received_at(booked_on: date, now: datetime) -> datetime:
    return min(datetime.combine(booked_on, time(12), tzinfo=UTC), now)


def _credit(session: Session, row: BankLine, order: Order, matched_by: str, *, seller: Seller, now: datetime,
            by: User | None) -> LineOutcome:
    """Record the line's money on ``order`` through confirm_payment."""
    by_hand = session.scalar(
        select(Payment).where(Payment.order_id == order.id, Payment.status == "confirmed",
                              Payment.provider.in_(orders.MANUAL_METHODS), Payment.amount == row.amount,
                              Payment.confirmed_by_id.is_not(None),
                              ~exists().where(BankLine.payment_id == Payment.id))
        .order_by(Payment.id).limit(1))
    if by_hand is not None:
        # A staff member confirmed this transfer from the bank's website before the statement came.
        row.status, row.matched_by, row.order_id, row.payment_id = "confirmed", "by_hand", order.id, by_hand.id
        return LineOutcome(row, "duplicate", order.id)
    payment = orders.awaited_payment(session, order)
    if payment is None:  # paid already, or cancelled: the money is recorded all the same
        payment = Payment(order=order, provider=order.method if order.method in orders.MANUAL_METHODS else "transfer",
                          status="pending", amount=row.amount, currency=order.currency, created_at=now)
        session.add(payment)
        session.flush()
    outcome = orders.confirm_payment(session, payment, seller=seller, now=now, amount=row.amount,
                                     received_at=_received_at(row.booked_on, now), by=by,
                                     note=f"bank statement line {row.id}")
    status = {"paid": "confirmed", "partial": "partial", "overpaid": "overpaid"}.get(outcome.status)
    if status is None:  # confirmed meanwhile by someone else: left to staff
        return LineOutcome(row, "unmatched", None)
    row.status, row.matched_by, row.order_id, row.payment_id = status, matched_by, order.id, outcome.payment.id
    row.missing, row.excess = outcome.missing, outcome.excess
    return LineOutcome(row, status, order.id)


# --- Staff ---------------------------------------------------------------------------

def waiting(session: Session) -> list[BankLine]:
    """Credit lines no order claimed, oldest first: for staff to assign or discard."""
    return list(session.scalars(select(BankLine).where(BankLine.status.in_(WAITING))
                                .order_by(BankLine.booked_on, BankLine.id)))


def _locked_line(session: Session, line_id: int) -> BankLine:
    line = session.scalar(select(BankLine).where(BankLine.id == line_id).with_for_update()
                          .execution_options(populate_existing=True))
    if line is None:
        raise BankError(N_("There is no such bank line."))
    if line.status not in WAITING:
        raise BankError(N_("This bank line was already settled (%(status)s): nothing changed."), status=line.status)
    return line


def assign(session: Session, line_id: int, order_id: int, *, seller: Seller, now: datetime, by: User) -> LineOutcome:
    """A staff member says which order a waiting line pays: it is credited
    as an exact match would be (confirmed, partial or overpaid)."""
    now = utc(now)
    with atomic(session):
        if not by.is_staff:
            raise BankError(N_("Only staff assign bank lines."))
        line = _locked_line(session, line_id)
        before = line.status
        order = session.get(Order, order_id)
        if order is None or order.method == "free":
            raise BankError(N_("There is no order %(number)d to pay."), "order", number=order_id)
        if order.currency != line.currency:
            raise BankError(N_("Order %(number)d is in %(currency)s: this line cannot pay it."), "order",
                            number=order_id, currency=order.currency)
        done = _credit(session, line, order, "staff", seller=seller, now=now, by=by)
        if done.outcome == "unmatched":
            raise BankError(N_("Order %(number)d changed meanwhile: look at it and try again."), "order",
                            number=order_id)
        line.resolved_by_id, line.resolved_at = by.id, now
        audit.record(by, "bank.assign", "bank_line", line.id, before={"status": before},
                     after={"status": done.outcome, "order": order.id, "amount": line.amount,
                            "currency": line.currency}, session=session)
        return done


def discard(session: Session, line_id: int, *, note: str, now: datetime, by: User) -> BankLine:
    """A waiting line that pays no order (a transfer between own accounts, a
    refund sent back): set aside with a note, never credited."""
    now = utc(now)
    note = " ".join((note or "").split())
    with atomic(session):
        if not by.is_staff:
            raise BankError(N_("Only staff discard bank lines."))
        if not note:
            raise BankError(N_("Say why this line pays no order."), "note")
        line = _locked_line(session, line_id)
        before = line.status
        line.status, line.note, line.resolved_by_id, line.resolved_at = "discarded", note[:500], by.id, now
        audit.record(by, "bank.discard", "bank_line", line.id, before={"status": before},
                     after={"status": "discarded", "note": line.note, "amount": line.amount,
                            "currency": line.currency}, session=session)
        return line


def recent_imports(session: Session, limit: int = 20) -> list[BankImport]:
    return list(session.scalars(select(BankImport).order_by(BankImport.id.desc()).limit(limit)))

