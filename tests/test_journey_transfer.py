"""Browser journeys on Debian's Chromium: buy by transfer (instructions with
the QR code) → staff confirm in a second browser context → the client sees
the credit; start the free trial; subscribe, and open a ticket the
subscription covers."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from billing.catalogue.offers import load_preset
from billing.models import Order, User
from checkout_support import EUR_IBAN
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def shop(live_server):
    url, app = live_server
    app.config["PROVIDER_IBAN"] = EUR_IBAN
    with app.app_context():
        load_preset(db.session, "demo")
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    return url, app


def log_in(page: Page, url: str, email: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def sign_up_on_checkout(page: Page) -> None:
    """A newcomer fills in the checkout's account fields: Nora Nova of Bistro Nova."""
    page.get_by_label("Organisation").fill("Bistro Nova")
    page.get_by_label("Your name").fill("Nora Nova")
    page.get_by_label("Email").fill("nora@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)


def test_buy_by_transfer_staff_confirm_client_sees_the_credit(shop, page: Page, browser: Browser):
    url, app = shop
    page.goto(url + "/packs/demo-team-tickets")
    page.get_by_role("button", name="Order", exact=True).click()

    # The summary follows the quantity as it is typed.
    page.get_by_label("Quantity").fill("25")
    expect(page.locator("#checkout-total")).to_have_text("€1,140.00")
    page.get_by_label("Bank transfer").check()
    sign_up_on_checkout(page)
    page.get_by_role("button", name="Place the order").click()

    expect(page.get_by_role("heading", name="Pay by bank transfer")).to_be_visible()
    expect(page.locator("#pay-iban")).to_have_text("FR76 3000 6000 0112 3456 7890 189")
    expect(page.locator("#pay-amount")).to_have_text("€1,140.00")
    expect(page.locator("#payment-qr svg")).to_be_visible()
    reference = page.locator("#pay-reference").inner_text()
    assert re.fullmatch(r"RF\d\d( \w{1,4})+", reference)

    # Staff, in a browser of their own, find the order by its reference and confirm it.
    staff_context = browser.new_context()
    staff_page = staff_context.new_page()
    log_in(staff_page, url, "staff@example.com")
    staff_page.get_by_role("link", name="Payments to confirm").first.click()
    staff_page.get_by_role("searchbox", name="Search").fill(reference)
    staff_page.get_by_role("button", name="Search").click()
    with app.app_context():
        order_id = db.session.scalar(select(Order.id))
    row = staff_page.locator(f"#order-{order_id}")
    expect(row.get_by_label(f"Amount received for order {order_id}")).to_have_value("1140.00")
    row.get_by_role("button", name="Confirm").click()
    expect(staff_page.get_by_text(f"Order {order_id} is paid: credited and invoiced.")).to_be_visible()
    staff_context.close()

    # The client sees the credit, and the invoice.
    page.get_by_role("link", name="My account").click()
    expect(page.locator("#balance")).to_contain_text("25 tickets")
    page.get_by_role("link", name="Orders and invoices").click()
    expect(page.locator("#invoices")).to_contain_text(f"{datetime.now(timezone.utc).year}-0001")


def test_start_the_free_trial(shop, page: Page):
    url, app = shop
    with app.app_context():
        owner = accounts.register(db.session, "Acme", "Olive Owner", "olive@example.com", PASSWORD, "en", "FR")
        accounts.mark_email_verified(db.session, owner)
    log_in(page, url, "olive@example.com")

    page.goto(url + "/packs/demo-trial")
    page.get_by_role("button", name="Start the free trial").click()  # the pack page's link
    page.get_by_role("button", name="Start the free trial").click()  # the trial's form

    expect(page.get_by_text("Your free trial has started")).to_be_visible()
    page.get_by_role("link", name="My account").click()
    expect(page.locator("#balance")).to_contain_text("30 min")
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "olive@example.com")).account_id is not None
        assert db.session.scalar(select(Order.method)) == "free"


def test_subscribe_by_transfer_staff_confirm_client_opens_a_free_ticket(shop, page: Page, browser: Browser):
    url, app = shop
    page.goto(url + "/packs/demo-unlimited")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_label("Bank transfer").check()
    sign_up_on_checkout(page)
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_text("Your subscription period starts as soon as the money arrives.")).to_be_visible()
    expect(page.locator("#pay-amount")).to_have_text("€178.80")
    reference = page.locator("#pay-reference").inner_text()

    staff_context = browser.new_context()
    staff_page = staff_context.new_page()
    log_in(staff_page, url, "staff@example.com")
    staff_page.goto(url + "/portal/staff/orders")
    staff_page.get_by_role("searchbox", name="Search").fill(reference)
    staff_page.get_by_role("button", name="Search").click()
    with app.app_context():
        order_id = db.session.scalar(select(Order.id))
    staff_page.locator(f"#order-{order_id}").get_by_role("button", name="Confirm").click()
    expect(staff_page.get_by_text("its subscription period has started")).to_be_visible()
    staff_context.close()

    page.get_by_role("link", name="My account").click()
    expect(page.locator("#subscription-card")).to_contain_text("Unlimited tickets")
    page.get_by_role("link", name="Open a ticket").first.click()
    expect(page.get_by_label("Draw from")).to_have_value("subscription")
    page.get_by_label("Subject").fill("The printer is offline")
    page.get_by_label("Description").fill("Since this morning.")
    page.get_by_role("button", name="Open the ticket").click()
    expect(page.get_by_text("covered by the subscription")).to_be_visible()
