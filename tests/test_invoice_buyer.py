"""The buyer's postal address and VAT ID: edited by the account's owner
(checked per country), given at checkout with the order, copied into each
invoice when it is issued and into its credit notes, and printed on the PDF."""

from __future__ import annotations

import re
import subprocess
from html import unescape

import pytest
import sqlalchemy as sa
from checkout_support import EUR_IBAN, NOW, SELLER, both, client, confirm, pack, place, session  # noqa: F401
from sqlalchemy import select

from billing.accounts import invoicing as billing_accounts
from billing.accounts.models import Account, User
from billing.catalogue.offers import load_preset
from billing.orders import invoices
from billing.orders import services as orders
from billing.orders.models import Invoice, Order
from billing.transaction import atomic
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD, csrf_token, login, post_form
from tests.test_security import snapshot

ADDRESS = "Bâtiment B\n12 avenue de la Gare\n69003 Lyon"


@pytest.fixture
def app_config() -> dict:
    return {"PROVIDER_IBAN": EUR_IBAN}


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def field_note(page: str, field: str) -> str:
    found = re.search(rf'<small id="{field}-note">([^<]*)</small>', page)
    return found.group(1) if found else ""


def pdf_text(content: bytes) -> str:
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=content, capture_output=True,
                          check=True).stdout.decode()


def account_of(app, email: str) -> tuple[str, str]:
    with app.app_context():
        account = db.session.scalar(select(Account).join(User).where(User.email == email))
        return account.address, account.vat_id


def owner_in(app, country: str) -> str:
    """The email of the owner of a new account in ``country``."""
    email = f"owner-{country.lower()}@example.com"
    with app.app_context():
        accounts.register(db.session, f"Client {country}", "Ona Owner", email, PASSWORD, "en", country)
    return email


# --- The owner's page -------------------------------------------------------------

@pytest.mark.parametrize("country, typed, stored", [
    ("FR", "fr 40 303 265 045", "FR40303265045"),
    ("FR", "40303265045", "FR40303265045"),  # the prefix left out
    ("DE", "DE 136,695 976", "DE136695976"),
    ("BE", "0403.170.701", "BE0403170701"),
    ("GR", "GR094259216", "EL094259216"),  # Greece's VAT IDs say EL
    ("CH", "che-107.787.577 mwst", "CHE-107.787.577 MWST"),
    ("US", "  12-3456789 ", "12-3456789"),  # not checked: kept as typed, tidied
    ("FR", "", ""),
], ids=["fr-spaced", "fr-no-prefix", "de", "be", "gr", "ch", "us-free", "fr-none"])
def test_a_valid_vat_id_is_stored_normalised(app, client, country, typed, stored):
    email = owner_in(app, country)
    login(client, email)

    response = post_form(client, "/portal/invoicing", {"address": f"  {ADDRESS}  \n\n", "vat_id": typed})

    assert (response.status_code, response.headers["Location"]) == (302, "/portal/invoicing")
    assert account_of(app, email) == (ADDRESS, stored)
    page = text(client.get("/portal/invoicing"))
    assert "Your invoicing details are saved" in page and "69003 Lyon" in page
    if stored:
        assert f"VAT ID: {stored}" in page


@pytest.mark.parametrize("country, typed, message", [
    ("FR", "FR40303265046",
     "This is not a valid VAT ID. Check the number: for the account's country it starts with FR."),
    ("FR", "DE136695976", "for the account's country it starts with FR."),  # valid, but German
    ("DE", "12345", "for the account's country it starts with DE."),
    ("GR", "EL094259217", "it starts with EL."),
    ("CH", "CHE-107.787.577", "This is not a valid Swiss VAT number: write it like CHE-123.456.789 MWST"),
    ("US", "<b>12</b>", "Enter at most 40 letters, digits, spaces, dots, dashes or slashes."),
    ("US", "1" * 41, "Enter at most 40 letters"),
], ids=["fr-checksum", "fr-german", "de-short", "gr-checksum", "ch-no-suffix", "us-markup", "us-long"])
def test_an_invalid_vat_id_is_refused_under_its_field_and_nothing_is_written(app, client, country, typed, message):
    email = owner_in(app, country)
    login(client, email)
    before = snapshot(app)

    response = post_form(client, "/portal/invoicing", {"address": ADDRESS, "vat_id": typed})

    assert response.status_code == 422
    page = text(response)
    assert message in field_note(page, "vat_id")
    assert typed in page and "69003 Lyon" in page  # what was typed is kept, to correct it
    assert snapshot(app) == before


def test_an_address_too_long_for_the_invoice_is_refused(app, client, people):
    login(client, people["owner"])
    before = snapshot(app)

    response = post_form(client, "/portal/invoicing", {"address": "\n".join(f"line {n}" for n in range(7)),
                                                       "vat_id": ""})

    assert response.status_code == 422
    assert field_note(text(response), "address") == "Enter at most 6 lines and 300 characters."
    assert snapshot(app) == before


