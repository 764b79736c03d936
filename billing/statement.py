"""The credit statement of an account for any period: per balance, the
opening balance, grants, consumption per ticket, expiries, refunds,
adjustments and the closing balance.

Entries count from their ``effective_at``; the period is [start, end) in
UTC. A lot that has lapsed with units left but that the expiry job has not
reached yet shows the expiry the job will write, dated at the lot's expiry,
so that a statement never depends on when the job ran.

The opening and closing balances are worked back from the lots' cached
remaining (invariant 1) and the entries after each date, not summed from the
beginning of time, so a statement of last month reads what happened since
last month, not the account's whole history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from billing.clock import utc
from billing.ledger_models import Entry, Lot, Operation, Ticket
from billing.models import Account, Pack, Policy, Translated


class StatementError(ValueError):
    """A period that makes no sense; the message is for the user."""


@dataclass(frozen=True)
class Movement:
    at: datetime
    kind: str  # grant, consume, expire, refund, adjust
    units: int  # signed, as it moves the balance
    lot_id: int
    ticket_id: int | None = None
    detail: str = ""
    # For grants: why the lot exists (purchase, trial, rollover) and its pack's
    # name, so a page can say it in the reader's language.
    source: str = ""
    pack_name: Translated | None = None


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
    opening: int = 0
    closing: int = 0
    grants: list[Movement] = field(default_factory=list)
    consumption: list[TicketUse] = field(default_factory=list)
    expiries: list[Movement] = field(default_factory=list)
    refunds: list[Movement] = field(default_factory=list)
    adjustments: list[Movement] = field(default_factory=list)

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
    return (datetime.combine(start, time(), timezone.utc),
            datetime.combine(end + timedelta(days=1), time(), timezone.utc))


def statement(session: Session, account: Account, start: date, end: date, *, now: datetime) -> Statement:
    now = utc(now)
    since, until = period(start, end)
    lots = {lot.id: lot for lot in session.execute(
        select(Lot.id, Lot.policy_id, Lot.unit, Lot.source, Lot.pack_id, Lot.remaining, Lot.expires_at)
        .where(Lot.account_id == account.id)
    )}
    pack_rows = session.execute(
        select(Pack.id, Pack.slug, Pack.name).where(Pack.id.in_({lot.pack_id for lot in lots.values() if lot.pack_id}))
    ).all()
    packs = {row.id: row.slug for row in pack_rows}
    pack_names = {row.id: row.name for row in pack_rows}
    policies = {policy.id: policy for policy in session.scalars(
        select(Policy).where(Policy.id.in_({lot.policy_id for lot in lots.values()})))}
    sections: dict[tuple[int, str], Section] = {}

    def section(lot: Row) -> Section:
        balance = (lot.policy_id, lot.unit)
        if balance not in sections:
            policy = policies[lot.policy_id]
            sections[balance] = Section(lot.policy_id, policy.slug, policy.name, lot.unit)
        return sections[balance]

    # Ledger balance at a time t = what the lots hold now less what moved since t.
    after_end = dict(session.execute(
        select(Entry.lot_id, func.sum(Entry.quantity))
        .where(Entry.account_id == account.id, Entry.effective_at >= until)
        .group_by(Entry.lot_id)
    ).all())
    for lot in lots.values():
        section(lot).closing += lot.remaining - after_end.get(lot.id, 0)

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
        part = section(lot)
        part.opening -= quantity
        if kind == "consume":
            used[((lot.policy_id, lot.unit), ticket_id)] += -quantity
            last_used[((lot.policy_id, lot.unit), ticket_id)] = at
            continue
        detail = note or packs.get(lot.pack_id, "")
        movement = Movement(at, kind, quantity, lot_id, ticket_id, detail)
        if kind == "grant" and lot.source != "adjustment":
            part.grants.append(Movement(at, kind, quantity, lot_id, None, f"{lot.source} {detail}".strip(),
                                        source=lot.source, pack_name=pack_names.get(lot.pack_id)))
        elif kind in ("grant", "adjust"):
            part.adjustments.append(movement)
        elif kind == "expire":
            part.expiries.append(movement)
        else:
            part.refunds.append(movement)

    # Lapsed lots the expiry job has not reached: the entry it will write.
    for lot in lots.values():
        if lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= now:
            part = section(lot)
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
    ordered = sorted(sections.values(), key=lambda s: (s.policy_slug, s.unit))
    return Statement(account.id, account.name, start, end, ordered)


CSV_HEADER = ("balance", "unit", "date", "movement", "lot", "ticket", "units", "detail")


def rows(report: Statement) -> list[tuple[str, ...]]:
    """The statement as CSV rows under CSV_HEADER: opening, every movement
    in the period, closing, for each balance."""
    lines: list[tuple[str, ...]] = []
    first, last = report.start.isoformat(), report.end.isoformat()
    for part in report.sections:
        def line(day: str, movement: str, units: int, lot: object = "", ticket: object = "", detail: str = ""):
            lines.append((part.policy_slug, part.unit, day, movement, str(lot), str(ticket), str(units), detail))

        line(first, "opening", part.opening)
        for grant in part.grants:
            line(grant.at.date().isoformat(), "grant", grant.units, grant.lot_id, detail=grant.detail)
        for use in part.consumption:
            line("", "consume", -use.units, ticket=use.ticket_id, detail=use.subject)
        for kind, movements in (("expire", part.expiries), ("refund", part.refunds), ("adjust", part.adjustments)):
            for movement in movements:
                line(movement.at.date().isoformat(), kind, movement.units, movement.lot_id, detail=movement.detail)
        line(last, "closing", part.closing)
    return lines
