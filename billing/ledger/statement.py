"""The credit statement of an account for any period: per balance, the
opening balance, grants, consumption per ticket, debts and what paid them,
expiries, refunds, adjustments, overage requests and the closing balance.

Entries count from their ``effective_at``; the period is [start, end) in
UTC. A lot that has lapsed with units left but that the expiry job has not
reached yet shows the expiry the job will write, dated at the lot's expiry,
so that a statement never depends on when the job ran.

The opening and closing balances are the balance net of debt, as
``billing.ledger.balance(...).net`` reads it at that moment: what the lots
held, worked back from their cached remaining (invariant 1) and the entries
after each date, not summed from the beginning of time, less what was owed
then under an ``allow`` policy. So a statement of last month reads what
happened since last month, not the account's whole history, and the closing
balance of an account in debt is negative.

A debt (an Overage under ``allow``: one per charge beyond the balance) is
read from its dated changes (OverageChange), never from what it holds now:
what was owed at a moment is the sum of the changes before it. Each change
in the period is a movement: the charge that recorded the debt (negative),
a correction of the ticket's time that reduced it, and what a grant paid of
it (both positive); one line per operation and ticket. So a debt charged in
February and reduced by a correction in March weighs its full amount on
February's closing and shows the reduction in March. A debt older than
migration 0011 has one change, dated when the debt was recorded, of what it
held when the migration ran: its history before was never written down.

The movements between opening and closing add up to the difference, so a
settled debt shows twice: the units the grant took from its lot for the
ticket (consumption) and the debt they paid off. Overage requests of an
``ask`` policy move no balance: they are listed, with their units, as
pending (asked in the period and not answered by its end), approved (billed
at the hourly rate) or declined (not charged).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from babel.numbers import get_currency_precision
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from billing.accounts.models import Account
from billing.catalogue.models import Pack, Policy
from billing.clock import utc
from billing.desk.models import Ticket
from billing.errors import BillingError
from billing.ledger.models import Entry, Lot, Operation, Overage, OverageChange
from billing.models import Translated


class StatementError(BillingError):
    """A period that makes no sense; the message is for the user."""


# Overage requests as statement lines: they do not move the balance.
OVERAGE_LINES = {"pending": "overage-pending", "approved": "overage-approved", "declined": "overage-declined"}


@dataclass(frozen=True)
class Movement:
    at: datetime
    # grant, consume, expire, refund, adjust, debt, debt-reduced, debt-paid; or one of
    # OVERAGE_LINES, whose units are what was asked beyond the balance and
    # do not move it.
    kind: str
    units: int  # signed, as it moves the balance
    lot_id: int | None
    ticket_id: int | None = None
    detail: str = ""
    # For grants: why the lot exists (purchase, trial, rollover) and its pack's
    # name, so a page can say it in the reader's language.
    source: str = ""
    pack_name: Translated | None = None
    # The version of the pack's terms the lot was sold under, when it has several.
    pack_version: int | None = None
    # For an approved overage: what it is billed (minor units), when known.
    price: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class TicketUse:
    ticket_id: int
    subject: str
    units: int  # consumed in the period, net of units given back
    last_at: datetime  # the ticket's latest movement in the period


@dataclass
class Section:
    """One balance of the account: a policy and a unit."""

    policy_id: int
    policy_slug: str
    policy_name: Translated
    unit: str
    # The balance net of debt at the start and at the end of the period.
    opening: int = 0
    closing: int = 0
    # Of which owed (a debt under ``allow``), as a positive number.
    opening_debt: int = 0
    closing_debt: int = 0
    grants: list[Movement] = field(default_factory=list)
    consumption: list[TicketUse] = field(default_factory=list)
    # Which version of the policy's terms applied (billing.catalogue.versions):
    # a balance bought before a change of terms is a balance of its own.
    policy_version: int = 1
    versioned: bool = False
    # Units charged beyond the balance as a debt (negative), what corrections
    # took off it and what grants paid of it (positive).
    debts: list[Movement] = field(default_factory=list)
    debts_reduced: list[Movement] = field(default_factory=list)
    debts_paid: list[Movement] = field(default_factory=list)
    expiries: list[Movement] = field(default_factory=list)
    refunds: list[Movement] = field(default_factory=list)
    adjustments: list[Movement] = field(default_factory=list)
    # Overage requests (OVERAGE_LINES): listed, outside the balance.
    overages: list[Movement] = field(default_factory=list)

    @property
    def consumed(self) -> int:
        return sum(use.units for use in self.consumption)

    def total(self, movements: list[Movement]) -> int:
        return sum(movement.units for movement in movements)


@dataclass
class Statement:
    account_id: int
    account_name: str
    start: date
    end: date  # inclusive, as the reader gives it
    sections: list[Section]


def period(start: date, end: date) -> tuple[datetime, datetime]:
    """The UTC instants [start 00:00, the day after end 00:00)."""
    if end < start:
        raise StatementError(f"the period ends ({end}) before it starts ({start})")
    return (datetime.combine(start, time(), UTC),
            datetime.combine(end + timedelta(days=1), time(), UTC))


DEBT_STATUSES = ("debt", "paid")


def statement(session: Session, account: Account, start: date, end: date, *, now: datetime) -> Statement:
    now = utc(now)
    since, until = period(start, end)
    lots = {lot.id: lot for lot in session.execute(
        select(Lot.id, Lot.policy_id, Lot.unit, Lot.source, Lot.pack_id, Lot.remaining, Lot.expires_at)
        .where(Lot.account_id == account.id)
    )}
    # The requests asked or answered in the period.
    overages = session.execute(
        select(Overage.ticket_id, Overage.status, Overage.units, Overage.settled, Overage.price, Overage.currency,
               Overage.created_at, Overage.decided_at, Ticket.policy_id, Ticket.unit, Ticket.subject)
        .join(Ticket, Ticket.id == Overage.ticket_id)
        .where(Overage.account_id == account.id, Overage.status.in_(tuple(OVERAGE_LINES)), or_(
            and_(Overage.created_at >= since, Overage.created_at < until),
            and_(Overage.decided_at >= since, Overage.decided_at < until)))
        .order_by(Overage.id)
    ).all()
    # Every change of a debt until the end: the debt before the period weighs on its opening.
    debt_changes = session.execute(
        select(OverageChange.overage_id, OverageChange.operation_id, OverageChange.units, OverageChange.settled,
               OverageChange.created_at, Overage.ticket_id, Ticket.policy_id, Ticket.unit, Ticket.subject)
        .join(Overage, Overage.id == OverageChange.overage_id)
        .join(Ticket, Ticket.id == Overage.ticket_id)
        .where(Overage.account_id == account.id, OverageChange.status.in_(DEBT_STATUSES),
               OverageChange.created_at < until)
        .order_by(OverageChange.created_at, OverageChange.id)
    ).all()
    pack_rows = session.execute(
        select(Pack.id, Pack.slug, Pack.name, Pack.version, Pack.superseded_at)
        .where(Pack.id.in_({lot.pack_id for lot in lots.values() if lot.pack_id}))
    ).all()
    # A pack whose terms changed once sold says which version the lot was sold under.
    packs = {row.id: versioned_name(row.slug, row.version, row.superseded_at is not None) for row in pack_rows}
    pack_names = {row.id: row.name for row in pack_rows}
    pack_versions = {row.id: row.version for row in pack_rows if row.version > 1 or row.superseded_at is not None}
    policies = {policy.id: policy for policy in session.scalars(
        select(Policy).where(Policy.id.in_({lot.policy_id for lot in lots.values()}
                                           | {overage.policy_id for overage in (*overages, *debt_changes)})))}
    sections: dict[tuple[int, str], Section] = {}

    def section(policy_id: int, unit: str) -> Section:
        if (policy_id, unit) not in sections:
            policy = policies[policy_id]
            sections[(policy_id, unit)] = Section(
                policy_id, versioned_name(policy.slug, policy.version, policy.superseded_at is not None),
                policy.name, unit, policy_version=policy.version,
                versioned=policy.version > 1 or policy.superseded_at is not None)
        return sections[(policy_id, unit)]

    # Ledger balance at a time t = what the lots hold now less what moved since t.
    # Until the end of this function, opening and closing count the lots only.
    after_end = dict(session.execute(
        select(Entry.lot_id, func.sum(Entry.quantity))
        .where(Entry.account_id == account.id, Entry.effective_at >= until)
        .group_by(Entry.lot_id)
    ).all())
    for lot in lots.values():
        section(lot.policy_id, lot.unit).closing += lot.remaining - after_end.get(lot.id, 0)

    moved = session.execute(
        select(Entry.kind, Entry.quantity, Entry.lot_id, Entry.ticket_id, Entry.effective_at, Operation.note)
        .join(Operation, Operation.id == Entry.operation_id)
        .where(Entry.account_id == account.id, Entry.effective_at >= since, Entry.effective_at < until)
        .order_by(Entry.effective_at, Entry.id)
    ).all()
    used: dict[tuple[tuple[int, str], int], int] = defaultdict(int)
    last_used: dict[tuple[tuple[int, str], int], datetime] = {}
    for kind, quantity, lot_id, ticket_id, at, note in moved:
        lot = lots[lot_id]
        part = section(lot.policy_id, lot.unit)
        part.opening -= quantity
        if kind == "consume":
            if ticket_id is None:
                raise ValueError(f"lot {lot_id}: a consume entry without a ticket (constraint entry_consume_ticket)")
            used[((lot.policy_id, lot.unit), ticket_id)] += -quantity
            last_used[((lot.policy_id, lot.unit), ticket_id)] = at
            continue
        detail = note or packs.get(lot.pack_id, "")
        movement = Movement(at, kind, quantity, lot_id, ticket_id, detail)
        if kind == "grant" and lot.source != "adjustment":
            part.grants.append(Movement(at, kind, quantity, lot_id, None, f"{lot.source} {detail}".strip(),
                                        source=lot.source, pack_name=pack_names.get(lot.pack_id),
                                        pack_version=pack_versions.get(lot.pack_id)))
        elif kind in ("grant", "adjust"):
            part.adjustments.append(movement)
        elif kind == "expire":
            part.expiries.append(movement)
        else:
            part.refunds.append(movement)

    # Lapsed lots the expiry job has not reached: the entry it will write.
    for lot in lots.values():
        if lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= now:
            part = section(lot.policy_id, lot.unit)
            if lot.expires_at < until:
                part.closing -= lot.remaining
                if lot.expires_at >= since:
                    part.opening += lot.remaining
                    part.expiries.append(Movement(lot.expires_at, "expire", -lot.remaining, lot.id,
                                                  detail=packs.get(lot.pack_id, "")))
                    part.expiries.sort(key=lambda m: (m.at, m.lot_id))

    subjects = dict(session.execute(
        select(Ticket.id, Ticket.subject).where(Ticket.id.in_({ticket for _, ticket in used}))
    ).all())
    for (balance, ticket_id), units in sorted(used.items(), key=lambda item: item[0][1]):
        if units:
            sections[balance].consumption.append(
                TicketUse(ticket_id, subjects[ticket_id], units, last_used[(balance, ticket_id)]))
    for part in sections.values():
        part.opening += part.closing
    _debts(debt_changes, since, section)
    _requests(overages, since, until, section)
    for part in sections.values():
        part.opening -= part.opening_debt
        part.closing -= part.closing_debt
        for movements in (part.debts, part.debts_reduced, part.debts_paid, part.overages):
            movements.sort(key=lambda m: (m.at, m.ticket_id or 0))
    ordered = sorted(sections.values(), key=lambda s: (s.policy_slug, s.unit))
    return Statement(account.id, account.name, start, end, ordered)


def _debts(changes: Sequence[Any], since: datetime, section: Callable[[int, str], Section]) -> None:
    """What was owed at the start and at the end of the period, from the
    debts' changes until its end, and those in it as movements."""
    lines: dict[tuple[str, int | str, int | None], list[Any]] = {}
    for change in changes:
        part = section(change.policy_id, change.unit)
        owed = change.units - change.settled
        part.closing_debt += owed
        if change.created_at < since:
            part.opening_debt += owed
            continue
        # A row of 0011 has no operation: it is a line of its own.
        made_by = change.operation_id if change.operation_id is not None else f"overage {change.overage_id}"
        for kind, units in (("debt" if change.units > 0 else "debt-reduced", -change.units),
                            ("debt-paid", change.settled)):
            if units:
                line = lines.setdefault((kind, made_by, change.ticket_id), [part, change, 0])
                line[2] += units
    for (kind, _, ticket_id), (part, first, units) in lines.items():
        movements = {"debt": part.debts, "debt-reduced": part.debts_reduced, "debt-paid": part.debts_paid}[kind]
        movements.append(Movement(first.created_at, kind, units, None, ticket_id, first.subject))


