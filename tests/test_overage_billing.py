"""An approved overage is billed at the hourly rate (issue 3): one order in
the approval's transaction, paid like any other without granting units,
and following the overage when a correction shrinks it.

Digitale Artiste (``ask``, seed 002): 3 hours bought, a ticket of 200 min,
20 min beyond the balance at €65 an hour, VAT 20 % on top. By hand: 20/60 ×
6500 = 2166.67 → 2167 net, 20 % of it 433.4 → 433 VAT, 2600 in all.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from checkout_support import EUR_IBAN, confirm
from conftest import login, post_form
from ledger_support import (  # noqa: F401 - ledger_app and session are fixtures
    NOW,
    assert_verified,
    buy,
    charge,
    held,
    key,
    ledger_app,
    new_client,
    pack,
    person,
    session,
    staff,
    ticket,
)
from sqlalchemy import func, select
from test_ledger_concurrency import at_once

from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.ledger.models import Lot, Overage
from billing.notifications.outbox import OutboxMessage
from billing.orders import overage_bills, references
from billing.orders.models import Invoice, Order, Payment
from common.extensions import db

both = pytest.mark.parametrize("ledger_app", ["sqlite", "postgresql"], indirect=True)


def asked(session, minutes: int = 200):
    """Digitale's 3 hours used up by a ticket of ``minutes``: the owner and the pending request."""
    account, owner = new_client(session)
    buy(session, account, "digitale-3h")
    work = ticket(session, account, owner)
    charge(session, work, minutes)
    [request] = work.overages
    assert request.status == "pending"
    return account, owner, work, request


def bills(session, overage: Overage) -> list[Order]:
    return list(session.scalars(select(Order).where(Order.overage_id == overage.id).order_by(Order.id)))


def payment_of(session, order: Order) -> Payment:
    return session.scalar(select(Payment).where(Payment.order_id == order.id, Payment.status == "pending"))


def approved_and_paid(session):
    account, owner, work, request = asked(session)
    overage_bills.approve(session, request, by=owner, now=NOW)
    [order] = bills(session, request)
    outcome = confirm(session, payment_of(session, order), by=staff(session))
    assert outcome.status == "paid" and outcome.paid_now
    return account, owner, work, request, order


# --- Approval bills ---------------------------------------------------------

def test_approval_places_one_pending_order_for_the_price_at_the_hourly_rate(session):
    account, owner, _, request = asked(session)
    overage_bills.approve(session, request, by=owner, now=NOW)
    [order] = bills(session, request)
    assert (order.status, order.pack_id, order.account_id, order.placed_by_id) == (
        "pending", None, account.id, owner.id)
    assert (order.net, order.vat, order.total, order.currency) == (2167, 433, 2600, "EUR")
    assert (order.vat_rate_bp, order.price_includes_vat, order.quantity) == (2000, False, 20)
    assert (order.method, order.language) == ("transfer", owner.language)
    assert references.is_rf_reference(order.reference)
    payment = payment_of(session, order)
    assert (payment.provider, payment.amount) == ("transfer", 2600)
    told = session.scalars(select(OutboxMessage.kind).where(OutboxMessage.key.like(f"order:{order.id}%"))).all()
    assert told == ["order_received"]
    assert held(session, account, "digitale-3h") == 0
    assert_verified(session, account)


def test_approving_twice_places_one_order(session):
    _, owner, _, request = asked(session)
    overage_bills.approve(session, request, by=owner, now=NOW)
    overage_bills.approve(session, request, by=owner, now=NOW)
    assert len(bills(session, request)) == 1


def paid_by_cheque_before(session):
    account, owner, work, request = asked(session)
    session.add(Order(account_id=account.id, pack=pack(session, "digitale-3h"), placed_by=owner, method="cheque",
                      status="paid", total=0, currency="EUR", created_at=NOW, paid_at=NOW))
    session.commit()
    return owner, request


@pytest.mark.parametrize(("offered", "method"), [(("transfer", "cheque", "card"), "cheque"),
                                                 (("transfer",), "transfer")])
def test_the_bill_is_paid_as_the_account_last_paid_when_that_is_offered(session, offered, method):
    owner, request = paid_by_cheque_before(session)
    overage_bills.approve(session, request, by=owner, now=NOW, methods=offered)
    [order] = bills(session, request)
    assert order.method == method and payment_of(session, order).provider == method


