"""A newcomer's first visit, in a real browser: browse the catalogue, switch
to French, use the estimator, sign up, open the account from the mail, log
out, log back in."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing.accounts.models import User
from billing.catalogue.offers import load_preset
from common.extensions import db
from tests.journeys import click_to, follow_mail_link, start
from tests.smtp import smtp_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser

NBSP = "\u00a0"


def test_browse_switch_to_french_estimate_sign_up_and_log_in(page: Page, live_server, smtp_server):  # noqa: F811
    url, app = live_server
    app.config.update(smtp_server.config)
    with app.app_context():
        load_preset(db.session, "toopixel")

    start(page, url)
    card = page.locator("article", has_text="36 credits").first
    expect(card).to_contain_text(f"CHF{NBSP}950.00")
    expect(card).to_contain_text(f"Save CHF{NBSP}250.00")

    page.get_by_role("button", name="Français").click()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator("article", has_text="36 crédits").first).to_contain_text(f"950,00{NBSP}CHF")

    click_to(page, page.get_by_role("link", name="Simulateur"), "/estimate")
    # Another pack swaps the whole estimator (its request kinds differ): the
    # visitor sees it follow (its link names the new pack) before typing.
    page.get_by_label("Pack", exact=True).select_option("toopixel-72")
    expect(page.locator("#estimator a[href='/packs/toopixel-72']")).to_be_visible()
    page.get_by_label("Minutes de travail").fill("27")
    result = page.locator("#estimate-result")
    expect(result).to_contain_text("27 min → 3 tranches de 10 min → 3 crédits")

    page.get_by_role("link", name="S'inscrire").click()
    page.get_by_label("Organisation").fill("Boulangerie Martin")
    page.get_by_label("Votre nom").fill("Léa Martin")
    page.get_by_label("E-mail").fill("lea@boulangerie.example")
    page.get_by_label("Mot de passe", exact=True).fill("une phrase de passe")
    page.get_by_label("Confirmez le mot de passe").fill("une phrase de passe")
    page.get_by_role("combobox", name="Langue").select_option("fr")
    page.get_by_label("Pays").select_option("FR")
    page.get_by_role("button", name="Créer le compte").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Consultez vos e-mails")
    # The link in the mail confirms the address and opens the account.
    follow_mail_link(page, smtp_server, "lea@boulangerie.example", "/verify/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Boulangerie Martin")
    expect(page.locator("html")).to_have_attribute("lang", "fr")

    page.get_by_role("button", name="Se déconnecter").click()
    expect(page.get_by_role("link", name="Se connecter")).to_be_visible()
    page.get_by_role("link", name="Se connecter").click()
    page.get_by_label("E-mail").fill("LEA@boulangerie.example ")
    page.get_by_label("Mot de passe").fill("une phrase de passe")
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(re.compile(r"/portal/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Boulangerie Martin")

    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "lea@boulangerie.example"))
        assert user.is_owner and user.language == "fr" and user.account.country == "FR"
