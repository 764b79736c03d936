"""A phone 390 px wide reads every page without scrolling sideways (issue
12.7): the page fits, and no table or box inside it needs a sideways scroll
(the orders' amount, status and PDF columns, the desk queue, the Spanish
checkout). Screenshots at 1280 and 390 px go to FORFAIT_SCREENSHOTS when set."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from commands.demo import CLIENT, STAFF, TICKET
from tests.journeys import choose_pack, click_to, fill_log_in, nav, start

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


def phone(new_context, locale: str = "en-GB") -> Page:
    """A phone's browser, closed after the test (pytest-playwright's new_context)."""
    return new_context(viewport=PHONE, locale=locale).new_page()


def overflow(page: Page, name: str) -> list[str]:
    """What sticks out of the page ``name`` at this width (after a screenshot, when asked)."""
    expect(page.locator("main")).to_be_visible()
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{name}-{page.viewport_size['width']}.png", full_page=True)
    return [f"{name}: {problem}" for problem in page.evaluate(OVERFLOW)]


def look(page: Page, name: str) -> list[str]:
    """What sticks out of the page now shown, at phone width (and a screenshot at 1280 px too, when asked)."""
    problems = overflow(page, name)
    if SHOTS:
        page.set_viewport_size({"width": 1280, "height": 900})
        overflow(page, name)
        page.set_viewport_size(PHONE)
    return problems


def log_in(page: Page, url: str, who: dict) -> None:
    start(page, url)
    page.locator("header.site-header").get_by_role("link", name="Log in").click()
    fill_log_in(page, who["email"], who["password"])


def test_the_clients_pages_fit_a_phone(demo, new_context):
    url, _ = demo
    page = phone(new_context)
    log_in(page, url, CLIENT)
    problems = look(page, "dashboard")
    # The demo client reads French.
    nav(page, "Commandes")
    problems += look(page, "orders")
    click_to(page, page.locator("main").get_by_role("link", name="#1", exact=True).first, "/portal/orders/1")
    problems += look(page, "order")
    nav(page, "Mon compte")
    click_to(page, page.locator("main").get_by_role("link", name="Tickets", exact=True), "/portal/tickets")
    problems += look(page, "tickets")
    click_to(page, page.locator("main").get_by_role("link", name=TICKET["subject"]).first, "/portal/tickets/1")
    problems += look(page, "ticket")
    nav(page, "Mon compte")
    click_to(page, page.locator("main").get_by_role("link", name="Acheter du crédit", exact=True).first, "/portal/buy")
    problems += look(page, "buy")
    nav(page, "Mon compte")
    click_to(page, page.get_by_role("link", name="Rapports d'intervention"), "/portal/reports")
    problems += look(page, "reports")
    assert not problems, "\n".join(problems)


def test_the_desk_fits_a_phone(demo, new_context):
    url, _ = demo
    page = phone(new_context)
    log_in(page, url, STAFF)
    nav(page, "Ticket desk")
    problems = look(page, "desk")
    click_to(page, page.locator("main").get_by_role("link", name=TICKET["subject"]), "/desk/tickets/1")
    problems += look(page, "desk-ticket")
    nav(page, "Payments to confirm")
    problems += look(page, "payments")
    click_to(page, page.locator("main").get_by_role("link", name="#1", exact=True).first, "/portal/orders/1")
    problems += look(page, "staff-order")
    assert not problems, "\n".join(problems)


WORDS = {  # what a visitor clicks, in the language the phone asks for
    "en-GB": {"estimator": "Estimator", "details": "See the details", "order": "Order this pack",
              "hours": "10 hours", "trial": "Free trial: 30 minutes", "start trial": "Start the free trial"},
    "fr-FR": {"estimator": "Simulateur", "details": "Voir le détail", "order": "Commander",
              "hours": "10 heures", "trial": re.compile(r"Essai gratuit\s: 30 minutes"),
              "start trial": "Commencer l'essai gratuit"},
    "es-ES": {"estimator": "Simulador", "details": "Ver detalles", "order": "Pedir este pack",
              "hours": "10 horas", "trial": "Prueba gratuita: 30 minutos", "start trial": "Empezar la prueba gratuita"},
}


@pytest.mark.parametrize("locale", ["es-ES", "fr-FR", "en-GB"])
def test_the_shop_and_checkout_fit_a_phone(demo, new_context, locale):
    url, _ = demo
    words = WORDS[locale]
    page = phone(new_context, locale)
    start(page, url)
    problems = look(page, f"catalogue-{locale}")
    nav(page, words["estimator"])
    problems += look(page, f"estimator-{locale}")
    nav(page, "Packs")
    choose_pack(page, words["hours"], details=words["details"])
    problems += look(page, f"pack-{locale}")
    click_to(page, page.get_by_role("button", name=words["order"], exact=True), "/checkout/demo-hours-10")
    problems += look(page, f"checkout-{locale}")
    nav(page, "Packs")
    choose_pack(page, words["trial"], details=words["details"])
    click_to(page, page.get_by_role("button", name=words["start trial"]), "/checkout/demo-trial")
    problems += look(page, f"trial-{locale}")
    assert not problems, "\n".join(problems)
