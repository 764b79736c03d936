"""Browser journey of the reports on Debian's Chromium (issue 15.2): an admin
goes from the back office to Reports, picks February 2026, reads the month's
sales and the unused credit owed that tests/reports_support.py computed by
hand, and downloads the CSV."""

from __future__ import annotations

import csv
import re

import pytest
from playwright.sync_api import Page, expect
from reports_support import february

from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import heading, log_in, nav, screenshots

pytestmark = pytest.mark.browser


@pytest.fixture
def world(live_server):
    url, app = live_server
    with app.app_context():
        february(db.session)
        accounts.create_staff(db.session, "Ada Admin", "admin@example.com", PASSWORD)
    return url


def test_an_admin_reads_the_months_sales_and_the_credit_owed(world, page: Page):
    log_in(page, world, "admin@example.com")
    nav(page, "Back office")
    page.get_by_role("link", name="Reports").click()
    heading(page, "Reports")
    page.get_by_label("Month").fill("2026-02")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"month=2026-02"))
    # The month's headline figures are on the reports page itself.
    expect(page.locator(".hub-card", has_text="Packs sold by month")).to_contain_text(
        "Paid in February 2026: €876.00 incl. VAT")
    expect(page.locator(".hub-card", has_text="Units sold and not yet used")).to_contain_text(
        "Owed at the end of February 2026: €705.25")
    screenshots(page, "reports-hub")
    page.get_by_role("link", name="Sales").first.click()
    heading(page, "Sales")
    sales = page.locator("table#sales")
    expect(sales.get_by_role("row", name="Total (EUR)").get_by_role("cell")).to_have_text(
        ["2", "€730.00", "€146.00", "€876.00"])
    expect(page.get_by_role("img", name="Net sales by month, EUR")).to_be_visible()
    screenshots(page, "reports-sales")

    page.get_by_role("navigation", name="Reports").get_by_role("link", name="Unused credit owed").click()
    heading(page, "Unused credit owed")
    table = page.locator("table#reconciliation")
    expect(table.get_by_role("row", name="Owed at the start of the month")).to_contain_text("€80.00")
    expect(table.get_by_role("row", name="+ Credit sold")).to_contain_text("€730.00")
    expect(table.get_by_role("row", name="− Consumed")).to_contain_text("€54.75")
    expect(table.get_by_role("row", name="− Expired unused (breakage)")).to_contain_text("€50.00")
    expect(table.get_by_role("row", name="Owed at the end of the month")).to_contain_text("€705.25")
    expect(page.get_by_role("img", name="Credit owed by month of expiry, EUR")).to_be_visible()
    screenshots(page, "reports-credit")

    nav_reports = page.get_by_role("navigation", name="Reports")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as CSV").click()
    assert download.value.suggested_filename == "credit-owed-2026-02.csv"
    with open(download.value.path(), encoding="utf-8") as saved:
        rows = list(csv.reader(saved))
    assert {row[3]: row[5] for row in rows if row[0] == "owed"}["closing"] == "705.25"

    nav_reports.get_by_role("link", name="Time logged").click()
    heading(page, "Time logged")
    expect(page.locator("table#time-staff").get_by_role("row", name="Agnès Agent")).to_contain_text("€32.21")
    screenshots(page, "reports-time")
    nav_reports.get_by_role("link", name="Ratings").click()
    heading(page, "Ratings")
    expect(page.get_by_role("row", name="February 2026")).to_contain_text("4.5")
    screenshots(page, "reports-ratings")
    page.get_by_role("button", name="Français").click()
    heading(page, "Notes")
    screenshots(page, "reports-ratings-fr")
