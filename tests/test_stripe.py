"""Card payments through the real stripe library, pointed at the local
server of tests/stripe_server.py, with webhooks signed with the real scheme:
the checkout's session, webhooks delivered twice, out of order, late, badly
signed or too old, the success page before and after the webhook, lock
contention, refunds, and `flask stripe reconcile`. One grant, one invoice,
one mail, whatever the order in which Stripe's news arrives."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import stripe
from checkout_support import NOW, both
from sqlalchemy import func, select

from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.ledger import services as ledger
from billing.ledger.models import Entry, Lot, Overage
from billing.orders import services as orders
from billing.orders.models import Invoice, Order, OrderEvent, Payment
from billing.subscriptions.models import Subscription
from common import payments
from common.extensions import db
from common.identity import accounts
from common.payments import card
from tests.conftest import PASSWORD, login, post_form
from tests.smtp import smtp_server  # noqa: F401 (a fixture)
from tests.stripe_server import SECRET_KEY, WEBHOOK_SECRET, sign, stripe_server  # noqa: F401 (a fixture)
from tests.test_security import snapshot


@pytest.fixture
def app_config(stripe_server, smtp_server, database_url) -> dict:
    config = {"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
              "STRIPE_API_BASE": stripe_server.url, **smtp_server.config}
    if database_url.startswith("sqlite"):
        # A webhook that finds the database locked answers 503 after this long, not SQLite's default 5 s.
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 0.2}}
    return config


@pytest.fixture
def shop(app, people):
    with app.app_context():
        load_preset(db.session, "demo")
    return app


def order_by_card(client, *, log_in: bool = True):
    """The owner orders 5 hours by card: the checkout's response."""
    if log_in:
        login(client, "owner@example.com")
    return post_form(client, "/checkout/demo-hours-5", {"method": "card", "total": "51000"})


def placed(app) -> tuple[Order, Payment]:
    with app.app_context():
        payment = db.session.scalar(select(Payment).order_by(Payment.id.desc()))
        order = payment.order
        db.session.expunge_all()
        return order, payment


def deliver(client, server, kind: str, object_id: str, *, secret: str = WEBHOOK_SECRET, timestamp=None,
            payload: str | None = None):
    payload = payload if payload is not None else server.event(kind, object_id)
    return client.post("/stripe/webhook", data=payload, content_type="application/json",
                       headers={"Stripe-Signature": sign(payload, secret, timestamp)})


def outcome(response) -> str:
    return response.get_json()["outcome"]


def counts(app) -> dict[str, int]:
    with app.app_context():
        return {
            "lots": db.session.scalar(select(func.count()).select_from(Lot)),
            "invoices": db.session.scalar(select(func.count()).select_from(Invoice).where(Invoice.kind == "invoice")),
            "credit_notes": db.session.scalar(select(func.count()).select_from(Invoice)
                                              .where(Invoice.kind == "credit_note")),
        }


def paid_mails(smtp) -> list:
    return [m for m in smtp.messages if m["Subject"].startswith("Payment received")]


# --- The signer ---------------------------------------------------------------------

def test_the_test_signer_is_stripe_s_scheme():
    payload = json.dumps({"id": "evt_1", "type": "charge.refunded"})
    assert stripe.WebhookSignature.verify_header(payload, sign(payload), WEBHOOK_SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload, sign(payload, "whsec_other"), WEBHOOK_SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload, sign(payload, timestamp=int(time.time()) - 301),
                                              WEBHOOK_SECRET, tolerance=300)


# --- Offered or not ---------------------------------------------------------------

@pytest.mark.parametrize("missing", ["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"])
def test_without_stripe_settings_card_is_not_offered_and_staff_see_why(app, client, shop, missing):
    app.config[missing] = ""
    assert 'value="card"' not in client.get("/checkout/demo-hours-5").get_data(as_text=True)
    login(client, "owner@example.com")
    refused = post_form(client, "/checkout/demo-hours-5", {"method": "card", "total": "51000"})
    assert refused.status_code == 422 and "Choose one of the payment methods offered." in refused.get_data(as_text=True)

    staff = app.test_client()
    login(staff, "staff@example.com")
    page = staff.get("/portal/staff/orders").get_data(as_text=True)
    assert f"({missing})" in page


