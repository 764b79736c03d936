"""The issue's journey (14, "Done when") in Chromium: an IT-support visitor
asks for a quote on the pooled bundle of 20 tickets, staff price it at €38 a
ticket, the visitor accepts it from the mail (opening the account on the
quote's page) and pays by transfer, staff confirm, and the owner and a
member the owner invites both see 20 tickets. Screenshots of the request,
the staff quote and the client's quote at 1280 and 390 px go to
FORFAIT_SCREENSHOTS when it names a folder."""

from __future__ import annotations

import re

import pytest
from checkout_support import EUR_IBAN
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing.catalogue.offers import load_preset
from billing.orders.models import Order
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import follow_mail_link, heading, nav, one_page, screenshots, search_payments, staff_page, start
from tests.smtp import smtp_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser
POOLED = "Multi-user tickets (from 20)"


@pytest.fixture
def shop(live_server, smtp_server):  # noqa: F811
    url, app = live_server
    app.config.update(PROVIDER_IBAN=EUR_IBAN, **smtp_server.config)
    with app.app_context():
        load_preset(db.session, "itsupport")
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    return url, app


def test_a_visitor_is_quoted_38_a_ticket_pays_by_transfer_and_owner_and_member_see_20(
        shop, page: Page, new_context, smtp_server):  # noqa: F811
    url, app = shop
    # The visitor asks from the pooled bundle's card.
    start(page, url)
    page.get_by_role("article", name=POOLED, exact=True).get_by_role("link", name="Ask for a quote").click()
    heading(page, f"Ask for a quote: {POOLED}")
    one_page(page)
    page.get_by_label("Your name").fill("Ines IT")
    page.get_by_label("Email").fill("ines@example.com")
    page.get_by_label("Company").fill("Helpdesk SARL")
    page.get_by_label("Country").select_option("FR")
    expect(page.get_by_label("Quantity")).to_have_value("20")
    page.get_by_label("What do you need?").fill("Twenty people share one pool of tickets.")
    screenshots(page, "quotes-request")
    page.get_by_role("button", name="Send my request").click()
    heading(page, "Thank you: your request is sent")

    # Staff price it at €38 a ticket and send it.
    staff = staff_page(new_context, url)
    nav(staff, "Quotes")
    heading(staff, "Quotes")
    staff.locator("#quotes").get_by_role("link", name="#1").click()
    heading(staff, "Quote 1")
    expect(staff.get_by_text("Twenty people share one pool of tickets.")).to_be_visible()
    staff.get_by_label("Price of one item").fill("38")
    expect(staff.get_by_label("Items")).to_have_value("20")
    staff.get_by_role("button", name="Send the quote").click()
    expect(staff.get_by_text("Quote 1 is sent to ines@example.com.")).to_be_visible()
    expect(staff.locator("#quote-current")).to_contain_text("€760.00")
    screenshots(staff, "quotes-staff")

    # The visitor opens the mail's link, opens the account there and accepts, paying by transfer.
    follow_mail_link(page, smtp_server, "ines@example.com", "/quotes/")
    heading(page, "Quote 1")
    terms = page.locator("#quote-terms")
    expect(terms).to_contain_text("20 tickets")
    expect(terms).to_contain_text("€38.00")
    expect(terms).to_contain_text("€760.00")
    expect(terms).to_contain_text("Pooled")
    expect(page.get_by_label("Email")).to_have_value("ines@example.com")
    screenshots(page, "quotes-client")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_label("Bank transfer").check()
    page.get_by_role("button", name="Accept and order").click()
    expect(page.get_by_role("heading", name="Pay by bank transfer")).to_be_visible()
    expect(page.locator("#pay-amount")).to_have_text("€760.00")
    reference = page.locator("#pay-reference").inner_text()

    # Staff confirm the transfer.
    nav(staff, "Payments to confirm")
    search_payments(staff, reference)
    with app.app_context():
        order_id = db.session.scalar(select(Order.id))
    row = staff.locator(f"#order-{order_id}")
    expect(row.get_by_label(f"Amount received for order {order_id}")).to_have_value("760.00")
    row.get_by_role("button", name="Confirm").click()
    expect(staff.get_by_text(f"Order {order_id} is paid: credited and invoiced.")).to_be_visible()

    # The owner sees 20 tickets, invites a colleague, who sees the same 20.
    nav(page, "My account")
    expect(page.locator("#balance")).to_contain_text("20 tickets")
    page.get_by_role("link", name="People", exact=True).first.click()
    heading(page, "People")
    page.get_by_label("Email").fill("max@example.com")
    page.get_by_label("Role").select_option("member")
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.get_by_text("Invitation sent to max@example.com")).to_be_visible()
    member = new_context().new_page()
    follow_mail_link(member, smtp_server, "max@example.com", "/invitations/")
    member.get_by_label("Your name").fill("Max Member")
    member.get_by_label("Choose a password").fill(PASSWORD)
    member.get_by_label("Repeat the password").fill(PASSWORD)
    member.get_by_role("button", name="Join the account").click()
    expect(member.get_by_text("Welcome to Helpdesk SARL.")).to_be_visible()
    expect(member.locator("#balance")).to_contain_text("20 tickets")
    nav(page, "Orders")
    expect(page.locator("#orders")).to_contain_text("€760.00")
    page.get_by_role("link", name="Quotes").click()
    expect(page.locator("#quotes")).to_contain_text(re.compile("Accepted"))


def test_staff_are_mailed_the_request_follow_its_link_and_may_switch_such_mails_off(
        shop, page: Page, new_context, smtp_server):  # noqa: F811
    url, _app = shop
    start(page, url)
    page.get_by_role("article", name=POOLED, exact=True).get_by_role("link", name="Ask for a quote").click()
    heading(page, f"Ask for a quote: {POOLED}")
    page.get_by_label("Your name").fill("Ines IT")
    page.get_by_label("Email").fill("ines@example.com")
    page.get_by_label("What do you need?").fill("Twenty people share one pool of tickets.")
    # A double click, as an impatient visitor does: one request, one mail.
    page.get_by_role("button", name="Send my request").dblclick()
    heading(page, "Thank you: your request is sent")

    [mail] = smtp_server.to("staff@example.com")
    assert mail["Subject"] == f"Quote request 1: {POOLED} from Ines IT"
    staff = staff_page(new_context, url)
    # The mail as the staff member reads it.
    staff.set_content(mail.get_body(preferencelist=("html",)).get_content())
    expect(staff.get_by_role("link", name="Price it and send the quote")).to_be_visible()
    screenshots(staff, "staffdesk-quote-request-mail")
    follow_mail_link(staff, smtp_server, "staff@example.com", "/staff/quotes/1")
    heading(staff, "Quote 1")
    expect(staff.get_by_text("Twenty people share one pool of tickets.")).to_be_visible()
    screenshots(staff, "staffdesk-quote-staff")

    follow_mail_link(staff, smtp_server, "staff@example.com", "/portal/notifications")
    heading(staff, "Email preferences")
    staff.get_by_label("Quote requests").uncheck()
    screenshots(staff, "staffdesk-staff-preferences")
    staff.get_by_role("button", name="Save").click()
    expect(staff.get_by_text("Your email preferences are saved.")).to_be_visible()
    expect(staff.get_by_label("Quote requests")).not_to_be_checked()
    expect(staff.get_by_label("New tickets")).to_be_checked()
