"""The unlimited-tickets subscription (seed 004) through billing: a paid
order is a period, tickets opened during it draw nothing, cancelling keeps
them covered to the end of the month, subscribing again waits three months
after a cancellation, renewals are ordered before the period ends."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from checkout_support import EUR_IBAN, NOW, SELLER, both, client, confirm, pack, person, place, session, staff  # noqa: F401
from sqlalchemy import func, select

from billing.desk import services as desk
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.ledger.models import Entry, Lot
from billing.orders import refunds
from billing.orders import services as orders
from billing.orders.models import Invoice, Order
from billing.subscriptions import services as subscriptions
from billing.subscriptions.models import Subscription, SubscriptionPeriod
from common.extensions import db

METHODS = ("transfer", "cheque", "card")


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def subscribe(session, owner, *, now=NOW, method="transfer") -> Subscription:
    order, payment = orders.place_order(session, owner.account, pack(session, "demo-unlimited"), quantity=1,
                                        method=method, methods=METHODS, by=owner, now=now, iban=EUR_IBAN)
    orders.await_payment(session, payment, now=now)
    assert confirm(session, payment, now=now).status == "paid"
    return subscriptions.current(session, owner.account_id, now=now)


def ticket(session, owner, now, subject="Printer"):
    return desk.open_ticket(session, owner.account, owner, subject, "It prints nothing.", now=now)


def work(session, on, clerk, minutes, now):
    return desk.log_time(session, on, clerk, minutes, True, "", f"time:{on.id}:{minutes}:{now.isoformat()}", now=now)


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def renewal_awaiting(session):
    """The job orders the next period on 1 February and its instructions go out: the order and its payment."""
    (renewal, payment), = orders.renew_subscriptions(session, now=at("2026-02-01 09:00"), days=7, iban=EUR_IBAN,
                                                     methods=METHODS)
    orders.await_payment(session, payment, now=at("2026-02-01 09:00"))
    return renewal, payment


@both
def test_a_paid_subscription_order_starts_a_month_invoiced_and_grants_no_units(session):
    account, owner = client(session)
    running = subscribe(session, owner)

    order = session.scalar(select(Order).where(Order.account_id == account.id))
    assert (order.status, order.total) == ("paid", 17880)  # 149.00 net + 20 % VAT
    assert (running.started_at, running.paid_until, running.ends_at) == (NOW, at("2026-02-05 09:00"), None)
    assert [(p.order_id, p.starts_at, p.ends_at) for p in running.periods] == [(order.id, NOW, running.paid_until)]
    assert count(session, Invoice, Invoice.order_id == order.id) == 1
    assert count(session, Lot, Lot.account_id == account.id) == 0


@both
def test_tickets_during_the_period_draw_nothing_whatever_the_time(session):
    account, owner = client(session)
    subscribe(session, owner)
    clerk = staff(session)
    opened = ticket(session, owner, NOW + timedelta(days=3))
    assert opened.subscription_id is not None and opened.unit == "ticket"

    work(session, opened, clerk, 95, NOW + timedelta(days=3))

    assert (opened.billable_minutes, opened.units_charged) == (95, 0)
    assert count(session, Entry, Entry.ticket_id == opened.id) == 0
    assert ledger.balances(session, account.id, now=NOW + timedelta(days=3)) == []


@both
def test_a_subscriber_with_a_pack_still_gets_free_tickets_by_default_and_may_choose_the_pack(session):
    account, owner = client(session)
    _order, payment = place(session, owner, "demo-tickets-10")
    confirm(session, payment)
    running = subscribe(session, owner)

    free = ticket(session, owner, NOW)
    chosen = desk.open_ticket(session, account, owner, "Backup", "Please check.", now=NOW,
                              policy=pack(session, "demo-tickets-10").policy)
    work(session, chosen, staff(session), 40, NOW)

    assert free.subscription_id == running.id and chosen.subscription_id is None
    assert chosen.units_charged == 2  # seed 004: 40 minutes are two tickets
    assert [b.units for b in ledger.balances(session, account.id, now=NOW)] == [8]


@both
def test_no_free_ticket_before_subscribing_nor_after_the_period(session):
    account, owner = client(session)
    with pytest.raises(ledger.LedgerError):
        ticket(session, owner, NOW)
    running = subscribe(session, owner)
    with pytest.raises(ledger.LedgerError):
        ticket(session, owner, running.paid_until + timedelta(seconds=1))
    with pytest.raises(desk.DeskError) as gone:
        desk.open_ticket(session, account, owner, "Late", "x", now=running.paid_until, subscription=running)
    assert gone.value.field == "balance"


@both
def test_cancelling_keeps_the_period_paid_and_resubscribing_waits_three_months(session):
    account, owner = client(session)
    running = subscribe(session, owner, now=at("2026-03-28 10:00"))  # paid to 28 April
    member = person(session, account)
    member.role = "member"
    session.commit()
    with pytest.raises(orders.OrderError, match="Only an owner"):
        orders.cancel_subscription(session, running, by=member, now=at("2026-03-30 08:00"), reason="-")

    orders.cancel_subscription(session, running, by=owner, now=at("2026-03-30 08:00"), reason="Cancelled")
    # The period paid ends later than this month: the client keeps it.
    assert (running.ends_at, running.end_reason) == (at("2026-04-28 10:00"), "cancelled")
    assert ticket(session, owner, at("2026-04-28 09:59")).subscription_id == running.id
    with pytest.raises(ledger.LedgerError):
        ticket(session, owner, at("2026-04-28 10:00"))

    # While the period runs, the refusal names the day ordering again is possible (issue 12.6).
    for day, refused in [("2026-04-10", "runs until 2026-04-28; you may subscribe again from 2026-06-30"),
                         ("2026-06-29", "again from 2026-06-30")]:
        with pytest.raises(orders.OrderError, match=refused) as why:
            subscribe(session, owner, now=at(f"{day} 12:00"))
        assert why.value.field == "pack"
    assert count(session, Order, Order.account_id == account.id) == 1

    again = subscribe(session, owner, now=at("2026-06-30 08:00"))
    assert again.id != running.id and again.ends_at is None


@both
def test_cancelling_near_the_end_of_a_period_still_covers_the_rest_of_the_month(session):
    _account, owner = client(session)
    running = subscribe(session, owner, now=at("2026-03-02 10:00"))  # paid to 2 April
    orders.cancel_subscription(session, running, by=owner, now=at("2026-04-01 08:00"), reason="-")
    assert running.ends_at == at("2026-05-01 00:00")  # seed 004: to the end of the month
    assert ticket(session, owner, at("2026-04-30 23:00")).subscription_id == running.id
    orders.cancel_subscription(session, running, by=owner, now=at("2026-04-11 08:00"), reason="-")
    assert running.cancelled_at == at("2026-04-01 08:00")  # twice: the first one stands


@both
def test_renewal_is_ordered_once_before_the_end_and_paying_it_extends_the_period(session):
    account, owner = client(session)
    running = subscribe(session, owner)  # to 5 February
    assert orders.renew_subscriptions(session, now=at("2026-01-28 09:00"), days=7, iban=EUR_IBAN,
                                      methods=METHODS) == []
    placed = orders.renew_subscriptions(session, now=at("2026-01-29 09:00"), days=7, iban=EUR_IBAN, methods=METHODS)
    again = orders.renew_subscriptions(session, now=at("2026-01-29 10:00"), days=7, iban=EUR_IBAN, methods=METHODS)
    assert len(placed) == 1 and again == []
    renewal, payment = placed[0]
    assert (renewal.method, renewal.placed_by_id, renewal.total, renewal.status) == ("transfer", owner.id, 17880,
                                                                                    "pending")
    assert running.renewal_order_id == renewal.id

    orders.await_payment(session, payment, now=at("2026-01-29 10:00"))
    confirm(session, payment, now=at("2026-02-01 09:00"))
    # Paid ahead: the new period follows the old one.
    assert running.paid_until == at("2026-03-05 09:00") and running.renewal_order_id is None
    assert [p.starts_at for p in running.periods] == [NOW, at("2026-02-05 09:00")]
    assert count(session, Invoice, Invoice.account_id == account.id) == 2


@both
def test_a_renewal_left_unpaid_lapses_with_no_waiting_time(session):
    _account, owner = client(session)
    running = subscribe(session, owner)
    renewal, _payment = renewal_awaiting(session)
    orders.cancel_overdue(session, now=at("2026-03-15 09:00"), days=30, reason=lambda order: "No payment")

    assert renewal.status == "cancelled"
    assert (running.ends_at, running.end_reason, running.cancelled_at) == (at("2026-02-05 09:00"), "lapsed", None)
    assert subscribe(session, owner, now=at("2026-03-16 09:00")).id != running.id


@both
def test_cancelling_cancels_the_renewal_awaiting_payment(session):
    _account, owner = client(session)
    running = subscribe(session, owner)
    renewal, _payment = renewal_awaiting(session)
    orders.cancel_subscription(session, running, by=owner, now=at("2026-02-02 09:00"), reason="Cancelled by you")
    assert (renewal.status, renewal.cancel_reason) == ("cancelled", "Cancelled by you")
    assert running.ends_at == at("2026-03-01 00:00") and running.end_reason == "cancelled"
    assert orders.renew_subscriptions(session, now=at("2026-02-25 09:00"), days=7, iban=EUR_IBAN,
                                      methods=METHODS) == []


@both
def test_a_second_subscription_order_is_refused_while_one_waits_or_runs(session):
    account, owner = client(session)
    first, _payment = place(session, owner, "demo-unlimited")
    with pytest.raises(orders.OrderError, match=f"Subscription order {first.id} is already awaiting payment"):
        place(session, owner, "demo-unlimited")
    orders.cancel_order(session, first, reason="changed my mind", now=NOW)
    running = subscribe(session, owner)
    with pytest.raises(orders.OrderError, match="already subscribed: your subscription renews on 2026-02-05"):
        subscribe(session, owner)
    assert running is not None and count(session, Subscription, Subscription.account_id == account.id) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_renewal_runs_at_once_place_one_order(app, session):
    _account, owner = client(session)
    running = subscribe(session, owner)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def run():
        with app.app_context():
            barrier.wait()
            placed = orders.renew_subscriptions(db.session, now=at("2026-02-01 09:00"), days=7, iban=EUR_IBAN,
                                                methods=METHODS)
            results.append(len(placed))
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    session.expire_all()
    assert sorted(results) == [0, 1]
    assert count(session, Order, Order.account_id == running.account_id) == 2
    assert session.get(Subscription, running.id).renewal_order_id is not None


@both
def test_verify_passes_with_subscription_tickets(app, session):
    _account, owner = client(session)
    subscribe(session, owner)
    opened = ticket(session, owner, NOW)
    work(session, opened, staff(session), 50, NOW)
    assert session.get(Ticket, opened.id).units_charged == 0
    assert count(session, SubscriptionPeriod) == 1
    result = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output


@both
def test_a_running_period_refunded_in_full_ends_the_subscription_with_no_wait(session):
    _account, owner = client(session)
    running = subscribe(session, owner)
    renewal, _payment = renewal_awaiting(session)
    first = running.periods[0].order
    refunds.refund_order(session, first, 10000, "Goodwill", by=staff(session), now=at("2026-02-02 09:00"),
                         key="part", seller=SELLER)
    assert running.ends_at is None and renewal.status == "pending"  # a part back: the period stands

    refunds.refund_order(session, first, 7880, "Not satisfied", by=staff(session), now=at("2026-02-02 10:00"),
                         key="rest", seller=SELLER)
    assert (running.ends_at, running.end_reason, running.cancelled_at) == (at("2026-02-02 10:00"), "refunded", None)
    assert (renewal.status, renewal.cancel_reason) == ("cancelled", "Not satisfied")
    with pytest.raises(ledger.LedgerError):
        ticket(session, owner, at("2026-02-02 11:00"))
    assert subscribe(session, owner, now=at("2026-02-03 09:00")).id != running.id


@both
def test_a_period_paid_ahead_and_refunded_is_taken_off(session):
    _account, owner = client(session)
    running = subscribe(session, owner)
    renewal, payment = renewal_awaiting(session)
    confirm(session, payment, now=at("2026-02-01 09:00"))
    assert running.paid_until == at("2026-03-05 09:00")
    refunds.refund_order(session, renewal, renewal.total, "Paid twice", by=staff(session), now=at("2026-02-02 09:00"),
                         key="ahead", seller=SELLER)
    assert (running.paid_until, running.ends_at) == (at("2026-02-05 09:00"), None)
