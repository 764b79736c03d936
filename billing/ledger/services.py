"""The credit ledger's services: grant, charge, refund, adjust, expire, and
the answers to an overage request.

Every write service
- runs as one unit of work (billing.transaction.atomic): alone it commits
  once on success and on any error rolls back and raises, so nothing is
  half-written; inside a caller's unit (checkout marks an order paid, grants
  and invoices in one) it joins it and the caller's unit commits;
- takes ``now``, a timezone-aware datetime, so that tests and jobs choose the
  clock;
- takes an idempotency ``key``: called again with a key it has seen, it
  returns the first call's Operation and writes nothing (a webhook, a retry,
  a double click);
- serialises with every other writer of the same account before it reads
  anything: ``SELECT ... FOR UPDATE`` on the account row on PostgreSQL,
  ``BEGIN IMMEDIATE`` on SQLite, so concurrent charges cannot lose an update.

Reads never depend on the expiry job: a lot is usable while
``expires_at > now`` and it holds units, whatever has been written since.
Errors a user can cause raise LedgerError (or a subclass); those a view
shows carry a gettext message id marked with ``N_`` and its ``params``, which
the view translates (``_(error.message, **error.params)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, null, or_, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from billing.accounts.models import Account, User
from billing.catalogue.models import Pack, Policy
from billing.catalogue.pricing import round_half_up
from billing.clock import add_months, utc
from billing.desk.models import Ticket
from billing.errors import N_, BillingError
from billing.ledger.models import Entry, Event, Lot, Operation, Overage, OverageChange
from billing.ledger.rules import RuleError, units
from billing.notifications import alerts, outbox
from billing.orders.models import Order
from billing.subscriptions.models import Subscription
from billing.text import single_line
from billing.transaction import atomic, in_unit_of_work

MAX_KEY_LENGTH = 200



class LedgerError(BillingError):
    """The ledger refused a request. ``message`` is a gettext message id
    with ``params`` (a view shows ``_(message, **params)``; ``str()`` is the
    English sentence)."""



class InsufficientBalance(LedgerError):
    """A charge under a ``block`` policy needs more units than the ticket's balance holds."""

    def __init__(self, missing: int, unit: str, available: int) -> None:
        super().__init__(f"{missing} {unit}(s) missing: the balance holds {available} {unit}(s)")
        self.missing = missing
        self.unit = unit
        self.available = available


class NotAllowed(LedgerError):
    """The user may not do this (staff only, account owner only)."""


class KeyReused(LedgerError):
    """The idempotency key already belongs to a different operation."""


@dataclass(frozen=True)
class Balance:
    """The usable lots of one account sharing a policy and a unit."""

    policy_id: int
    unit: str
    units: int
    # Owed under an ``allow`` policy; the next grant pays it first.
    debt: int
    next_expiry: datetime | None

    @property
    def net(self) -> int:
        return self.units - self.debt


# --- Reading --------------------------------------------------------------

def usable(now: datetime) -> ColumnElement[bool]:
    """Lots that hold units and have not expired at ``now``."""
    return and_(Lot.remaining > 0, or_(Lot.expires_at.is_(None), Lot.expires_at > now))


def serves(user_id: int | None) -> ColumnElement[bool]:
    """Lots a user's tickets may draw from: pooled ones and the user's own."""
    if user_id is None:
        return Lot.owner_id.is_(None)
    return or_(Lot.owner_id.is_(None), Lot.owner_id == user_id)


# Earliest expiry first, never-expiring last, then oldest (invariant 3).
CONSUMPTION_ORDER = (Lot.expires_at.is_(None), Lot.expires_at, Lot.created_at, Lot.id)


