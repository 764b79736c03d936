"""A phone 390 px wide reads every page without scrolling sideways (issue
12.7): the page fits, and no table or box inside it needs a sideways scroll
(the orders' amount, status and PDF columns, the desk queue, the Spanish
checkout). Screenshots at 1280 and 390 px go to FORFAIT_SCREENSHOTS when set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from commands.demo import CLIENT, STAFF
from tests.journeys import fill_log_in, start

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
SHOTS = os.environ.get("FORFAIT_SCREENSHOTS")

# What sticks out: the page itself, or any box that scrolls sideways.
OVERFLOW = """() => {
  const out = [];
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width) {
    const wide = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > width + 1);
    const deepest = wide.filter(e => !wide.some(o => o !== e && e.contains(o)));
    out.push(`page ${document.documentElement.scrollWidth}px > ${width}px: ` +
             deepest.slice(0, 3).map(e => `${e.tagName.toLowerCase()}.${e.className}`).join(', '));
  }
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el);
    if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1)
      out.push(`${el.tagName.toLowerCase()}.${el.className} scrolls: ${el.scrollWidth}px in ${el.clientWidth}px`);
  }
  return out;
}"""


@pytest.fixture
def demo(live_server):
    """The demo catalogue, staff member and client with their history."""
    url, app = live_server
    runner = app.test_cli_runner()
    for args in (["catalogue", "load", "demo"], ["demo", "users"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    return url, app


def phone(browser: Browser, locale: str = "en-GB") -> Page:
    return browser.new_context(viewport=PHONE, locale=locale).new_page()


def overflow(page: Page, name: str) -> list[str]:
    """What sticks out of the page ``name`` at this width (after a screenshot, when asked)."""
    expect(page.locator("main")).to_be_visible()
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{name}-{page.viewport_size['width']}.png", full_page=True)
    return [f"{name}: {problem}" for problem in page.evaluate(OVERFLOW)]


def visit(page: Page, url: str, pages) -> list[str]:
    problems = []
    for path, name in pages:
        page.goto(url + path)
        problems += overflow(page, name)
        if SHOTS:
            page.set_viewport_size({"width": 1280, "height": 900})
            overflow(page, name)
            page.set_viewport_size(PHONE)
    return problems


def log_in(page: Page, url: str, who: dict) -> None:
    start(page, url)
    page.locator("header.site-header").get_by_role("link", name="Log in").click()
    fill_log_in(page, who["email"], who["password"])


def test_the_clients_pages_fit_a_phone(demo, browser: Browser):
    url, _ = demo
    page = phone(browser)
    log_in(page, url, CLIENT)
    problems = visit(page, url, (("/portal/", "dashboard"), ("/portal/orders", "orders"), ("/portal/orders/1", "order"),
                             ("/portal/tickets", "tickets"), ("/portal/tickets/1", "ticket"), ("/portal/buy", "buy"),
                             ("/portal/reports", "reports")))
    assert not problems, "\n".join(problems)


def test_the_desk_fits_a_phone(demo, browser: Browser):
    url, _ = demo
    page = phone(browser)
    log_in(page, url, STAFF)
    problems = visit(page, url, (("/desk/", "desk"), ("/desk/tickets/1", "desk-ticket"),
                             ("/portal/staff/orders", "payments"), ("/portal/orders/1", "staff-order")))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("locale", ["es-ES", "fr-FR", "en-GB"])
def test_the_shop_and_checkout_fit_a_phone(demo, browser: Browser, locale):
    url, _ = demo
    page = phone(browser, locale)
    problems = visit(page, url, ((path, f"{name}-{locale}") for path, name in (
        ("/", "catalogue"), ("/estimate", "estimator"), ("/packs/demo-hours-10", "pack"),
        ("/checkout/demo-hours-10", "checkout"), ("/checkout/demo-trial", "trial"))))
    assert not problems, "\n".join(problems)
