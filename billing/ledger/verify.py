"""``flask ledger verify``: invariants 1 to 6 of DESIGN.md, checked across
the whole database from the entries up, independently of the services that
wrote them, and that every overage is the sum of its dated changes. Every
breach is one line that names the rows to look at."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVarTuple

from sqlalchemy import Select, case, func, inspect, select
from sqlalchemy.orm import Session

from billing.catalogue.models import Policy
from billing.desk.models import Ticket
from billing.ledger.models import Entry, Lot, Operation, Overage, OverageChange
from billing.ledger.rules import RuleError, units

Row = TypeVarTuple("Row")

SETTLED_STATUSES = ("purchased", "paid", "withdrawn")


@dataclass
class Report:
    breaches: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.breaches


def verify(session: Session, account_id: int | None = None) -> Report:
    """Check the whole database, or one account's rows."""
    report = Report()
    _lots_match_their_entries(session, report, account_id)
    _tickets_match_the_rule(session, report, account_id)
    _consumption_in_order_and_never_after_expiry(session, report, account_id)
    _every_entry_has_a_unique_key(session, report, account_id)
    _overages_match_their_changes(session, report, account_id)
    for name, model in (("lots", Lot), ("entries", Entry), ("tickets", Ticket), ("operations", Operation),
                        ("overages", Overage)):
        report.counts[name] = session.scalar(_of(select(func.count()).select_from(model), model, account_id)) or 0
    return report


def _of(query: Select[*Row], model: type[Any], account_id: int | None) -> Select[*Row]:
    return query if account_id is None else query.where(model.account_id == account_id)


def _lots_match_their_entries(session: Session, report: Report, account_id: int | None) -> None:
    """Invariants 1 and 6: remaining = grant + the other entries, never below zero."""
    sums = (
        select(
            Entry.lot_id,
            func.sum(Entry.quantity).label("total"),
            func.sum(case((Entry.kind == "grant", Entry.quantity), else_=0)).label("granted"),
            func.sum(case((Entry.account_id != Lot.account_id, 1), else_=0)).label("strays"),
        )
        .join(Lot, Lot.id == Entry.lot_id)
        .group_by(Entry.lot_id)
        .subquery()
    )
    rows = session.execute(_of(
        select(Lot.id, Lot.granted, Lot.remaining, sums.c.total, sums.c.granted, sums.c.strays)
        .outerjoin(sums, sums.c.lot_id == Lot.id)
        .order_by(Lot.id), Lot, account_id
    ))
    for lot_id, granted, remaining, total, granted_entries, strays in rows:
        if granted_entries != granted:
            report.breaches.append(
                f"lot {lot_id}: granted {granted} but its grant entries sum to {granted_entries or 0}")
        if remaining != (total or 0):
            report.breaches.append(f"lot {lot_id}: remaining {remaining} but its entries sum to {total or 0}")
        if remaining < 0:
            report.breaches.append(f"lot {lot_id}: negative remaining {remaining}")
        if strays:
            report.breaches.append(f"lot {lot_id}: {strays} entries name another account")


def _tickets_match_the_rule(session: Session, report: Report, account_id: int | None) -> None:
    """Invariant 2: what a ticket was charged is units(billable minutes, kind)
    of its policy, drawn from lots or still owed (overage, debt); a ticket
    a subscription covers is charged nothing, whatever its time."""
    consumed = dict(session.execute(_of(
        select(Entry.ticket_id, -func.sum(Entry.quantity)).where(Entry.kind == "consume").group_by(Entry.ticket_id),
        Entry, account_id
    )).all())
    owed: dict[int, int] = defaultdict(int)
    for overage in session.scalars(_of(select(Overage), Overage, account_id)):
        owed[overage.ticket_id] += overage.outstanding
        if overage.status in SETTLED_STATUSES and overage.outstanding:
            report.breaches.append(
                f"overage {overage.id}: {overage.status} with {overage.outstanding} unit(s) outstanding")
    rules = {policy.id: policy.rule() for policy in session.scalars(select(Policy))}
    for ticket in session.scalars(_of(select(Ticket).order_by(Ticket.id), Ticket, account_id)):
        try:
            due = 0 if ticket.subscription_id is not None else \
                units(rules[ticket.policy_id], ticket.billable_minutes, ticket.kind).units
        except RuleError as error:
            report.breaches.append(f"ticket {ticket.id}: its policy cannot price it: {error}")
            continue
        if ticket.units_charged != due:
            report.breaches.append(
                f"ticket {ticket.id}: {ticket.billable_minutes} min cost {due} {ticket.unit}(s), "
                f"charged {ticket.units_charged}"
            )
        covered = consumed.get(ticket.id, 0) + owed[ticket.id]
        if covered != ticket.units_charged:
            report.breaches.append(
                f"ticket {ticket.id}: charged {ticket.units_charged} {ticket.unit}(s) but consumed "
                f"{consumed.get(ticket.id, 0)} and owes {owed[ticket.id]}"
            )


