"""Browser journeys of the staff desk on Debian's Chromium, two browser
contexts: a client opens a ticket; staff find it in the queue, watch the
preview and log 27 minutes; the client's dashboard shows 3 credits less
without a reload. An itsupport ticket passing 30 minutes takes a second
ticket, shown on the staff page and on the client's ticket page."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from playwright.sync_api import Browser, Page, expect

from billing.ledger import services as ledger
from billing.catalogue.offers import load_preset
from billing.models import Pack
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.test_journey_transfer import log_in

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
        now = datetime.now(timezone.utc)
        for slug in ("toopixel-36", "itsupport-tickets-20"):
            pack = db.session.query(Pack).filter_by(slug=slug).one()
            ledger.grant(db.session, owner.account, pack, key=f"journey-{slug}", now=now)
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    return url, app


def open_ticket(page: Page, url: str, subject: str, balance: str) -> None:
    page.goto(url + "/portal/tickets/new")
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("Description").fill("The contact form shows an error.")
    page.get_by_label("Draw from").select_option(label=balance)
    page.get_by_role("button", name="Open the ticket").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(subject)


def staff_page(browser: Browser, url: str) -> Page:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, url, "staff@example.com")
    return page


def type_minutes(page: Page, minutes: int) -> None:
    """Type once htmx has taken the field in hand: after a boosted swap it
    does so at settle time, and a keystroke before that asks for nothing."""
    page.wait_for_function("() => document.getElementById('time-minutes')?.['htmx-internal-data']?.initHash")
    page.get_by_label("Minutes").fill(str(minutes))


def log_time(page: Page, minutes: int, expected_preview: str) -> None:
    type_minutes(page, minutes)
    # The preview comes from the server as staff type, before anything is saved.
    expect(page.locator("#time-preview")).to_contain_text(expected_preview)
    page.get_by_role("button", name="Save time").click()
    expect(page.locator(".flash-success")).to_contain_text(f"{minutes} min logged")


def test_staff_log_27_minutes_and_the_client_dashboard_follows(world, page: Page, browser: Browser):
    url, app = world
    log_in(page, url, "luna@example.com")
    open_ticket(page, url, "Contact form broken", balance=_label(page, "Webmastering credits"))
    page.get_by_role("link", name="My account").click()
    balance = page.get_by_test_id("balance-toopixel-credits")
    expect(balance).to_have_text("36 credits")

    staff = staff_page(browser, url)
    staff.get_by_role("link", name="Ticket desk").click()
    expect(staff.get_by_role("heading", name="Ticket desk")).to_be_visible()
    staff.get_by_role("link", name="Contact form broken").click()
    expect(staff.get_by_text("36 credits left")).to_be_visible()
    log_time(staff, 27, "+27 min → total 27 min → 3 credits, 3 more than now")
    expect(staff.get_by_test_id("ticket-cost")).to_have_text("3 credits")
    expect(staff.get_by_text("27 min → 3 blocks of 10 min → 3 credits")).to_be_visible()

    # The client's dashboard, untouched since, polls its live balance.
    url_before = page.url
    expect(balance).to_have_text("33 credits", timeout=5_000)
    assert page.url == url_before


def _label(page: Page, starts_with: str) -> str:
    """The full label of the balance option that starts with ``starts_with``."""
    page.goto(page.url.split("/portal")[0] + "/portal/tickets/new")
    options = page.get_by_label("Draw from").locator("option").all_inner_texts()
    return next(option for option in options if option.startswith(starts_with))


def test_an_itsupport_ticket_past_30_minutes_takes_a_second(world, page: Page, browser: Browser):
    url, app = world
    log_in(page, url, "luna@example.com")
    open_ticket(page, url, "Printer offline", balance=_label(page, "Pay per ticket"))
    client_ticket = page.url

    staff = staff_page(browser, url)
    staff.goto(url + "/desk/")
    staff.get_by_role("link", name="Printer offline").click()
    log_time(staff, 25, "+25 min → total 25 min → 1 ticket, 1 more than now")
    type_minutes(staff, 15)
    expect(staff.locator("#time-preview")).to_contain_text("The work passes 30 min: this subject will use 2 tickets")
    staff.get_by_role("button", name="Save time").click()
    expect(staff.get_by_test_id("tickets-taken")).to_contain_text("it uses 2 tickets")
    expect(staff.get_by_test_id("ticket-balance")).to_have_text("18 tickets left")

    page.goto(client_ticket)
    expect(page.get_by_text("it uses 2 tickets")).to_be_visible()
    expect(page.get_by_text("40 min → 2 blocks of 30 min → 2 tickets")).to_be_visible()
