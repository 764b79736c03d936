"""A phone 390 px wide reads every page without scrolling sideways (issue
12.7): the page fits, and no table or box inside it needs a sideways scroll
(the orders' amount, status and PDF columns, the desk queue, the Spanish
checkout, the reports, every card of the back office). Screenshots at 1280
and 390 px go to FORFAIT_SCREENSHOTS when set."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from billing import clock
from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.quotes import services as quotes
from commands.demo import CLIENT, STAFF, TICKET
from common.extensions import db
from tests.journeys import choose_pack, click_to, fill_log_in, heading, nav, start

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
    """What `make run` serves: the demo catalogue and the IT support one
    (priced on request), the staff member and the client with their history."""
    url, app = live_server
    runner = app.test_cli_runner()
    for args in (["catalogue", "load", "demo", "itsupport"], ["demo", "users"]):
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


def follow(page: Page, link: Locator) -> None:
    """Click a link and wait for the page it names."""
    click_to(page, link, link.get_attribute("href"))


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


def test_the_clients_account_pages_fit_a_phone(demo, new_context):
    url, _ = demo
    page = phone(new_context)
    log_in(page, url, CLIENT)
    # The demo client reads French, the longer words; she asks for a quote from the shop first.
    nav(page, "Packs")
    page.get_by_role("article", name="20 tickets", exact=True).get_by_role("link", name="Demander un devis").click()
    heading(page, "Demander un devis")
    problems = look(page, "quote-request")
    page.get_by_label("De quoi avez-vous besoin ?").fill("Douze personnes dans deux bureaux.")
    page.get_by_role("button", name="Envoyer ma demande").click()
    heading(page, "Devis 1")
    problems += look(page, "client-quote")
    links = page.locator("nav.dashboard-links")
    for name, shot in (("Relevé de crédit", "statement"), ("Devis", "client-quotes"), ("Personnes", "people"),
                       ("Coordonnées de facturation", "invoicing"), ("Préférences d'e-mail", "preferences")):
        nav(page, "Mon compte")
        follow(page, links.get_by_role("link", name=name, exact=True))
        problems += look(page, shot)
    nav(page, "Mot de passe et connexions")
    problems += look(page, "security")
    # A closed ticket puts a line in the list of intervention reports.
    nav(page, "Mon compte")
    follow(page, links.get_by_role("link", name="Tickets", exact=True))
    follow(page, page.locator("main").get_by_role("link", name=TICKET["subject"]).first)
    page.get_by_role("button", name="Fermer le ticket").click()
    expect(page.get_by_role("button", name="Fermer le ticket")).to_have_count(0)
    nav(page, "Mon compte")
    follow(page, links.get_by_role("link", name="Rapports d'intervention", exact=True))
    expect(page.locator("main").get_by_role("link", name="PDF")).to_be_visible()
    problems += look(page, "reports-list")
    assert not problems, "\n".join(problems)


BACK_OFFICE = {  # the hub's cards and the reports' tabs, in the language the staff member picks
    "English": {"hub": "Back office", "payments": "Payments to confirm", "bank": "Bank statements",
                "clients": "Clients", "quotes": "Quotes", "levels": "Service levels", "editor": "Catalogue editor",
                "pack": "5 hours", "reports": "Reports", "team": "Team", "audit": "Audit log",
                "mail": "Outgoing mail", "logins": "Staff logins",
                "tabs": ("Sales", "Unused credit owed", "Time logged", "Overage", "Ratings")},
    "Español": {"hub": "Panel de gestión", "payments": "Pagos por confirmar", "bank": "Extractos bancarios",
                "clients": "Clientes", "quotes": "Presupuestos", "levels": "Niveles de servicio",
                "editor": "Editor del catálogo", "pack": "5 horas", "reports": "Informes", "team": "Equipo",
                "audit": "Registro de auditoría", "mail": "Correo saliente",
                "logins": "Inicios de sesión del equipo",
                "tabs": ("Ventas", "Crédito no utilizado adeudado", "Tiempo registrado", "Excesos", "Valoraciones")},
}


@pytest.mark.parametrize("language", ["Español", "English"])
def test_every_card_of_the_back_office_fits_a_phone(demo, new_context, language):
    url, app = demo
    with app.app_context():  # a quote the client asked for, to price
        client = db.session.scalar(select(User).where(User.email == CLIENT["email"]))
        pack = db.session.scalar(select(Pack).where(Pack.slug == "itsupport-tickets-20"))
        quotes.request_quote(db.session, pack, requester=client, name=client.name, email=client.email, company="",
                             country="FR", language="fr", message="Douze personnes.", quantity=1, now=clock.now())
    words = BACK_OFFICE[language]
    page = phone(new_context)
    log_in(page, url, STAFF)
    page.locator("footer").get_by_role("button", name=language).click()
    nav(page, words["hub"])
    problems = look(page, "hub")

    def card(title: str) -> None:
        nav(page, words["hub"])
        follow(page, page.locator("a.hub-card").filter(has=page.get_by_text(title, exact=True)))

    for area in ("payments", "bank", "levels", "team", "audit", "mail", "logins"):
        card(words[area])
        problems += look(page, f"{area}-{language}")
    card(words["clients"])
    follow(page, page.locator("main").get_by_role("link", name=CLIENT["organisation"]))
    problems += look(page, f"account-{language}")
    card(words["quotes"])
    problems += look(page, f"quotes-{language}")
    follow(page, page.locator("main").get_by_role("link", name="#1", exact=True))
    problems += look(page, f"staff-quote-{language}")
    card(words["editor"])
    problems += look(page, f"editor-{language}")
    follow(page, page.locator("main").get_by_role("link", name=words["pack"], exact=True))
    problems += look(page, f"editor-pack-{language}")
    card(words["reports"])
    for tab in words["tabs"]:
        follow(page, page.locator("ul.report-tabs").get_by_role("link", name=tab, exact=True))
        problems += look(page, f"report-{tab}-{language}")
    assert not problems, "\n".join(problems)
