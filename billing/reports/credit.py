"""Unused credit owed (deferred revenue), and how it moves: sales,
consumption, breakage (units that expired unused), refunds, adjustments.

Valuation, per lot: a purchase lot is worth the net price of its order
(VAT is owed to the state when invoiced, not to the client); every other lot
(trial, rollover, staff adjustment) was not sold and is worth 0. What a lot
still owes when ``remaining`` of its ``granted`` units are left is

    owed(remaining) = value * remaining // granted      (rounded down to the minor unit)

and every movement of the lot is valued as the change it makes to that
figure: ``owed(after) - owed(before)``. The first units consumed may carry a
fraction of a cent less than the last, but the values of a lot's movements
always add up to exactly its value, and over any period

    sales - consumption - breakage - refunds - removals = closing - opening

to the minor unit, per currency: the sum telescopes, no cent is lost to rounding.

A lot stops owing at its expiry, whether or not the expiry job has written
its ``expire`` entry (invariant 4): what it held then is breakage, dated at
the expiry; the entries the job writes later are the same movement and are
not counted twice. Periods are [start, end) in UTC, as statements are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from billing.catalogue.models import Policy
from billing.clock import as_utc, utc
from billing.ledger.models import Entry, Lot

# How a movement counts in the reconciliation (a removal is a staff adjustment
# that takes units away).
FLOWS = ("sales", "consumption", "breakage", "refunds", "removals")
_FLOW_OF_KIND = {"grant": "sales", "consume": "consumption", "expire": "breakage", "refund": "refunds",
                 "adjust": "removals"}


@dataclass(frozen=True)
class Movement:
    at: datetime
    kind: str  # grant, consume, expire, refund, adjust
    units: int  # signed, as it moves the lot
    ticket_id: int | None = None
    operation_id: int | None = None


@dataclass(frozen=True)
class LotHistory:
    """One lot as the reports see it: plain values, no database."""

    lot_id: int
    account_id: int
    catalogue_id: int
    unit: str
    source: str
    currency: str
    value: int  # minor units: what the lot was sold for, net of VAT
    granted: int
    created_at: datetime
    expires_at: datetime | None
    movements: tuple[Movement, ...]


@dataclass(frozen=True)
class Valued:
    """A movement with its value: ``amount`` is the signed change it makes to
    what the lot owes (a sale is positive, a consumption negative)."""

    lot: LotHistory
    at: datetime
    kind: str
    units: int
    amount: int
    ticket_id: int | None = None
    operation_id: int | None = None

    @property
    def flow(self) -> str:
        return _FLOW_OF_KIND[self.kind]


def owed(value: int, granted: int, remaining: int) -> int:
    """What ``remaining`` of ``granted`` units sold for ``value`` still owe."""
    return value * remaining // granted


def walk(lot: LotHistory) -> list[Valued]:
    """The lot's movements in time order, valued; an expiry (whether written
    or not) takes what is left at ``expires_at`` and ends the walk."""
    out: list[Valued] = []
    remaining = owes = 0
    for move in sorted(lot.movements, key=lambda m: m.at):
        if lot.expires_at is not None and move.at >= lot.expires_at:
            break
        remaining += move.units
        now_owes = owed(lot.value, lot.granted, remaining)
        out.append(Valued(lot, move.at, move.kind, move.units, now_owes - owes, move.ticket_id, move.operation_id))
        owes = now_owes
    if lot.expires_at is not None and remaining > 0:
        out.append(Valued(lot, lot.expires_at, "expire", -remaining, -owes))
    return out


def movements(lots: Iterable[LotHistory]) -> list[Valued]:
    return [valued for lot in lots for valued in walk(lot)]


def _before(moves: Iterable[Valued], moment: datetime) -> list[Valued]:
    return [move for move in moves if move.at < moment]


@dataclass
class Owed:
    """Unused credit owed at a moment, in one currency."""

    currency: str
    value: int = 0
    # units left, per unit (minute, credit, ticket), of every lot, valued or not
    units: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleRow:
    """What the unused credit owed at a moment will lapse, by month of expiry
    (None: never expires)."""

    month: date | None
    currency: str
    unit: str
    units: int
    value: int


def remaining_at(moves: Sequence[Valued], moment: datetime) -> dict[int, tuple[LotHistory, int, int]]:
    """Per lot id: the lot, its units left and what they owe, just before ``moment``."""
    held: dict[int, tuple[LotHistory, int, int]] = {}
    for move in _before(moves, moment):
        lot, units, value = held.get(move.lot.lot_id, (move.lot, 0, 0))
        held[move.lot.lot_id] = (lot, units + move.units, value + move.amount)
    return {lot_id: row for lot_id, row in held.items() if row[1] or row[2]}


def owed_at(moves: Sequence[Valued], moment: datetime) -> dict[str, Owed]:
    """Unused credit owed just before ``moment``, by currency."""
    found: dict[str, Owed] = {}
    for lot, units, value in remaining_at(moves, moment).values():
        row = found.setdefault(lot.currency, Owed(lot.currency))
        row.value += value
        row.units[lot.unit] = row.units.get(lot.unit, 0) + units
    return dict(sorted(found.items()))


def schedule_at(moves: Sequence[Valued], moment: datetime) -> list[ScheduleRow]:
    """When the credit owed just before ``moment`` lapses, by month of expiry."""
    rows: dict[tuple[date | None, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for lot, units, value in remaining_at(moves, moment).values():
        month = lot.expires_at.date().replace(day=1) if lot.expires_at is not None else None
        row = rows[(month, lot.currency, lot.unit)]
        row[0] += units
        row[1] += value
    order = sorted(rows, key=lambda k: (k[0] is None, k[0] or date.min, k[1], k[2]))
    return [ScheduleRow(month, currency, unit, *rows[(month, currency, unit)]) for month, currency, unit in order]


@dataclass
class Reconciliation:
    """One currency over [start, end): the flows are positive amounts taken
    out of (or, for sales, put into) the credit owed."""

    currency: str
    opening: int = 0
    closing: int = 0
    flows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FLOWS, 0))

    @property
    def balanced(self) -> bool:
        out = sum(self.flows[name] for name in FLOWS[1:])
        return self.flows["sales"] - out == self.closing - self.opening


def reconcile(moves: Sequence[Valued], start: datetime, end: datetime) -> list[Reconciliation]:
    found: dict[str, Reconciliation] = {}

    def of(currency: str) -> Reconciliation:
        return found.setdefault(currency, Reconciliation(currency))

    for currency, row in owed_at(moves, start).items():
        of(currency).opening = row.value
    for currency, row in owed_at(moves, end).items():
        of(currency).closing = row.value
    for move in moves:
        if start <= move.at < end and move.amount:
            sign = 1 if move.flow == "sales" else -1
            of(move.lot.currency).flows[move.flow] += sign * move.amount
    return [found[currency] for currency in sorted(found)]


@dataclass(frozen=True)
class Lapsed:
    """Units that expired unused in a period (breakage) or came back by a
    rollover, per catalogue, unit and currency."""

    catalogue_id: int
    unit: str
    currency: str
    units: int
    value: int


def breakage(moves: Sequence[Valued], start: datetime, end: datetime) -> list[Lapsed]:
    """Units that expired unused in [start, end), and what they were worth
    (0 for units never sold: a trial, a rollover, an adjustment)."""
    rows: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for move in moves:
        if move.kind == "expire" and start <= move.at < end:
            row = rows[(move.lot.catalogue_id, move.lot.unit, move.lot.currency)]
            row[0] -= move.units
            row[1] -= move.amount
    return [Lapsed(*k, *v) for k, v in sorted(rows.items())]


def rolled_over(lots: Iterable[LotHistory], start: datetime, end: datetime) -> list[Lapsed]:
    """Units that rollover lots granted in [start, end) brought back: they
    were breakage once and are granted again at no price, so they owe nothing."""
    rows: dict[tuple[int, str, str], int] = defaultdict(int)
    for lot in lots:
        if lot.source == "rollover" and start <= lot.created_at < end:
            rows[(lot.catalogue_id, lot.unit, lot.currency)] += lot.granted
    return [Lapsed(*k, units, 0) for k, units in sorted(rows.items())]


# --- Reading the ledger -----------------------------------------------------

def lot_histories(session: Session, *, until: datetime | None = None) -> list[LotHistory]:
    """Every lot created before ``until`` (default: all), with its entries."""
    query = select(Lot).options(joinedload(Lot.order), joinedload(Lot.policy).joinedload(Policy.catalogue))
    if until is not None:
        query = query.where(Lot.created_at < utc(until))
    lots = list(session.scalars(query.order_by(Lot.id)).unique())
    by_lot: dict[int, list[Movement]] = defaultdict(list)
    entry_query = select(Entry.lot_id, Entry.effective_at, Entry.kind, Entry.quantity, Entry.ticket_id,
                         Entry.operation_id).order_by(Entry.effective_at, Entry.id)
    if until is not None:
        entry_query = entry_query.where(Entry.effective_at < utc(until))
    for lot_id, at, kind, quantity, ticket_id, operation_id in session.execute(entry_query):
        by_lot[lot_id].append(Movement(as_utc(at), kind, quantity, ticket_id, operation_id))
    histories = []
    for lot in lots:
        order = lot.order
        sold = lot.source == "purchase" and order is not None
        histories.append(LotHistory(
            lot_id=lot.id, account_id=lot.account_id, catalogue_id=lot.policy.catalogue_id, unit=lot.unit,
            source=lot.source, currency=order.currency if order is not None else lot.policy.catalogue.currency,
            value=order.net if sold and order is not None else 0, granted=lot.granted,
            created_at=as_utc(lot.created_at), expires_at=as_utc(lot.expires_at) if lot.expires_at else None,
            movements=tuple(by_lot.get(lot.id, ()))))
    return histories
