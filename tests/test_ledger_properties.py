"""Random sequences of grants, charges, corrections, refunds, adjustments,
expiry runs, overage answers, replays and clock jumps, checked after every
step against a small model of the ledger written independently of it, and
against `flask ledger verify` (invariants 1 to 6).

The model knows only the rules: lots are drawn by earliest expiry (never
last), then oldest; expired lots are never drawn; corrections give back the
most recent units first (what is still owed, then the latest draws); grants
pay what is owed first. For every lot it predicts the units nobody consumed
or revoked: the database's remaining, plus what the expiry job wrote off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from billing import ledger
from billing.clock import add_months
from billing.ledger_models import Entry, Lot
from billing.models import Pack
from billing.rules import units
from billing.verify import verify
from common.extensions import db
from hypothesis.stateful import run_state_machine_as_test
from ledger_support import NOW, key, new_client, pack, staff

# Each setting: the packs sold and the overage mode it runs under.
SETTINGS = {
    "digitale-ask": (["digitale-3h", "digitale-5h", "digitale-10h"], "ask"),
    "innova-allow": (["innova-15", "innova-30", "innova-60"], "allow"),
    "itsupport-block-rollover": (["itsupport-ticket-1", "itsupport-tickets-20"], "block"),
}


@dataclass
class Owed:
    ticket: int
    status: str
    units: int
    settled: int = 0

    @property
    def outstanding(self) -> int:
        return self.units - self.settled


@dataclass
class ModelLot:
    id: int
    expires_at: datetime | None
    created_at: datetime
    source: str
    # Units neither consumed nor revoked: lapsing does not change them.
    left: int
    rolled: int = 0
    # Refunded before anything was consumed: a registration that never was.
    refunded_whole: bool = False

    def usable(self, now: datetime) -> bool:
        return self.left > 0 and (self.expires_at is None or self.expires_at > now)

    @property
    def order(self) -> tuple:
        return (self.expires_at is None, self.expires_at or self.created_at, self.created_at, self.id)


@dataclass
class Model:
    mode: str
    lots: dict[int, ModelLot] = field(default_factory=dict)
    charged: dict[int, int] = field(default_factory=dict)
    # ticket -> lot -> (units drawn net, when last drawn)
    draws: dict[int, dict[int, list[int]]] = field(default_factory=dict)
    owed: list[Owed] = field(default_factory=list)
    clock: int = 0

    def usable(self, now: datetime) -> list[ModelLot]:
        return sorted((lot for lot in self.lots.values() if lot.usable(now)), key=lambda lot: lot.order)

    def draw(self, ticket: int, wanted: int, now: datetime) -> int:
        left = wanted
        for lot in self.usable(now):
            take = min(lot.left, left)
            if take:
                lot.left -= take
                self.clock += 1
                entry = self.draws[ticket].setdefault(lot.id, [0, 0])
                entry[0] += take
                entry[1] = self.clock
                left -= take
        return wanted - left

    def settle(self, now: datetime) -> None:
        for owed in self.owed:
            if owed.status in ("pending", "debt"):
                owed.settled += self.draw(owed.ticket, owed.outstanding, now)
                if owed.outstanding == 0:
                    owed.status = "purchased" if owed.status == "pending" else "paid"

    def give_back(self, ticket: int, amount: int) -> None:
        for owed in reversed(self.owed):
            if owed.ticket != ticket or owed.status not in ("pending", "debt", "declined", "approved"):
                continue
            cut = min(owed.outstanding, amount)
            owed.units -= cut
            amount -= cut
            if owed.outstanding == 0 and owed.status in ("pending", "debt"):
                owed.status = ("purchased" if owed.status == "pending" else "paid") if owed.settled else "withdrawn"
        for lot_id, entry in sorted(self.draws[ticket].items(), key=lambda item: -item[1][1]):
            back = min(entry[0], amount)
            entry[0] -= back
            self.lots[lot_id].left += back
            amount -= back
        assert amount == 0


def machine(app, setting: str):
    slugs, mode = SETTINGS[setting]

    class Ledger(RuleBasedStateMachine):
        @initialize()
        def start(self):
            self.session = db.session
            self.account, self.owner = new_client(self.session)
            self.clerk = staff(self.session)
            self.packs = [pack(self.session, slug) for slug in slugs]
            self.policy = self.packs[0].policy
            self.policy.overage_mode = mode
            self.session.commit()
            self.now = NOW
            self.model = Model(mode)
            self.tickets = []
            self.charges: list[tuple[str, int, int]] = []
            self.grant(0, 1)
            self.open_ticket(0)

        # --- steps ---

        # Buying while the balance is still high would leave overages rare.
        @precondition(lambda self: sum(lot.left for lot in self.model.usable(self.now)) < 200)
        @rule(which=st.integers(0, 2), items=st.integers(1, 2))
        def grant(self, which, items):
            chosen: Pack = self.packs[which % len(self.packs)]
            op = ledger.grant(self.session, self.account, chosen, key=key("grant"), now=self.now, items=items)
            lot = op.lot
            registered = any(l.source == "purchase" and not l.refunded_whole for l in self.model.lots.values())
            expected = None if (chosen.topups_never_expire and registered) else (
                add_months(self.now, chosen.validity_months) if chosen.validity_months else None)
            assert lot.expires_at == expected and lot.granted == chosen.quantity * items
            self.model.lots[lot.id] = ModelLot(lot.id, expected, self.now, "purchase", lot.granted)
            if chosen.rollover_expired:
                back = 0
                for old in self.model.lots.values():
                    if old.source != "rollover" and old.expires_at is not None and old.expires_at <= self.now:
                        back += old.left - old.rolled
                        old.rolled = old.left
                rollover = self.session.scalar(
                    select(Lot).join(Entry, Entry.lot_id == Lot.id)
                    .where(Entry.operation_id == op.id, Lot.source == "rollover"))
                assert (rollover.granted if rollover else 0) == back
                if rollover:
                    self.model.lots[rollover.id] = ModelLot(rollover.id, expected, self.now, "rollover", back)
            self.model.settle(self.now)

        @rule(kind_index=st.integers(0, 3))
        def open_ticket(self, kind_index):
            kinds = [kind.slug for kind in self.policy.kinds if kind.billable] or [None]
            opened = ledger.open_ticket(self.session, self.account, self.owner, "Help", now=self.now,
                                        kind=kinds[kind_index % len(kinds)], policy=self.policy)
            self.tickets.append(opened)
            self.model.charged[opened.id] = 0
            self.model.draws[opened.id] = {}

        @rule(which=st.integers(0, 10), minutes=st.integers(0, 400))
        def set_time(self, which, minutes):
            self.charge(self.tickets[which % len(self.tickets)], minutes)

        @rule(which=st.integers(0, 10), minutes=st.integers(1, 120))
        def add_time(self, which, minutes):
            work = self.tickets[which % len(self.tickets)]
            self.charge(work, work.billable_minutes + minutes)

        @rule(which=st.integers(0, 10), minutes=st.integers(1, 120))
        def correct_time(self, which, minutes):
            work = self.tickets[which % len(self.tickets)]
            self.charge(work, max(0, work.billable_minutes - minutes))

        def charge(self, work, minutes):
            after = units(self.policy.rule(), minutes, work.kind).units
            delta = after - self.model.charged[work.id]
            available = sum(lot.left for lot in self.model.usable(self.now))
            charge_key = key("charge")
            if delta > available and self.model.mode == "block":
                with pytest.raises(ledger.InsufficientBalance) as refused:
                    ledger.charge_ticket_to(self.session, work, minutes, by=self.clerk, key=charge_key, now=self.now)
                assert refused.value.missing == delta - available
                return
            ledger.charge_ticket_to(self.session, work, minutes, by=self.clerk, key=charge_key, now=self.now)
            self.charges.append((charge_key, work.id, minutes))
            if delta > 0:
                shortfall = delta - self.model.draw(work.id, delta, self.now)
                if shortfall:
                    status = "pending" if self.model.mode == "ask" else "debt"
                    # A request grows; each charge beyond the balance is a debt of its own.
                    open_one = None if status == "debt" else next(
                        (o for o in self.model.owed if o.ticket == work.id and o.status == status), None)
                    if open_one is None:
                        open_one = Owed(work.id, status, 0)
                        self.model.owed.append(open_one)
                    open_one.units += shortfall
            elif delta < 0:
                self.model.give_back(work.id, -delta)
            self.model.charged[work.id] = after

        @precondition(lambda self: self.charges)
        @rule(which=st.integers(0, 50), minutes=st.integers(0, 400))
        def replay(self, which, minutes):
            """A retry with an old key changes nothing, whatever it carries."""
            old_key, ticket_id, _ = self.charges[which % len(self.charges)]
            work = next(t for t in self.tickets if t.id == ticket_id)
            entries = self.session.scalar(select(func.count()).select_from(Entry))
            ledger.charge_ticket_to(self.session, work, minutes, by=self.clerk, key=old_key, now=self.now)
            assert self.session.scalar(select(func.count()).select_from(Entry)) == entries

        @rule(which=st.integers(0, 20))
        def refund(self, which):
            if not self.model.lots:
                return
            lot = sorted(self.model.lots.values(), key=lambda l: l.id)[which % len(self.model.lots)]
            stored = self.session.get(Lot, lot.id)
            if not lot.usable(self.now):
                with pytest.raises(ledger.LedgerError):
                    ledger.refund(self.session, stored, by=self.clerk, key=key("refund"), now=self.now)
                return
            ledger.refund(self.session, stored, by=self.clerk, key=key("refund"), now=self.now)
            lot.refunded_whole = lot.left == stored.granted
            lot.left = 0

        @rule(quantity=st.integers(-40, 40).filter(bool))
        def adjust(self, quantity):
            available = sum(lot.left for lot in self.model.usable(self.now))
            if quantity < 0 and available < -quantity:
                with pytest.raises(ledger.LedgerError, match="left to remove"):
                    ledger.adjust(self.session, self.account, self.policy, quantity, reason="test",
                                  by=self.clerk, key=key("adjust"), now=self.now)
                return
            op = ledger.adjust(self.session, self.account, self.policy, quantity, reason="test",
                               by=self.clerk, key=key("adjust"), now=self.now)
            if quantity > 0:
                self.model.lots[op.lot.id] = ModelLot(op.lot.id, None, self.now, "adjustment", quantity)
                self.model.settle(self.now)
            else:
                left = -quantity
                for lot in self.model.usable(self.now):
                    take = min(lot.left, left)
                    lot.left -= take
                    left -= take

        @rule()
        def expire(self):
            ledger.expire(self.session, key=key("expire"), now=self.now)

        @rule(days=st.sampled_from([0, 1, 30, 95, 190, 370]))
        def time_passes(self, days):
            self.now += timedelta(days=days, minutes=1)

        @precondition(lambda self: any(o.status == "pending" for o in self.model.owed))
        @rule(approve=st.booleans())
        def answer(self, approve):
            owed = next(o for o in self.model.owed if o.status == "pending")
            work = next(t for t in self.tickets if t.id == owed.ticket)
            request = next(o for o in work.overages if o.status == "pending")
            answer = ledger.approve_overage if approve else ledger.decline_overage
            answer(self.session, request, by=self.owner, now=self.now)
            owed.status = "approved" if approve else "declined"

        # --- checks after every step ---

        @invariant()
        def lots_as_the_model_says(self):
            if not hasattr(self, "model"):
                return
            written_off = dict(self.session.execute(
                select(Entry.lot_id, -func.sum(Entry.quantity))
                .where(Entry.account_id == self.account.id, Entry.kind == "expire").group_by(Entry.lot_id)
            ).all())
            stored = {lot.id: lot for lot in self.session.scalars(
                select(Lot).where(Lot.account_id == self.account.id).execution_options(populate_existing=True))}
            assert {i: lot.remaining + written_off.get(i, 0) for i, lot in stored.items()} == {
                i: lot.left for i, lot in self.model.lots.items()}
            for lot in stored.values():
                if lot.expires_at is not None and lot.expires_at <= self.now:
                    continue
                assert lot.remaining == self.model.lots[lot.id].left
            usable = sum(lot.left for lot in self.model.usable(self.now))
            debt = sum(o.outstanding for o in self.model.owed if o.status == "debt")
            held = ledger.balance(self.session, self.account.id, self.policy.id, self.policy.unit, now=self.now)
            assert (held.units, held.debt) == (usable, debt)

        @invariant()
        def tickets_and_overages_as_the_model_says(self):
            if not hasattr(self, "model"):
                return
            for work in self.tickets:
                self.session.refresh(work)
                assert work.units_charged == self.model.charged[work.id]
                stored = sorted((o.status, o.units, o.settled) for o in work.overages)
                expected = sorted((o.status, o.units, o.settled) for o in self.model.owed if o.ticket == work.id)
                assert stored == expected

        @invariant()
        def verify_finds_nothing(self):
            if hasattr(self, "account"):
                assert verify(self.session, self.account.id).breaches == []

    return Ledger


def run(app, setting: str, examples: int) -> None:
    with app.app_context():
        run_state_machine_as_test(
            machine(app, setting),
            settings=settings(max_examples=examples, stateful_step_count=25, deadline=None,
                              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]),
        )
        db.session.remove()


@pytest.mark.parametrize("setting", SETTINGS)
def test_random_sequences_keep_the_invariants(app, setting):
    run(app, setting, examples=15)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("setting", SETTINGS)
def test_random_sequences_keep_the_invariants_on_postgresql(app, setting):
    run(app, setting, examples=5)
