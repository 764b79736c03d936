"""Random sequences of grants, charges, corrections, refunds, adjustments,
expiry runs, overage answers, replays and clock jumps on an account with an
owner and a member and two balances (two policies, each with its own
overage mode), checked after every step against a small model of the ledger
written independently of it, and against `flask ledger verify` (invariants 1
to 6).

The model knows only the rules: a ticket draws from the lots of its balance
that serve its opener (pooled ones and the opener's own), by earliest expiry
(never last), then oldest; expired lots are never drawn; corrections give
back the most recent units first (what is still owed, then the latest
draws); grants pay what is owed on their balance first; a staff removal
takes from every lot of the balance, whoever it serves. For every lot it
predicts the units nobody consumed or revoked: the database's remaining,
plus what the expiry job wrote off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from ledger_support import NOW, key, new_client, pack, person, staff
from sqlalchemy import func, select

from billing.catalogue.models import Pack
from billing.clock import add_months
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.ledger.models import Entry, Lot, Overage, OverageChange
from billing.ledger.rules import units
from billing.ledger.verify import verify
from billing.orders import overage_bills
from common.extensions import db

# Each setting: two balances, each the packs sold on it and the overage mode
# it runs under. Minutes (Digitale), credits by blocks of 15 with minimums
# (Innova), credits by blocks of 10 (Too Pixel), tickets that roll over
# (IT support, one pack pooled) and IT support's hourly minutes.
SETTINGS = {
    "minutes-ask+tickets-block": ((["digitale-3h", "digitale-5h", "digitale-10h"], "ask"),
                                  (["itsupport-ticket-1", "itsupport-tickets-20", "itsupport-team-tickets"], "block")),
    "blocks-allow+tickets-ask": ((["innova-15", "innova-30", "innova-60"], "allow"),
                                 (["itsupport-ticket-1", "itsupport-tickets-20"], "ask")),
    "credits-block+minutes-allow": ((["toopixel-36", "toopixel-72"], "block"), (["itsupport-hour"], "allow")),
}
# A balance holding this much gets no more grants: overages would be rare.
PLENTY = 200


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
    balance: int  # which of the setting's two
    owner: int | None  # the only user it serves; None: pooled
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

    def serves(self, user: int | None) -> bool:
        return user is None or self.owner is None or self.owner == user

    @property
    def order(self) -> tuple:
        return (self.expires_at is None, self.expires_at or self.created_at, self.created_at, self.id)


@dataclass
class Model:
    lots: dict[int, ModelLot] = field(default_factory=dict)
    # ticket -> (balance, opener)
    tickets: dict[int, tuple[int, int]] = field(default_factory=dict)
    charged: dict[int, int] = field(default_factory=dict)
    # ticket -> lot -> (units drawn net, when last drawn)
    draws: dict[int, dict[int, list[int]]] = field(default_factory=dict)
    owed: list[Owed] = field(default_factory=list)
    clock: int = 0

    def usable(self, now: datetime, balance: int, user: int | None = None) -> list[ModelLot]:
        """The balance's usable lots in consumption order: those serving
        ``user``, or all of them."""
        return sorted((lot for lot in self.lots.values()
                       if lot.balance == balance and lot.usable(now) and lot.serves(user)), key=lambda lot: lot.order)

    def held(self, now: datetime, balance: int, user: int | None = None) -> int:
        return sum(lot.left for lot in self.usable(now, balance, user))

    def debt(self, balance: int) -> int:
        return sum(o.outstanding for o in self.owed if o.status == "debt" and self.tickets[o.ticket][0] == balance)

    def draw(self, ticket: int, wanted: int, now: datetime) -> int:
        left = wanted
        for lot in self.usable(now, *self.tickets[ticket]):
            take = min(lot.left, left)
            if take:
                lot.left -= take
                self.clock += 1
                entry = self.draws[ticket].setdefault(lot.id, [0, 0])
                entry[0] += take
                entry[1] = self.clock
                left -= take
        return wanted - left

    def settle(self, balance: int, now: datetime) -> None:
        for owed in self.owed:
            if owed.status in ("pending", "debt") and self.tickets[owed.ticket][0] == balance:
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
    sold = SETTINGS[setting]

    class Ledger(RuleBasedStateMachine):
        @initialize()
        def start(self):
            self.session = db.session
            self.account, self.owner = new_client(self.session)
            self.member = person(self.session, self.account, role="member")
            self.clerk = staff(self.session)
            self.packs = [[pack(self.session, slug) for slug in slugs] for slugs, _ in sold]
            self.policies = [packs[0].policy for packs in self.packs]
            self.modes = [mode for _, mode in sold]
            for policy, mode in zip(self.policies, self.modes, strict=True):
                policy.overage_mode = mode
            self.session.commit()
            # Whom a lot serves: everybody, the owner only, the member only.
            self.owners = [None, self.owner, self.member]
            self.now = NOW
            self.model = Model()
            self.tickets = []
            self.charges: list[tuple[str, int, int]] = []
            for balance in (0, 1):
                self.grant(balance, 0, 1, 0)
            self.open_ticket(0, 0, 0)

        # --- steps ---

        @rule(balance=st.integers(0, 1), which=st.integers(0, 2), items=st.integers(1, 2), owner=st.integers(0, 2))
        def grant(self, balance, which, items, owner):
            if self.model.held(self.now, balance) >= PLENTY:
                return
            chosen: Pack = self.packs[balance][which % len(self.packs[balance])]
            user = None if chosen.pooled else self.owners[owner]
            owner_id = user.id if user is not None else None
            op = ledger.grant(self.session, self.account, chosen, key=key("grant"), now=self.now, items=items,
                              owner=user)
            lot = op.lot
            registered = any(known.balance == balance and known.source == "purchase" and not known.refunded_whole
                             for known in self.model.lots.values())
            expected = None if (chosen.topups_never_expire and registered) else (
                add_months(self.now, chosen.validity_months) if chosen.validity_months else None)
            assert lot.expires_at == expected and lot.granted == chosen.quantity * items
            assert lot.owner_id == owner_id
            self.model.lots[lot.id] = ModelLot(lot.id, balance, owner_id, expected, self.now, "purchase", lot.granted)
            if chosen.rollover_expired:
                back = 0
                for old in self.model.lots.values():
                    if (old.balance == balance and old.owner == owner_id and old.source != "rollover"
                            and old.expires_at is not None and old.expires_at <= self.now):
                        back += old.left - old.rolled
                        old.rolled = old.left
                rollover = self.session.scalar(
                    select(Lot).join(Entry, Entry.lot_id == Lot.id)
                    .where(Entry.operation_id == op.id, Lot.source == "rollover"))
                assert (rollover.granted if rollover else 0) == back
                if rollover:
                    assert rollover.owner_id == owner_id
                    self.model.lots[rollover.id] = ModelLot(rollover.id, balance, owner_id, expected, self.now,
                                                            "rollover", back)
            self.model.settle(balance, self.now)

        @rule(balance=st.integers(0, 1), user=st.integers(0, 1), kind_index=st.integers(0, 3))
        def open_ticket(self, balance, user, kind_index):
            policy = self.policies[balance]
            kinds = [kind.slug for kind in policy.kinds if kind.billable] or [None]
            opener = (self.owner, self.member)[user]
            opened = ledger.open_ticket(self.session, self.account, opener, "Help", now=self.now,
                                        kind=kinds[kind_index % len(kinds)], policy=policy)
            self.tickets.append(opened)
            self.model.tickets[opened.id] = (balance, opener.id)
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
            balance, opener = self.model.tickets[work.id]
            after = units(self.policies[balance].rule(), minutes, work.kind).units
            delta = after - self.model.charged[work.id]
            available = self.model.held(self.now, balance, opener)
            charge_key = key("charge")
            if delta > available and self.modes[balance] == "block":
                with pytest.raises(ledger.InsufficientBalance) as refused:
                    ledger.charge_ticket_to(self.session, work, minutes, by=self.clerk, key=charge_key, now=self.now)
                assert refused.value.missing == delta - available
                return
            ledger.charge_ticket_to(self.session, work, minutes, by=self.clerk, key=charge_key, now=self.now)
            self.charges.append((charge_key, work.id, minutes))
            if delta > 0:
                shortfall = delta - self.model.draw(work.id, delta, self.now)
                if shortfall:
                    status = "pending" if self.modes[balance] == "ask" else "debt"
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
            changes = self.session.scalar(select(func.count()).select_from(OverageChange))
            ledger.charge_ticket_to(self.session, work, minutes, by=self.clerk, key=old_key, now=self.now)
            assert self.session.scalar(select(func.count()).select_from(Entry)) == entries
            assert self.session.scalar(select(func.count()).select_from(OverageChange)) == changes

        @rule(which=st.integers(0, 20))
        def refund(self, which):
            if not self.model.lots:
                return
            lot = sorted(self.model.lots.values(), key=lambda known: known.id)[which % len(self.model.lots)]
            stored = self.session.get(Lot, lot.id)
            if not lot.usable(self.now):
                with pytest.raises(ledger.LedgerError):
                    ledger.refund(self.session, stored, by=self.clerk, key=key("refund"), now=self.now)
                return
            ledger.refund(self.session, stored, by=self.clerk, key=key("refund"), now=self.now)
            lot.refunded_whole = lot.left == stored.granted
            lot.left = 0

        @rule(balance=st.integers(0, 1), quantity=st.integers(-40, 40).filter(bool), owner=st.integers(0, 2))
        def adjust(self, balance, quantity, owner):
            policy = self.policies[balance]
            available = self.model.held(self.now, balance)
            if quantity < 0 and available < -quantity:
                with pytest.raises(ledger.LedgerError, match="left to remove"):
                    ledger.adjust(self.session, self.account, policy, quantity, reason="test",
                                  by=self.clerk, key=key("adjust"), now=self.now)
                return
            user = self.owners[owner] if quantity > 0 else None
            op = ledger.adjust(self.session, self.account, policy, quantity, reason="test",
                               by=self.clerk, key=key("adjust"), now=self.now, owner=user)
            if quantity > 0:
                self.model.lots[op.lot.id] = ModelLot(op.lot.id, balance, user.id if user is not None else None, None,
                                                      self.now, "adjustment", quantity)
                self.model.settle(balance, self.now)
            else:
                left = -quantity
                for lot in self.model.usable(self.now, balance):
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
        @rule(which=st.integers(0, 10), approve=st.booleans())
        def answer(self, which, approve):
            waiting = [o for o in self.model.owed if o.status == "pending"]
            owed = waiting[which % len(waiting)]
            work = next(t for t in self.tickets if t.id == owed.ticket)
            self.session.refresh(work)
            request = next(o for o in work.overages if o.status == "pending")
            answer = overage_bills.approve if approve else ledger.decline_overage
            answer(self.session, request, by=self.owner, now=self.now)
            owed.status = "approved" if approve else "declined"

        # --- checks after every step ---

        @invariant()
        def lots_and_balances_as_the_model_says(self):
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
                assert lot.owner_id == self.model.lots[lot.id].owner
                if lot.expires_at is not None and lot.expires_at <= self.now:
                    continue
                assert lot.remaining == self.model.lots[lot.id].left
            for balance, policy in enumerate(self.policies):
                for user in (None, self.owner.id, self.member.id):
                    held = ledger.balance(self.session, self.account.id, policy.id, policy.unit, now=self.now,
                                          user_id=user)
                    assert (held.units, held.debt) == (self.model.held(self.now, balance, user),
                                                       self.model.debt(balance)), (balance, user)

        @invariant()
        def tickets_and_overages_as_the_model_says(self):
            if not hasattr(self, "model"):
                return
            account_id = self.account.id
            charged = dict(self.session.execute(
                select(Ticket.id, Ticket.units_charged).where(Ticket.account_id == account_id)).all())
            assert charged == self.model.charged
            stored = sorted(self.session.execute(
                select(Overage.ticket_id, Overage.status, Overage.units, Overage.settled)
                .where(Overage.account_id == account_id)).all())
            assert stored == sorted((o.ticket, o.status, o.units, o.settled) for o in self.model.owed)

        @invariant()
        def the_rows_hold_together(self):
            """What the database says of itself, whatever the model thinks."""
            if not hasattr(self, "model"):
                return
            account_id = self.account.id
            entries = dict(self.session.execute(
                select(Entry.lot_id, func.sum(Entry.quantity)).where(Entry.account_id == account_id)
                .group_by(Entry.lot_id)).all())
            for lot_id, remaining in self.session.execute(
                    select(Lot.id, Lot.remaining).where(Lot.account_id == account_id)):
                assert remaining == entries.get(lot_id, 0) and remaining >= 0, lot_id
            # A single-user lot gave nothing to a ticket another user opened.
            strays = self.session.scalar(
                select(func.count()).select_from(Entry)
                .join(Lot, Lot.id == Entry.lot_id).join(Ticket, Ticket.id == Entry.ticket_id)
                .where(Entry.account_id == account_id, Entry.kind == "consume", Entry.quantity < 0,
                       Lot.owner_id.is_not(None), Lot.owner_id != Ticket.opened_by_id))
            assert strays == 0
            consumed = dict(self.session.execute(
                select(Entry.ticket_id, -func.sum(Entry.quantity))
                .where(Entry.account_id == account_id, Entry.kind == "consume").group_by(Entry.ticket_id)).all())
            owed = dict(self.session.execute(
                select(Overage.ticket_id, func.sum(Overage.units - Overage.settled))
                .where(Overage.account_id == account_id).group_by(Overage.ticket_id)).all())
            for ticket_id, charged in self.session.execute(
                    select(Ticket.id, Ticket.units_charged).where(Ticket.account_id == account_id)):
                assert charged == consumed.get(ticket_id, 0) + owed.get(ticket_id, 0), ticket_id

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
    run(app, setting, examples=6)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("setting", SETTINGS)
def test_random_sequences_keep_the_invariants_on_postgresql(app, setting):
    run(app, setting, examples=2)
