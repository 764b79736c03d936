"""Staff and roles in Chromium (issue 14.1): an admin goes from the staff
home to the team page, invites an agent, who follows the mailed link, chooses
a password and logs in; the admin changes the agent's role, then deactivates
them, and the agent's open session ends at once."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import fill_log_in, follow_mail_link, heading, log_in, nav, one_page
from tests.smtp import smtp_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser

NEW = "nina's own long password"


@pytest.fixture
def office(live_server, smtp_server):  # noqa: F811
    url, app = live_server
    app.config.update(**smtp_server.config)
    with app.app_context():
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD, role="admin")
    return url, app


def test_an_admin_invites_an_agent_changes_their_role_and_deactivates_them(office, page: Page, new_context,
                                                                           smtp_server):  # noqa: F811
    url, _app = office
    log_in(page, url, "staff@example.com")
    heading(page, "Back office")  # staff land on the hub
    page.locator(".hub-card", has_text="Team").click()
    heading(page, "Team")
    one_page(page)

    invite = page.locator("#invite")
    invite.get_by_label("Name").fill("Nina New")
    invite.get_by_label("Email").fill("nina@example.com")
    invite.get_by_label("Role").select_option(label="Agent")
    invite.get_by_role("button", name="Send the invitation").click()
    expect(page.get_by_text("Invitation sent to nina@example.com")).to_be_visible()
    row = page.locator("tr", has_text="Nina New")
    expect(row).to_contain_text("Invited")

    # Nina follows the link of the mail, in a browser of her own.
    nina = new_context().new_page()
    follow_mail_link(nina, smtp_server, "nina@example.com", "/password/reset/")
    heading(nina, "Choose your password")
    nina.get_by_label("New password").fill(NEW)
    nina.get_by_label("Repeat the password").fill(NEW)
    nina.get_by_role("button", name="Save the new password").click()
    fill_log_in(nina, "nina@example.com", NEW)
    heading(nina, "Back office")
    expect(nina.locator(".hub-card", has_text="Ticket desk")).to_be_visible()
    expect(nina.locator(".hub-card", has_text="Team")).to_have_count(0)  # an agent's hub

    # The admin makes her an administrator: she sees the team from her next page on.
    nav(page, "Back office")
    page.locator(".hub-card", has_text="Team").click()
    row = page.locator("tr", has_text="Nina New")
    expect(row).to_contain_text("Active")
    row.get_by_label("Role of Nina New", exact=True).select_option(label="Administrator")
    row.get_by_role("button", name="Change the role of Nina New").click()
    expect(page.get_by_text("Nina New is now administrator.")).to_be_visible()
    nav(nina, "Back office")
    expect(nina.locator(".hub-card", has_text="Team")).to_be_visible()

    # Then deactivates her: her open session ends at once.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has_text="Nina New").get_by_role("button", name="Deactivate Nina New").click()
    expect(page.get_by_text("Nina New is deactivated")).to_be_visible()
    expect(page.locator("tr", has_text="Nina New")).to_contain_text("Deactivated")
    nina.locator("header.site-header").get_by_role("link", name="Ticket desk", exact=True).click()
    heading(nina, "Log in")
    expect(nina).to_have_url(re.compile(r"/login"))

    # And she cannot log in again.
    nina.get_by_label("Email").fill("nina@example.com")
    nina.get_by_label("Password").fill(NEW)
    nina.get_by_role("button", name="Log in").click()
    expect(nina.get_by_text("Wrong email or password.")).to_be_visible()

    # The audit log tells the story, newest first.
    page.get_by_role("link", name="See the audit log").click()
    heading(page, "Audit log")
    rows = page.locator("table.audit tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Staff member deactivated")
    expect(rows.nth(1)).to_contain_text("Role changed")
    expect(rows.nth(1)).to_contain_text("Agent → Administrator")
    expect(rows.nth(2)).to_contain_text("Staff member invited")