def test_the_owner_clears_the_details_with_empty_fields(app, client, people):
    login(client, people["owner"])
    post_form(client, "/portal/invoicing", {"address": ADDRESS, "vat_id": "FR40303265045"})

    assert post_form(client, "/portal/invoicing", {"address": " ", "vat_id": ""}).status_code == 302

    assert account_of(app, people["owner"]) == ("", "")


def test_a_member_sees_the_details_but_cannot_change_them(app, client, people):
    owner = app.test_client()
    login(owner, people["owner"])
    post_form(owner, "/portal/invoicing", {"address": ADDRESS, "vat_id": "FR40303265045"})
    login(client, people["member"])

    page = client.get("/portal/invoicing")

    assert page.status_code == 200
    assert "69003 Lyon" in text(page) and "VAT ID: FR40303265045" in text(page)
    assert 'action="/portal/invoicing"' not in text(page) and "The account's owners change these details." in text(page)
    before = snapshot(app)
    assert post_form(client, "/portal/invoicing", {"address": "Elsewhere", "vat_id": ""}).status_code == 403
    assert snapshot(app) == before
    assert 'href="/portal/invoicing"' in text(client.get("/portal/"))


def test_anonymous_visitors_log_in_and_staff_have_no_such_page(app, client, people):
    for response in (client.get("/portal/invoicing"),
                     client.post("/portal/invoicing", data={"csrf_token": csrf_token(client, "/login"),
                                                           "address": ADDRESS})):
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    login(client, people["staff"])
    assert client.get("/portal/invoicing").status_code == 404
    assert post_form(client, "/portal/invoicing", {"address": ADDRESS}).status_code == 403


def test_a_post_without_the_csrf_token_is_refused(app, client, people):
    login(client, people["owner"])
    before = snapshot(app)

    response = client.post("/portal/invoicing", data={"address": ADDRESS, "vat_id": "FR40303265045"})

    assert response.status_code == 400
    assert snapshot(app) == before


# --- The invoice and the credit note ----------------------------------------------

@both
def test_the_invoice_keeps_the_address_and_vat_id_it_was_issued_with(session):
    account, owner = client(session)
    billing_accounts.set_invoicing_details(session, account, address=ADDRESS, vat_id="FR40303265045")
    _order, payment = place(session, owner)
    confirm(session, payment)
    invoice_id = session.scalar(select(Invoice.id))

    billing_accounts.set_invoicing_details(session, account, address="1 Moved Street\nLondon", vat_id="")
    session.expire_all()

    invoice = session.get(Invoice, invoice_id)
    assert (invoice.buyer_address, invoice.buyer_vat_id, invoice.buyer_country) == (ADDRESS, "FR40303265045", "FR")
    _later, payment = place(session, owner)
    later = confirm(session, payment).order
    next_invoice = session.scalar(select(Invoice).where(Invoice.order_id == later.id))
    assert (next_invoice.buyer_address, next_invoice.buyer_vat_id) == ("1 Moved Street\nLondon", "")


@both
def test_a_credit_note_copies_the_buyer_of_the_invoice_it_corrects(session):
    account, owner = client(session)
    billing_accounts.set_invoicing_details(session, account, address=ADDRESS, vat_id="FR40303265045")
    order, payment = place(session, owner)
    confirm(session, payment)
    invoice = session.scalar(select(Invoice))
    billing_accounts.set_invoicing_details(session, account, address="1 Moved Street\nLondon", vat_id="")
    account.name = "Renamed Ltd"
    session.commit()

    note = invoices.issue_credit_note(session, order, 10000, "Goodwill", seller=SELLER, key="re_buyer", now=NOW)

    fields = invoices.BUYER_FIELDS
    assert [getattr(note, f) for f in fields] == [getattr(invoice, f) for f in fields]
    assert (note.buyer_name, note.buyer_address, note.buyer_vat_id) == (invoice.buyer_name, ADDRESS, "FR40303265045")
    assert note.buyer_name != "Renamed Ltd"


def test_details_refused_leave_the_account_as_it_was(session):
    account, _owner = client(session)
    billing_accounts.set_invoicing_details(session, account, address=ADDRESS, vat_id="FR40303265045")

    with pytest.raises(billing_accounts.InvoicingError) as refused:
        billing_accounts.set_invoicing_details(session, account, address="Elsewhere", vat_id="FR1")
    session.commit()

    assert refused.value.field == "vat_id"
    session.expire_all()
    assert (account.address, account.vat_id) == (ADDRESS, "FR40303265045")


@pytest.fixture
def paid_with_details(app, people):
    """The owner gave an address and a VAT ID, then paid an order: (invoice id, order id)."""
    with app.app_context():
        load_preset(db.session, "demo")
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        billing_accounts.set_invoicing_details(db.session, owner.account, address=ADDRESS, vat_id="FR40303265045")
        order, payment = place(db.session, owner)
        confirm(db.session, payment)
        return db.session.scalar(select(Invoice.id)), order.id


