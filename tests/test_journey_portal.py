"""Browser journeys of the client portal on Debian's Chromium: an owner
invites a colleague who joins, opens a ticket and draws on the pool, then is
removed and refused at once; a dashboard follows the balance live while
staff log 27 minutes on a Too Pixel ticket."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from billing.desk import services as desk
from billing.ledger import services as ledger
from billing.catalogue.offers import load_preset
from billing.ledger.models import Ticket
from billing.models import Pack, User
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.conftest import browser_log_in as log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def acme(live_server):
    """Acme's owner with 36 Too Pixel credits (a pooled lot), and staff."""
    url, app = live_server
    with app.app_context():
        load_preset(db.session, "toopixel")
        owner = accounts.register(db.session, "Acme", "Olive Owner", "owner@example.com", PASSWORD, "en", "CH")
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
        pack = db.session.scalar(select(Pack).where(Pack.slug == "toopixel-36"))
        ledger.grant(db.session, owner.account, pack, key="acme-36", now=datetime.now(timezone.utc))
    return url, app


def last_link(app, to: str, path: str) -> str:
    """The link in the last mail written to the mail folder for ``to``."""
    for eml in sorted(Path(app.config["MAIL_FOLDER"]).glob("*.eml"), reverse=True):
        message = message_from_bytes(eml.read_bytes(), policy=policy.default)
        if to in message["To"]:
            text = message.get_body(preferencelist=("plain",)).get_content()
            return re.findall(r"https?://\S*" + re.escape(path) + r"\S*", text)[-1]
    raise AssertionError(f"no mail to {to}")


def staff_logs(app, subject: str, minutes: int, key: str) -> None:
    """What the staff desk's log-time form does, through the same service."""
    with app.app_context():
        staff = db.session.scalar(select(User).where(User.is_staff.is_(True)))
        ticket = db.session.scalar(select(Ticket).where(Ticket.subject == subject))
        desk.log_time(db.session, ticket, staff, minutes, True, "work", key, datetime.now(timezone.utc))


def test_owner_invites_a_colleague_who_draws_on_the_pool_then_is_removed(acme, page: Page, browser: Browser):
    url, app = acme
    log_in(page, url, "owner@example.com")
    page.get_by_role("link", name="People", exact=True).first.click()
    page.get_by_label("Email").fill("colleague@example.com")
    page.get_by_label("Role").select_option("member")
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.get_by_text("Invitation sent to colleague@example.com")).to_be_visible()
    link = last_link(app, "colleague@example.com", "/invitations/")

    colleague = browser.new_context().new_page()
    colleague.goto(link.replace("http://localhost", url))
    expect(colleague.get_by_role("heading", name="Join Acme")).to_be_visible()
    colleague.get_by_label("Your name").fill("Carl Colleague")
    colleague.get_by_label("Choose a password").fill(PASSWORD)
    colleague.get_by_label("Repeat the password").fill(PASSWORD)
    colleague.get_by_role("button", name="Join the account").click()
    expect(colleague.get_by_text("Welcome to Acme.")).to_be_visible()
    expect(colleague.get_by_test_id("balance-toopixel-credits")).to_have_text("36 credits")

    colleague.get_by_role("link", name="Open a ticket").first.click()
    colleague.get_by_label("Subject").fill("Contact form broken")
    colleague.get_by_label("Description").fill("Nothing arrives since Monday.")
    colleague.get_by_label("Criticality").select_option("high")
    colleague.get_by_role("button", name="Open the ticket").click()
    expect(colleague.get_by_role("heading", name=re.compile("Contact form broken"))).to_be_visible()

    staff_logs(app, "Contact form broken", 20, "pool-20")
    colleague.goto(url + "/portal/")
    expect(colleague.get_by_test_id("balance-toopixel-credits")).to_have_text("34 credits")

    # The owner sees the same pool go down, then removes the colleague.
    page.goto(url + "/portal/")
    expect(page.get_by_test_id("balance-toopixel-credits")).to_have_text("34 credits")
    page.goto(url + "/portal/people")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove Carl Colleague").click()
    expect(page.get_by_text("Carl Colleague no longer has access to this account.")).to_be_visible()

    colleague.get_by_role("link", name="Tickets", exact=True).first.click()
    expect(colleague).to_have_url(re.compile(r"/login\?next="))
    expect(colleague.get_by_role("button", name="Log in")).to_be_visible()


def test_dashboard_shows_the_charge_without_a_reload(acme, page: Page, browser: Browser):
    url, app = acme
    log_in(page, url, "owner@example.com")
    page.get_by_role("link", name="Open a ticket").first.click()
    page.get_by_label("Subject").fill("Update the prices page")
    page.get_by_label("Description").fill("New prices from January.")
    page.get_by_role("button", name="Open the ticket").click()
    expect(page.get_by_role("heading", name=re.compile("Update the prices page"))).to_be_visible()
    page.get_by_role("link", name="My account").click()
    balance = page.get_by_test_id("balance-toopixel-credits")
    expect(balance).to_have_text("36 credits")
    page.evaluate("window.notReloaded = true")

    # Staff, in a browser of their own, open the ticket; the time is logged through the desk's service.
    staff_page = browser.new_context().new_page()
    log_in(staff_page, url, "staff@example.com")
    with app.app_context():
        ticket_id = db.session.scalar(select(Ticket.id).where(Ticket.subject == "Update the prices page"))
    staff_page.goto(f"{url}/portal/tickets/{ticket_id}")
    expect(staff_page.get_by_role("heading", name=re.compile("Update the prices page"))).to_be_visible()
    staff_logs(app, "Update the prices page", 27, "live-27")

    expect(balance).to_have_text("33 credits", timeout=5000)
    assert page.evaluate("window.notReloaded") is True
    expect(page.get_by_role("link", name=re.compile("Update the prices page")).first).to_be_visible()
