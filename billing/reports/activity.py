"""Sales, overage billed and collected, time logged and ratings, over a
period [start, end) in UTC. Money in integer minor units, per currency; no
figure from two currencies is ever added up.

Sales are the orders of a pack paid in the period (the trial counts, at 0),
by month, catalogue, pack, payment method and currency; what credit notes
gave back in the period is its own line. An overage's bill is not a sale of
credit: it is in ``overage``. The effective hourly rate of the time report is
the value of the credit the time consumed (billing.reports.credit) per hour
logged, billable or not: what an hour of the team's work earned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from billing.accounts.models import Account, User
from billing.catalogue.models import Pack
from billing.clock import as_utc
from billing.desk.models import Ticket, TimeEntry
from billing.models import Translated
from billing.orders.models import Invoice, Order
from billing.reports.credit import Valued


def month_of(moment: datetime) -> date:
    return moment.date().replace(day=1)


def _within(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start <= as_utc(moment) < end


@dataclass
class Amounts:
    count: int = 0
    net: int = 0
    vat: int = 0
    gross: int = 0

    def add(self, net: int, vat: int, gross: int) -> None:
        self.count += 1
        self.net += net
        self.vat += vat
        self.gross += gross


@dataclass(frozen=True)
class SaleKey:
    month: date
    catalogue: Translated = field(compare=False)
    pack: Translated = field(compare=False)
    pack_slug: str
    method: str
    currency: str


@dataclass
class Sales:
    rows: list[tuple[SaleKey, Amounts]]
    # per currency: the total of the rows, and what credit notes took back
    totals: dict[str, Amounts]
    credit_notes: dict[str, Amounts]
    by_method: dict[tuple[str, str], Amounts]  # (method, currency)
    by_month: dict[tuple[date, str], Amounts]  # (month, currency)


def sales(session: Session, start: datetime, end: datetime) -> Sales:
    orders = session.scalars(
        select(Order).where(Order.pack_id.is_not(None), Order.paid_at.is_not(None),
                            Order.status.in_(("paid", "refunded")))
        .options(joinedload(Order.pack).joinedload(Pack.catalogue))
    ).unique()
    grouped: dict[SaleKey, Amounts] = {}
    totals: dict[str, Amounts] = defaultdict(Amounts)
    by_method: dict[tuple[str, str], Amounts] = defaultdict(Amounts)
    by_month: dict[tuple[date, str], Amounts] = defaultdict(Amounts)
    for order in orders:
        if not _within(order.paid_at, start, end):
            continue
        assert order.paid_at is not None
        pack = order.ordered_pack
        key = SaleKey(month_of(as_utc(order.paid_at)), pack.catalogue.name, pack.name, pack.slug, order.method,
                      order.currency)
        for bucket in (grouped.setdefault(key, Amounts()), totals[order.currency],
                       by_method[(order.method, order.currency)], by_month[(key.month, order.currency)]):
            bucket.add(order.net, order.vat, order.total)
    notes: dict[str, Amounts] = defaultdict(Amounts)
    for note in session.scalars(select(Invoice).where(Invoice.kind == "credit_note",
                                                      Invoice.issued_at >= start, Invoice.issued_at < end)):
        notes[note.currency].add(note.net, note.vat, note.gross)
    rows = sorted(grouped.items(), key=lambda kv: (kv[0].month, kv[0].currency, kv[0].pack_slug, kv[0].method))
    return Sales(rows, dict(sorted(totals.items())), dict(sorted(notes.items())),
                 dict(sorted(by_method.items())), dict(sorted(by_month.items())))


@dataclass
class Overage:
    currency: str
    billed: Amounts = field(default_factory=Amounts)
    collected: Amounts = field(default_factory=Amounts)


def overage(session: Session, start: datetime, end: datetime) -> list[Overage]:
    """Bills of approved overages issued in the period (not cancelled since),
    and those paid in it."""
    found: dict[str, Overage] = {}
    for order in session.scalars(select(Order).where(Order.overage_id.is_not(None))):
        row = found.setdefault(order.currency, Overage(order.currency))
        if order.status != "cancelled" and _within(order.created_at, start, end):
            row.billed.add(order.net, order.vat, order.total)
        if order.status in ("paid", "refunded") and _within(order.paid_at, start, end):
            row.collected.add(order.net, order.vat, order.total)
    return [found[c] for c in sorted(found) if found[c].billed.count or found[c].collected.count]


@dataclass
class TimeRow:
    """Minutes logged in the period by one client, staff member or request
    kind, and the value of the credit consumed, per currency."""

    label: str
    billable: int = 0
    not_billable: int = 0
    earned: dict[str, int] = field(default_factory=dict)

    @property
    def minutes(self) -> int:
        return self.billable + self.not_billable

    def rates(self) -> dict[str, int]:
        """Per currency: minor units earned per hour logged, rounded half up."""
        if not self.minutes:
            return {}
        return {currency: int((Decimal(value) * 60 / self.minutes).to_integral_value(ROUND_HALF_UP))
                for currency, value in self.earned.items()}


@dataclass
class TimeReport:
    by_client: list[TimeRow]
    by_staff: list[TimeRow]
    by_kind: list[TimeRow]


def time_logged(session: Session, moves: Sequence[Valued], start: datetime, end: datetime) -> TimeReport:
    """Consumption is the credit's value consumed in the period (a correction
    that gives units back lowers it); it is credited to the staff member whose
    time entry caused it, else (a debt a grant paid) to nobody named ("—")."""
    entries = [entry for entry in session.scalars(
        select(TimeEntry).options(joinedload(TimeEntry.ticket).joinedload(Ticket.account),
                                  joinedload(TimeEntry.staff)))
        if _within(entry.created_at, start, end)]
    by_op = {entry.operation_id: entry.staff for entry in session.scalars(
        select(TimeEntry).where(TimeEntry.operation_id.is_not(None)).options(joinedload(TimeEntry.staff)))}
    tickets = {t.id: t for t in session.scalars(select(Ticket).options(joinedload(Ticket.account)))}
    clients: dict[str, TimeRow] = {}
    staff: dict[str, TimeRow] = {}
    kinds: dict[str, TimeRow] = {}

    def row(table: dict[str, TimeRow], label: str) -> TimeRow:
        return table.setdefault(label, TimeRow(label))

    def staff_label(user: User | None) -> str:
        return (user.name or user.email) if user is not None else "—"

    def client_label(account: Account) -> str:
        return account.name

    for entry in entries:
        ticket = entry.ticket
        for target in (row(clients, client_label(ticket.account)), row(staff, staff_label(entry.staff)),
                       row(kinds, ticket.kind or "—")):
            if entry.billable:
                target.billable += entry.minutes
            else:
                target.not_billable += entry.minutes
    for move in moves:
        if move.kind != "consume" or not start <= move.at < end or move.ticket_id is None:
            continue
        ticket = tickets[move.ticket_id]
        value = -move.amount
        for target in (row(clients, client_label(ticket.account)),
                       row(staff, staff_label(by_op.get(move.operation_id))), row(kinds, ticket.kind or "—")):
            target.earned[move.lot.currency] = target.earned.get(move.lot.currency, 0) + value

    def ordered(table: dict[str, TimeRow]) -> list[TimeRow]:
        return sorted(table.values(), key=lambda r: (-r.minutes, r.label))

    return TimeReport(ordered(clients), ordered(staff), ordered(kinds))


@dataclass(frozen=True)
class RatingMonth:
    month: date
    count: int
    average: Decimal | None  # to two places, None without ratings


def ratings(session: Session, months: Sequence[date]) -> list[RatingMonth]:
    """Every rating clients gave, by the month it was given: the count and
    the average (staff see every month; the public page hides small counts)."""
    by_month: dict[date, list[int]] = {month: [] for month in months}
    for rated_at, value in session.execute(
            select(Ticket.rated_at, Ticket.rating).where(Ticket.rating.is_not(None), Ticket.rated_at.is_not(None))):
        if rated_at is None or value is None:
            continue
        month = month_of(as_utc(rated_at))
        if month in by_month:
            by_month[month].append(value)
    return [RatingMonth(month, len(values),
                        (Decimal(sum(values)) / len(values)).quantize(Decimal("0.01"), ROUND_HALF_UP)
                        if values else None)
            for month, values in by_month.items()]
