"""Browser journey of the staff's clients on Debian's Chromium (issue 14.4):
from the back office's home, staff click "Clients", type part of a name and
see the list follow as they type, open the account, and correct its
invoicing details (a wrong VAT ID said beside its field first). The list
and the account page fit a phone's 390 px. Screenshots at 1280 and 390 px go
to FORFAIT_SCREENSHOTS when set."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing.accounts.models import Account
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.ledger import services as ledger
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import click_to, heading, htmx_settled, log_in, one_page
from tests.test_browser_phone import OVERFLOW, PHONE

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("FORFAIT_SCREENSHOTS")
CLIENTS = [("Atelier Lune", "Luna Client", "luna@example.com", "FR", "toopixel-72", 20),
           ("Zürich Werkstatt AG", "Ueli Keller", "ueli@werkstatt.example", "CH", "toopixel-150", 700),
           ("Estudio Sol SL", "Sol Ortega", "sol@estudio.example", "ES", "itsupport-tickets-20", 100),
           ("Boulangerie Martin", "Marc Martin", "marc@boulangerie.example", "FR", "toopixel-36", 5)]


@pytest.fixture
def world(live_server):
    """Four clients with credit and a ticket each; an admin."""
    url, app = live_server
    now = datetime.now(UTC)
    with app.app_context():
        for preset in ("toopixel", "itsupport"):
            load_preset(db.session, preset)
        for name, person, email, country, slug, days in CLIENTS:
            owner = accounts.register(db.session, name, person, email, PASSWORD, "en", country)
            accounts.mark_email_verified(db.session, owner)
            pack = db.session.scalar(select(Pack).where(Pack.slug == slug))
            ledger.grant(db.session, owner.account, pack, key=f"journey-{email}", now=now - timedelta(days=days))
            desk.open_ticket(db.session, owner.account, owner, f"Help for {name}", "Please.", now=now,
                             policy=pack.policy)
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    return url, app


def werkstatt(app) -> int:
    with app.app_context():
        return db.session.scalar(select(Account.id).where(Account.name == "Zürich Werkstatt AG"))


def shot(page: Page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"clients-{name}.png"), full_page=True)


def test_staff_find_a_client_and_correct_its_invoicing_details(world, page: Page):
    url, app = world
    log_in(page, url, "staff@example.com")
    heading(page, "Back office")
    click_to(page, page.locator("main").get_by_role("link", name=re.compile(r"^Clients")), "/staff/clients")
    heading(page, "Clients")
    rows = page.locator("table.client-list tbody tr")
    expect(rows).to_have_count(4)
    shot(page, "list-1280")

    # Typing searches: the list follows without a page load.
    page.get_by_role("searchbox", name="Search").press_sequentially("werk", delay=30)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Zürich Werkstatt AG")
    expect(page.get_by_role("status")).to_have_text("1 account matches “werk”.")
    htmx_settled(page)
    one_page(page)
    assert "q=werk" in page.url  # the address says what is shown

    click_to(page, page.get_by_role("link", name="Zürich Werkstatt AG"), f"/staff/clients/{werkstatt(app)}")
    heading(page, "Zürich Werkstatt AG")
    expect(page.locator("#people")).to_contain_text("Ueli Keller")
    expect(page.locator("#balances")).to_contain_text("150 credits")
    expect(page.locator("#tickets")).to_contain_text("Help for Zürich Werkstatt AG")
    shot(page, "account-1280")

    invoicing = page.locator("#invoicing")
    invoicing.get_by_label("Postal address").fill("Bahnhofstrasse 1\n8001 Zürich")
    invoicing.get_by_label("VAT ID").fill("CHE-123")
    invoicing.get_by_role("button", name="Save the invoicing details").click()
    expect(page.locator("#vat_id-note")).to_contain_text("This is not a valid Swiss VAT number")
    expect(invoicing.get_by_label("VAT ID")).to_have_attribute("aria-invalid", "true")
    with app.app_context():
        assert db.session.scalar(select(Account.address).where(Account.name == "Zürich Werkstatt AG")) == ""

    invoicing.get_by_label("VAT ID").fill("CHE-107.787.577 MWST")
    invoicing.get_by_role("button", name="Save the invoicing details").click()
    expect(page.get_by_role("status").filter(has_text="are saved")).to_be_visible()
    expect(page.locator("#invoicing .invoice-to")).to_contain_text("CHE-107.787.577 MWST")
    expect(page.locator("#invoicing .invoice-to")).to_contain_text("Bahnhofstrasse 1")
    with app.app_context():
        assert db.session.scalar(select(Account.vat_id).where(Account.name == "Zürich Werkstatt AG")) == (
            "CHE-107.787.577 MWST")


def test_the_list_and_the_account_page_fit_a_phone(world, new_context):
    url, app = world
    page = new_context(viewport=PHONE).new_page()
    log_in(page, url, "staff@example.com")
    click_to(page, page.locator("main").get_by_role("link", name=re.compile(r"^Clients")), "/staff/clients")
    heading(page, "Clients")
    # Each row is a card: the column's name above each value.
    expect(page.locator("table.client-list thead")).not_to_be_in_viewport()
    expect(page.locator("table.client-list td[data-label='Balance']").first).to_be_visible()
    shot(page, "list-390")
    assert page.evaluate(OVERFLOW) == []
    page.get_by_label("Sort by").select_option("balance")
    expect(page.locator("table.client-list tbody tr").first).to_contain_text("Zürich Werkstatt AG")
    click_to(page, page.get_by_role("link", name="Zürich Werkstatt AG"), f"/staff/clients/{werkstatt(app)}")
    heading(page, "Zürich Werkstatt AG")
    shot(page, "account-390")
    assert page.evaluate(OVERFLOW) == []
