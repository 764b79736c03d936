"""In Chromium, what a newcomer clicks opens a page, not a page inside a page
(issue 12.1), and the new-ticket form follows the balance chosen (12.2)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import log_in, nav, one_page, start

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("FORFAIT_SCREENSHOTS")


def shot(page: Page, name: str) -> None:
    """A screenshot to look at, when FORFAIT_SCREENSHOTS names a folder."""
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


@pytest.fixture
def acme(live_server):
    """Acme's owner with 36 Too Pixel credits, a ticket with 27 minutes
    charged, a Digitale Artiste ticket asking 20 minutes beyond its 3 hours;
    and staff."""
    url, app = live_server
    now = datetime.now(UTC)
    with app.app_context():
        for preset in ("toopixel", "digitale"):
            load_preset(db.session, preset)
        owner = accounts.register(db.session, "Acme", "Olive Owner", "owner@example.com", PASSWORD, "en", "FR")
        accounts.mark_email_verified(db.session, owner)
        staff = accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
        for slug, subject, minutes, kind in (("toopixel-36", "Site down", 27, None),
                                             ("digitale-3h", "New page", 200, "production")):
            pack = db.session.scalar(select(Pack).where(Pack.slug == slug))
            ledger.grant(db.session, owner.account, pack, key=slug, now=now)
            ticket = desk.open_ticket(db.session, owner.account, owner, subject, "Please.", now=now,
                                      policy=pack.policy, kind=kind)
            desk.log_time(db.session, db.session.get(Ticket, ticket.id), staff, minutes, True, "work",
                          f"time-{slug}", now)
    return url, app


def test_the_desk_row_link_opens_the_ticket_page(acme, page: Page):
    url, _ = acme
    log_in(page, url, "staff@example.com")
    nav(page, "Ticket desk")
    page.get_by_role("link", name="Site down").click()
    expect(page).to_have_url(f"{url}/desk/tickets/1")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Site down")
    one_page(page)
    expect(page.locator("#queue")).to_have_count(0)
    shot(page, "desk-ticket-from-queue")


def test_links_and_answers_in_the_live_balance_open_pages(acme, page: Page):
    url, _ = acme
    log_in(page, url, "owner@example.com")
    expect(page).to_have_url(f"{url}/portal/")  # logging in leads to the dashboard
    page.locator("#balance").get_by_role("link", name="#1 Site down").click()
    expect(page).to_have_url(f"{url}/portal/tickets/1")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Site down")
    one_page(page)

    nav(page, "My account")
    page.locator("#balance").get_by_role("button", name="Decline").click()
    expect(page.locator(".flash-success")).to_be_visible()
    expect(page).to_have_url(f"{url}/portal/")
    one_page(page)
    expect(page.locator("#balance #balance")).to_have_count(0)
    expect(page.locator("#balance")).not_to_contain_text("await your answer")


def test_the_estimator_pack_link_opens_the_pack_page(live_server, page: Page):
    url, app = live_server
    with app.app_context():
        load_preset(db.session, "toopixel")
    start(page, url)
    nav(page, "Estimator")
    page.get_by_role("link", name="See what this pack includes and how it counts time").click()
    expect(page).to_have_url(f"{url}/packs/toopixel-36")
    one_page(page)
    expect(page.locator("#estimate-result h1")).to_have_count(0)


KINDS = {  # the kinds each balance offers, by language
    "en": {"Support credits": ["Consultation", "Intervention", "Website security update"],
           "Webmastering credits": None,
           "Time credit": ["Production", "Corrections", "Online training"]},
    "fr": {"Crédits d'assistance": ["Consultation", "Intervention", "Mise à jour de sécurité du site"],
           "Crédits webmastering": None,
           "Crédit temps": ["Production", "Corrections", "Formation en ligne"]},
}
LABELS = {"en": ("Open a ticket", "Draw from", "Kind of request"),
          "fr": ("Ouvrir un ticket", "Imputer sur", "Type de demande")}


@pytest.mark.parametrize("language", ["en", "fr"])
def test_picking_another_balance_refreshes_the_kinds(live_server, page: Page, language):
    url, app = live_server
    now = datetime.now(UTC)
    with app.app_context():
        for preset in ("innova", "toopixel", "digitale"):
            load_preset(db.session, preset)
        owner = accounts.register(db.session, "Acme", "Olive Owner", "owner@example.com", PASSWORD, language, "ES")
        accounts.mark_email_verified(db.session, owner)
        for slug in ("innova-60", "toopixel-36", "digitale-3h"):
            pack = db.session.scalar(select(Pack).where(Pack.slug == slug))
            ledger.grant(db.session, owner.account, pack, key=slug, now=now)
    open_label, balance_label, kind_label = LABELS[language]
    log_in(page, url, "owner@example.com")
    page.get_by_role("link", name=open_label).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(open_label)
    balance = page.get_by_label(balance_label)
    options = balance.locator("option").all_inner_texts()
    for beginning, kinds in KINDS[language].items():
        [option] = [o for o in options if beginning in o]
        balance.select_option(label=option)
        if kinds is None:
            expect(page.get_by_label(kind_label)).to_have_count(0)
        else:
            kind = page.get_by_label(kind_label)
            for name in kinds:
                expect(kind.locator("option", has_text=name)).to_have_count(1)


def test_buy_a_pack_from_an_empty_balance_opens_the_buy_page(live_server, page: Page):
    url, app = live_server
    with app.app_context():
        load_preset(db.session, "toopixel")
        owner = accounts.register(db.session, "Acme", "Olive Owner", "owner@example.com", PASSWORD, "en", "FR")
        accounts.mark_email_verified(db.session, owner)
    log_in(page, url, "owner@example.com")
    page.locator("#balance").get_by_role("link", name="Buy a pack").click()
    expect(page).to_have_url(f"{url}/portal/buy")
    expect(page.get_by_role("heading", level=1)).to_have_text("Buy more")
    one_page(page)
    shot(page, "buy-from-empty-dashboard")