def _requests(overages: Sequence[Any], since: datetime, until: datetime,
              section: Callable[[int, str], Section]) -> None:
    """Overage requests asked in the period and not answered by its end, and
    those answered in it."""
    for overage in overages:
        outstanding = overage.units - overage.settled
        if overage.status not in OVERAGE_LINES or outstanding <= 0:
            continue
        part = section(overage.policy_id, overage.unit)
        decided = overage.decided_at
        if since <= overage.created_at < until and (decided is None or decided >= until):
            part.overages.append(Movement(overage.created_at, "overage-pending", -outstanding, None,
                                          overage.ticket_id, overage.subject))
        if overage.status != "pending" and decided is not None and since <= decided < until:
            part.overages.append(Movement(decided, OVERAGE_LINES[overage.status], -outstanding, None,
                                          overage.ticket_id, overage.subject,
                                          price=overage.price if overage.status == "approved" else None,
                                          currency=overage.currency))


def versioned_name(slug: str, version: int, superseded: bool) -> str:
    """A slug, with the version of its terms when there are several: ``toopixel-credits v2``."""
    return f"{slug} v{version}" if version > 1 or superseded else slug


def amount(minor: int, currency: str) -> str:
    """``32.50 EUR``, locale-free, for the CSV (as the command line writes money)."""
    return f"{Decimal(minor).scaleb(-get_currency_precision(currency)):f} {currency}"


