"""What htmx swaps in is ready the moment it shows. htmx wires up new content
(its listeners, the autofocus) when the swap settles, 20 ms after it by
default: in between a person sees a form that ignores what they do, and the
focus jumps back to the autofocus field while they type in another. The
browser tests raced on exactly that (12.9). These look at the page at the
first moment a swapped-in element exists, before any test could touch it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.ledger import services as ledger
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import heading, log_in, nav, start

pytestmark = pytest.mark.browser

# At the first mutation that puts ``selector`` in the page (a microtask, so
# after the task that swapped it in and before anything else runs): what a
# person's first keystroke would meet.
FIRST_SIGHT = """selector => {
  window.firstSight = new Promise(resolve => {
    const watch = new MutationObserver(() => {
      const element = document.querySelector(selector);
      if (!element) return;
      watch.disconnect();
      resolve({
        focused: document.activeElement && document.activeElement.id,
        waiting: [...document.querySelectorAll('.htmx-added')].map(e => e.id || e.tagName),
      });
    });
    watch.observe(document.body, {childList: true, subtree: true});
  });
}"""


@pytest.fixture
def acme(live_server):
    url, app = live_server
    with app.app_context():
        load_preset(db.session, "toopixel")
        owner = accounts.register(db.session, "Acme", "Olive Owner", "owner@example.com", PASSWORD, "en", "FR")
        pack = db.session.scalar(select(Pack).where(Pack.slug == "toopixel-36"))
        ledger.grant(db.session, owner.account, pack, key="acme-36", now=datetime.now(UTC))
    return url, app


def test_the_ticket_form_has_the_focus_as_soon_as_it_shows(acme, page: Page):
    url, _app = acme
    log_in(page, url, "owner@example.com")
    page.evaluate(FIRST_SIGHT, "#subject")
    page.get_by_role("link", name="Open a ticket").first.click()
    assert page.evaluate("window.firstSight") == {"focused": "subject", "waiting": []}
    # So the description typed next stays in the description.
    page.get_by_label("Subject").fill("Contact form broken")
    page.get_by_label("Description").fill("Nothing arrives since Monday.")
    expect(page.get_by_label("Subject")).to_have_value("Contact form broken")


def test_the_estimator_listens_as_soon_as_it_shows(acme, page: Page):
    url, _app = acme
    start(page, url)
    page.evaluate(FIRST_SIGHT, "#estimator")
    nav(page, "Estimator")
    assert page.evaluate("window.firstSight")["waiting"] == []
    heading(page, "What would a request cost?")
    # Another pack swaps the whole estimator: it too is live when it shows.
    page.evaluate(FIRST_SIGHT, "#estimator a[href='/packs/toopixel-72']")
    page.get_by_label("Pack", exact=True).select_option("toopixel-72")
    assert page.evaluate("window.firstSight")["waiting"] == []
    page.get_by_label("Minutes of work").fill("27")
    expect(page.locator("#estimate-result")).to_contain_text("27 min → 3 blocks of 10 min → 3 credits")


def test_a_pack_picked_just_after_typing_minutes_is_not_lost(acme, page: Page):
    """The minutes ask for a new result 300 ms after the last keystroke. A
    pack picked within those 300 ms asks for the whole estimator; on a slow
    line that answer is still on its way when the minutes' request leaves,
    and that request must not cancel it."""
    url, app = acme
    with app.app_context():
        load_preset(db.session, "innova")
    held = []

    def slow_line(route):
        if route.request.headers.get("hx-target") == "estimator" and not held:
            held.append(route)  # the pack's answer waits for the minutes' request to leave
        elif held:
            route.continue_()
            held.pop().continue_()
        else:
            route.continue_()

    start(page, url)
    nav(page, "Estimator")
    page.route(re.compile(r"/estimate\?"), slow_line)
    page.get_by_label("Minutes of work").fill("27")
    page.get_by_label("Pack", exact=True).select_option("toopixel-72")
    expect(page.locator("#estimator a[href='/packs/toopixel-72']")).to_be_visible()
    expect(page.locator("#estimate-result")).to_contain_text("27 min → 3 blocks of 10 min → 3 credits")