def test_the_pdf_prints_the_buyers_address_country_and_vat_id(app, client, people, paid_with_details):
    invoice_id, order_id = paid_with_details
    with app.app_context():
        note = invoices.issue_credit_note(db.session, db.session.get(Order, order_id), 10000, "Goodwill",
                                          seller=SELLER, key="re_pdf_buyer", now=NOW)
        note_id = note.id
    login(client, people["member"])

    for document in (invoice_id, note_id):
        pdf = pdf_text(client.get(f"/portal/invoices/{document}.pdf").data)
        for expected in ("Bâtiment B", "12 avenue de la Gare", "69003 Lyon", "France", "VAT ID: FR40303265045",
                         "VAT ID: FR40123456789"):  # the seller's, under the same label
            assert expected in pdf, (document, expected)
        # The buyer's lines in their order, each on a line of its own.
        lines = [line.strip() for line in pdf.splitlines()]
        buyer = [next(i for i, line in enumerate(lines) if line.endswith(part))
                 for part in ("Bâtiment B", "12 avenue de la Gare", "69003 Lyon", "FR40303265045")]
        assert buyer == sorted(buyer) and len(set(buyer)) == 4


def test_a_pdf_without_details_prints_no_empty_vat_line(app, client, people):
    with app.app_context():
        load_preset(db.session, "demo")
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        _order, payment = place(db.session, owner)
        confirm(db.session, payment)
        invoice_id = db.session.scalar(select(Invoice.id))
    login(client, people["owner"])

    pdf = pdf_text(client.get(f"/portal/invoices/{invoice_id}.pdf").data)

    assert pdf.count("VAT ID") == 1  # the seller's only
    assert "Acme" in pdf and "owner@example.com" in pdf


# --- At checkout ------------------------------------------------------------------

@pytest.fixture
def demo(app):
    with app.app_context():
        load_preset(db.session, "demo")


def test_an_owner_without_address_gives_it_with_the_order(app, client, people, demo):
    login(client, people["owner"])
    page = text(client.get("/checkout/demo-hours-5"))
    assert 'name="invoice-address"' in page and 'name="invoice-vat_id"' in page
    assert "Invoice to:" in page and 'href="/portal/invoicing"' in page

    response = post_form(client, "/checkout/demo-hours-5", {"method": "transfer", "total": "51000",
                                                            "invoice-address": ADDRESS,
                                                            "invoice-vat_id": "40303265045"})

    assert response.status_code == 302, text(response)
    assert account_of(app, people["owner"]) == (ADDRESS, "FR40303265045")
    page = text(client.get("/checkout/demo-hours-5"))
    assert 'name="invoice-address"' not in page  # given: now edited on the account's page
    summary = page.split('id="checkout-summary"')[1]
    assert "Bâtiment B" in summary and "VAT ID: FR40303265045" in summary


def test_an_invalid_vat_id_at_checkout_places_no_order(app, client, people, demo):
    login(client, people["owner"])
    before = snapshot(app)

    response = post_form(client, "/checkout/demo-hours-5", {"method": "transfer", "total": "51000",
                                                            "invoice-address": ADDRESS,
                                                            "invoice-vat_id": "FR40303265046"})

    assert response.status_code == 422
    page = text(response)
    assert "for the account's country it starts with FR." in field_note(page, "invoice-vat_id")
    assert "69003 Lyon" in page
    assert snapshot(app) == before


def test_the_checkout_without_details_orders_as_before(app, client, people, demo):
    login(client, people["owner"])

    response = post_form(client, "/checkout/demo-hours-5", {"method": "transfer", "total": "51000"})

    assert response.status_code == 302
    assert account_of(app, people["owner"]) == ("", "")


def test_a_member_is_shown_whom_the_invoice_goes_to_but_no_fields(app, client, people, demo):
    login(client, people["member"])

    page = text(client.get("/checkout/demo-hours-5"))

    assert "Invoice to:" in page and "Acme" in page.split('id="checkout-summary"')[1]
    assert 'name="invoice-address"' not in page and 'href="/portal/invoicing"' not in page


def test_an_order_refused_keeps_no_details_given_with_it(session):
    """Given with an order, the details share its transaction: refused, neither stays."""
    account, owner = client(session)
    demo_pack = pack(session, "demo-hours-5")
    before = session.scalar(select(sa.func.count(Order.id)))

    with pytest.raises(orders.OrderError), atomic(session):
        billing_accounts.set_invoicing_details(session, account, address=ADDRESS, vat_id="FR40303265045")
        orders.place_order(session, account, demo_pack, quantity=1, method="transfer", methods=("transfer",),
                           by=owner, now=NOW, expected_total=1)

    session.expire_all()
    assert (account.address, account.vat_id) == ("", "")
    assert session.scalar(select(sa.func.count(Order.id))) == before


# --- Migration ---------------------------------------------------------------------

@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_0008_gives_existing_accounts_empty_details(app):
    from flask_migrate import downgrade, upgrade

    with app.app_context():
        downgrade(revision="0007")
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO accounts (id, name, country, created_at) "
                                 "VALUES (1, 'Old', 'FR', '2026-01-01 00:00:00+00:00')"))
        upgrade()
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT address, vat_id FROM accounts")).one() == ("", "")
