"""Browser journeys of the client portal on Debian's Chromium: an owner
invites a colleague who joins from the mail, opens a ticket and draws on the
pool, then is removed and refused at once; a dashboard follows the balance
live while staff log 27 minutes on a Too Pixel ticket; a client with nothing
left clicks "Buy a pack" on the dashboard and orders one."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

import pytest
from checkout_support import EUR_IBAN
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from billing.orders.models import Order
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import (
    follow_mail_link,
    heading,
    log_in,
    log_time,
    nav,
    one_page,
    open_from_desk,
    open_ticket,
    staff_page,
)
from tests.smtp import smtp_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def acme(live_server, smtp_server):  # noqa: F811
    """Acme's owner with 36 Too Pixel credits (a pooled lot), and staff; mail goes to the loopback SMTP server."""
    url, app = live_server
    app.config.update(smtp_server.config)
    with app.app_context():
        load_preset(db.session, "toopixel")
        owner = accounts.register(db.session, "Acme", "Olive Owner", "owner@example.com", PASSWORD, "en", "CH")
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
        pack = db.session.scalar(select(Pack).where(Pack.slug == "toopixel-36"))
        ledger.grant(db.session, owner.account, pack, key="acme-36", now=datetime.now(UTC))
    return url, app


def staff_logs(app, subject: str, minutes: int, key: str) -> None:
    """What the staff desk's log-time form does, through the same service."""
    with app.app_context():
        staff = db.session.scalar(select(User).where(User.is_staff.is_(True)))
        ticket = db.session.scalar(select(Ticket).where(Ticket.subject == subject))
        desk.log_time(db.session, ticket, staff, minutes, True, "work", key, datetime.now(UTC))


def test_owner_invites_a_colleague_who_draws_on_the_pool_then_is_removed(acme, page: Page, new_context,
                                                                         smtp_server):  # noqa: F811
    url, app = acme
    log_in(page, url, "owner@example.com")
    page.get_by_role("link", name="People", exact=True).first.click()
    heading(page, "People")
    page.get_by_label("Email").fill("colleague@example.com")
    page.get_by_label("Role").select_option("member")
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.get_by_text("Invitation sent to colleague@example.com")).to_be_visible()

    colleague = new_context().new_page()
    follow_mail_link(colleague, smtp_server, "colleague@example.com", "/invitations/")
    expect(colleague.get_by_role("heading", name="Join Acme")).to_be_visible()
    colleague.get_by_label("Your name").fill("Carl Colleague")
    colleague.get_by_label("Choose a password").fill(PASSWORD)
    colleague.get_by_label("Repeat the password").fill(PASSWORD)
    colleague.get_by_role("button", name="Join the account").click()
    expect(colleague.get_by_text("Welcome to Acme.")).to_be_visible()
    expect(colleague.get_by_test_id("balance-toopixel-credits")).to_have_text("36 credits")

    colleague.get_by_role("link", name="Open a ticket").first.click()
    heading(colleague, "Open a ticket")
    colleague.get_by_label("Subject").fill("Contact form broken")
    colleague.get_by_label("Description").fill("Nothing arrives since Monday.")
    colleague.get_by_label("Criticality").select_option("high")
    # A double click, as an impatient colleague does: one ticket.
    colleague.get_by_role("button", name="Open the ticket").dblclick()
    heading(colleague, "Contact form broken")
    expect(colleague.get_by_label("Subject")).to_have_count(0)
    with app.app_context():
        assert len(db.session.scalars(select(Ticket).where(Ticket.subject == "Contact form broken")).all()) == 1
    expect(colleague.get_by_text("Nothing arrives since Monday.")).to_be_visible()

    staff_logs(app, "Contact form broken", 20, "pool-20")
    nav(colleague, "My account")
    expect(colleague.get_by_test_id("balance-toopixel-credits")).to_have_text("34 credits")

    # The owner sees the same pool go down, then removes the colleague.
    nav(page, "My account")
    expect(page.get_by_test_id("balance-toopixel-credits")).to_have_text("34 credits")
    page.get_by_role("link", name="People", exact=True).first.click()
    heading(page, "People")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove Carl Colleague").click()
    expect(page.get_by_text("Carl Colleague no longer has access to this account.")).to_be_visible()

    colleague.get_by_role("link", name="Tickets", exact=True).first.click()
    expect(colleague).to_have_url(re.compile(r"/login\?next="))
    expect(colleague.get_by_role("button", name="Log in")).to_be_visible()


def test_dashboard_shows_the_charge_without_a_reload(acme, page: Page, new_context):
    url, _app = acme
    log_in(page, url, "owner@example.com")
    open_ticket(page, "Update the prices page", "New prices from January.")
    nav(page, "My account")
    balance = page.get_by_test_id("balance-toopixel-credits")
    expect(balance).to_have_text("36 credits")
    page.evaluate("window.notReloaded = true")

    # Staff, in a browser of their own, open the ticket from the desk and log 27 minutes.
    staff = staff_page(new_context, url)
    open_from_desk(staff, "Update the prices page")
    log_time(staff, 27, "3 credits")

    expect(balance).to_have_text("33 credits")
    assert page.evaluate("window.notReloaded") is True
    expect(page.get_by_role("link", name=re.compile("Update the prices page")).first).to_be_visible()


@pytest.fixture
def newcomer(live_server):
    """Bistro Nova's owner, with an account and nothing on it; the demo catalogue on sale."""
    url, app = live_server
    app.config["PROVIDER_IBAN"] = EUR_IBAN
    with app.app_context():
        load_preset(db.session, "demo")
        owner = accounts.register(db.session, "Bistro Nova", "Nora Nova", "nora@example.com", PASSWORD, "en", "FR")
        accounts.mark_email_verified(db.session, owner)
    return url, app


def test_an_empty_balance_leads_to_buying_a_pack(newcomer, page: Page):
    url, app = newcomer
    log_in(page, url, "nora@example.com")
    heading(page, "Bistro Nova")
    balance = page.locator("#balance")
    expect(balance).to_contain_text("No credit yet.")
    balance.get_by_role("link", name="Buy a pack").click()

    heading(page, "Buy more")
    one_page(page)
    if os.environ.get("FORFAIT_SCREENSHOTS"):  # the page "Buy a pack" opens from the dashboard
        page.screenshot(path=os.path.join(os.environ["FORFAIT_SCREENSHOTS"], "dashboard-buy-a-pack.png"),
                        full_page=True)
    pack = page.get_by_role("article").filter(has=page.get_by_role("heading", name="5 hours", exact=True))
    pack.get_by_role("link", name="Buy for Bistro Nova").click()
    heading(page, "Order: 5 hours")
    one_page(page)
    page.get_by_label("Bank transfer").check()
    page.get_by_role("button", name="Place the order").click()
    expect(page.get_by_role("heading", name="Pay by bank transfer")).to_be_visible()
    with app.app_context():
        order = db.session.scalar(select(Order))
        assert order.account.name == "Bistro Nova" and order.pack.slug == "demo-hours-5"