def _overages_match_their_changes(session: Session, report: Report, account_id: int | None) -> None:
    """An overage's units and settled are the sums of its dated changes,
    which the statement reads the debts from."""
    sums = (
        select(OverageChange.overage_id, func.sum(OverageChange.units).label("units"),
               func.sum(OverageChange.settled).label("settled"))
        .group_by(OverageChange.overage_id)
        .subquery()
    )
    rows = session.execute(_of(
        select(Overage.id, Overage.units, Overage.settled, sums.c.units, sums.c.settled)
        .outerjoin(sums, sums.c.overage_id == Overage.id)
        .order_by(Overage.id), Overage, account_id
    ))
    for overage_id, total, settled, changed_total, changed_settled in rows:
        if (total, settled) != (changed_total or 0, changed_settled or 0):
            report.breaches.append(
                f"overage {overage_id}: {total} unit(s), {settled} settled, but its changes sum to "
                f"{changed_total or 0} and {changed_settled or 0}"
            )


@dataclass
class _Lot:
    id: int
    balance: tuple[int, int, str]
    owner_id: int | None
    expires_at: datetime | None
    created_at: datetime
    held: int = 0

    @property
    def order(self) -> tuple[bool, datetime, datetime, int]:
        return (self.expires_at is None, self.expires_at or self.created_at, self.created_at, self.id)

    def usable_at(self, moment: datetime) -> bool:
        return self.created_at <= moment and (self.expires_at is None or self.expires_at > moment)


def _consumption_in_order_and_never_after_expiry(session: Session, report: Report, account_id: int | None) -> None:
    """Invariants 3 and 4, by replaying every entry in the order written:
    whenever an operation drew from a lot, no lot that comes before it and
    that the ticket could use still held units afterwards; and no lot gave
    units after its expiry."""
    lots = {
        row.id: _Lot(row.id, (row.account_id, row.policy_id, row.unit), row.owner_id,
                     row.expires_at, row.created_at)
        for row in session.execute(_of(
            select(Lot.id, Lot.account_id, Lot.policy_id, Lot.unit, Lot.owner_id, Lot.expires_at, Lot.created_at),
            Lot, account_id
        ))
    }
    holding: dict[tuple[int, int, str], set[int]] = defaultdict(set)
    openers = dict(session.execute(_of(select(Ticket.id, Ticket.opened_by_id), Ticket, account_id)).all())
    entries = session.execute(_of(
        select(Entry.id, Entry.operation_id, Entry.lot_id, Entry.ticket_id, Entry.kind, Entry.quantity,
               Entry.effective_at)
        .order_by(Entry.id), Entry, account_id
    )).all()

    def check(draws: list[Any]) -> None:
        by_ticket: dict[int | None, list[Any]] = defaultdict(list)
        for entry in draws:
            by_ticket[entry.ticket_id].append(entry)
        for ticket_id, drawn in by_ticket.items():
            moment = drawn[0].effective_at
            last = max((lots[e.lot_id] for e in drawn), key=lambda lot: lot.order)
            opener = openers.get(ticket_id) if ticket_id is not None else None
            for lot_id in holding[last.balance]:
                lot = lots[lot_id]
                serves = ticket_id is None or lot.owner_id is None or lot.owner_id == opener
                if serves and lot.order < last.order and lot.usable_at(moment):
                    report.breaches.append(
                        f"operation {drawn[0].operation_id}: drew from lot {last.id} while lot {lot.id}, "
                        f"which comes first, held {lot.held}"
                    )

    draws: list[Any] = []
    operation = None
    for entry in entries:
        if entry.operation_id != operation:
            check(draws)
            draws, operation = [], entry.operation_id
        lot = lots[entry.lot_id]
        lot.held += entry.quantity
        (holding[lot.balance].add if lot.held > 0 else holding[lot.balance].discard)(lot.id)
        if entry.quantity < 0 and entry.kind != "expire":
            if lot.expires_at is not None and entry.effective_at >= lot.expires_at:
                report.breaches.append(
                    f"entry {entry.id}: {entry.kind} {entry.quantity} on lot {lot.id} after its expiry"
                )
            if entry.kind in ("consume", "adjust"):
                draws.append(entry)
    check(draws)


def _every_entry_has_a_unique_key(session: Session, report: Report, account_id: int | None) -> None:
    """Invariant 5: the key is there, and the database itself keeps it unique."""
    unique = any(
        constraint["column_names"] == ["idempotency_key"]
        for constraint in inspect(session.connection()).get_unique_constraints(Entry.__tablename__)
    )
    if not unique:
        report.breaches.append("ledger_entries.idempotency_key has no unique constraint")
    missing = session.scalar(_of(
        select(func.count()).where(func.coalesce(func.trim(Entry.idempotency_key), "") == ""), Entry, account_id
    ))
    if missing:
        report.breaches.append(f"{missing} entries without an idempotency key")
    for duplicate, count in session.execute(_of(
        select(Entry.idempotency_key, func.count()).group_by(Entry.idempotency_key).having(func.count() > 1),
        Entry, account_id
    )):
        report.breaches.append(f"idempotency key {duplicate!r} used by {count} entries")
