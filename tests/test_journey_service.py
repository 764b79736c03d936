"""Browser journeys of the service levels on Debian's Chromium: a visitor
goes from the IT-support storefront to its public service page and reads
the published figures (and sees what is too thin to publish); an admin
reaches the settings from the back office, saves a target and a holiday,
and finds the overdue ticket on the desk by its filter."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.ledger import services as ledger
from billing.service.hours import DAY_MINUTES
from billing.service.levels import Settings, save_settings
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import heading, htmx_settled, log_in, nav, one_page, screenshots, start

pytestmark = pytest.mark.browser


@pytest.fixture
def world(live_server):
    """The IT-support catalogue, open day and night in UTC (opening time is
    then plain time, whatever day the test runs), and Atelier Lune's tickets:
    five high ones answered after 1 to 5 hours and resolved 6 hours after
    opening, rated 5, 4, 4, 5 and 3; three normal ones answered after 1 hour;
    a critical one still waiting after a day."""
    url, app = live_server
    now = datetime.now(UTC)
    with app.app_context():
        load_preset(db.session, "itsupport")
        load_preset(db.session, "toopixel")
        save_settings(db.session, Settings("UTC", (((0, DAY_MINUTES),),) * 7,
                                           {"critical": 60, "high": 240, "normal": 480, "low": 1440}), None, now)
        owner = accounts.register(db.session, "Atelier Lune", "Luna Client", "luna@example.com", PASSWORD, "en", "FR")
        accounts.mark_email_verified(db.session, owner)
        pack = db.session.query(Pack).filter_by(slug="itsupport-tickets-20").one()
        ledger.grant(db.session, owner.account, pack, key="journey-tickets", now=now - timedelta(days=10))
        opened = now - timedelta(days=3)
        for hours, rating in zip((1, 2, 3, 4, 5), (5, 4, 4, 5, 3), strict=True):
            ticket = desk.open_ticket(db.session, owner.account, owner, f"High {hours}", "Down.", now=opened,
                                      policy=pack.policy, criticality="high")
            ticket.first_response_at = opened + timedelta(hours=hours)
            ticket.resolved_at = opened + timedelta(hours=6)
            ticket.status, ticket.rating, ticket.rated_at = "resolved", rating, now - timedelta(minutes=5)
        for index in range(3):
            ticket = desk.open_ticket(db.session, owner.account, owner, f"Normal {index}", "Slow.", now=opened,
                                      policy=pack.policy)
            ticket.first_response_at = opened + timedelta(hours=1)
        desk.open_ticket(db.session, owner.account, owner, "Server on fire", "Smoke.", now=now - timedelta(days=1),
                         policy=pack.policy, criticality="critical")
        desk.open_ticket(db.session, owner.account, owner, "New mouse", "Later.", now=now - timedelta(minutes=10),
                         policy=pack.policy, criticality="low")
        db.session.commit()
        accounts.create_staff(db.session, "Ada Admin", "admin@example.com", PASSWORD)
    return url, app


def test_a_visitor_reads_the_published_figures_from_the_storefront(world, page: Page):
    url, _app = world
    start(page, url)
    section = page.locator("section#itsupport")
    section.get_by_role("link", name="Our response times and ratings").click()
    heading(page, "Response times and ratings")
    one_page(page)
    month = page.locator("section.service-window").first
    expect(month.get_by_role("heading", name="The last 30 days")).to_be_visible()
    expect(month.get_by_text("Based on 8 tickets answered or resolved in this period.")).to_be_visible()
    # 1, 2, 3, 4, 5 h: median 3 h, 90th percentile 4.6 h; every resolution took 6 h.
    response = month.get_by_role("table", name="First response")
    expect(response.get_by_role("row", name="High").get_by_role("cell")).to_have_text(["3 h", "4 h 36 min", "5"])
    resolution = month.get_by_role("table", name="Resolution")
    expect(resolution.get_by_role("row", name="High").get_by_role("cell")).to_have_text(["6 h", "6 h", "5"])
    expect(response.get_by_role("row", name="Normal")).to_contain_text("3 tickets: too few to publish")
    expect(month.get_by_role("img", name="Time to first response, median and 90th percentile, in opening hours")
           ).to_be_visible()
    ratings = page.locator("section", has=page.get_by_role("heading", name="Our users' ratings"))
    expect(ratings.get_by_text("5 ratings in the last 12 months")).to_be_visible()
    expect(ratings.get_by_role("cell", name="4.2 out of 5")).to_be_visible()
    screenshots(page, "service-public")
    # The Too Pixel catalogue promises nothing of the kind.
    page.get_by_role("link", name="Packs", exact=True).click()
    expect(page.locator("section#toopixel")).to_be_visible()
    expect(page.locator("section#toopixel").get_by_role("link", name="Our response times and ratings")).to_have_count(0)


def test_an_admin_sets_the_levels_and_finds_the_overdue_ticket(world, page: Page):
    url, _app = world
    log_in(page, url, "admin@example.com")
    nav(page, "Back office")
    page.get_by_role("link", name="Service levels").click()
    heading(page, "Service levels")
    expect(page.get_by_label("Critical")).to_have_value("1")
    page.get_by_label("Critical").fill("8")
    page.get_by_role("button", name="Save the service levels").click()
    expect(page.get_by_text("A more critical request cannot wait longer than a less critical one.")).to_be_visible()
    page.get_by_label("Critical").fill("2")
    page.get_by_role("button", name="Save the service levels").click()
    expect(page.get_by_text("The service levels are saved")).to_be_visible()
    expect(page.get_by_label("Critical")).to_have_value("2")
    page.get_by_label("Date").fill("2026-12-25")
    page.get_by_label("Name", exact=True).fill("Christmas Day")
    page.get_by_role("button", name="Add the holiday").click()
    expect(page.get_by_text("Christmas Day is a holiday: nothing falls due that day.")).to_be_visible()
    expect(page.get_by_role("row", name="Christmas Day")).to_be_visible()
    screenshots(page, "service-settings")

    nav(page, "Ticket desk")
    heading(page, "Ticket desk")
    fire = page.get_by_role("row", name="Server on fire")
    expect(fire).to_contain_text("Overdue")
    expect(page.get_by_role("row", name="New mouse")).to_contain_text("of opening hours left")
    page.get_by_label("First response").select_option(label="Overdue only")
    expect(page.get_by_role("row", name="New mouse")).to_have_count(0)
    htmx_settled(page)
    expect(page).to_have_url(re.compile(r"/desk/\?.*due=overdue"))
    expect(page.get_by_role("row", name="Server on fire")).to_contain_text("22 h of opening hours late")
    screenshots(page, "service-desk")
    page.get_by_label("Status").select_option(label="Resolved")
    expect(page.get_by_role("row", name="High 1")).to_have_count(0)  # answered on time: not overdue
    page.get_by_label("First response").select_option(label="Due or not")
    expect(page.get_by_role("row", name="High 1")).to_contain_text("rated 5 out of 5")
    screenshots(page, "service-desk-rated")