CSV_HEADER = ("balance", "unit", "date", "movement", "lot", "ticket", "units", "detail")


def rows(report: Statement) -> list[tuple[str, ...]]:
    """The statement as CSV rows under CSV_HEADER, for each balance: opening,
    every movement in the period, closing. The units of the rows between
    opening and closing add up to their difference, except the overage
    requests (OVERAGE_LINES), listed last: their units were asked beyond the
    balance and never moved it. An account without any balance gets its
    opening and closing (0) with the balance and unit left empty."""
    first, last = report.start.isoformat(), report.end.isoformat()
    if not report.sections:
        return [("", "", first, "opening", "", "", "0", ""), ("", "", last, "closing", "", "", "0", "")]
    return [row for part in report.sections for row in _section_rows(part, first, last)]


def _section_rows(part: Section, first: str, last: str) -> list[tuple[str, ...]]:
    """One balance's rows of ``rows``, from its opening on ``first`` to its
    closing on ``last``."""
    lines: list[tuple[str, ...]] = []

    def line(day: str, movement: str, units: int, lot: object = "", ticket: object = "", detail: str = "") -> None:
        lines.append((part.policy_slug, part.unit, day, movement, str(lot), str(ticket), str(units), detail))

    def dated(movement: Movement) -> None:
        detail = movement.detail
        if movement.price is not None and movement.currency:
            detail = f"{detail} ({amount(movement.price, movement.currency)})".strip()
        line(movement.at.date().isoformat(), movement.kind, movement.units,
             movement.lot_id if movement.lot_id is not None else "",
             movement.ticket_id if movement.ticket_id is not None else "", detail)

    line(first, "opening", part.opening)
    for grant in part.grants:
        line(grant.at.date().isoformat(), "grant", grant.units, grant.lot_id, detail=grant.detail)
    for use in part.consumption:
        line(use.last_at.date().isoformat(), "consume", -use.units, ticket=use.ticket_id, detail=use.subject)
    for movements in (part.debts, part.debts_reduced, part.debts_paid):
        for movement in movements:
            dated(movement)
    for kind, movements in (("expire", part.expiries), ("refund", part.refunds), ("adjust", part.adjustments)):
        for movement in movements:
            line(movement.at.date().isoformat(), kind, movement.units, movement.lot_id, detail=movement.detail)
    for movement in part.overages:
        dated(movement)
    line(last, "closing", part.closing)
    return lines