def test_declining_places_no_order(session):
    _, owner, _, request = asked(session)
    ledger.decline_overage(session, request, by=owner, now=NOW)
    assert bills(session, request) == []


@pytest.fixture
def digitale_quotes(session):
    """Digitale with no hourly rate anywhere: the provider quotes."""
    policy = pack(session, "digitale-3h").policy
    packs = session.scalars(select(Pack).where(Pack.policy_id == policy.id)).all()
    rates = {p.id: p.hourly_rate for p in packs}
    policy_rate, policy.overage_hourly_rate = policy.overage_hourly_rate, None
    for p in packs:
        p.hourly_rate = None
    session.commit()
    yield
    policy.overage_hourly_rate = policy_rate
    for p in packs:
        p.hourly_rate = rates[p.id]
    session.commit()


@pytest.mark.usefixtures("digitale_quotes")
def test_a_request_without_a_price_is_approved_without_an_order(session):
    _, owner, _, request = asked(session)
    assert request.price is None
    overage_bills.approve(session, request, by=owner, now=NOW)
    assert request.status == "approved" and bills(session, request) == []


# --- Paying -----------------------------------------------------------------

def test_staff_confirm_the_transfer_invoice_it_and_grant_nothing(session):
    account, _, work, request, order = approved_and_paid(session)
    assert order.status == "paid" and request.status == "approved"
    invoice = session.scalar(select(Invoice).where(Invoice.order_id == order.id))
    assert (invoice.kind, invoice.net, invoice.vat, invoice.gross) == ("invoice", 2167, 433, 2600)
    [line] = invoice.lines
    assert line.description == f"Overage on ticket #{work.id}: 20 min at €65.00 an hour"
    assert (line.quantity, line.unit_price, line.net, line.vat, line.gross) == (1, 2167, 2167, 433, 2600)
    assert session.scalar(select(func.count()).select_from(Lot).where(Lot.account_id == account.id)) == 1
    assert held(session, account, "digitale-3h") == 0
    assert_verified(session, account)


# --- Corrections ------------------------------------------------------------

def test_a_correction_before_payment_replaces_the_bill_then_cancels_it(session):
    account, owner, work, request = asked(session)
    overage_bills.approve(session, request, by=owner, now=NOW)
    charge(session, work, 190, by=staff(session))  # 10 min beyond: 1083.33 → 1083 net, 216.6 → 217 VAT
    first, second = bills(session, request)
    assert first.status == "cancelled" and "a new bill for €13.00 replaces this one" in first.cancel_reason
    assert (second.status, second.net, second.vat, second.total, second.quantity) == ("pending", 1083, 217, 1300, 10)
    assert (second.method, second.placed_by_id) == (first.method, owner.id)
    assert payment_of(session, second).amount == 1300 and payment_of(session, first) is None
    charge(session, work, 180, by=staff(session))
    assert [o.status for o in bills(session, request)] == ["cancelled", "cancelled"]
    assert "nothing is left to bill" in bills(session, request)[1].cancel_reason
    assert held(session, account, "digitale-3h") == 0
    assert_verified(session, account)


def test_a_correction_after_payment_credits_the_difference(session):
    account, _, work, request, order = approved_and_paid(session)
    charge(session, work, 190, by=staff(session))
    invoice = session.scalar(select(Invoice).where(Invoice.order_id == order.id, Invoice.kind == "invoice"))
    [note] = session.scalars(select(Invoice).where(Invoice.corrects_id == invoice.id)).all()
    assert (note.kind, note.gross, note.net, note.vat) == ("credit_note", 1300, 1083, 217)
    assert "10 min billed instead of 20" in note.note
    assert order.status == "paid" and len(bills(session, request)) == 1
    charge(session, work, 180, by=staff(session))
    assert sum(session.scalars(select(Invoice.gross).where(Invoice.corrects_id == invoice.id))) == 2600
    assert order.status == "refunded"
    assert_verified(session, account)


def test_a_bill_partly_paid_refuses_the_correction_and_nothing_moves(session):
    _, owner, work, request = asked(session)
    overage_bills.approve(session, request, by=owner, now=NOW)
    [order] = bills(session, request)
    confirm(session, payment_of(session, order), amount=1000, by=staff(session))
    with pytest.raises(ledger.LedgerError, match="has received part of its money"):
        charge(session, work, 190, by=staff(session))
    session.refresh(request)
    assert (request.units, work.billable_minutes) == (20, 200)
    assert [o.status for o in bills(session, request)] == ["pending"]


