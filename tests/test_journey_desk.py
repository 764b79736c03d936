"""Browser journeys of the staff desk on Debian's Chromium, two browser
contexts: a client opens a ticket; staff open it from the queue (the
ticket's page, not a page inside the queue's row), watch the preview and log
27 minutes; the client's dashboard shows 3 credits less without a reload. An
itsupport ticket passing 30 minutes takes a second ticket, shown on the staff
page and on the client's ticket page."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.ledger import services as ledger
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import (
    log_in,
    log_time,
    nav,
    open_from_desk,
    open_ticket,
    staff_page,
    type_minutes,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def world(live_server):
    """Atelier Lune holds 36 Too Pixel credits and 20 IT support tickets."""
    url, app = live_server
    with app.app_context():
        for preset in ("toopixel", "itsupport"):
            load_preset(db.session, preset)
        owner = accounts.register(db.session, "Atelier Lune", "Luna Client", "luna@example.com", PASSWORD, "en", "FR")
        accounts.mark_email_verified(db.session, owner)
        now = datetime.now(UTC)
        for slug in ("toopixel-36", "itsupport-tickets-20"):
            pack = db.session.query(Pack).filter_by(slug=slug).one()
            ledger.grant(db.session, owner.account, pack, key=f"journey-{slug}", now=now)
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    return url, app


def test_staff_log_27_minutes_and_the_client_dashboard_follows(world, page: Page, new_context):
    url, _app = world
    log_in(page, url, "luna@example.com")
    open_ticket(page, "Contact form broken", balance="Webmastering credits")
    nav(page, "My account")
    balance = page.get_by_test_id("balance-toopixel-credits")
    expect(balance).to_have_text("36 credits")

    staff = staff_page(new_context, url)
    open_from_desk(staff, "Contact form broken")
    if os.environ.get("FORFAIT_SCREENSHOTS"):  # the ticket page as the queue's link opens it
        staff.screenshot(path=os.path.join(os.environ["FORFAIT_SCREENSHOTS"], "desk-ticket-from-queue.png"),
                         full_page=True)
    expect(staff.get_by_text("36 credits left")).to_be_visible()
    log_time(staff, 27, "+27 min → total 27 min → 3 credits, 3 more than now")
    expect(staff.get_by_test_id("ticket-cost")).to_have_text("3 credits")
    expect(staff.get_by_text("27 min → 3 blocks of 10 min → 3 credits")).to_be_visible()

    # The client's dashboard, untouched since, polls its live balance.
    url_before = page.url
    expect(balance).to_have_text("33 credits")
    assert page.url == url_before


def test_an_itsupport_ticket_past_30_minutes_takes_a_second(world, page: Page, new_context):
    url, _app = world
    log_in(page, url, "luna@example.com")
    open_ticket(page, "Printer offline", balance="Pay per ticket")

    staff = staff_page(new_context, url)
    open_from_desk(staff, "Printer offline")
    log_time(staff, 25, "+25 min → total 25 min → 1 ticket, 1 more than now")
    type_minutes(staff, 15)
    expect(staff.locator("#time-preview")).to_contain_text("The work passes 30 min: this subject will use 2 tickets")
    staff.get_by_role("button", name="Save time").click()
    expect(staff.get_by_test_id("tickets-taken")).to_contain_text("it uses 2 tickets")
    expect(staff.get_by_test_id("ticket-balance")).to_have_text("18 tickets left")

    # The client, still on the ticket's page, reloads it.
    page.reload()
    expect(page.get_by_text("it uses 2 tickets")).to_be_visible()
    expect(page.get_by_text("40 min → 2 blocks of 30 min → 2 tickets")).to_be_visible()
