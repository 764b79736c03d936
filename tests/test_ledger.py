"""The ledger through its services: the worked examples of DESIGN.md on the
seeds' own catalogues, rounding on the ticket's total, corrections, expiry,
rollover, overage, refunds, adjustments and idempotency."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ledger_support import (  # noqa: F401 - ledger_app and session are fixtures
    NOW,
    assert_verified,
    both,
    buy,
    charge,
    days,
    held,
    key,
    ledger_app,
    new_client,
    pack,
    person,
    session,
    staff,
    ticket,
    toopixel_allows_overage,
)
from sqlalchemy import func, select

from billing.clock import add_months
from billing.ledger import services as ledger
from billing.ledger.models import Entry, Event, Lot, Operation, Overage
from billing.orders import overage_bills

# --- The worked examples of DESIGN.md -------------------------------------

@both
def test_toopixel_27_minutes_take_3_credits(session):
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    charge(session, ticket(session, account, owner), 27)
    assert held(session, account, "toopixel-36") == 33
    assert_verified(session, account)


@both
@pytest.mark.parametrize(
    "kind, minutes, charged",
    [("consultation", 20, 30), ("intervention", 61, 75), ("security-update", 60, 60), ("security-update", 5, 60)],
)
def test_innova_minimums_blocks_and_fixed_price(session, kind, minutes, charged):
    account, owner = new_client(session)
    buy(session, account, "innova-480")
    charge(session, ticket(session, account, owner, kind=kind), minutes)
    assert held(session, account, "innova-480") == 480 - charged
    assert_verified(session, account)


@both
def test_itsupport_40_minute_ticket_takes_2_tickets(session):
    account, owner = new_client(session)
    buy(session, account, "itsupport-tickets-20")
    charge(session, ticket(session, account, owner), 40)
    assert held(session, account, "itsupport-tickets-20") == 18


@both
@pytest.mark.parametrize("minutes, charged", [(12, 30), (47, 47)])
def test_itsupport_hourly_first_30_minutes_in_full_then_to_the_minute(session, minutes, charged):
    account, owner = new_client(session)
    buy(session, account, "itsupport-hour")
    charge(session, ticket(session, account, owner), minutes)
    assert held(session, account, "itsupport-hour") == 60 - charged


def test_digitale_communication_is_logged_not_charged(session):
    account, owner = new_client(session)
    buy(session, account, "digitale-3h")
    emails = ticket(session, account, owner, kind="communication")
    op = charge(session, emails, 20)
    assert op.entries == []
    assert emails.billable_minutes == 20 and emails.units_charged == 0
    assert held(session, account, "digitale-3h") == 180


@both
def test_webservice_12_hours_less_50_minutes_leave_11_hours_10(session):
    account, owner = new_client(session)
    buy(session, account, "webservice-12h")
    charge(session, ticket(session, account, owner), 50)
    assert divmod(held(session, account, "webservice-12h"), 60) == (11, 10)


# --- Rounding once, on the ticket's total ---------------------------------

@both
@pytest.mark.parametrize(
    "slug, kind, steps, charged",
    [
        ("toopixel-36", None, [10, 10, 7], 3),
        ("toopixel-36", None, [4, 4, 4], 2),  # 3 if each entry were rounded
        ("innova-480", "consultation", [20, 20], 45),  # 60 if each paid its minimum
    ],
)
def test_time_added_in_steps_is_rounded_once_on_the_total(session, slug, kind, steps, charged):
    account, owner = new_client(session)
    lot = buy(session, account, slug)
    work = ticket(session, account, owner, kind=kind)
    total = 0
    for minutes in steps:
        total += minutes
        charge(session, work, total)
    assert work.units_charged == charged and held(session, account, slug) == lot.granted - charged
    assert_verified(session, account)


def test_a_charge_that_does_not_cross_a_block_writes_nothing(session):
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    work = ticket(session, account, owner)
    charge(session, work, 21)
    assert charge(session, work, 28).entries == []
    assert work.billable_minutes == 28 and held(session, account, "toopixel-36") == 33


@both
def test_time_corrected_downwards_gives_units_back(session):
    account, owner = new_client(session)
    buy(session, account, "innova-480")
    work = ticket(session, account, owner, kind="intervention")
    charge(session, work, 61)
    op = charge(session, work, 50)
    assert [(e.kind, e.quantity) for e in op.entries] == [("consume", 15)]
    assert held(session, account, "innova-480") == 420
    charge(session, work, 0)
    assert held(session, account, "innova-480") == 480 and work.units_charged == 0
    assert_verified(session, account)


# --- Order of consumption, expiry -----------------------------------------

def test_consumption_takes_the_earliest_expiry_first_and_never_expiring_last(session):
    account, owner = new_client(session)
    registration = buy(session, account, "innova-15")              # expires in a year
    top_up = buy(session, account, "innova-30", now=NOW + days(1))  # never expires
    assert top_up.expires_at is None and registration.expires_at is not None
    charge(session, ticket(session, account, owner), 20)  # 30 credits: all 15 of the first, then 15 of the top-up
    assert (registration.remaining, top_up.remaining) == (0, 15)


def test_equal_expiries_take_the_oldest_lot_first(session):
    account, owner = new_client(session)
    first = buy(session, account, "toopixel-36")
    second = buy(session, account, "toopixel-36")
    charge(session, ticket(session, account, owner), 60)
    assert (first.remaining, second.remaining) == (30, 36)


@both
@pytest.mark.parametrize("job_ran", [False, True])
def test_a_charge_on_an_expired_lot_is_impossible(session, job_ran):
    account, owner = new_client(session)
    old = buy(session, account, "toopixel-36")
    work = ticket(session, account, owner)
    later = old.expires_at + days(1)
    if job_ran:
        ledger.expire(session, key=key("expire"), now=later, account_id=account.id)
        assert old.remaining == 0
    with pytest.raises(ledger.InsufficientBalance) as refused:
        charge(session, work, 10, now=later)
    assert refused.value.missing == 1
    fresh = buy(session, account, "toopixel-36", now=later)
    charge(session, work, 10, now=later)
    assert fresh.remaining == 35 and old.remaining == (0 if job_ran else 36)
    assert held(session, account, "toopixel-36", now=later) == 35
    assert_verified(session, account)


def test_a_lot_is_usable_until_its_expiry_and_not_at_it(session):
    account, owner = new_client(session)
    lot = buy(session, account, "digitale-3h")  # 3 months
    assert lot.expires_at.replace(tzinfo=None) == NOW.replace(month=4, tzinfo=None)
    assert held(session, account, "digitale-3h", now=NOW.replace(month=4) - timedelta(seconds=1)) == 180
    assert held(session, account, "digitale-3h", now=NOW.replace(month=4)) == 0


def test_expire_writes_entries_dated_at_the_expiry_once(session):
    account, owner = new_client(session)
    lot = buy(session, account, "toopixel-36")
    charge(session, ticket(session, account, owner), 60)
    later = lot.expires_at + days(30)
    op = ledger.expire(session, key=key("expire"), now=later, account_id=account.id)
    assert [(e.kind, e.quantity, e.effective_at.replace(tzinfo=None)) for e in op.entries] == [
        ("expire", -30, lot.expires_at.replace(tzinfo=None))
    ]
    assert ledger.expire(session, key=key("expire"), now=later, account_id=account.id).entries == []
    assert_verified(session, account)


def test_correction_after_expiry_gives_back_to_the_lot_which_loses_it_at_once(session):
    account, owner = new_client(session)
    lot = buy(session, account, "toopixel-36")
    work = ticket(session, account, owner)
    charge(session, work, 60)
    later = lot.expires_at + days(1)
    op = charge(session, work, 30, now=later)
    assert [(e.kind, e.quantity) for e in op.entries] == [("consume", 3), ("expire", -3)]
    assert lot.remaining == 30 and held(session, account, "toopixel-36", now=later) == 0
    assert_verified(session, account)


# --- Registration and top-ups, rollover -----------------------------------

def test_innova_registration_pack_lasts_a_year_and_top_ups_never_expire(session):
    account, _ = new_client(session)
    registration = buy(session, account, "innova-60")
    top_up = buy(session, account, "innova-15")
    assert registration.expires_at.year == 2027 and top_up.expires_at is None


@both
def test_innova_a_registration_refunded_in_full_registers_nobody(session):
    account, _ = new_client(session)
    registration = buy(session, account, "innova-60")
    ledger.refund(session, registration, by=staff(session), key=key(), now=NOW + days(1))
    again = buy(session, account, "innova-60", now=NOW + days(2))
    assert again.expires_at == add_months(NOW + days(2), 12)
    top_up = buy(session, account, "innova-15", now=NOW + days(3))
    assert top_up.expires_at is None
    assert_verified(session, account)


def test_innova_a_registration_refunded_in_two_parts_registers_nobody(session):
    account, _ = new_client(session)
    registration = buy(session, account, "innova-60")
    ledger.refund(session, registration, by=staff(session), key=key(), now=NOW + days(1), quantity=20)
    ledger.refund(session, registration, by=staff(session), key=key(), now=NOW + days(1))
    assert buy(session, account, "innova-60", now=NOW + days(2)).expires_at == add_months(NOW + days(2), 12)


def test_innova_a_registration_partly_used_then_refunded_still_counts(session):
    account, owner = new_client(session)
    registration = buy(session, account, "innova-60")
    charge(session, ticket(session, account, owner, kind="consultation"), 15)
    ledger.refund(session, registration, by=staff(session), key=key(), now=NOW + days(1))
    assert buy(session, account, "innova-15", now=NOW + days(2)).expires_at is None


def test_itsupport_expired_unused_tickets_come_back_once_with_the_next_bundle(session):
    account, owner = new_client(session)
    first = buy(session, account, "itsupport-tickets-20")
    charge(session, ticket(session, account, owner), 90)  # 3 tickets
    later = first.expires_at + days(10)
    op = ledger.grant(session, account, pack(session, "itsupport-ticket-1"), key=key(), now=later)
    rollover = session.scalar(select(Lot).where(Lot.account_id == account.id, Lot.source == "rollover"))
    assert rollover.granted == 17 and rollover.expires_at == op.lot.expires_at
    assert held(session, account, "itsupport-ticket-1", now=later) == 18
    buy(session, account, "itsupport-ticket-1", now=later + days(1))
    assert session.scalar(select(func.count()).where(Lot.source == "rollover", Lot.account_id == account.id)) == 1
    assert first.rolled_over == 17
    assert_verified(session, account)


# --- Several balances -----------------------------------------------------

@both
def test_a_new_ticket_defaults_to_the_balance_whose_lots_expire_first(session):
    account, owner = new_client(session)
    member = person(session, account, role="member")
    toopixel = buy(session, account, "toopixel-36")  # 2 years
    buy(session, account, "innova-60", now=NOW - days(30))  # 1 year, and older
    digitale = buy(session, account, "digitale-5h")  # 6 months
    buy(session, account, "itsupport-tickets-20", owner=member, now=NOW - days(200))  # member's, expires first
    assert len(ledger.balances(session, account.id, now=NOW)) == 4
    assert ledger.default_balance(session, account.id, owner.id, now=NOW) == (digitale.policy_id, "minute")
    assert ticket(session, account, owner).policy_id == digitale.policy_id
    itsupport = pack(session, "itsupport-tickets-20").policy
    assert ticket(session, account, member).policy_id == itsupport.id  # their own lot expires first
    # Once the 6-month lot has expired, the next one to expire is Innova's.
    later = digitale.expires_at
    innova = pack(session, "innova-60").policy
    assert ledger.default_balance(session, account.id, owner.id, now=later) == (innova.id, "credit")
    # Never-expiring lots come last: an adjustment of another balance does not win.
    ledger.adjust(session, account, pack(session, "webservice-12h").policy, 60, reason="goodwill",
                  by=staff(session), key=key(), now=NOW)
    assert ledger.default_balance(session, account.id, owner.id, now=later) == (innova.id, "credit")
    assert toopixel.expires_at > later


# --- Single-user and pooled lots ------------------------------------------

def test_a_single_user_lot_serves_only_its_owner(session):
    account, owner = new_client(session)
    member = person(session, account, role="member")
    mine = buy(session, account, "itsupport-tickets-20", owner=member)
    assert mine.owner_id == member.id
    with pytest.raises(ledger.LedgerError, match="no credit"):
        ticket(session, account, owner)
    work = ticket(session, account, member)
    charge(session, work, 30)
    assert mine.remaining == 19


def test_a_pooled_pack_has_no_owner(session):
    account, owner = new_client(session)
    team = pack(session, "itsupport-team-tickets")
    with pytest.raises(ledger.LedgerError, match="pooled"):
        ledger.grant(session, account, team, key=key(), now=NOW, items=20, owner=owner)
    assert session.scalar(select(func.count()).where(Lot.account_id == account.id)) == 0


# --- Overage --------------------------------------------------------------

@both
def test_block_refuses_and_says_how_much_is_missing_writing_nothing(session):
    account, owner = new_client(session)
    buy(session, account, "innova-15")
    work = ticket(session, account, owner, kind="intervention")
    entries = session.scalar(select(func.count()).select_from(Entry))
    with pytest.raises(ledger.InsufficientBalance) as refused:
        charge(session, work, 61)
    assert (refused.value.missing, refused.value.available) == (60, 15)
    assert session.scalar(select(func.count()).select_from(Entry)) == entries
    assert work.units_charged == 0 and held(session, account, "innova-15") == 15


def beyond_the_balance(session, minutes=200, by_member=False):
    """Digitale (``ask``): 3 hours bought, then a ticket of ``minutes``."""
    account, owner = new_client(session)
    user = person(session, account, role="member") if by_member else owner
    buy(session, account, "digitale-3h")
    work = ticket(session, account, user)
    charge(session, work, minutes)
    return account, owner, user, work


def test_ask_records_a_request_priced_at_the_hourly_rate_and_consumes_only_the_balance(session):
    account, owner, _, work = beyond_the_balance(session)
    [request] = work.overages
    assert (request.status, request.units, request.price, request.currency) == ("pending", 20, 2167, "EUR")
    assert held(session, account, "digitale-3h") == 0
    assert session.scalar(select(Event.kind).where(Event.overage_id == request.id)) == "overage_requested"
    overage_bills.approve(session, request, by=owner, now=NOW)
    assert request.status == "approved" and request.price == 2167
    assert_verified(session, account)


def test_ask_declined_by_the_owner_charges_nothing_more(session):
    account, owner, member, work = beyond_the_balance(session, 190, by_member=True)
    [request] = work.overages
    with pytest.raises(ledger.NotAllowed):
        ledger.decline_overage(session, request, by=member, now=NOW)
    ledger.decline_overage(session, request, by=owner, now=NOW)
    assert request.status == "declined"
    with pytest.raises(ledger.LedgerError, match="already declined"):
        overage_bills.approve(session, request, by=owner, now=NOW)
    assert held(session, account, "digitale-3h") == 0
    assert_verified(session, account)


def test_ask_answered_by_buying_a_pack(session):
    account, _, _, work = beyond_the_balance(session)
    fresh = buy(session, account, "digitale-5h")
    [request] = work.overages
    assert (request.status, request.settled) == ("purchased", 20)
    assert fresh.remaining == 280
    assert_verified(session, account)


@pytest.mark.usefixtures("toopixel_allows_overage")
def test_allow_lets_the_balance_go_negative_as_a_debt_the_next_grant_pays_first(session):
    account, owner = new_client(session)
    buy(session, account, "toopixel-36")
    work = ticket(session, account, owner)
    charge(session, work, 400)  # 40 credits
    assert held(session, account, "toopixel-36") == -4
    [debt] = work.overages
    assert (debt.status, debt.units) == ("debt", 4)
    fresh = buy(session, account, "toopixel-36")
    assert fresh.remaining == 32 and debt.status == "paid"
    assert held(session, account, "toopixel-36") == 32
    assert_verified(session, account)


def test_correction_downwards_reduces_what_is_owed_before_giving_units_back(session):
    account, _, _, work = beyond_the_balance(session)
    charge(session, work, 170)
    [request] = work.overages
    assert (request.status, request.units, request.price) == ("withdrawn", 0, 0)
    assert held(session, account, "digitale-3h") == 10
    assert_verified(session, account)


# --- Refund and adjust ----------------------------------------------------

def test_refund_revokes_what_is_unused_and_consumption_stays(session):
    account, owner = new_client(session)
    lot = buy(session, account, "toopixel-36")
    charge(session, ticket(session, account, owner), 60)
    op = ledger.refund(session, lot, by=staff(session), key=key(), now=NOW)
    assert [(e.kind, e.quantity) for e in op.entries] == [("refund", -30)]
    assert lot.remaining == 0
    with pytest.raises(ledger.LedgerError, match="nothing left"):
        ledger.refund(session, lot, by=None, key=key(), now=NOW)
    with pytest.raises(ledger.NotAllowed):
        ledger.refund(session, lot, by=owner, key=key(), now=NOW)
    assert_verified(session, account)


def test_adjust_is_for_staff_with_a_reason(session):
    account, owner = new_client(session)
    policy = pack(session, "toopixel-36").policy
    with pytest.raises(ledger.NotAllowed):
        ledger.adjust(session, account, policy, 5, reason="goodwill", by=owner, key=key(), now=NOW)
    clerk = staff(session)
    with pytest.raises(ledger.LedgerError, match="reason"):
        ledger.adjust(session, account, policy, 5, reason=" ", by=clerk, key=key(), now=NOW)
    op = ledger.adjust(session, account, policy, 5, reason="goodwill", by=clerk, key=key(), now=NOW)
    assert op.lot.source == "adjustment" and op.note == "goodwill"
    ledger.adjust(session, account, policy, -2, reason="double entry", by=clerk, key=key(), now=NOW)
    assert held(session, account, "toopixel-36") == 3
    with pytest.raises(ledger.LedgerError, match="only 3"):
        ledger.adjust(session, account, policy, -4, reason="too much", by=clerk, key=key(), now=NOW)
    assert_verified(session, account)


# --- Idempotency ----------------------------------------------------------

@both
def test_the_same_key_twice_writes_once(session):
    account, owner = new_client(session)
    toopixel = pack(session, "toopixel-36")
    first = ledger.grant(session, account, toopixel, key="order-1", now=NOW)
    again = ledger.grant(session, account, toopixel, key="order-1", now=NOW)
    assert again.id == first.id
    work = ticket(session, account, owner)
    charge(session, work, 30, key_="log-1")
    charge(session, work, 60, key_="log-2")
    charge(session, work, 30, key_="log-1")  # a late retry of the first: not a correction
    assert work.units_charged == 6 and held(session, account, "toopixel-36") == 30
    assert session.scalar(select(func.count()).where(Operation.account_id == account.id)) == 3
    with pytest.raises(ledger.KeyReused):
        charge(session, ticket(session, account, owner), 30, key_="log-1")
    assert_verified(session, account)


def test_bad_input_is_refused_with_a_message(session):
    account, owner = new_client(session)
    buy(session, account, "innova-15")
    work = ticket(session, account, owner)
    for minutes in (-1, 1.5, True, "10"):
        with pytest.raises(ledger.LedgerError, match="whole number"):
            charge(session, work, minutes)
    with pytest.raises(ledger.LedgerError, match="key"):
        charge(session, work, 10, key_="")
    with pytest.raises(ledger.LedgerError, match="unknown request kind"):
        ticket(session, account, owner, kind="massage")
    subscription = pack(session, "itsupport-unlimited")
    with pytest.raises(ledger.LedgerError, match="no units"):
        ledger.grant(session, account, subscription, key=key(), now=NOW)
    assert session.scalar(select(func.count()).where(Overage.account_id == account.id)) == 0
