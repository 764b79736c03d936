"""Browser journey on Debian's Chromium: a newcomer buys a pack by card,
confirms the address from the mail, is sent to the (local) Stripe payment page with the right amount and
reference, goes back without paying, returns to the same page, pays, and
comes back to a paid and credited order."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing.catalogue.offers import load_preset
from billing.orders.models import Payment
from common.extensions import db
from tests.journeys import choose_pack, confirm_and_back_to_checkout, sign_up_on_checkout, start
from tests.smtp import smtp_server  # noqa: F401 (a fixture)
from tests.stripe_server import SECRET_KEY, WEBHOOK_SECRET, stripe_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def shop(live_server, stripe_server, smtp_server):  # noqa: F811
    url, app = live_server
    app.config.update(STRIPE_SECRET_KEY=SECRET_KEY, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
                      STRIPE_API_BASE=stripe_server.url, **smtp_server.config)
    with app.app_context():
        load_preset(db.session, "demo")
    return url, app


def test_buy_a_pack_by_card_up_to_stripe_and_back(shop, stripe_server, smtp_server, page: Page):  # noqa: F811
    url, app = shop
    start(page, url)
    choose_pack(page, "5 hours")
    page.get_by_role("button", name="Order this pack", exact=True).click()

    page.get_by_label("Card").check()
    sign_up_on_checkout(page)
    if os.environ.get("FORFAIT_SCREENSHOTS"):  # a look at the checkout with card offered
        page.screenshot(path=os.path.join(os.environ["FORFAIT_SCREENSHOTS"], "checkout-card.png"), full_page=True)
    # Nothing goes to Stripe before the address is confirmed.
    confirm_and_back_to_checkout(page, smtp_server, "5 hours")
    assert not stripe_server.created_sessions()
    expect(page.get_by_label("Card")).to_be_checked()
    page.get_by_role("button", name="Place the order").click()

    # Stripe's page (the local server's), for this order's amount and reference.
    expect(page.get_by_role("heading", name="Test checkout")).to_be_visible()
    with app.app_context():
        payment = db.session.scalar(select(Payment))
        reference, session_id = payment.order.reference, payment.external_id
    assert page.url == f"{stripe_server.url}/pay/{session_id}"
    expect(page.locator("#amount")).to_have_text("510.00 EUR")
    expect(page.locator("#reference")).to_have_text(reference)

    # Back without paying (Stripe's cancel_url): the order waits, and leads back to the same page.
    page.get_by_role("link", name="Back").click()
    expect(page.get_by_role("heading", name="Pay by card")).to_be_visible()
    if os.environ.get("FORFAIT_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["FORFAIT_SCREENSHOTS"], "order-card-pending.png"), full_page=True)
    page.get_by_role("button", name="Continue to the payment page").click()
    page.get_by_role("button", name="Pay", exact=True).click()

    expect(page.get_by_text("Thank you: your payment is confirmed and your pack is credited.")).to_be_visible()
    expect(page.locator("h1 .status")).to_have_text("Paid")
    with app.app_context():
        assert db.session.scalar(select(Payment.status)) == "confirmed"
