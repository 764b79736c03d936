"""billing.orders on both engines: place, confirm (exact, short, over,
twice, at once), cancel, remind, the trial. Money arrives once, credit
once, one invoice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from checkout_support import NOW, QR_IBAN, both, client, confirm, pack, person, place, session, staff  # noqa: F401
from sqlalchemy import func, select

from billing.ledger import services as ledger
from billing.ledger.models import Lot, Operation
from billing.notifications.outbox import OutboxMessage
from billing.orders import services as orders
from billing.orders.models import Invoice, Order, OrderEvent, Payment, TrialClaim
from common.extensions import db


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def held(session, account) -> list[tuple[str, int]]:
    return [(b.unit, b.net) for b in ledger.balances(session, account.id, now=NOW)]


# --- Placing ----------------------------------------------------------------

@both
def test_an_order_is_priced_by_the_server_with_vat_and_a_checked_reference(session):
    account, owner = client(session)
    order, payment = place(session, owner, "demo-team-tickets", quantity=25)

    assert (order.quantity, order.unit_price, order.net, order.vat, order.total) == (25, 3800, 95000, 19000, 114000)
    assert order.status == "pending" and order.currency == "EUR" and order.method == "transfer"
    assert payment.status == "pending" and payment.amount == 114000
    assert order.reference.startswith("RF") and orders.references.is_rf_reference(order.reference)


def test_a_chf_order_to_a_qr_iban_gets_a_qr_reference(session):
    _account, owner = client(session)
    order, _payment = place(session, owner, "toopixel-36", iban=QR_IBAN)

    assert orders.references.is_qr_reference(order.reference)
    assert (order.net, order.vat, order.total) == (87882, 7118, 95000)  # 950 CHF VAT included at 8.1 %


@both
@pytest.mark.parametrize(
    "slug, quantity, method, expected_total, field",
    [
        ("demo-team-tickets", 19, "transfer", None, "quantity"),  # below the bundle's minimum
        ("demo-hours-5", 2, "transfer", None, "quantity"),  # sold one at a time
        ("demo-hours-5", 1, "bitcoin", None, "method"),
        ("demo-hours-5", 1, "transfer", 1, "total"),  # tampered with, or the price changed
        ("demo-trial", 1, "transfer", None, "pack"),
    ],
)
def test_bad_orders_are_refused_and_write_nothing(session, slug, quantity, method, expected_total, field):
    account, owner = client(session)
    with pytest.raises(orders.OrderError) as refused:
        orders.place_order(session, account, pack(session, slug), quantity=quantity, method=method,
                           methods=("transfer", "cheque"), by=owner, now=NOW, expected_total=expected_total)
    assert refused.value.field == field
    assert count(session, Order) == 0 and count(session, Payment) == 0


def test_an_order_for_a_retired_pack_is_refused(session):
    account, owner = client(session)
    retired = pack(session, "demo-hours-5")
    retired.retired_at = NOW
    session.commit()
    with pytest.raises(orders.OrderError, match="no longer on sale"):
        place(session, owner, "demo-hours-5")


def test_amounts_are_read_without_floats():
    assert orders.parse_amount("1 234,50", "EUR") == 123450
    assert orders.parse_amount("1,234.50", "EUR") == 123450
    assert orders.parse_amount("425", "EUR") == 42500
    assert orders.parse_amount("950.00", "CHF") == 95000
    for wrong in ("", "abc", "4.255", "-3", "1e3x"):
        with pytest.raises(orders.OrderError):
            orders.parse_amount(wrong, "EUR")


# --- Confirming -------------------------------------------------------------

@both
def test_the_exact_amount_pays_credits_and_invoices_in_one_go(session):
    account, owner = client(session)
    order, payment = place(session, owner)
    outcome = confirm(session, payment, by=staff(session))

    assert (outcome.status, outcome.paid_now) == ("paid", True)
    assert order.status == "paid" and order.paid_at is not None
    assert held(session, account) == [("minute", 300)]
    invoice = session.scalar(select(Invoice).where(Invoice.order_id == order.id))
    assert invoice.number == "2026-0001" and (invoice.net, invoice.vat, invoice.gross) == (42500, 8500, 51000)
    grant = session.scalar(select(Operation).where(Operation.order_id == order.id))
    assert grant.key == f"order:{order.id}:grant"


@both
def test_confirming_twice_credits_once(session):
    account, owner = client(session)
    _order, payment = place(session, owner)
    first = confirm(session, payment, by=staff(session))
    again = confirm(session, payment, by=staff(session), amount=51000)

    assert (first.status, again.status, again.paid_now) == ("paid", "duplicate", False)
    assert held(session, account) == [("minute", 300)]
    assert count(session, Lot) == 1 and count(session, Invoice) == 1
    assert count(session, OrderEvent, OrderEvent.kind == "payment") == 1


@both
def test_a_short_payment_is_recorded_and_the_order_waits_for_the_rest(session):
    account, owner = client(session)
    order, payment = place(session, owner)
    clerk = staff(session)
    short = confirm(session, payment, amount=30000, by=clerk)

    assert (short.status, short.missing, order.status) == ("partial", 21000, "pending")
    assert held(session, account) == [] and count(session, Invoice) == 0
    rest = orders.awaited_payment(session, order)
    assert (rest.status, rest.amount) == ("pending", 21000)

    done = confirm(session, rest, by=clerk)
    assert (done.status, order.status, orders.received(session, order.id)) == ("paid", "paid", 51000)
    assert held(session, account) == [("minute", 300)]


@both
def test_an_over_payment_pays_and_is_flagged(session):
    account, owner = client(session)
    order, payment = place(session, owner)
    outcome = confirm(session, payment, amount=52000, by=staff(session))

    assert (outcome.status, outcome.excess, outcome.paid_now, order.status) == ("overpaid", 1000, True, "paid")
    assert held(session, account) == [("minute", 300)]
    assert orders.overpaid(session) == [(order, 1000)]
    assert count(session, OrderEvent, OrderEvent.kind == "overpaid", OrderEvent.amount == 1000) == 1


@both
def test_every_action_is_logged_with_who_and_when(session):
    _account, owner = client(session)
    order, payment = place(session, owner)
    clerk = staff(session)
    confirm(session, payment, amount=30000, by=clerk, now=NOW + timedelta(hours=1))

    logged = [(e.kind, e.by_id, e.amount, e.created_at) for e in orders.events(session, order)]
    assert logged == [("placed", owner.id, 51000, NOW), ("payment", clerk.id, 30000, NOW + timedelta(hours=1))]


@both
def test_a_client_cannot_confirm_and_money_cannot_come_from_the_future(session):
    _account, owner = client(session)
    _order, payment = place(session, owner)
    with pytest.raises(orders.OrderError):
        confirm(session, payment, by=owner)
    with pytest.raises(orders.OrderError) as future:
        confirm(session, payment, by=staff(session), received_at=NOW + timedelta(days=1))
    assert future.value.field == "received_at"
    with pytest.raises(orders.OrderError):
        confirm(session, payment, by=staff(session), amount=0)
    assert session.get(Payment, payment.id).status == "pending"


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_staff_confirming_at_once_credit_once(app):
    """Two sessions, two threads, one payment: the account lock queues the
    second, which finds the payment confirmed and writes nothing."""
    with app.app_context():
        account, owner = client(db.session)
        clerks = [staff(db.session).id, staff(db.session).id]
        _order, payment = place(db.session, owner)
        payment_id, account_id = payment.id, account.id
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def clerk(clerk_id: int) -> None:
        with app.app_context():
            from billing.accounts.models import User

            barrier.wait()
            done = confirm(db.session, db.session.get(Payment, payment_id), by=db.session.get(User, clerk_id))
            outcomes.append(done.status)
            db.session.remove()

    threads = [threading.Thread(target=clerk, args=(clerk_id,)) for clerk_id in clerks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["duplicate", "paid"]
    with app.app_context():
        assert count(db.session, Lot, Lot.account_id == account_id) == 1
        assert count(db.session, Invoice) == 1


@both
def test_money_arriving_after_a_cancellation_revives_the_order(session):
    account, owner = client(session)
    order, payment = place(session, owner)
    orders.cancel_order(session, order, reason="No payment", now=NOW, by=staff(session))
    assert session.get(Payment, payment.id).status == "cancelled"

    outcome = confirm(session, payment, by=staff(session))

    assert (outcome.status, order.status, order.cancelled_at) == ("paid", "paid", None)
    assert held(session, account) == [("minute", 300)]


@both
def test_a_pack_sold_per_user_goes_to_the_buyer_and_a_pooled_one_to_everyone(session):
    account, owner = client(session)
    _order, single = place(session, owner, "demo-tickets-10")
    _order, team = place(session, owner, "demo-team-tickets", quantity=20)
    confirm(session, single)
    confirm(session, team)

    owners = dict(session.execute(select(Lot.granted, Lot.owner_id).where(Lot.account_id == account.id)).all())
    assert owners == {10: owner.id, 20: None}


# --- Cancelling, reminding ----------------------------------------------------

@both
def test_staff_cancel_an_unpaid_order_with_a_reason_once(session):
    _account, owner = client(session)
    order, _payment = place(session, owner)
    clerk = staff(session)
    with pytest.raises(orders.OrderError) as no_reason:
        orders.cancel_order(session, order, reason="  ", now=NOW, by=clerk)
    assert no_reason.value.field == "reason" and order.status == "pending"

    orders.cancel_order(session, order, reason="Client changed their mind", now=NOW, by=clerk)
    orders.cancel_order(session, order, reason="Again", now=NOW, by=clerk)

    assert (order.status, order.cancel_reason) == ("cancelled", "Client changed their mind")
    assert count(session, OrderEvent, OrderEvent.kind == "cancelled") == 1


@both
def test_a_paid_order_cannot_be_cancelled(session):
    _account, owner = client(session)
    order, payment = place(session, owner)
    confirm(session, payment)
    with pytest.raises(orders.OrderError, match="only an unpaid order"):
        orders.cancel_order(session, order, reason="Oops", now=NOW, by=staff(session))


@both
def test_reminders_and_cancellations_happen_once_at_their_day(session):
    _account, owner = client(session)
    order, _payment = place(session, owner)
    _account2, owner2 = client(session)
    _card_order, _card = place(session, owner2, method="card")

    assert orders.remind_due(session, now=NOW + timedelta(days=6), days=7) == []
    assert orders.remind_due(session, now=NOW + timedelta(days=7), days=7) == [order]
    assert orders.remind_due(session, now=NOW + timedelta(days=8), days=7) == []

    reason = lambda order: "No payment"  # noqa: E731
    assert orders.cancel_overdue(session, now=NOW + timedelta(days=13), days=14, reason=reason) == []
    assert orders.cancel_overdue(session, now=NOW + timedelta(days=14), days=14, reason=reason) == [order]
    assert orders.cancel_overdue(session, now=NOW + timedelta(days=20), days=14, reason=reason) == []
    assert order.status == "cancelled"
    assert [e.kind for e in orders.events(session, order)] == ["placed", "reminded", "cancelled"]


@both
def test_a_partly_paid_order_is_reminded_once_but_never_cancelled_by_the_clock(session):
    """The money received is owed to the client, as a pack or back: the order
    stays open, on the staff page, awaiting the rest."""
    _account, owner = client(session)
    order, payment = place(session, owner)
    _account2, owner2 = client(session)
    unpaid, _unpaid_payment = place(session, owner2)
    confirm(session, payment, amount=30000, by=staff(session), now=NOW + timedelta(days=1))
    rest = orders.awaited_payment(session, order)

    assert orders.remind_due(session, now=NOW + timedelta(days=7), days=7) == [order, unpaid]
    assert orders.remind_due(session, now=NOW + timedelta(days=8), days=7) == []
    reason = lambda order: "No payment"  # noqa: E731
    assert orders.cancel_overdue(session, now=NOW + timedelta(days=14), days=14, reason=reason) == [unpaid]
    assert orders.cancel_overdue(session, now=NOW + timedelta(days=90), days=14, reason=reason) == []

    assert (order.status, order.cancelled_at, rest.status) == ("pending", None, "pending")
    assert orders.awaited(session) == [(order, rest)] and orders.received(session, order.id) == 30000
    assert [e.kind for e in orders.events(session, order)] == ["placed", "payment", "reminded"]


@both
@pytest.mark.parametrize("by_staff", [True, False], ids=["staff", "job"])
def test_an_order_that_received_money_cannot_be_cancelled(session, by_staff):
    _account, owner = client(session)
    order, payment = place(session, owner)
    clerk = staff(session)
    confirm(session, payment, amount=30000, by=clerk)
    rest = orders.awaited_payment(session, order)
    queued = count(session, OutboxMessage)

    with pytest.raises(orders.MoneyReceived) as refused:
        orders.cancel_order(session, order, reason="Client gave up", now=NOW, by=clerk if by_staff else None)

    assert "already been received" in refused.value.message
    assert refused.value.params == {"number": order.id, "received": 30000}
    assert (order.status, order.cancel_reason, session.get(Payment, rest.id).status) == ("pending", "", "pending")
    assert count(session, OrderEvent, OrderEvent.kind == "cancelled") == 0 and count(session, OutboxMessage) == queued


# --- The trial ----------------------------------------------------------------

@both
def test_the_trial_is_credited_at_once_without_payment(session):
    account, owner = client(session)
    order = orders.start_trial(session, account, pack(session, "demo-trial"), by=owner, now=NOW)

    assert (order.method, order.status, order.total) == ("free", "paid", 0)
    assert held(session, account) == [("minute", 30)]
    assert count(session, Payment) == 0 and count(session, Invoice) == 0


@both
def test_one_trial_per_account_and_per_email(session):
    account, owner = client(session)
    trial = pack(session, "demo-trial")
    orders.start_trial(session, account, trial, by=owner, now=NOW)
    member = person(session, account)
    with pytest.raises(orders.TrialTaken):
        orders.start_trial(session, account, trial, by=member, now=NOW)

    # The same verified address in another account (it moved): still once.
    other, _owner = client(session)
    owner.account = other
    session.commit()
    with pytest.raises(orders.TrialTaken):
        orders.start_trial(session, other, trial, by=owner, now=NOW)
    assert count(session, TrialClaim) == 1 and count(session, Lot) == 1


def test_the_trial_needs_a_verified_address(session):
    account, _owner = client(session)
    unverified = person(session, account, verified=False)
    with pytest.raises(orders.OrderError, match="confirm your email"):
        orders.start_trial(session, account, pack(session, "demo-trial"), by=unverified, now=NOW)
    assert count(session, Order) == 0