def balances(session: Session, account_id: int, *, now: datetime, user_id: int | None = None) -> list[Balance]:
    """Every balance of the account, the one expiring first first.

    With ``user_id``, only the lots that user's tickets may draw from; without
    it, all of them (what the account as a whole holds). One query on the
    account's active lots (ix_lots_active) and its open debts, never a scan of
    the entries.
    """
    now = utc(now)
    in_lots = (
        select(Lot.policy_id, Lot.unit, func.sum(Lot.remaining), literal(0), func.min(Lot.expires_at))
        .where(Lot.account_id == account_id, usable(now))
        .group_by(Lot.policy_id, Lot.unit)
    )
    if user_id is not None:
        in_lots = in_lots.where(serves(user_id))
    owed = (
        select(Ticket.policy_id, Ticket.unit, literal(0), func.sum(Overage.units - Overage.settled), null())
        .join(Overage.ticket)
        .where(Overage.account_id == account_id, Overage.status == "debt")
        .group_by(Ticket.policy_id, Ticket.unit)
    )
    found: dict[tuple[int, str], Balance] = {}
    policy_id: int
    unit: str
    held: int
    debt: int
    next_expiry: datetime | None
    for policy_id, unit, held, debt, next_expiry in session.execute(union_all(in_lots, owed)):
        expiries = [next_expiry] if next_expiry is not None else []
        previous = found.get((policy_id, unit))
        if previous is not None:
            held, debt = held + previous.units, debt + previous.debt
            expiries += [previous.next_expiry] if previous.next_expiry is not None else []
        found[(policy_id, unit)] = Balance(policy_id, unit, held, debt, min(expiries, default=None))
    return sorted(found.values(), key=lambda b: (b.next_expiry is None, b.next_expiry or now, b.policy_id, b.unit))


def balance(session: Session, account_id: int, policy_id: int, unit: str, *, now: datetime,
            user_id: int | None = None) -> Balance:
    """One balance of the account; zero when it holds nothing."""
    for found in balances(session, account_id, now=now, user_id=user_id):
        if (found.policy_id, found.unit) == (policy_id, unit):
            return found
    return Balance(policy_id, unit, 0, 0, None)


def default_balance(session: Session, account_id: int, user_id: int, *, now: datetime) -> tuple[int, str]:
    """(policy id, unit) a new ticket of this user draws from: the balance
    whose lots expire first."""
    lot = session.execute(
        select(Lot.policy_id, Lot.unit)
        .where(Lot.account_id == account_id, usable(utc(now)), serves(user_id))
        .order_by(*CONSUMPTION_ORDER)
        .limit(1)
    ).first()
    if lot is None:
        raise LedgerError("this account has no credit to draw from: buy a pack first")
    return lot.policy_id, lot.unit


def _lots_to_draw(session: Session, of_balance: ColumnElement[bool], wanted: int, now: datetime) -> list[Lot]:
    """The usable lots a draw of ``wanted`` units takes, in consumption order:
    those holding units before the running total reaches ``wanted``, or all
    of them when they hold less. Only those are loaded, however many lots
    the account has."""
    running = (
        select(Lot.id, (func.sum(Lot.remaining).over(order_by=CONSUMPTION_ORDER) - Lot.remaining).label("before"))
        .where(of_balance, usable(now))
        .subquery()
    )
    return list(session.scalars(
        select(Lot)
        .where(Lot.id.in_(select(running.c.id).where(running.c.before < wanted)))
        .order_by(*CONSUMPTION_ORDER)
        .execution_options(populate_existing=True)
    ))


def _for_ticket(ticket: Ticket) -> ColumnElement[bool]:
    return and_(Lot.account_id == ticket.account_id, Lot.policy_id == ticket.policy_id, Lot.unit == ticket.unit,
                serves(ticket.opened_by_id))


# --- Transactions ---------------------------------------------------------

