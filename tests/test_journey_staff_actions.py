"""Browser journeys of issue 14's staff actions, on Chromium, clicking from
the staff navigation: an admin removes 2 units from a client's balance with
a reason and the client's statement shows it; an agent opens a ticket for
a client, logs time, changes its request kind after the preview, and the
charge follows (seed 003: a consultation of 20 min is 30 credits, an
intervention at least 60)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import heading, htmx_settled, log_in, log_time, nav, one_page, screenshots, staff_page

pytestmark = pytest.mark.browser


@pytest.fixture
def world(live_server):
    """Atelier Lune (owner Luna, member Max) holds 120 Innova credits; an
    admin and an agent work for the provider."""
    url, app = live_server
    with app.app_context():
        load_preset(db.session, "innova")
        owner = accounts.register(db.session, "Atelier Lune", "Luna Client", "luna@example.com", PASSWORD, "en", "FR")
        accounts.mark_email_verified(db.session, owner)
        member = User(account=owner.account, role="member", email="max@example.com", name="Max Member",
                      password_hash=accounts.hasher.hash(PASSWORD), email_verified_at=datetime.now(UTC))
        db.session.add(member)
        for name, email, role in (("Ada Admin", "admin@example.com", "admin"),
                                  ("Aggie Agent", "agent@example.com", "agent")):
            db.session.add(User(name=name, email=email, role=role, is_staff=True,
                                password_hash=accounts.hasher.hash(PASSWORD), email_verified_at=datetime.now(UTC)))
        db.session.commit()
        pack = db.session.query(Pack).filter_by(slug="innova-120").one()
        ledger.grant(db.session, owner.account, pack, key="journey-innova", now=datetime.now(UTC))
    return url, app


def to_account(page: Page, name: str) -> None:
    """From the staff home page, where logging in leads: Clients, then the client's page."""
    heading(page, "Back office")
    page.locator("a.hub-card", has=page.locator("strong", has_text="Clients")).click()
    heading(page, "Clients")
    page.get_by_role("link", name=name).first.click()
    heading(page, name)
    one_page(page)


def test_an_admin_removes_two_units_and_the_client_statement_shows_it(world, page: Page, new_context):
    url, _app = world
    admin = staff_page(new_context, url, "admin@example.com")
    to_account(admin, "Atelier Lune")
    admin.get_by_role("button", name="Adjust credit").click()
    heading(admin, "Adjust credit")
    expect(admin.get_by_role("cell", name="120 credits")).to_be_visible()
    admin.get_by_label("Balance").select_option(index=0)
    admin.get_by_label("Remove units").check()
    admin.get_by_label("Units", exact=True).fill("2")
    admin.get_by_label("Reason, shown to the client on the statement").fill("Phone call logged twice")
    screenshots(admin, "actions-adjust")
    admin.get_by_role("button", name="Adjust the balance").click()
    heading(admin, "Atelier Lune")
    expect(admin.get_by_text("the balance now holds 118 credits")).to_be_visible()
    screenshots(admin, "actions-account")

    log_in(page, url, "luna@example.com")
    nav(page, "My account")
    page.get_by_role("link", name="Statement").click()
    heading(page, "Statement")
    row = page.get_by_role("row", name="Phone call logged twice")
    expect(row).to_contain_text("Adjustment")
    expect(row).to_contain_text("−2 credits")
    screenshots(page, "actions-statement")


def test_an_agent_opens_a_ticket_for_a_client_and_changes_its_kind(world, page: Page, new_context):
    url, _app = world
    agent = staff_page(new_context, url, "agent@example.com")
    to_account(agent, "Atelier Lune")
    expect(agent.get_by_role("button", name="Adjust credit")).to_have_count(0)  # admins only
    agent.get_by_role("button", name="Open a ticket for this client").click()
    heading(agent, "Open a ticket for this client")
    agent.get_by_label("For").select_option(label="Max Member (max@example.com)")
    htmx_settled(agent)
    agent.get_by_label("Kind of request").select_option(label="Consultation")
    agent.get_by_label("Subject").fill("Newsletter template")
    agent.get_by_label("Message").fill("Max called: the newsletter template lost its header.")
    screenshots(agent, "actions-ticket-new")
    agent.get_by_role("button", name="Open the ticket").click()
    heading(agent, "Newsletter template")
    expect(agent.get_by_test_id("opened-by-staff")).to_have_text("opened for them by Aggie Agent")

    log_time(agent, 20, "+20 min → total 20 min → 30 credits, 30 more than now")
    expect(agent.get_by_test_id("ticket-cost")).to_have_text("30 credits")
    expect(agent.get_by_text("90 credits left")).to_be_visible()

    agent.get_by_label("Charged as").select_option(label="Intervention")
    agent.get_by_role("button", name="Preview the change").click()
    preview = agent.get_by_test_id("kind-preview")
    expect(preview).to_contain_text("Consultation → Intervention")
    expect(agent.get_by_test_id("kind-delta")).to_contain_text("30 credits → 60 credits")
    screenshots(agent, "actions-kind-preview")
    agent.get_by_role("button", name="Confirm: charge as Intervention").click()
    expect(agent.get_by_text("it costs 60 credits (was 30 credits)")).to_be_visible()
    expect(agent.get_by_test_id("ticket-cost")).to_have_text("60 credits")
    expect(agent.get_by_text("60 credits left")).to_be_visible()
    screenshots(agent, "actions-desk-ticket")

    # Max, told by mail, sees the ticket as theirs, opened for them, at its new cost.
    log_in(page, url, "max@example.com")
    nav(page, "My account")
    page.get_by_role("link", name="Newsletter template").first.click()
    heading(page, "Newsletter template")
    expect(page.get_by_test_id("opened-by-staff")).to_be_visible()
    expect(page.get_by_text("60 credits").first).to_be_visible()
    screenshots(page, "actions-client-ticket")


def test_an_agent_who_double_clicks_open_the_ticket_opens_one(world, page: Page, new_context):
    url, app = world
    agent = staff_page(new_context, url, "agent@example.com")
    to_account(agent, "Atelier Lune")
    agent.get_by_role("button", name="Open a ticket for this client").click()
    heading(agent, "Open a ticket for this client")
    agent.get_by_label("Subject").fill("Printer offline")
    agent.get_by_label("Message").fill("Luna called: the printer is offline.")
    agent.get_by_role("button", name="Open the ticket").dblclick()
    heading(agent, "Printer offline")
    screenshots(agent, "staffdesk-ticket-double-click")
    with app.app_context():
        assert db.session.query(Ticket).filter_by(subject="Printer offline").count() == 1
