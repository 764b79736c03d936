"""The whole chain in a real browser, with a real SMTP server: a French
client buys by transfer, staff confirm it, the client opens a ticket, staff
log time past the low-balance threshold and resolve it. The mailbox then
holds exactly what the client expects, each message once, in French."""

from __future__ import annotations

import re

import pytest
from checkout_support import EUR_IBAN
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing.catalogue.offers import load_preset
from billing.notifications.outbox import OutboxMessage
from billing.orders.models import Order
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD
from tests.journeys import (
    choose_pack,
    heading,
    log_in,
    log_time,
    nav,
    open_from_desk,
    staff_page,
)
from tests.smtp import smtp_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def shop(live_server, smtp_server):  # noqa: F811
    url, app = live_server
    app.config.update(PROVIDER_IBAN=EUR_IBAN, **smtp_server.config)
    with app.app_context():
        load_preset(db.session, "demo")
        owner = accounts.register(db.session, "Atelier Lune", "Odile Client", "odile@example.fr", PASSWORD, "fr", "FR")
        accounts.mark_email_verified(db.session, owner)
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    return url, app


def test_the_whole_chain_mails_a_french_client_each_step_once(shop, page: Page, new_context,
                                                               smtp_server):  # noqa: F811
    url, app = shop
    log_in(page, url, "odile@example.fr")  # her language is French: the pages follow
    nav(page, "Packs")
    choose_pack(page, "5 heures", details="Voir le détail")
    page.get_by_role("button", name=re.compile(r"^Command")).click()  # the pack page's order link
    page.get_by_label("Virement bancaire").check()
    page.get_by_role("button", name="Passer la commande").click()
    expect(page.get_by_role("heading", name="Payer par virement bancaire")).to_be_visible()
    with app.app_context():
        order_id = db.session.scalar(select(Order.id))

    staff = staff_page(new_context, url)
    nav(staff, "Payments to confirm")
    staff.locator(f"#order-{order_id}").get_by_role("button", name="Confirm").click()
    expect(staff.get_by_text(f"Order {order_id} is paid: credited and invoiced.")).to_be_visible()

    nav(page, "Mon compte")
    page.get_by_role("link", name="Ouvrir un ticket").first.click()
    heading(page, "Ouvrir un ticket")
    page.get_by_label("Sujet").fill("Formulaire de contact cassé")
    page.get_by_label("Description").fill("Il affiche une erreur.")
    page.get_by_role("button", name="Ouvrir le ticket").click()
    heading(page, "Formulaire de contact cassé")
    ticket_id = int(page.url.rstrip("/").split("/")[-1])

    # 5 hours, warned below 20 % of them (1 h): 250 minutes leave 50.
    open_from_desk(staff, "Formulaire de contact cassé")
    log_time(staff, 250, "+250 min")
    staff.get_by_label("Note for the intervention report (optional)").fill("Formulaire réparé.")
    staff.get_by_role("button", name="Resolve").click()
    expect(staff.get_by_text("Resolved on")).to_be_visible()

    subjects = [m["Subject"] for m in smtp_server.to("odile@example.fr")]
    assert subjects == [
        f"Votre commande {order_id}",
        f"Paiement reçu pour la commande {order_id}",
        f"Ticket n°\u00a0{ticket_id} reçu\u00a0: Formulaire de contact cassé",
        "Votre solde d'assistance devient faible",
        f"Ticket n°\u00a0{ticket_id} résolu\u00a0: votre rapport d'intervention",
    ]
    [resolved] = smtp_server.to("odile@example.fr")[-1:]
    body = resolved.get_body(preferencelist=("plain",)).get_content()
    assert "Formulaire réparé." in body and "50 minutes" in body
    # Staff heard of the new ticket, in their own language.
    assert [m["Subject"] for m in smtp_server.to("staff@example.com")] == [
        f"New ticket #{ticket_id} from Atelier Lune: Formulaire de contact cassé"]
    with app.app_context():
        assert db.session.scalar(select(OutboxMessage).where(OutboxMessage.status != "sent")) is None