def test_card_is_offered_once_stripe_is_set_up(client, shop):
    page = client.get("/checkout/demo-hours-5").get_data(as_text=True)
    assert 'value="card"' in page and "secure page" in page


# --- Checkout -------------------------------------------------------------------------

def test_the_checkout_sends_the_buyer_to_one_session_with_the_order_s_details(app, client, shop, stripe_server):
    response = order_by_card(client)
    order, payment = placed(app)

    (created,) = stripe_server.created_sessions()
    session_id = payment.external_id
    assert response.status_code == 302
    assert response.headers["Location"] == f"{stripe_server.url}/pay/{session_id}"
    assert created.params["mode"] == "payment"
    assert created.params["line_items"] == [{"quantity": "1", "price_data": {
        "currency": "eur", "unit_amount": "51000", "product_data": {"name": "5 hours"}}}]
    assert created.params["client_reference_id"] == order.reference
    assert created.params["metadata"] == {"order_id": str(order.id), "payment_id": str(payment.id)}
    assert created.params["payment_intent_data"]["metadata"] == created.params["metadata"]
    assert created.params["success_url"] == "http://localhost/stripe/return?session_id={CHECKOUT_SESSION_ID}"
    assert created.params["cancel_url"] == f"http://localhost/portal/orders/{order.id}"
    assert created.params["customer_email"] == "owner@example.com"
    with app.app_context():
        assert created.idempotency_key == card.idempotency_key(payment)
    assert (order.status, order.method, payment.status, payment.amount) == ("pending", "card", "pending", 51000)

    page = client.get(f"/portal/orders/{order.id}").get_data(as_text=True)
    assert "Pay by card" in page and f'href="{stripe_server.url}/pay/{session_id}"' in page
    assert f"/stripe/return?session_id={session_id}" in page


def test_asking_twice_for_one_payment_gives_one_session(app, client, shop, stripe_server):
    order_by_card(client)
    order, payment = placed(app)
    with app.test_request_context():
        payment = db.session.get(Payment, payment.id)
        again = payments.get("card").execute(db.session, payment, now=NOW,
                                             return_url=f"http://localhost/portal/orders/{order.id}")
        session_id = payment.external_id

    assert again == f"{stripe_server.url}/pay/{session_id}"
    assert len(stripe_server.sessions) == 1 and len(stripe_server.created_sessions()) == 2
    assert len({r.idempotency_key for r in stripe_server.created_sessions()}) == 1


def test_stripe_down_at_checkout_cancels_the_order_and_charges_nothing(app, client, shop, stripe_server):
    stripe_server.failing = 400
    response = order_by_card(client)

    order, payment = placed(app)
    assert response.headers["Location"] == f"/portal/orders/{order.id}"
    assert (order.status, payment.status) == ("cancelled", "failed")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The card payment could not be started: nothing was charged." in page
    assert counts(app)["lots"] == 0


# --- Paid: the webhook and the success page ------------------------------------------------

@both
def test_a_webhook_delivered_twice_credits_once(app, client, shop, stripe_server, smtp_server):
    order_by_card(client)
    order, payment = placed(app)
    stripe_server.pay(payment.external_id)

    first = deliver(client, stripe_server, "checkout.session.completed", payment.external_id)
    again = deliver(client, stripe_server, "checkout.session.completed", payment.external_id)

    assert (first.status_code, outcome(first)) == (200, "paid")
    assert (again.status_code, outcome(again)) == (200, "duplicate")
    assert counts(app) == {"lots": 1, "invoices": 1, "credit_notes": 0}
    order, payment = placed(app)
    assert (order.status, payment.status, payment.amount) == ("paid", "confirmed", 51000)
    assert len(paid_mails(smtp_server)) == 1


