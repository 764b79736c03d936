"""In Chromium (issue 14.2): an admin goes from the back office's home to the
catalogue editor, creates a pack with its English and French names, is told
beside the field that the Spanish one is missing, gives it, sees the shop's
card while typing, publishes the pack, and finds it in the shop, in English
and in French."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from billing.catalogue.offers import load_preset
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import heading, log_in, nav, one_page, screenshots

pytestmark = pytest.mark.browser


def shot(page: Page, name: str) -> None:
    screenshots(page, f"catalogue-{name}")


@pytest.fixture
def shop(live_server):
    url, app = live_server
    with app.app_context():
        load_preset(db.session, "toopixel")
        accounts.create_staff(db.session, "Ada Admin", "admin@example.com", PASSWORD)
    return url


def texts(page: Page, group: str, values: dict[str, str]) -> None:
    """Fill one text of the form in the languages given (English, Français, Español)."""
    fieldset = page.get_by_role("group", name=group, exact=True)
    for language, value in values.items():
        fieldset.get_by_label(language, exact=True).fill(value)


def test_an_admin_creates_a_pack_in_french_and_english_and_it_is_on_sale(shop, page: Page):
    log_in(page, shop, "admin@example.com")
    heading(page, "Back office")
    page.get_by_role("main").get_by_role("link", name="Catalogue editor").click()
    heading(page, "Catalogue editor")
    one_page(page)
    shot(page, "index")
    page.get_by_role("link", name="New pack in Too Pixel Sàrl").click()
    heading(page, "New pack")

    texts(page, "Name", {"English": "Starter, 12 credits", "Français": "Démarrage, 12 crédits"})
    texts(page, "Description", {"English": "Two hours of webmastering.",
                                "Français": "Deux heures de webmastering."})
    page.get_by_label("Units per item").fill("12")
    page.get_by_label("Price per item").fill("390")
    page.get_by_label("VAT rate (%)").fill("8.1")
    page.get_by_label("The price includes VAT").check()
    page.get_by_label("Usual hourly rate").fill("200")
    page.get_by_label("Valid for (months)").fill("24")
    # The shop's card follows the typing, before anything is saved.
    preview = page.locator("#preview")
    expect(preview.get_by_role("article", name="Starter, 12 credits")).to_be_visible()
    expect(preview).to_contain_text("CHF")
    page.get_by_label("Try: minutes of work").fill("27")
    expect(preview).to_contain_text("27 min → 3 blocks of 10 min → 3 credits")

    page.get_by_role("button", name="Save").click()
    spanish = page.get_by_role("group", name="Name", exact=True).get_by_label("Español", exact=True)
    expect(page.locator("#f-name-es-note")).to_have_text(
        "The Spanish text is missing: every text is needed in English, French and Spanish.")
    expect(spanish).to_have_attribute("aria-invalid", "true")
    shot(page, "refused")
    texts(page, "Name", {"Español": "Inicio, 12 créditos"})
    texts(page, "Description", {"Español": "Dos horas de webmastering."})
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("created as a draft")).to_be_visible()
    heading(page, "Starter, 12 credits")
    expect(page.get_by_role("main")).to_contain_text("Draft")
    shot(page, "pack")

    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Pack Starter, 12 credits is on sale.")).to_be_visible()
    nav(page, "Packs")
    expect(page.get_by_role("article", name="Starter, 12 credits")).to_be_visible()
    page.locator("footer").get_by_role("button", name="Français").click()
    expect(page.get_by_role("article", name="Démarrage, 12 crédits")).to_be_visible()


def test_the_policy_editor_shows_the_charges_as_the_rule_is_typed(shop, page: Page):
    log_in(page, shop, "admin@example.com")
    page.get_by_role("main").get_by_role("link", name="Catalogue editor").click()
    page.get_by_role("link", name="Webmastering credits").click()
    heading(page, "Webmastering credits")
    table = page.locator("#preview table")
    expect(table.get_by_role("row", name="Any request")).to_contain_text("3")
    page.get_by_label("Minutes per unit").fill("15")
    # 27 minutes in blocks of 15: 2 credits instead of 3.
    expect(table.get_by_role("row", name="Any request").locator("td").nth(2)).to_have_text("2")
    shot(page, "policy")