# --- Two owners at once -----------------------------------------------------

@both
def test_two_owners_approving_at_once_place_one_order(ledger_app):
    with ledger_app.app_context():
        account, owner, _, request = asked(db.session)
        owners = [owner.id, person(db.session, account).id]
        request_id = request.id

    def approve(session, i):
        overage = session.get(Overage, request_id)
        return overage_bills.approve(session, overage, by=session.get(User, owners[i % 2]), now=NOW).status

    results = at_once(ledger_app, approve, threads=8)
    assert results == ["approved"] * 8
    with ledger_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order).where(Order.overage_id == request_id)) == 1


# --- The portal -------------------------------------------------------------

@pytest.fixture
def app_config() -> dict:
    """The order page shows where to send a transfer."""
    return {"PROVIDER_IBAN": EUR_IBAN}


def test_the_owner_approves_pays_from_the_order_page_and_others_see_nothing(app):
    from common.identity import accounts

    client = app.test_client()
    with app.app_context():
        session = db.session
        owner = accounts.register(session, "Pixel", "Paula Owner", f"{key('paula')}@example.com", "pw-1234567890",
                                  "en", "FR")
        buy(session, owner.account, "digitale-3h")
        work = ledger.open_ticket(session, owner.account, owner, "New page", now=NOW)
        charge(session, work, 200)
        [request] = work.overages
        other = accounts.register(session, "Other", "Oscar Other", f"{key('oscar')}@example.com", "pw-1234567890",
                                  "en", "FR")
        emails, ticket_id, request_id = (owner.email, other.email), work.id, request.id
    login(client, emails[0], "pw-1234567890")
    response = post_form(client, f"/portal/overages/{request_id}/approve", {"next": "/portal/"})
    assert response.status_code == 302 and response.headers["Location"] == "/portal/"
    with app.app_context():
        [order] = db.session.scalars(select(Order).where(Order.overage_id == request_id)).all()
        order_id = order.id
    page = client.get("/portal/").get_data(as_text=True)
    assert f'<a href="/portal/orders/{order_id}">Pay €26.00 for ticket #{ticket_id}</a>' in page
    page = client.get(f"/portal/tickets/{ticket_id}").get_data(as_text=True)
    assert f'href="/portal/orders/{order_id}">Pay €26.00 for ticket #{ticket_id}' in page
    listed = client.get("/portal/orders").get_data(as_text=True)
    assert f"Overage on ticket #{ticket_id}: 20 min" in listed
    shown = client.get(f"/portal/orders/{order_id}")
    assert shown.status_code == 200
    text = re.sub(r"\s+", " ", shown.get_data(as_text=True))
    assert f"Overage on ticket #{ticket_id}: 20 min" in text and "€26.00" in text and "Bank transfer" in text
    client.post("/logout", data={"csrf_token": re.search(r'name="csrf-token" content="([^"]+)"', text).group(1)})
    login(client, emails[1], "pw-1234567890")
    assert client.get(f"/portal/orders/{order_id}").status_code == 404
    assert f"Overage on ticket #{ticket_id}" not in client.get("/portal/orders").get_data(as_text=True)


def test_staff_confirm_the_bill_from_the_staff_page(app):
    client = app.test_client()
    with app.app_context():
        session = db.session
        _, owner, _, request = asked(session)
        overage_bills.approve(session, request, by=owner, now=NOW)
        [order] = bills(session, request)
        payment_id, order_id = payment_of(session, order).id, order.id
        reference, request_id = order.reference, request.id
        from common.identity import accounts
        email = f"{key('sam')}@example.com"
        accounts.create_staff(session, "Sam Staff", email, "pw-1234567890")
    login(client, email, "pw-1234567890")
    listed = client.get(f"/portal/staff/orders?q={reference}").get_data(as_text=True)
    assert f"/portal/orders/{order_id}" in listed
    response = post_form(client, f"/portal/staff/payments/{payment_id}/confirm",
                         {"amount": "26.00", "received_on": date.today().isoformat()})
    assert response.status_code == 302
    assert f"Order {order_id} is paid: invoiced." in client.get(response.location).get_data(as_text=True)
    with app.app_context():
        order = db.session.get(Order, order_id)
        assert order.status == "paid"
        assert db.session.scalar(select(func.count()).select_from(Lot).where(Lot.order_id == order_id)) == 0
        assert db.session.get(Ticket, db.session.get(Overage, request_id).ticket_id).units_charged == 200