def test_a_subscription_paid_by_card_starts_one_period_however_often_stripe_says_it(app, client, shop,
                                                                                   stripe_server, smtp_server):
    login(client, "owner@example.com")
    assert post_form(client, "/checkout/demo-unlimited", {"method": "card", "total": "17880"}).status_code == 302
    order, payment = placed(app)
    stripe_server.pay(payment.external_id)

    for _ in range(2):
        deliver(client, stripe_server, "checkout.session.completed", payment.external_id)
    assert client.get(f"/stripe/return?session_id={payment.external_id}").status_code == 302

    with app.app_context():
        running = db.session.scalar(select(Subscription))
        assert [p.order_id for p in running.periods] == [order.id] and running.ends_at is None
    assert counts(app) == {"lots": 0, "invoices": 1, "credit_notes": 0}
    assert len(paid_mails(smtp_server)) == 1
    assert "Active" in client.get("/portal/subscription").get_data(as_text=True)


def card_payer_with_an_overage_request(app, client, stripe_server) -> int:
    """The owner paid Digitale's 3 hours by card, then a ticket of 200 minutes went beyond them:
    the request's id."""
    login(client, "owner@example.com")
    with app.app_context():
        load_preset(db.session, "digitale")
        total = orders.quote(db.session.scalar(select(Pack).where(Pack.slug == "digitale-3h")), 1).gross
    post_form(client, "/checkout/digitale-3h", {"method": "card", "total": str(total)})
    _order, payment = placed(app)
    stripe_server.pay(payment.external_id)
    assert outcome(deliver(client, stripe_server, "checkout.session.completed", payment.external_id)) == "paid"
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == "owner@example.com"))
        now = datetime.now(UTC)
        work = ledger.open_ticket(db.session, owner.account, owner, "Help", now=now)
        ledger.charge_ticket_to(db.session, work, 200, by=None, key="beyond", now=now)
        [request] = work.overages
        assert request.status == "pending" and request.price
        return request.id


def test_a_card_payer_s_overage_bill_is_paid_on_stripe_and_invoiced_once(app, client, shop, stripe_server,
                                                                         smtp_server):
    request_id = card_payer_with_an_overage_request(app, client, stripe_server)

    approved = post_form(client, f"/portal/overages/{request_id}/approve")
    assert approved.status_code == 302
    bill, payment = placed(app)
    assert (bill.overage_id, bill.method, payment.status) == (request_id, "card", "pending")
    assert "Continue to the payment page" in client.get(f"/portal/orders/{bill.id}").get_data(as_text=True)
    stripe_server.pay(payment.external_id)
    for _ in range(2):
        deliver(client, stripe_server, "checkout.session.completed", payment.external_id)

    bill, payment = placed(app)
    assert (bill.status, payment.status, payment.amount) == ("paid", "confirmed", bill.total)
    assert counts(app) == {"lots": 1, "invoices": 2, "credit_notes": 0}  # the bill grants nothing


def test_stripe_down_when_an_overage_is_approved_bills_it_by_transfer(app, client, shop, stripe_server):
    request_id = card_payer_with_an_overage_request(app, client, stripe_server)
    stripe_server.failing = 400

    assert post_form(client, f"/portal/overages/{request_id}/approve").status_code == 302
    with app.app_context():
        bills = db.session.scalars(select(Order).where(Order.overage_id == request_id).order_by(Order.id)).all()
        assert [(b.method, b.status) for b in bills] == [("card", "cancelled"), ("transfer", "pending")]
        assert db.session.get(Overage, request_id).status == "approved"


@both
@pytest.mark.parametrize("first", ["webhook", "success page"])
def test_the_webhook_and_the_success_page_credit_once_whichever_comes_first(app, client, shop, stripe_server,
                                                                            smtp_server, first):
    order_by_card(client)
    order, payment = placed(app)
    stripe_server.pay(payment.external_id)

    def webhook():
        return outcome(deliver(client, stripe_server, "checkout.session.completed", payment.external_id))

    def success_page():
        response = client.get(f"/stripe/return?session_id={payment.external_id}")
        assert response.headers["Location"] == f"/portal/orders/{order.id}"
        return client.get(response.headers["Location"]).get_data(as_text=True)

    if first == "webhook":
        assert webhook() == "paid"
        assert "your payment is confirmed" in success_page()
    else:
        assert "your payment is confirmed" in success_page()
        assert webhook() == "duplicate"
    assert counts(app) == {"lots": 1, "invoices": 1, "credit_notes": 0}
    assert len(paid_mails(smtp_server)) == 1