def lock_accounts(session: Session, account_ids: Iterable[int]) -> None:
    """Serialise this transaction with every other writer of these accounts.

    PostgreSQL locks the account rows, in id order so that two writers of
    several accounts cannot deadlock. SQLite has one write lock for the whole
    file: BEGIN IMMEDIATE takes it before the first read, where the driver
    would only take it at the first write, after reading stale balances.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # in_transaction is only true once a write started: the lock is held already.
        dbapi = connection.connection.dbapi_connection
        if dbapi is None:
            raise RuntimeError("the session's connection is closed")
        if not dbapi.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        return
    ids = sorted(set(account_ids))
    if ids:
        session.execute(select(Account.id).where(Account.id.in_(ids)).order_by(Account.id).with_for_update())


def _existing(session: Session, key: str, kind: str, account_id: int | None, ticket_id: int | None) -> Operation | None:
    done = session.scalar(select(Operation).where(Operation.key == key))
    if done is not None and (done.kind, done.account_id, done.ticket_id) != (kind, account_id, ticket_id):
        raise KeyReused(f"the key {key!r} was already used for another operation ({done.kind} #{done.id})")
    return done


def _write(
    session: Session,
    apply: Callable[[Operation], None],
    *,
    key: str,
    kind: str,
    now: datetime,
    account_id: int | None,
    lock: Iterable[int] = (),
    ticket_id: int | None = None,
    order_id: int | None = None,
    by: User | None = None,
    note: str = "",
) -> Operation:
    """Run ``apply`` as one idempotent, serialised unit of work (the caller's,
    if one is open)."""
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise LedgerError(f"an idempotency key of 1 to {MAX_KEY_LENGTH} characters is required")
    try:
        with atomic(session):
            lock_accounts(session, [*lock, *([account_id] if account_id is not None else [])])
            done = _existing(session, key, kind, account_id, ticket_id)
            if done is None:
                done = Operation(key=key, kind=kind, account_id=account_id, ticket_id=ticket_id, order_id=order_id,
                                 by_id=by.id if by is not None else None, note=note, created_at=now)
                session.add(done)
                session.flush()  # a key taken meanwhile fails here, before any work
                apply(done)
                session.flush()
        return done
    except IntegrityError:
        # The same key committed meanwhile by a writer we did not wait for
        # (another account): that call's result is ours. A caller's unit of
        # work is lost with the rollback: it must start again.
        if in_unit_of_work(session):
            raise
        done = _existing(session, key, kind, account_id, ticket_id)
        if done is None:
            raise
        return done


def _session_of(op: Operation) -> Session:
    session = object_session(op)
    if session is None:
        raise RuntimeError(f"operation {op.key} belongs to no session")
    return session


def _expiry(lot: Lot) -> datetime:
    """When a lapsed lot expired (it was found by its expiry date)."""
    if lot.expires_at is None:
        raise ValueError(f"lot {lot.id} never expires")
    return lot.expires_at


def _post(op: Operation, lot: Lot, kind: str, quantity: int, at: datetime, ticket: Ticket | None = None) -> Entry:
    """Write one entry and move the lot's cached remaining with it: the only
    place either happens, so the two cannot disagree (invariant 1)."""
    entry = Entry(
        operation=op,
        account_id=lot.account_id,
        lot=lot,
        ticket=ticket,
        kind=kind,
        quantity=quantity,
        effective_at=at,
        idempotency_key=f"{op.key}:{len(op.entries) + 1}",
    )
    _session_of(op).add(entry)
    lot.remaining += quantity
    return entry


def _take(op: Operation, lots: list[Lot], wanted: int, now: datetime, ticket: Ticket | None = None,
          kind: str = "consume") -> int:
    """Draw up to ``wanted`` units from ``lots`` in their order; the units taken."""
    left = wanted
    for lot in lots:
        if left == 0:
            break
        take = min(lot.remaining, left)
        if take:
            _post(op, lot, kind, -take, now, ticket)
            left -= take
    return wanted - left


def _new_lot(session: Session, op: Operation, *, account_id: int, policy_id: int, unit: str, source: str,
             quantity: int, expires_at: datetime | None, now: datetime, pack: Pack | None = None,
             order: Order | None = None, owner_id: int | None = None) -> Lot:
    lot = Lot(account_id=account_id, policy_id=policy_id, unit=unit, source=source, pack=pack, order=order,
              owner_id=owner_id, granted=quantity, remaining=0, expires_at=expires_at, created_at=now)
    session.add(lot)
    _post(op, lot, "grant", quantity, now)
    return lot


def _check_user(user: User | None, account_id: int, what: str) -> None:
    if user is not None and user.account_id != account_id:
        raise LedgerError(f"{what} {user.email} is not a user of this account")


def _whole(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LedgerError(f"{what} must be a whole number of at least {minimum}")
    return value


# --- Grant ----------------------------------------------------------------

def grant(
    session: Session,
    account: Account,
    pack: Pack,
    *,
    key: str,
    now: datetime,
    order: Order | None = None,
    items: int | None = None,
    owner: User | None = None,
    by: User | None = None,
    note: str = "",
    validity_months: int | None = None,
    complimentary: bool = False,
) -> Operation:
    """Grant ``pack`` to the account: a trial, a purchase or a complimentary lot.

    ``items`` (default: the order's quantity, else 1) multiplies the pack's
    quantity. ``owner`` makes the lot single-user: it then serves only the
    tickets that user opens; checkout passes the buyer for packs sold per
    user, and a pooled pack can have no owner.

    The lot is valid ``validity_months`` from ``now`` (never without one),
    except that a pack with ``topups_never_expire`` never expires once the
    account holds a purchase lot of that policy (the registration pack) that
    was not refunded in full.
    A pack with ``rollover_expired`` also grants again, once, the units of
    this owner's lots of that policy that expired unused, with the new
    lot's expiry. Then debts and pending overage requests of the balance are
    paid first from what it now holds.

    ``validity_months`` replaces the pack's validity when a quote agreed
    another (the order keeps it); ``complimentary`` grants a goodwill lot
    (source ``complimentary``: paid by nobody, never a registration).

    Returns the operation; ``.lot`` is the lot granted.
    """
    now = utc(now)
    if validity_months is not None:
        validity_months = _whole(validity_months, "validity_months", 1)
    months = validity_months if validity_months is not None else pack.validity_months
    if pack.unlimited or pack.quantity <= 0:
        raise LedgerError(f"pack {pack.slug} grants no units to count")
    if order is not None and (order.account_id != account.id or order.pack_id != pack.id):
        raise LedgerError(f"order #{order.id} is not for pack {pack.slug} on this account")
    items = _whole(items if items is not None else (order.quantity if order is not None else 1), "items", 1)
    if order is not None and items != order.quantity:
        raise LedgerError(f"order #{order.id} is for {order.quantity} item(s), not {items}")
    _check_user(owner, account.id, "owner")
    if owner is not None and pack.pooled:
        raise LedgerError(f"pack {pack.slug} is pooled: it serves every user and has no owner")
    policy, unit = pack.policy, pack.policy.unit
    quantity = pack.quantity * items

    def apply(op: Operation) -> None:
        # A purchase refunded in full (refunds, in one or several, of all it
        # granted) never registered anybody: the next pack is the registration again.
        revoked = (select(func.coalesce(-func.sum(Entry.quantity), 0))
                   .where(Entry.lot_id == Lot.id, Entry.kind == "refund").scalar_subquery())
        refunded_in_full = revoked == Lot.granted
        registered = session.scalar(
            select(func.count()).where(Lot.account_id == account.id, Lot.policy_id.in_(_versions_of(policy.slug)),
                                       Lot.source == "purchase", ~refunded_in_full)
        )
        if pack.topups_never_expire and registered:
            expires_at = None
        else:
            expires_at = add_months(now, months) if months else None
        source = "trial" if pack.kind == "trial" else "complimentary" if complimentary else "purchase"
        lot = _new_lot(session, op, account_id=account.id, policy_id=policy.id, unit=unit,
                       source=source, quantity=quantity,
                       expires_at=expires_at, now=now, pack=pack, order=order,
                       owner_id=owner.id if owner is not None else None)
        if pack.rollover_expired:
            _roll_over(session, op, lot, policy.slug, now)
        _settle(session, op, account.id, policy.id, unit, now)

    return _write(session, apply, key=key, kind="grant", now=now, account_id=account.id,
                  order_id=order.id if order is not None else None, by=by, note=note)


def _versions_of(policy_slug: str) -> Select[int]:
    """Every version of a policy (billing.catalogue.versions): a registration
    pack bought under the terms of last year still registers the account, and
    tickets expired under them still come back with a bundle of this year's."""
    return select(Policy.id).where(Policy.slug == policy_slug)


def _roll_over(session: Session, op: Operation, new: Lot, policy_slug: str, now: datetime) -> Lot | None:
    """Grant again the units that expired unused in lots of the same balance
    (any version of its policy, same unit) and owner (rollovers excluded:
    units come back once)."""
    same_owner = Lot.owner_id.is_(None) if new.owner_id is None else Lot.owner_id == new.owner_id
    lapsed = list(session.scalars(
        select(Lot)
        .where(Lot.account_id == new.account_id, Lot.policy_id.in_(_versions_of(policy_slug)),
               Lot.unit == new.unit, Lot.source != "rollover", Lot.expires_at <= now, same_owner)
        .order_by(Lot.id)
        .execution_options(populate_existing=True)
    ))
    if not lapsed:
        return None
    for lot in lapsed:
        if lot.remaining:
            _post(op, lot, "expire", -lot.remaining, _expiry(lot))
    expired = dict(session.execute(
        select(Entry.lot_id, -func.sum(Entry.quantity))
        .where(Entry.lot_id.in_([lot.id for lot in lapsed]), Entry.kind == "expire")
        .group_by(Entry.lot_id)
    ).all())
    back = {lot: expired.get(lot.id, 0) - lot.rolled_over for lot in lapsed}
    total = sum(back.values())
    if total <= 0:
        return None
    for lot, units_back in back.items():
        lot.rolled_over += units_back
    return _new_lot(session, op, account_id=new.account_id, policy_id=new.policy_id, unit=new.unit,
                    source="rollover", quantity=total, expires_at=new.expires_at, now=now, pack=new.pack,
                    owner_id=new.owner_id)


def _settle(session: Session, op: Operation, account_id: int, policy_id: int, unit: str, now: datetime) -> None:
    """Pay debts and pending overage requests of a balance, oldest first,
    from what it holds after a grant: "the next grant pays first"."""
    open_overages = session.scalars(
        select(Overage)
        .join(Overage.ticket)
        .where(Overage.account_id == account_id, Overage.status.in_(("pending", "debt")),
               Ticket.policy_id == policy_id, Ticket.unit == unit)
        .order_by(Overage.id)
        .execution_options(populate_existing=True)
    ).all()
    for overage in open_overages:
        lots = _lots_to_draw(session, _for_ticket(overage.ticket), overage.outstanding, now)
        _change(op, overage, now, settled=_take(op, lots, overage.outstanding, now, overage.ticket))
        if overage.outstanding == 0:
            overage.status = "purchased" if overage.status == "pending" else "paid"
        _reprice(overage)


# --- Charge ---------------------------------------------------------------

def charge_ticket_to(
    session: Session, ticket: Ticket, total_billable_minutes: int, *, by: User | None, key: str, now: datetime,
) -> Operation:
    """Set the ticket's billable time to ``total_billable_minutes`` and move
    its balance by ``units(total_after) - units(total_before)``: rounding
    applies once, to the ticket's total.

    More units: drawn from the lots the ticket may use, earliest expiry
    first, never-expiring last, then oldest; expired lots are never touched.
    Beyond the balance, per the policy's overage mode: ``block`` raises
    InsufficientBalance and writes nothing; ``ask`` draws what there is and
    records (or grows) a pending overage request for the rest; ``allow``
    draws what there is and records the rest as a debt.

    Fewer units (time corrected downwards): the ticket's most recent units
    go first. Units still owed (overage requests, debt) are reduced before
    any unit goes back to a lot; then units go back to the lots they were
    drawn from, the most recent draw first. A lot that has expired meanwhile
    takes its units back and loses them at once (an expiry written in the
    same transaction): the client gets nothing usable back, exactly as if
    the time had never been charged, since those units would have lapsed
    with the lot. They count as expired units of the lot, so a pack with
    ``rollover_expired`` brings them back like the rest.

    Inside a caller's unit of work it joins it (billing.desk.log_time writes
    the time entry and its charge in one).
    """
    now = utc(now)
    total = _whole(total_billable_minutes, "billable minutes", 0)

    def apply(op: Operation) -> None:
        current = session.get(Ticket, ticket.id, populate_existing=True)
        assert current is not None
        try:
            after = units(current.policy.rule(), total, current.kind).units
        except RuleError as error:
            raise LedgerError(str(error)) from None
        current.billable_minutes = total
        if current.subscription_id is not None:
            return  # the subscription covers it: nothing to draw, whatever the time
        delta = after - current.units_charged
        current.units_charged = after
        if delta == 0:
            return
        before = balance(session, current.account_id, current.policy_id, current.unit, now=now).net
        if delta > 0:
            _draw(session, op, current, delta, now)
        else:
            _give_back(session, op, current, -delta, now)
        session.flush()
        later = balance(session, current.account_id, current.policy_id, current.unit, now=now).net
        alerts.note_balance(session, op, current.account_id, current.policy_id, current.unit, before, later, now)

    return _write(session, apply, key=key, kind="charge", now=now, account_id=ticket.account_id,
                  ticket_id=ticket.id, by=by)


def _draw(session: Session, op: Operation, ticket: Ticket, wanted: int, now: datetime) -> None:
    lots = _lots_to_draw(session, _for_ticket(ticket), wanted, now)
    # All the usable lots when they hold less than wanted: then this is the balance.
    available = sum(lot.remaining for lot in lots)
    mode = ticket.policy.overage_mode
    if wanted > available and mode == "block":
        raise InsufficientBalance(wanted - available, ticket.unit, available)
    shortfall = wanted - _take(op, lots, min(wanted, available), now, ticket)
    if shortfall:
        _owe(session, op, ticket, shortfall, "pending" if mode == "ask" else "debt", now)


def _overages_of(session: Session, ticket: Ticket) -> list[Overage]:
    """The ticket's overages as stored now, oldest first."""
    return list(session.scalars(
        select(Overage).where(Overage.ticket_id == ticket.id).order_by(Overage.id)
        .execution_options(populate_existing=True)
    ))


def _owe(session: Session, op: Operation, ticket: Ticket, shortfall: int, status: str, now: datetime) -> None:
    """Grow the ticket's open request, or open one; record a new debt.

    A request is one question to the owner, however often it grows. Each
    charge that goes beyond the balance under ``allow`` records its own
    debt, dated by the charge: the statement tells what was owed at any
    moment from these rows."""
    overage = None if status == "debt" else next((o for o in _overages_of(session, ticket) if o.status == status), None)
    if overage is None:
        rate, currency = _overage_rate(session, ticket) if status == "pending" else (None, None)
        overage = Overage(account_id=ticket.account_id, ticket=ticket, status=status, units=0, settled=0,
                          hourly_rate=rate, currency=currency, created_at=now)
        session.add(overage)
    _change(op, overage, now, units=shortfall)
    _reprice(overage)
    if status == "pending":
        session.flush()
        event = Event(key=f"{op.key}:overage", kind="overage_requested", account_id=ticket.account_id,
                      policy_id=ticket.policy_id, unit=ticket.unit, overage_id=overage.id,
                      units=overage.outstanding, created_at=now, notified_at=now)
        session.add(event)
        # The owners decide: they are asked in the same transaction.
        outbox.enqueue(session, "overage_request", event.key, outbox.owners(session, ticket.account_id), now=now,
                       payload={"overage_id": overage.id, "ticket_id": ticket.id, "units": overage.outstanding},
                       account_id=ticket.account_id)


def _change(op: Operation, overage: Overage, now: datetime, *, units: int = 0, settled: int = 0) -> None:
    """Move an overage's units or settled and date the move: the only place
    either happens, so an overage always equals the sum of its changes."""
    if units == 0 and settled == 0:
        return
    overage.units += units
    overage.settled += settled
    _session_of(op).add(OverageChange(overage=overage, operation=op, status=overage.status, units=units,
                                         settled=settled, created_at=now))


def _overage_rate(session: Session, ticket: Ticket) -> tuple[int | None, str | None]:
    """The policy's overage rate, else the hourly rate of the last pack the
    account bought on this balance; None when the provider quotes."""
    policy = ticket.policy
    rate = policy.overage_hourly_rate
    if rate is None:
        rate = session.scalar(
            select(Pack.hourly_rate)
            .join(Lot, Lot.pack_id == Pack.id)
            .where(Lot.account_id == ticket.account_id, Lot.policy_id == ticket.policy_id,
                   Pack.hourly_rate.is_not(None))
            .order_by(Lot.created_at.desc(), Lot.id.desc())
            .limit(1)
        )
    return (rate, policy.catalogue.currency) if rate is not None else (None, None)


def _reprice(overage: Overage) -> None:
    """Price of the units still to bill, at the request's hourly rate; debts
    are paid in units, not money."""
    if overage.hourly_rate is None or overage.status in ("debt", "paid"):
        overage.price = None
        return
    minutes = overage.outstanding * overage.ticket.policy.unit_minutes
    overage.price = round_half_up(Fraction(overage.hourly_rate * minutes, 60))


def _give_back(session: Session, op: Operation, ticket: Ticket, amount: int, now: datetime) -> None:
    left = amount
    for overage in reversed(_overages_of(session, ticket)):
        cut = min(overage.outstanding, left) if overage.status in ("pending", "debt", "declined", "approved") else 0
        if cut == 0:
            continue
        _change(op, overage, now, units=-cut)
        left -= cut
        if overage.outstanding == 0 and overage.status in ("pending", "debt"):
            if not overage.settled:
                overage.status = "withdrawn"
            else:
                overage.status = "purchased" if overage.status == "pending" else "paid"
        _reprice(overage)
        if left == 0:
            return
    drawn = session.execute(
        select(Entry.lot_id, -func.sum(Entry.quantity))
        .where(Entry.ticket_id == ticket.id, Entry.kind == "consume")
        .group_by(Entry.lot_id)
        .order_by(func.max(case((Entry.quantity < 0, Entry.id))).desc())
    ).all()
    for lot_id, consumed in drawn:
        back = min(consumed, left)
        if back <= 0:
            continue
        lot = session.get(Lot, lot_id, populate_existing=True)
        assert lot is not None
        _post(op, lot, "consume", back, now, ticket)
        if lot.expires_at is not None and lot.expires_at <= now:
            _post(op, lot, "expire", -back, now)
        left -= back
        if left == 0:
            return
    raise LedgerError(f"ticket #{ticket.id} has {amount - left} unit(s) to give back, not {amount}: "
                      "its entries disagree with its charge (run `flask ledger verify`)")


# --- Overage answers ------------------------------------------------------

# Why an overage request cannot be answered again, by its status.
ANSWERED = {
    "approved": N_("This request was already approved."),
    "declined": N_("This request was already declined."),
}


def _decide(session: Session, overage: Overage, status: str, by: User, now: datetime) -> Overage:
    now = utc(now)
    if by is None or not by.is_owner or by.account_id != overage.account_id:
        raise NotAllowed("only the account's owner answers an overage request")
    with atomic(session):
        lock_accounts(session, [overage.account_id])
        current = session.get(Overage, overage.id, populate_existing=True)
        assert current is not None
        if current.status != status:
            if current.status != "pending":
                raise LedgerError(ANSWERED.get(current.status, N_("This request no longer waits for an answer.")))
            current.status = status
            current.decided_at = now
            current.decided_by_id = by.id
            _reprice(current)
    return current


def approve_overage(session: Session, overage: Overage, *, by: User, now: datetime) -> Overage:
    """The owner accepts that the units still asked for are billed at the
    request's hourly rate (``price``). They are not drawn from any lot and a
    later grant no longer covers them. The bill is not the ledger's: the
    owner approves through billing.orders.overage_bills.approve, which
    places it in the same unit of work. Approving twice is one answer."""
    return _decide(session, overage, "approved", by, now)


def decline_overage(session: Session, overage: Overage, *, by: User, now: datetime) -> Overage:
    """The owner refuses the overage: nothing beyond the balance is charged
    or billed for this ticket's request."""
    return _decide(session, overage, "declined", by, now)


# --- Refund, adjust, expire -----------------------------------------------

def refund(session: Session, lot: Lot, *, by: User | None, key: str, now: datetime, note: str = "",
           quantity: int | None = None) -> Operation:
    """Revoke what is unused of an unexpired lot (a refunded purchase), or
    ``quantity`` of it (a partial refund: billing.orders.refunds says how many).

    What tickets consumed from it stays consumed: the refund covers the
    unused units only, so their charges stand. Those units were paid for and
    not refunded: if a ticket's time is later corrected downwards, they come
    back to this lot and are usable again. ``by`` is staff, or None for a
    payment provider's refund.
    """
    now = utc(now)
    if by is not None and not by.is_admin:
        raise NotAllowed("only an admin refunds a lot")
    if quantity is not None:
        _whole(quantity, "quantity", 1)

    def apply(op: Operation) -> None:
        current = session.get(Lot, lot.id, populate_existing=True)
        assert current is not None
        if current.expires_at is not None and current.expires_at <= now:
            raise LedgerError(f"lot #{current.id} expired on {current.expires_at:%Y-%m-%d}: nothing to refund")
        if current.remaining == 0:
            raise LedgerError(f"lot #{current.id} has nothing left to refund")
        if quantity is not None and quantity > current.remaining:
            raise LedgerError(f"lot #{current.id} has only {current.remaining} unit(s) left to refund")
        _post(op, current, "refund", -(quantity or current.remaining), now)

    return _write(session, apply, key=key, kind="refund", now=now, account_id=lot.account_id, by=by, note=note)


def adjust(
    session: Session,
    account: Account,
    policy: Policy,
    quantity: int,
    *,
    reason: str,
    by: User,
    key: str,
    now: datetime,
    unit: str | None = None,
    owner: User | None = None,
    expires_at: datetime | None = None,
) -> Operation:
    """Staff add (a new ``adjustment`` lot, never expiring unless
    ``expires_at``) or remove (from the usable lots, in consumption order)
    units of a balance, with a reason the client sees on the statement."""
    now = utc(now)
    if by is None or not by.is_admin:
        raise NotAllowed("only an admin adjusts credit")
    reason = (reason or "").strip()
    if not reason:
        raise LedgerError("an adjustment needs a reason")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity == 0:
        raise LedgerError("an adjustment is a whole number of units, other than zero")
    _check_user(owner, account.id, "owner")
    unit = unit or policy.unit
    expires_at = utc(expires_at) if expires_at is not None else None
    if expires_at is not None and expires_at <= now:
        raise LedgerError("an adjustment cannot expire before it is made")

    def apply(op: Operation) -> None:
        before = balance(session, account.id, policy.id, unit, now=now).net
        if quantity > 0:
            _new_lot(session, op, account_id=account.id, policy_id=policy.id, unit=unit, source="adjustment",
                     quantity=quantity, expires_at=expires_at, now=now,
                     owner_id=owner.id if owner is not None else None)
            _settle(session, op, account.id, policy.id, unit, now)
            return
        of_balance = and_(Lot.account_id == account.id, Lot.policy_id == policy.id, Lot.unit == unit)
        lots = _lots_to_draw(session, of_balance, -quantity, now)
        available = sum(lot.remaining for lot in lots)
        if available < -quantity:
            raise LedgerError(f"only {available} {unit}(s) left to remove")
        _take(op, lots, -quantity, now, kind="adjust")
        session.flush()
        later = balance(session, account.id, policy.id, unit, now=now).net
        alerts.note_balance(session, op, account.id, policy.id, unit, before, later, now)

    return _write(session, apply, key=key, kind="adjust", now=now, account_id=account.id, by=by, note=reason)


def expire(session: Session, *, key: str, now: datetime, account_id: int | None = None) -> Operation:
    """Write an ``expire`` entry for each lot that has lapsed with units
    left, dated at the lot's expiry. Balances are right before this runs:
    reads and charges already ignore lapsed lots; this makes the entries
    (and the statements built from them) say so too."""
    now = utc(now)
    lapsed = and_(Lot.remaining > 0, Lot.expires_at <= now)
    if account_id is not None:
        lapsed = and_(lapsed, Lot.account_id == account_id)
    accounts = session.scalars(select(Lot.account_id).where(lapsed).distinct()).all()

    def apply(op: Operation) -> None:
        gone: dict[tuple[int, int, str], int] = {}
        for lot in session.scalars(
            select(Lot).where(lapsed, Lot.account_id.in_(accounts)).order_by(Lot.id)
            .execution_options(populate_existing=True)
        ):
            if lot.remaining > 0:
                balance_of = (lot.account_id, lot.policy_id, lot.unit)
                gone[balance_of] = gone.get(balance_of, 0) + lot.remaining
                _post(op, lot, "expire", -lot.remaining, _expiry(lot))
        # Time took these units, not a charge: a balance it took below its
        # threshold is warned about here, once, as a charge would be.
        for (account_id, policy_id, unit), lost in gone.items():
            left = balance(session, account_id, policy_id, unit, now=now).net
            alerts.note_balance(session, op, account_id, policy_id, unit, left + lost, left, now,
                                scope=f"{account_id}:{policy_id}:{unit}")

    return _write(session, apply, key=key, kind="expire", now=now, account_id=account_id, lock=accounts)


# --- Tickets --------------------------------------------------------------

def open_ticket(
    session: Session,
    account: Account,
    user: User,
    subject: str,
    *,
    now: datetime,
    kind: str | None = None,
    policy: Policy | None = None,
    unit: str | None = None,
    subscription: Subscription | None = None,
) -> Ticket:
    """Open a ticket drawing from ``policy`` (default: the balance of this
    user that expires first), or covered by ``subscription`` (its pack's
    policy gives the request kinds; nothing is ever drawn). The ticket desk
    builds on this: in its unit of work the ticket is flushed, and committed
    with its first message."""
    now = utc(now)
    _check_user(user, account.id, "user")
    subject = single_line(subject)
    if not subject or len(subject) > 200:
        raise LedgerError("a ticket needs a subject of 1 to 200 characters")
    with atomic(session):
        try:
            if subscription is not None:
                policy, unit = subscription.pack.policy, subscription.pack.unit
            elif policy is None:
                policy_id, unit = default_balance(session, account.id, user.id, now=now)
                policy = session.get(Policy, policy_id)
                assert policy is not None
            policy.rule().kind(kind)
        except RuleError as error:
            raise LedgerError(str(error)) from None
        ticket = Ticket(account_id=account.id, opened_by_id=user.id, policy_id=policy.id, unit=unit or policy.unit,
                        kind=kind or policy.default_kind, subject=subject, created_at=now,
                        subscription_id=subscription.id if subscription is not None else None)
        session.add(ticket)
        session.flush()
    return ticket

