"""Credit adjustments by an admin: units added to or removed from one
balance of an account (a policy and a unit), with a reason the client reads
on the statement, and the audit entry, in one unit of work.

billing.ledger.adjust moves the units (a new never-expiring ``adjustment``
lot to add; ``adjust`` entries on the usable lots, in consumption order, to
remove). This service checks what a person may type and says why it
refuses in their language: a removal never takes more than the balance
holds now, so what tickets consumed stays consumed and no lot goes below
zero (invariant 1). It reads the balance under the account's lock, so two
admins adjusting at once both count, exactly (invariant 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit
from billing.accounts.models import Account, User
from billing.catalogue.models import Policy
from billing.clock import utc
from billing.errors import N_
from billing.ledger import services as ledger
from billing.ledger.models import Lot, Operation
from billing.text import single_line
from billing.transaction import atomic

MAX_REASON = 300
# A typo of a few zeros should not pass: a million units is no adjustment.
MAX_UNITS = 1_000_000
KEY_PREFIX = "adjust:"


class AdjustmentError(ledger.LedgerError):
    """A refused adjustment: ``message`` is a gettext id, ``field`` the form field to blame."""


class BeyondBalance(AdjustmentError):
    """A removal of more units than the balance holds now."""

    def __init__(self, wanted: int, available: int, unit: str) -> None:
        super().__init__(N_("Only %(available)d can be removed: what the balance holds now. Units already consumed "
                            "stay consumed."), "quantity", available=available)
        self.wanted = wanted
        self.available = available
        self.unit = unit


@dataclass(frozen=True)
class Adjustment:
    operation: Operation
    policy: Policy
    unit: str
    quantity: int
    before: int
    after: int
    # The same form sent again: the first adjustment stands, nothing was written.
    duplicate: bool = False


def adjustable(session: Session, account: Account, *, now: datetime) -> list[tuple[Policy, str, ledger.Balance]]:
    """The balances an admin may adjust: every (policy, unit) the account
    ever held lots of, with what each holds now, the one expiring first first."""
    held = {(b.policy_id, b.unit): b for b in ledger.balances(session, account.id, now=now)}
    found = session.execute(select(Lot.policy_id, Lot.unit).where(Lot.account_id == account.id).distinct()).all()
    policies = {p.id: p for p in session.scalars(select(Policy).where(Policy.id.in_({row[0] for row in found})))}
    rows = [(policies[policy_id], unit, held.get((policy_id, unit), ledger.Balance(policy_id, unit, 0, 0, None)))
            for policy_id, unit in found]
    order = list(held)
    return sorted(rows, key=lambda row: (order.index((row[0].id, row[1])) if (row[0].id, row[1]) in held
                                         else len(order), row[0].id, row[1]))


def check_reason(reason: str) -> str:
    reason = single_line(reason or "")
    if not reason:
        raise AdjustmentError(N_("Give the reason: the client reads it on the statement."), "reason")
    if len(reason) > MAX_REASON:
        raise AdjustmentError(N_("A reason has at most %(max)d characters."), "reason", max=MAX_REASON)
    return reason


def check_quantity(quantity: object) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= abs(quantity) <= MAX_UNITS:
        raise AdjustmentError(N_("Enter a whole number of units, from 1 to %(max)d."), "quantity", max=MAX_UNITS)
    return quantity


def adjust_credit(session: Session, account: Account, policy: Policy, unit: str, quantity: int, reason: str, *,
                  by: User, key: str, now: datetime, owner: User | None = None) -> Adjustment:
    """Add (``quantity`` > 0) or remove units of the account's balance
    ``policy``/``unit``, with ``reason``; admins only. Units added serve
    every user of the account, or only ``owner`` (a lot of their own);
    units removed come from the balance as a whole. ``key`` (the form's
    one-time token) makes the same form sent twice one adjustment."""
    now = utc(now)
    if by is None or by.removed_at is not None or not by.is_staff or not by.is_admin:
        raise ledger.NotAllowed("only an admin adjusts credit")
    reason = check_reason(reason)
    quantity = check_quantity(quantity)
    if not isinstance(key, str) or not key.strip() or len(key) > ledger.MAX_KEY_LENGTH - len(KEY_PREFIX):
        raise AdjustmentError(N_("This form has expired: check it and send it again."), "quantity")
    ledger_key = f"{KEY_PREFIX}{key}"
    if owner is not None and (owner.account_id != account.id or owner.removed_at is not None):
        raise AdjustmentError(N_("Choose a person of this account."), "owner")
    if owner is not None and quantity < 0:
        raise AdjustmentError(N_("Units are removed from the balance as a whole: choose everybody."), "owner")
    with atomic(session):
        ledger.lock_accounts(session, [account.id])
        if session.scalar(select(Lot.id).where(Lot.account_id == account.id, Lot.policy_id == policy.id,
                                               Lot.unit == unit).limit(1)) is None:
            raise AdjustmentError(N_("Choose a balance of this account."), "balance")
        done = session.scalar(select(Operation).where(Operation.key == ledger_key))
        held = ledger.balance(session, account.id, policy.id, unit, now=now)
        if done is not None:
            if done.account_id != account.id or done.kind != "adjust":
                raise AdjustmentError(N_("This form has expired: check it and send it again."), "quantity")
            return Adjustment(done, policy, unit, quantity, held.net, held.net, duplicate=True)
        if quantity < 0 and -quantity > held.units:
            raise BeyondBalance(-quantity, held.units, unit)
        operation = ledger.adjust(session, account, policy, quantity, reason=reason, by=by, key=ledger_key, now=now,
                                  unit=unit, owner=owner)
        after = ledger.balance(session, account.id, policy.id, unit, now=now)
        audit.record(by, "credit.adjust", "account", account.id,
                     before={"policy": policy.slug, "unit": unit, "balance": held.net},
                     after={"policy": policy.slug, "unit": unit, "balance": after.net, "quantity": quantity,
                            "reason": reason, **({"owner": owner.email} if owner is not None else {})},
                     session=session)
    return Adjustment(operation, policy, unit, quantity, held.net, after.net)
