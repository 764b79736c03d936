"""The unlimited-tickets subscription over HTTP: subscribed at checkout,
confirmed by staff, free tickets opened from the portal, cancelled by an
owner only, refused again until the waiting time is over, renewed by the
job with its instructions mailed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from babel.dates import format_date
from sqlalchemy import select

from billing.accounts.models import User
from billing.catalogue.offers import load_preset
from billing.desk.models import Ticket
from billing.notifications.outbox import OutboxMessage
from billing.orders.models import Order, Payment
from billing.subscriptions import services as subscriptions
from billing.subscriptions.models import Subscription
from commands.jobs import run_once
from common.extensions import db
from tests.conftest import login, post_form
from tests.test_security import snapshot


@pytest.fixture
def app_config():
    return {"PROVIDER_IBAN": "FR7630006000011234567890189"}


@pytest.fixture
def demo(app):
    with app.app_context():
        load_preset(db.session, "demo")


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def subscribe(client, app, people, staff_client) -> Subscription:
    """The owner subscribes by transfer and staff confirm the money."""
    login(client, people["owner"])
    checkout = text(client.get("/checkout/demo-unlimited"))
    assert 'name="method"' in checkout and "cancel at any time" in checkout
    placed = post_form(client, "/checkout/demo-unlimited", {"method": "transfer", "quantity": "1", "total": "17880"})
    assert placed.status_code == 302, re.findall(r'class="[^"]*error[^"]*"[^>]*>([^<]+)', text(placed))
    assert "Your subscription period starts as soon as the money arrives." in text(client.get(placed.location))
    with app.app_context():
        order = db.session.scalar(select(Order).order_by(Order.id.desc()))
        payment_id = db.session.scalar(select(Payment.id).where(Payment.order_id == order.id))
    login(staff_client, people["staff"])
    confirmed = post_form(staff_client, f"/portal/staff/payments/{payment_id}/confirm",
                          {"amount": "178.80", "received_on": datetime.now(UTC).date().isoformat()})
    assert confirmed.status_code == 302, text(confirmed)
    assert "its subscription period has started" in text(staff_client.get(confirmed.location))
    paid = text(client.get(placed.location))
    assert "the subscription period it pays has started" in paid and "credited" not in paid
    with app.app_context():
        return db.session.scalar(select(Subscription))


@pytest.fixture
def staff_client(app):
    return app.test_client()


def test_the_pack_page_offers_to_subscribe(client, demo):
    page = text(client.get("/packs/demo-unlimited"))
    assert "Subscribe" in page and "Write to us" not in page


def test_subscribe_then_open_free_tickets_from_the_portal(app, client, demo, people, staff_client):
    running = subscribe(client, app, people, staff_client)
    assert running is not None and running.ends_at is None

    home = text(client.get("/portal/"))
    assert 'id="subscription-card"' in home and "Unlimited tickets" in home
    page = text(client.get("/portal/subscription"))
    assert "Active" in page and "Cancel the subscription" in page

    form = text(client.get("/portal/tickets/new"))
    assert '<option selected value="subscription">' in form or 'value="subscription" selected' in form
    opened = post_form(client, "/portal/tickets/new", {"subject": "Wi-Fi", "description": "It drops.",
                                                       "balance": "subscription", "criticality": "normal"})
    assert opened.status_code == 302
    with app.app_context():
        ticket = db.session.scalar(select(Ticket))
        assert ticket.subscription_id == running.id
    shown = text(client.get(f"/portal/tickets/{ticket.id}"))
    assert "covered by the subscription" in shown

    again = text(client.get("/checkout/demo-unlimited"))
    assert "You are already subscribed" in again and 'name="method"' not in again


def test_only_an_owner_cancels_and_then_subscribing_waits(app, client, demo, people, staff_client):
    running = subscribe(client, app, people, staff_client)
    member = app.test_client()
    login(member, people["member"])
    assert text(member.get("/portal/subscription")).count("Cancel the subscription") == 0
    before = snapshot(app)
    assert post_form(member, "/portal/subscription/cancel").status_code == 403
    assert post_form(staff_client, "/portal/subscription/cancel").status_code == 403
    anonymous = app.test_client()
    assert post_form(anonymous, "/portal/subscription/cancel").status_code == 302
    assert client.post("/portal/subscription/cancel").status_code == 400  # no CSRF token
    assert snapshot(app) == before

    done = post_form(client, "/portal/subscription/cancel", follow_redirects=True)
    page = text(done)
    assert done.status_code == 200 and "Your subscription is cancelled" in page and "Cancelled on" in page
    with app.app_context():
        cancelled = db.session.get(Subscription, running.id)
        assert cancelled.end_reason == "cancelled"
        at = cancelled.cancelled_at
        next_month = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
        assert cancelled.ends_at == max(next_month, cancelled.paid_until)
        until = format_date(cancelled.ends_at, "long", locale="en")
        # Ordering again waits for the pack's months after the cancellation: that is the date said.
        again = format_date(subscriptions.may_subscribe_from(db.session, cancelled.account_id, cancelled.pack),
                            "long", locale="en")
    refused = text(client.get("/checkout/demo-unlimited"))
    assert f"runs until {until}; you may subscribe again from {again}." in refused and 'name="method"' not in refused
    before = snapshot(app)
    posted = post_form(client, "/checkout/demo-unlimited", {"method": "transfer", "quantity": "1", "total": "17880"})
    assert posted.status_code == 422 and "runs until" in text(posted)
    assert snapshot(app) == before


def test_the_job_orders_the_renewal_and_mails_its_instructions(app, client, demo, people, staff_client):
    running = subscribe(client, app, people, staff_client)
    with app.app_context():
        lines = {done.duty: done for done in run_once(running.paid_until - timedelta(days=6))}
        assert (lines["renew"].count, lines["renew"].ok) == (1, True)
        again = {done.duty: done for done in run_once(running.paid_until - timedelta(days=5))}
        assert again["renew"].count == 0
        current = db.session.get(Subscription, running.id)
        renewal = current.renewal_order
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        assert (renewal.status, renewal.method, renewal.placed_by_id) == ("pending", "transfer", owner.id)
        mails = db.session.scalars(select(OutboxMessage.kind).where(OutboxMessage.user_id == owner.id)).all()
        assert mails.count("order_received") == 2  # the first period's and the renewal's instructions
    page = text(client.get("/portal/subscription"))
    assert f"order #{renewal.id}" in page and "awaits its payment" in page