@both
def test_the_webhook_and_the_success_page_at_the_same_moment_credit_once(app, client, shop, stripe_server,
                                                                         smtp_server):
    order_by_card(client)
    _order, payment = placed(app)
    stripe_server.pay(payment.external_id)
    start = threading.Barrier(2)
    answers: dict[str, list] = {"webhook": [], "page": []}

    def webhook():
        stripe_client = app.test_client()
        start.wait()
        for _attempt in range(20):  # as Stripe does, again after a 503
            response = deliver(stripe_client, stripe_server, "checkout.session.completed", payment.external_id)
            answers["webhook"].append((response.status_code, outcome(response)))
            if response.status_code != 503:
                return

    def success_page():
        start.wait()
        answers["page"].append(client.get(f"/stripe/return?session_id={payment.external_id}").status_code)

    threads = [threading.Thread(target=webhook), threading.Thread(target=success_page)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert answers["page"] == [302]
    assert answers["webhook"][-1] in ((200, "paid"), (200, "duplicate"))
    assert counts(app) == {"lots": 1, "invoices": 1, "credit_notes": 0}
    assert placed(app)[1].status == "confirmed" and len(paid_mails(smtp_server)) == 1


def test_the_success_page_asks_stripe_and_does_not_believe_the_address(app, client, shop, stripe_server):
    order_by_card(client)
    order, payment = placed(app)

    page = client.get(f"/stripe/return?session_id={payment.external_id}", follow_redirects=True)
    assert "Your card payment is not complete" in page.get_data(as_text=True)
    assert client.get("/stripe/return?session_id=cs_test_forged").status_code == 404
    assert counts(app)["lots"] == 0 and placed(app)[1].status == "pending"


def test_the_webhook_acts_on_what_stripe_says_not_on_what_the_event_carries(app, client, shop, stripe_server):
    order_by_card(client)
    _order, payment = placed(app)
    # A genuine, signed event, but Stripe now says the session is not paid (say, an event replayed by mistake).
    event = json.loads(stripe_server.event("checkout.session.completed", payment.external_id))
    event["data"]["object"]["payment_status"] = "paid"

    response = deliver(client, stripe_server, "", "", payload=json.dumps(event))

    assert outcome(response) == "open"
    assert counts(app)["lots"] == 0 and placed(app)[1].status == "pending"
    fetched = [r.path for r in stripe_server.requests if r.method == "GET"]
    assert fetched == [f"/v1/checkout/sessions/{payment.external_id}"]


@both
def test_a_delayed_debit_credits_when_it_clears_even_if_the_news_comes_out_of_order(app, client, shop,
                                                                                   stripe_server, smtp_server):
    order_by_card(client)
    _order, payment = placed(app)
    stripe_server.complete_unpaid(payment.external_id)
    completed = stripe_server.event("checkout.session.completed", payment.external_id)  # sent now, arrives last
    assert outcome(deliver(client, stripe_server, "", "", payload=completed)) == "processing"
    assert counts(app)["lots"] == 0

    stripe_server.async_succeed(payment.external_id)
    assert outcome(deliver(client, stripe_server, "checkout.session.async_payment_succeeded",
                           payment.external_id)) == "paid"
    assert outcome(deliver(client, stripe_server, "", "", payload=completed)) == "duplicate"
    assert counts(app) == {"lots": 1, "invoices": 1, "credit_notes": 0}
    assert len(paid_mails(smtp_server)) == 1


@pytest.mark.parametrize("happens, kind, said, payment_status", [
    ("async_fail", "checkout.session.async_payment_failed", "failed", "failed"),
    ("expire", "checkout.session.expired", "expired", "cancelled"),
])
def test_a_declined_debit_or_an_expired_page_cancels_the_order(app, client, shop, stripe_server, smtp_server,
                                                               happens, kind, said, payment_status):
    order_by_card(client)
    _order, payment = placed(app)
    if happens == "async_fail":
        stripe_server.complete_unpaid(payment.external_id)
    getattr(stripe_server, happens)(payment.external_id)

    assert outcome(deliver(client, stripe_server, kind, payment.external_id)) == said
    assert outcome(deliver(client, stripe_server, kind, payment.external_id)) == said
    order, payment = placed(app)
    assert (order.status, payment.status) == ("cancelled", payment_status)
    assert [m["Subject"] for m in smtp_server.messages] == [f"Your order {order.id} is cancelled"]
    assert counts(app)["lots"] == 0


# --- Late, or not what was asked: flagged, not credited ----------------------------------------

@both
def test_a_card_paid_after_the_order_was_cancelled_is_flagged_until_refunded(app, client, shop, stripe_server,
                                                                             smtp_server):
    order_by_card(client)
    order, payment = placed(app)
    with app.test_request_context():
        payments.cancel(db.session.get(Order, order.id), reason="Out of stock", now=NOW)
    stripe_server.pay(payment.external_id)

    assert outcome(deliver(client, stripe_server, "checkout.session.completed", payment.external_id)) == "flagged"
    assert outcome(deliver(client, stripe_server, "checkout.session.completed", payment.external_id)) == "flagged"
    assert counts(app) == {"lots": 0, "invoices": 0, "credit_notes": 0}
    order, payment = placed(app)
    assert (order.status, payment.status) == ("cancelled", "cancelled")
    assert payment.info["flag"]["reason"] == "late" and payment.info["flag"]["amount"] == 51000
    assert paid_mails(smtp_server) == []
    staff = app.test_client()
    login(staff, "staff@example.com")
    staff_page = staff.get("/portal/staff/orders").get_data(as_text=True)
    assert "€510.00 paid by card after the order was closed: refund it from Stripe." in staff_page

    charge = stripe_server.payment_intents[stripe_server.sessions[payment.external_id]["payment_intent"]]
    stripe_server.refund(charge["latest_charge"], 51000)
    assert outcome(deliver(client, stripe_server, "charge.refunded", charge["latest_charge"])) == "refunded"
    assert 'id="flagged"' not in staff.get("/portal/staff/orders").get_data(as_text=True)
    assert placed(app)[1].info["refunded"] == 51000
    assert counts(app) == {"lots": 0, "invoices": 0, "credit_notes": 0}


@pytest.mark.parametrize("amount, currency", [(100, None), (None, "usd")])
def test_a_session_paid_in_another_amount_or_currency_is_flagged_not_credited(app, client, shop, stripe_server,
                                                                             amount, currency):
    order_by_card(client)
    _order, payment = placed(app)
    stripe_server.pay(payment.external_id, amount=amount, currency=currency)

    assert outcome(deliver(client, stripe_server, "checkout.session.completed", payment.external_id)) == "flagged"
    assert counts(app)["lots"] == 0
    order, payment = placed(app)
    assert (order.status, payment.status, payment.info["flag"]["reason"]) == ("pending", "pending", "amount")
    staff = app.test_client()
    login(staff, "staff@example.com")
    assert "which does not match the order" in staff.get("/portal/staff/orders").get_data(as_text=True)


# --- What the webhook refuses, ignores, or leaves for later ----------------------------------------

@pytest.mark.parametrize("how", ["no header", "wrong secret", "tampered", "too old"])
def test_a_badly_signed_webhook_gets_400_and_writes_nothing(app, client, shop, stripe_server, how):
    order_by_card(client)
    _order, payment = placed(app)
    stripe_server.pay(payment.external_id)
    payload = stripe_server.event("checkout.session.completed", payment.external_id)
    headers = {
        "no header": {},
        "wrong secret": {"Stripe-Signature": sign(payload, "whsec_guessed")},
        "tampered": {"Stripe-Signature": sign(payload)},
        "too old": {"Stripe-Signature": sign(payload, timestamp=int(time.time()) - 301)},
    }[how]
    body = payload.replace('"livemode": false', '"livemode": true') if how == "tampered" else payload
    before = snapshot(app)

    response = client.post("/stripe/webhook", data=body, content_type="application/json", headers=headers)

    assert (response.status_code, outcome(response)) == (400, "bad signature")
    assert snapshot(app) == before


def test_events_we_do_not_handle_and_sessions_not_ours_get_200(app, client, shop, stripe_server):
    order_by_card(client)
    _order, payment = placed(app)
    before = snapshot(app)
    other = stripe_server.create_session({"mode": "payment", "line_items": []})[1]["id"]  # another system's

    assert outcome(deliver(client, stripe_server, "customer.created", payment.external_id)) == "ignored"
    assert outcome(deliver(client, stripe_server, "checkout.session.completed", other)) == "not ours"
    assert snapshot(app) == before


@both
def test_a_webhook_that_cannot_take_the_lock_gets_503_and_stripe_delivers_again(app, client, shop, stripe_server):
    order_by_card(client)
    order, payment = placed(app)
    stripe_server.pay(payment.external_id)
    before = snapshot(app)
    other = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with other.connect() as holder:
        # Another writer of the same account, mid-transaction.
        if other.dialect.name == "sqlite":
            holder.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            holder.execute(sa.text("SELECT id FROM accounts WHERE id = :id FOR UPDATE"), {"id": order.account_id})
        busy = deliver(client, stripe_server, "checkout.session.completed", payment.external_id)
        holder.rollback()
    other.dispose()

    assert (busy.status_code, outcome(busy), busy.headers["Retry-After"]) == (503, "retry", "30")
    assert snapshot(app) == before
    assert outcome(deliver(client, stripe_server, "checkout.session.completed", payment.external_id)) == "paid"


def test_a_webhook_that_cannot_ask_stripe_back_gets_503(app, client, shop, stripe_server):
    order_by_card(client)
    _order, payment = placed(app)
    stripe_server.failing = 401
    response = deliver(client, stripe_server, "checkout.session.completed", payment.external_id)
    assert (response.status_code, outcome(response)) == (503, "retry")


# --- Refunds ---------------------------------------------------------------------------------

def pay_and_settle(app, client, stripe_server) -> tuple[Order, Payment, str]:
    order_by_card(client)
    _order, payment = placed(app)
    stripe_server.pay(payment.external_id)
    assert outcome(deliver(client, stripe_server, "checkout.session.completed", payment.external_id)) == "paid"
    order, payment = placed(app)
    intent = stripe_server.sessions[payment.external_id]["payment_intent"]
    return order, payment, stripe_server.payment_intents[intent]["latest_charge"]


def lot_of(app, order: Order) -> tuple[int, list[tuple[str, int]]]:
    with app.app_context():
        lot = db.session.scalar(select(Lot).where(Lot.order_id == order.id))
        entries = db.session.execute(select(Entry.kind, Entry.quantity).where(Entry.lot_id == lot.id)
                                     .order_by(Entry.id)).all()
        return lot.remaining, [tuple(entry) for entry in entries]


@both
def test_a_full_refund_revokes_the_unused_part_of_the_lot_and_issues_a_credit_note(app, client, shop,
                                                                                   stripe_server):
    order, _payment, charge = pay_and_settle(app, client, stripe_server)
    with app.app_context():  # 80 of the 300 minutes used before the refund
        staff = accounts.create_staff(db.session, "Rita Refund", "rita@example.com", PASSWORD)
        lot = db.session.scalar(select(Lot).where(Lot.order_id == order.id))
        ledger.adjust(db.session, lot.account, lot.policy, -80, reason="work done", by=staff, key="used", now=NOW)
    stripe_server.refund(charge, 51000)

    assert outcome(deliver(client, stripe_server, "charge.refunded", charge)) == "refunded"
    assert outcome(deliver(client, stripe_server, "charge.refunded", charge)) == "refunded"

    assert lot_of(app, order) == (0, [("grant", 300), ("adjust", -80), ("refund", -220)])
    assert counts(app) == {"lots": 1, "invoices": 1, "credit_notes": 1}
    with app.app_context():
        note = db.session.scalar(select(Invoice).where(Invoice.kind == "credit_note"))
        assert (note.gross, note.net, note.vat, note.corrects.order_id) == (51000, 42500, 8500, order.id)
        assert db.session.get(Order, order.id).status == "refunded"


@both
def test_a_partial_refund_takes_back_its_share_of_the_units_once_however_often_stripe_says_it(app, client, shop,
                                                                                            stripe_server):
    order, _payment, charge = pay_and_settle(app, client, stripe_server)
    stripe_server.refund(charge, 10000)
    for _delivery in range(2):
        assert outcome(deliver(client, stripe_server, "charge.refunded", charge)) == "refunded"
    # €100.00 of €510.00: 58.8 of the 300 minutes, rounded up.
    assert lot_of(app, order) == (241, [("grant", 300), ("refund", -59)])

    stripe_server.refund(charge, 41000)
    for _delivery in range(2):
        assert outcome(deliver(client, stripe_server, "charge.refunded", charge)) == "refunded"
    assert lot_of(app, order) == (0, [("grant", 300), ("refund", -59), ("refund", -241)])
    with app.app_context():
        notes = db.session.scalars(select(Invoice.gross).where(Invoice.kind == "credit_note")
                                   .order_by(Invoice.id)).all()
        assert notes == [10000, 41000] and db.session.get(Order, order.id).status == "refunded"
    verified = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert verified.exit_code == 0 and verified.output.startswith("ok\t"), verified.output


def test_refunds_stripe_tells_of_together_are_taken_oldest_first(app, client, shop, stripe_server):
    order, _payment, charge = pay_and_settle(app, client, stripe_server)
    stripe_server.refund(charge, 10000)
    stripe_server.refund(charge, 41000)  # the first webhook lost: Stripe's next tells of both, newest first

    assert outcome(deliver(client, stripe_server, "charge.refunded", charge)) == "refunded"

    assert lot_of(app, order) == (0, [("grant", 300), ("refund", -59), ("refund", -241)])
    with app.app_context():
        notes = db.session.scalars(select(Invoice.gross).where(Invoice.kind == "credit_note")
                                   .order_by(Invoice.id)).all()
        assert notes == [10000, 41000]


def test_staff_refund_a_card_order_from_its_page_through_stripe_once(app, client, shop, stripe_server):
    order, _payment, charge = pay_and_settle(app, client, stripe_server)
    staff = app.test_client()
    login(staff, "staff@example.com")
    page = staff.get(f"/portal/orders/{order.id}").get_data(as_text=True)
    assert "The money goes back to the card through Stripe." in page
    token = re.search(r'name="token" type="hidden" value="([0-9a-f]{32})"', page).group(1)
    form = {"amount": "204.00", "reason": "Slow answer", "token": token}

    first = post_form(staff, f"/portal/staff/orders/{order.id}/refund", form)
    again = post_form(staff, f"/portal/staff/orders/{order.id}/refund", form)

    assert (first.status_code, again.status_code) == (302, 302)
    created = [r for r in stripe_server.requests if (r.method, r.path) == ("POST", "/v1/refunds")]
    assert len(created) == 2 and len({r.idempotency_key for r in created}) == 1 and len(stripe_server.refunds) == 1
    assert created[0].params["amount"] == "20400" and created[0].params["metadata"]["note"] == "Slow answer"
    # 40 % of the money: 40 % of the 300 minutes, once.
    assert lot_of(app, order) == (180, [("grant", 300), ("refund", -120)])
    assert outcome(deliver(client, stripe_server, "charge.refunded", charge)) == "refunded"
    assert lot_of(app, order) == (180, [("grant", 300), ("refund", -120)])
    with app.app_context():
        (note,) = db.session.scalars(select(Invoice).where(Invoice.kind == "credit_note")).all()
        event = db.session.scalar(select(OrderEvent).where(OrderEvent.kind == "credit_note"))
        assert (note.gross, note.note, event.by.email) == (20400, "Slow answer", "staff@example.com")
    page = staff.get(first.headers["Location"]).get_data(as_text=True)
    assert "€204.00 refunded, credit note" in page and "2 h taken back" in page


def test_a_card_refund_stripe_refuses_is_said_and_writes_nothing(app, client, shop, stripe_server):
    order, _payment, _charge = pay_and_settle(app, client, stripe_server)
    staff = app.test_client()
    login(staff, "staff@example.com")
    page = staff.get(f"/portal/orders/{order.id}").get_data(as_text=True)
    token = re.search(r'name="token" type="hidden" value="([0-9a-f]{32})"', page).group(1)
    stripe_server.failing = 402
    before = snapshot(app)

    refused = post_form(staff, f"/portal/staff/orders/{order.id}/refund",
                        {"amount": "10.00", "reason": "Goodwill", "token": token})

    assert refused.status_code == 422 and "Stripe refused the refund" in refused.get_data(as_text=True)
    assert snapshot(app) == before


def test_staff_refund_through_stripe_once_per_click(app, client, shop, stripe_server):
    order, payment, charge = pay_and_settle(app, client, stripe_server)
    with app.test_request_context():
        payment = db.session.get(Payment, payment.id)
        for _click in range(2):
            payments.get("card").refund(db.session, payment, 20000, "Goodwill: slow answer", now=NOW)

    created = [r for r in stripe_server.requests if (r.method, r.path) == ("POST", "/v1/refunds")]
    assert len(created) == 2 and len({r.idempotency_key for r in created}) == 1
    assert created[0].params["amount"] == "20000" and created[0].params["metadata"]["order_id"] == str(order.id)
    assert len(stripe_server.refunds) == 1
    with app.app_context():
        (note,) = db.session.scalars(select(Invoice).where(Invoice.kind == "credit_note")).all()
        assert (note.gross, note.note) == (20000, "Goodwill: slow answer")
    # Stripe's webhook about it then finds it done.
    assert outcome(deliver(client, stripe_server, "charge.refunded", charge)) == "refunded"
    assert counts(app)["credit_notes"] == 1


# --- flask stripe reconcile ----------------------------------------------------------------------

@both
def test_reconcile_settles_every_open_card_payment_once(app, client, shop, stripe_server, smtp_server):
    sessions = []
    for n in range(3):
        order_by_card(client, log_in=n == 0)
        sessions.append(placed(app)[1])
    app.config["SERVER_NAME"] = "shop.example.com"  # the mails link to the site
    lost_webhook, abandoned, still_open = sessions
    stripe_server.pay(lost_webhook.external_id)
    stripe_server.expire(abandoned.external_id)
    runner = app.test_cli_runner()

    first = runner.invoke(args=["stripe", "reconcile"])
    again = runner.invoke(args=["stripe", "reconcile"])

    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [f"{lost_webhook.id}\t{lost_webhook.order_id}\tpaid",
                                         f"{abandoned.id}\t{abandoned.order_id}\texpired",
                                         f"{still_open.id}\t{still_open.order_id}\topen"]
    assert again.output.splitlines() == [f"{still_open.id}\t{still_open.order_id}\topen"]
    assert counts(app) == {"lots": 1, "invoices": 1, "credit_notes": 0}
    assert len(paid_mails(smtp_server)) == 1


def test_reconcile_says_which_payment_stripe_did_not_answer_for(app, client, shop, stripe_server):
    order_by_card(client)
    payment = placed(app)[1]
    app.config["SERVER_NAME"] = "shop.example.com"
    stripe_server.failing = 401

    result = app.test_cli_runner().invoke(args=["stripe", "reconcile"])

    assert result.exit_code == 1
    assert result.output.startswith(f"{payment.id}\t{payment.order_id}\terror\t")


def test_reconcile_without_stripe_settings_is_a_usage_error(app):
    app.config["STRIPE_SECRET_KEY"] = ""
    result = app.test_cli_runner().invoke(args=["stripe", "reconcile"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "Error: No Stripe key is set (STRIPE_SECRET_KEY): card payments cannot be taken.\n"
