"""Browser journeys on Debian's Chromium: buy by transfer (instructions with
the QR code) → staff confirm in a second browser context → the client sees
the credit; start the free trial, as a client and as a newcomer who signs up
from the trial and confirms the address from the mail; subscribe, and open
a ticket the subscription covers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from checkout_support import EUR_IBAN
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing.accounts.models import User
from billing.catalogue.offers import load_preset
from billing.orders.models import Order
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import (
    choose_pack,
    confirm_and_back_to_checkout,
    follow_mail_link,
    heading,
    log_in,
    nav,
    one_page,
    search_payments,
    sign_up_on_checkout,
    staff_page,
    start,
    to_the_trial,
)
from tests.smtp import smtp_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def shop(live_server):
    url, app = live_server
    app.config["PROVIDER_IBAN"] = EUR_IBAN
    with app.app_context():
        load_preset(db.session, "demo")
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    return url, app


@pytest.fixture
def mailed_shop(shop, smtp_server):  # noqa: F811
    url, app = shop
    app.config.update(smtp_server.config)
    return url, app


def test_buy_by_transfer_staff_confirm_client_sees_the_credit(mailed_shop, page: Page, new_context,
                                                              smtp_server):  # noqa: F811
    url, app = mailed_shop
    start(page, url)
    choose_pack(page, "Team tickets (from 20)")
    page.get_by_role("button", name="Order this pack", exact=True).click()

    # The summary follows the quantity as it is typed.
    page.get_by_label("Quantity").fill("25")
    expect(page.locator("#checkout-total")).to_have_text("€1,140.00")
    page.get_by_label("Bank transfer").check()
    sign_up_on_checkout(page)
    confirm_and_back_to_checkout(page, smtp_server, "Team tickets (from 20)")
    expect(page.get_by_label("Quantity")).to_have_value("25")
    expect(page.get_by_label("Bank transfer")).to_be_checked()
    expect(page.locator("#checkout-total")).to_have_text("€1,140.00")
    page.get_by_role("button", name="Place the order").click()

    expect(page.get_by_role("heading", name="Pay by bank transfer")).to_be_visible()
    expect(page.locator("#pay-iban")).to_have_text("FR76 3000 6000 0112 3456 7890 189")
    expect(page.locator("#pay-amount")).to_have_text("€1,140.00")
    expect(page.locator("#payment-qr svg")).to_be_visible()
    reference = page.locator("#pay-reference").inner_text()
    assert re.fullmatch(r"RF\d\d( \w{1,4})+", reference)

    # Staff, in a browser of their own, find the order by its reference and confirm it.
    staff = staff_page(new_context, url)
    nav(staff, "Payments to confirm")
    search_payments(staff, reference)
    with app.app_context():
        order_id = db.session.scalar(select(Order.id))
    row = staff.locator(f"#order-{order_id}")
    expect(row.get_by_label(f"Amount received for order {order_id}")).to_have_value("1140.00")
    row.get_by_role("button", name="Confirm").click()
    expect(staff.get_by_text(f"Order {order_id} is paid: credited and invoiced.")).to_be_visible()

    # The client sees the credit, and the invoice.
    page.get_by_role("link", name="My account").click()
    expect(page.locator("#balance")).to_contain_text("25 tickets")
    page.get_by_role("link", name="Orders and invoices").click()
    expect(page.locator("#invoices")).to_contain_text(f"{datetime.now(UTC).year}-0001")


def test_start_the_free_trial(shop, page: Page):
    url, app = shop
    with app.app_context():
        owner = accounts.register(db.session, "Acme", "Olive Owner", "olive@example.com", PASSWORD, "en", "FR")
        accounts.mark_email_verified(db.session, owner)
    log_in(page, url, "olive@example.com")

    nav(page, "Packs")
    choose_pack(page, "Free trial: 30 minutes")
    to_the_trial(page)
    page.get_by_role("button", name="Start the free trial").click()  # the trial's form

    expect(page.get_by_text("Your free trial has started")).to_be_visible()
    page.get_by_role("link", name="My account").click()
    expect(page.locator("#balance")).to_contain_text("30 min")
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "olive@example.com")).account_id is not None
        assert db.session.scalar(select(Order.method)) == "free"


def test_subscribe_by_transfer_staff_confirm_client_opens_a_free_ticket(mailed_shop, page: Page, new_context,
                                                                       smtp_server):  # noqa: F811
    url, app = mailed_shop
    start(page, url)
    choose_pack(page, "Unlimited tickets, monthly")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_label("Bank transfer").check()
    sign_up_on_checkout(page)
    confirm_and_back_to_checkout(page, smtp_server, "Unlimited tickets, monthly")
    expect(page.get_by_label("Bank transfer")).to_be_checked()
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_text("Your subscription period starts as soon as the money arrives.")).to_be_visible()
    expect(page.locator("#pay-amount")).to_have_text("€178.80")
    reference = page.locator("#pay-reference").inner_text()

    staff = staff_page(new_context, url)
    nav(staff, "Payments to confirm")
    search_payments(staff, reference)
    with app.app_context():
        order_id = db.session.scalar(select(Order.id))
    staff.locator(f"#order-{order_id}").get_by_role("button", name="Confirm").click()
    expect(staff.get_by_text("its subscription period has started")).to_be_visible()

    page.get_by_role("link", name="My account").click()
    expect(page.locator("#subscription-card")).to_contain_text("Unlimited tickets")
    page.get_by_role("link", name="Open a ticket").first.click()
    expect(page.get_by_label("Draw from")).to_have_value("subscription")
    page.get_by_label("Subject").fill("The printer is offline")
    page.get_by_label("Description").fill("Since this morning.")
    page.get_by_role("button", name="Open the ticket").click()
    expect(page.get_by_text("covered by the subscription")).to_be_visible()


def test_a_newcomer_signs_up_from_the_trial_confirms_the_address_and_is_back_on_the_trial(
        mailed_shop, page: Page, smtp_server):  # noqa: F811
    url, app = mailed_shop
    start(page, url)
    choose_pack(page, "Free trial: 30 minutes")
    to_the_trial(page)
    page.get_by_role("button", name="Create an account").click()

    heading(page, "Create your account")
    page.get_by_label("Organisation").fill("Bistro Nova")
    page.get_by_label("Your name").fill("Nora Nova")
    page.get_by_label("Email").fill("nora@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Create the account").click()

    heading(page, "Check your email")

    # The link in the mail opens the account, and leads back where she was going.
    follow_mail_link(page, smtp_server, "nora@example.com", "/verify/")
    expect(page.get_by_text("Thank you: nora@example.com is verified.")).to_be_visible()
    heading(page, "Free trial: 30 minutes")
    one_page(page)
    page.get_by_role("button", name="Start the free trial").click()

    expect(page.get_by_text("Your free trial has started")).to_be_visible()
    nav(page, "My account")
    expect(page.locator("#balance")).to_contain_text("30 min")
    with app.app_context():
        nora = db.session.scalar(select(User).where(User.email == "nora@example.com"))
        assert nora.email_verified_at is not None
        assert db.session.scalar(select(Order.method).where(Order.account_id == nora.account_id)) == "free"
