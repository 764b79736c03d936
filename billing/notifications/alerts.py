"""Low-balance and expiry warnings: pure computations, and the events that
queue their messages (billing.notifications.outbox) in the same transaction. Nothing here
sends anything.

(Not ``warnings.py``: that name belongs to the standard library.)

Each event has a key that makes it happen once: a low-balance event per
crossing of the threshold (keyed by the operation that crossed it), an
expiry warning per lot.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing.accounts.models import Account, User
from billing.catalogue.models import DEFAULT_LOW_BALANCE_PERCENT, Policy
from billing.clock import utc
from billing.errors import BillingError
from billing.ledger.models import BalanceThreshold, Event, Lot, Operation
from billing.notifications import outbox
from billing.transaction import atomic

# The default threshold of a policy that says nothing (Policy.low_balance_percent):
# this share of the last pack granted on the balance.
DEFAULT_THRESHOLD_PERCENT = DEFAULT_LOW_BALANCE_PERCENT


class AlertError(BillingError):
    """A threshold the caller may not set, or cannot have; the message is for the user."""


def default_threshold(last_granted: int | None, percent: int = DEFAULT_THRESHOLD_PERCENT) -> int:
    """``percent`` of the last grant, rounded down: 36 credits → 7."""
    return (last_granted or 0) * percent // 100


def crossed_below(before: int, after: int, threshold: int) -> bool:
    """True once per crossing: the balance was at or above the threshold and
    is now below it. A grant that lifts it back above re-arms the warning."""
    return threshold > 0 and before >= threshold > after


def expires_within(expires_at: datetime | None, now: datetime, days: int) -> bool:
    return expires_at is not None and now < expires_at <= now + timedelta(days=days)


def threshold_for(session: Session, account_id: int, policy_id: int, unit: str) -> int:
    """The account's own threshold for this balance, else the default: the
    policy's ``low_balance_percent`` of its last purchase lot. A balance
    whose last lot is the free trial has none (0): a trial is meant to run
    out, and warning of it "Low balance" after every ticket says nothing."""
    own = session.scalar(
        select(BalanceThreshold.units).where(
            BalanceThreshold.account_id == account_id,
            BalanceThreshold.policy_id == policy_id,
            BalanceThreshold.unit == unit,
        )
    )
    if own is not None:
        return own
    last = session.execute(
        select(Lot.granted, Lot.source)
        .where(Lot.account_id == account_id, Lot.policy_id == policy_id, Lot.unit == unit,
               Lot.source.in_(("purchase", "trial")))
        .order_by(Lot.created_at.desc(), Lot.id.desc())
        .limit(1)
    ).first()
    if last is None or last.source == "trial":
        return 0
    percent = session.scalar(select(Policy.low_balance_percent).where(Policy.id == policy_id))
    return default_threshold(last.granted, DEFAULT_THRESHOLD_PERCENT if percent is None else percent)


def set_threshold(session: Session, account: Account, policy: Policy, units: int, *, by: User,
                  unit: str | None = None) -> BalanceThreshold:
    """The account's owner (or staff) sets the low-balance threshold of a balance; 0 turns it off."""
    if not (by.is_staff or (by.is_owner and by.account_id == account.id)):
        raise AlertError("only the account's owner or staff set its warnings")
    if isinstance(units, bool) or not isinstance(units, int) or units < 0:
        raise AlertError("a threshold is a whole number of units, zero or more")
    unit = unit or policy.unit
    with atomic(session):
        row = session.scalar(select(BalanceThreshold).where(
            BalanceThreshold.account_id == account.id, BalanceThreshold.policy_id == policy.id,
            BalanceThreshold.unit == unit))
        if row is None:
            row = BalanceThreshold(account_id=account.id, policy_id=policy.id, unit=unit)
            session.add(row)
        row.units = units
    return row


def note_balance(session: Session, op: Operation, account_id: int, policy_id: int, unit: str,
                 before: int, after: int, now: datetime, *, scope: str = "") -> Event | None:
    """Record a low-balance event when ``op`` took the balance below its
    threshold, and queue its message; part of the caller's transaction.
    ``scope`` tells apart the balances of an operation that moves several."""
    threshold = threshold_for(session, account_id, policy_id, unit)
    if not crossed_below(before, after, threshold):
        return None
    event = Event(key=f"{op.key}:low" + (f":{scope}" if scope else ""), kind="low_balance", account_id=account_id,
                  policy_id=policy_id, unit=unit, units=after, threshold=threshold, created_at=now, notified_at=now)
    session.add(event)
    outbox.enqueue(session, "low_balance", event.key, outbox.members(session, account_id), now=now,
                   payload={"policy_id": policy_id, "unit": unit, "units": after, "threshold": threshold},
                   account_id=account_id)
    return event


def warn_expiring(session: Session, *, now: datetime, days: int) -> int:
    """Record an ``expiring`` event for each lot with units left that
    expires within ``days``, and queue its message to the account's users
    (or the lot's owner, for a single-user lot), once per lot however often
    this runs; one unit of work. Returns how many events are new."""
    now = utc(now)
    lots = session.execute(
        select(Lot.id, Lot.account_id, Lot.policy_id, Lot.unit, Lot.remaining, Lot.expires_at, Lot.owner_id).where(
            Lot.remaining > 0, Lot.expires_at > now, Lot.expires_at <= now + timedelta(days=days),
            Lot.id.not_in(select(Event.lot_id).where(Event.kind == "expiring", Event.lot_id.is_not(None))),
        )
    ).all()
    if not lots:
        return 0
    rows = [
        dict(key=f"expiring:{lot.id}", kind="expiring", account_id=lot.account_id, policy_id=lot.policy_id,
             unit=lot.unit, lot_id=lot.id, units=lot.remaining, due_at=lot.expires_at, created_at=now,
             notified_at=now)
        for lot in lots
    ]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    with atomic(session):
        # Concurrent runs may race for the same lot: the key decides, quietly,
        # and only the run whose event is new queues the messages.
        new = set(session.execute(dialect.insert(Event).values(rows).on_conflict_do_nothing(index_elements=["key"])
                                  .returning(Event.lot_id)).scalars())
        for lot in lots:
            if lot.id not in new:
                continue
            people = ([session.get_one(User, lot.owner_id)] if lot.owner_id is not None
                      else outbox.members(session, lot.account_id))
            outbox.enqueue(session, "expiring", f"expiring:{lot.id}", people, now=now, account_id=lot.account_id,
                           payload={"lot_id": lot.id, "unit": lot.unit, "units": lot.remaining,
                                    "due_at": lot.expires_at.isoformat()})
    return len(new)
