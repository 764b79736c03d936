"""The checkout pages: the form and its summary, inline sign-up, bad input
(a clear message, a 4xx, nothing written), the instructions with QR codes
decoded back by zbarimg, the trial, and the mails."""

from __future__ import annotations

import re
import shutil
import subprocess
from email import message_from_bytes, policy
from html import unescape
from pathlib import Path

import pytest
from checkout_support import EUR_IBAN, QR_IBAN
from sqlalchemy import select

from billing.accounts.models import User
from billing.catalogue.offers import load_preset
from billing.orders.models import Order
from common.extensions import db
from tests.conftest import PASSWORD, login, post_form
from tests.test_security import snapshot


@pytest.fixture
def app_config() -> dict:
    return {"PROVIDER_IBAN": EUR_IBAN}


@pytest.fixture
def load(app):
    def load(*names: str) -> None:
        with app.app_context():
            for name in names:
                load_preset(db.session, name)

    load("demo")
    return load


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def field_note(page: str, field: str) -> str:
    found = re.search(rf'<small id="{field}-note">([^<]*)</small>', page)
    return found.group(1) if found else ""


SIGNUP = {"account-organisation": "Bistro Nova", "account-name": "Nora Nova", "account-email": "nora@example.com",
          "account-password": PASSWORD, "account-confirm": PASSWORD, "account-language": "en",
          "account-country": "FR"}


def mails(app) -> list:
    return [message_from_bytes(path.read_bytes(), policy=policy.default)
            for path in sorted(Path(app.config["MAIL_FOLDER"]).glob("*.eml"))]


# --- The form -------------------------------------------------------------------

def test_the_pack_page_leads_to_the_checkout(client, load):
    page = text(client.get("/packs/demo-hours-5"))
    assert 'href="/checkout/demo-hours-5"' in page and ">Order this pack</a>" in page
    assert "Create an account to order" not in page


def test_checkout_shows_net_vat_and_gross_and_the_methods(client, load):
    page = text(client.get("/checkout/demo-hours-5"))

    assert "€425.00" in page and "€85.00" in page and "€510.00" in page
    assert 'name="total" value="51000"' in page
    assert 'value="transfer"' in page and 'value="cheque"' in page
    assert 'value="card"' not in page  # no Stripe key, no card
    assert 'name="account-email"' in page  # a visitor creates the account here


def test_a_pooled_bundle_is_sold_from_its_minimum_and_the_summary_follows_the_quantity(client, load):
    page = text(client.get("/checkout/demo-team-tickets"))
    assert 'name="quantity"' in page and 'value="20"' in page and "€912.00" in page

    fragment = client.get("/checkout/demo-team-tickets?quantity=25",
                          headers={"HX-Request": "true", "HX-Target": "checkout-summary"})
    assert fragment.status_code == 200 and "Vary" in fragment.headers
    body = text(fragment)
    assert body.lstrip().startswith('<article class="offer-card checkout-summary" id="checkout-summary">')
    assert "€1,140.00" in body and 'name="total" value="114000"' in body

    too_few = client.get("/checkout/demo-team-tickets?quantity=5")
    assert too_few.status_code == 400 and "Choose a quantity from 20 to 1000." in text(too_few)


def test_price_on_request_leads_to_the_quote_request_and_no_checkout(client, load):
    load("itsupport")
    page = client.get("/checkout/itsupport-tickets-20")
    assert page.status_code == 200
    assert 'href="/quotes/request/itsupport-tickets-20"' in text(page) and 'name="method"' not in text(page)
    assert post_form(client, "/checkout/itsupport-tickets-20", {"method": "transfer"}).status_code == 400


def test_a_first_buyer_of_a_registration_catalogue_is_told_which_pack_registers(app, client, load):
    load("innova")
    page = text(client.get("/checkout/innova-60"))
    assert "This will be your registration pack." in page
    assert "valid 12 months; every pack you buy after it never expires" in page
    assert 'name="method"' in page  # explained, not blocked

    assert "registration pack" not in text(client.get("/checkout/demo-hours-5"))


# --- Placing ----------------------------------------------------------------------

def test_a_visitor_creates_the_account_confirms_the_address_and_orders_by_transfer(app, client, load):
    response = post_form(client, "/checkout/demo-team-tickets",
                         {"quantity": "25", "method": "transfer", "total": "114000", **SIGNUP})

    # Nothing is ordered before the address is confirmed: the page says to look at the mail.
    assert (response.status_code, response.headers["Location"]) == (302, "/checkout/demo-team-tickets/sent")
    sent = text(client.get(response.headers["Location"]))
    assert "We have sent a message to nora@example.com" in sent and "continue your order of Team tickets" in sent
    with app.app_context():
        assert db.session.scalar(select(Order)) is None
        assert db.session.scalar(select(User).where(User.email == "nora@example.com")).email_verified_at is None
    [welcome] = mails(app)
    assert welcome["Subject"] == "Please confirm your email address"
    assert "brings you back to your order of Team tickets" in welcome.get_body(("plain",)).get_content()

    # The mail's link opens the account and leads back to the checkout as it was filled in.
    link = re.search(r"http://localhost(/verify/\S+)", welcome.get_body(("plain",)).get_content()).group(1)
    back = client.get(link)
    assert back.status_code == 302
    assert back.headers["Location"] == "/checkout/demo-team-tickets?method=transfer&quantity=25"
    form = text(client.get(back.headers["Location"]))
    assert 'name="account-email"' not in form and "Ordering for Bistro Nova, as Nora Nova." in form
    assert 'name="quantity"' in form and 'value="25"' in form and "€1,140.00" in form
    assert re.search(r'value="transfer"\s+required\s+checked', form)

    placed = post_form(client, back.headers["Location"], {"quantity": "25", "method": "transfer", "total": "114000"})
    assert placed.status_code == 302
    with app.app_context():
        order = db.session.scalar(select(Order))
        assert (order.quantity, order.total, order.status, order.placed_by.email) == (25, 114000, "pending",
                                                                                     "nora@example.com")
        assert placed.headers["Location"] == f"/portal/orders/{order.id}"
        reference = order.reference
    page = text(client.get(placed.headers["Location"]))
    assert "FR76 3000 6000 0112 3456 7890 189" in page and "€1,140.00" in page
    assert reference[:4] in page and '<svg' in page  # the EPC code, inline

    subjects = sorted(mail["Subject"] for mail in mails(app))
    assert subjects == ["Please confirm your email address", f"Your order {order.id}"]
    received = next(mail for mail in mails(app) if mail["Subject"] == f"Your order {order.id}")
    attachment = next(received.iter_attachments())
    assert attachment.get_filename() == f"order-{order.id}-payment.pdf"
    assert attachment.get_content().startswith(b"%PDF")


def test_a_logged_in_client_orders_by_cheque(app, client, load, people):
    login(client, people["owner"])
    response = post_form(client, "/checkout/demo-hours-5", {"method": "cheque", "total": "51000"})

    assert response.status_code == 302
    page = text(client.get(response.headers["Location"]))
    assert "Pay by cheque" in page and "Payable to" in page and "12 rue des Exemples" in page


@pytest.mark.parametrize(
    "slug, data, status, message, field",
    [
        ("demo-team-tickets", {"quantity": "19", "method": "transfer", "total": "72200"}, 422,
         "Choose a quantity from 20 to 1000.", "quantity"),
        ("demo-team-tickets", {"quantity": "twenty", "method": "transfer", "total": "76000"}, 422,
         "Enter a whole number of items, such as 20.", "quantity"),
        ("demo-hours-5", {"method": "transfer", "total": "100"}, 422,
         "The total has changed: please check the summary and order again.", None),
        ("demo-hours-5", {"method": "paypal", "total": "51000"}, 422,
         "Choose one of the payment methods offered.", None),
        ("demo-hours-5", {"quantity": "3", "method": "transfer", "total": "153000"}, 422,
         "This pack is sold one at a time.", None),
        ("no-such-pack", {"method": "transfer", "total": "1"}, 404,
         "There is no pack on sale at this address.", None),
    ],
)
def test_bad_input_gets_a_clear_message_a_4xx_and_writes_nothing(app, client, load, people, slug, data, status,
                                                                 message, field):
    login(client, people["owner"])
    before = snapshot(app)

    response = post_form(client, f"/checkout/{slug}", data)

    assert response.status_code == status
    page = text(response)
    assert message in page
    if field:
        assert message in field_note(page, field)
    assert snapshot(app) == before


def test_a_bad_signup_on_the_checkout_writes_nothing(app, client, load):
    before = snapshot(app)
    response = post_form(client, "/checkout/demo-hours-5",
                         {"method": "transfer", "total": "51000", **SIGNUP, "account-confirm": "something else"})
    assert response.status_code == 422 and "The two passwords differ." in text(response)
    assert snapshot(app) == before


def test_staff_do_not_order(client, load, people):
    login(client, people["staff"])
    assert post_form(client, "/checkout/demo-hours-5", {"method": "transfer", "total": "51000"}).status_code == 403


# --- QR codes, decoded back ---------------------------------------------------------

zbarimg = pytest.mark.skipif(not shutil.which("zbarimg") or not shutil.which("pdftoppm"),
                             reason="needs zbarimg (zbar-tools) and pdftoppm (poppler-utils): make system-packages")


def decode_pdf(content: bytes, tmp_path: Path) -> str:
    """Rasterise the PDF's first page as a person's scanner sees it, and read its QR code."""
    (tmp_path / "page.pdf").write_bytes(content)
    subprocess.run(["pdftoppm", "-png", "-r", "200", "-f", "1", "-l", "1", str(tmp_path / "page.pdf"),
                    str(tmp_path / "page")], check=True)
    [png] = tmp_path.glob("page*.png")
    found = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, check=True)
    return found.stdout.decode("utf-8")


def place_and_fetch_instructions(client, slug: str, total: str, tmp_path: Path) -> tuple[str, str]:
    response = post_form(client, f"/checkout/{slug}", {"method": "transfer", "total": total})
    assert response.status_code == 302, text(response)
    order_id = response.headers["Location"].rsplit("/", 1)[1]
    pdf = client.get(f"/portal/orders/{order_id}/instructions.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    return decode_pdf(pdf.data, tmp_path), order_id


@zbarimg
def test_the_epc_code_carries_iban_amount_currency_and_reference(app, client, load, people, tmp_path):
    login(client, people["owner"])
    payload, order_id = place_and_fetch_instructions(client, "demo-hours-5", "51000", tmp_path)

    lines = payload.rstrip("\n").split("\n")
    assert lines[:4] == ["BCD", "002", "1", "SCT"] or lines[:4] == ["BCD", "002", "2", "SCT"]
    with app.app_context():
        reference = db.session.get(Order, int(order_id)).reference
    assert lines[5] == "Forfait Demo Support"
    assert lines[6] == EUR_IBAN
    assert lines[7] == "EUR510"  # EUR, then the amount: 510.00 written the EPC way
    assert lines[9] == reference


@pytest.mark.parametrize("app_config", [{"PROVIDER_IBAN": QR_IBAN, "PROVIDER_NAME": "Too Pixel",
                                         "PROVIDER_ADDRESS": "Rue du Pixel 3\n1003 Lausanne\nSuisse",
                                         "PROVIDER_COUNTRY": "CH"}])
@zbarimg
def test_the_swiss_qr_bill_carries_iban_amount_currency_and_qr_reference(app, client, load, people, tmp_path):
    from weasyprint import HTML

    load("toopixel")
    login(client, people["owner"])
    response = post_form(client, "/checkout/toopixel-36", {"method": "transfer", "total": "95000"})
    order_id = int(response.headers["Location"].rsplit("/", 1)[1])
    page = client.get(f"/portal/orders/{order_id}").get_data(as_text=True)
    assert client.get(f"/portal/orders/{order_id}/instructions.pdf").status_code == 200
    bill = re.search(r'<figure class="payment-code qr-bill" id="payment-qr">\s*(<svg.*?</svg>)', page, re.S).group(1)
    assert 'id="swiss-cross"' in bill
    # Phones read through the Swiss cross printed over the code's centre; zbar
    # only does at some sizes. The code under it is what is checked here.
    code = re.sub(r'<g id="swiss-cross".*?</g>', "", bill, flags=re.S)
    payload = decode_pdf(HTML(string=f"<body style='margin:0'>{code}</body>").write_pdf(), tmp_path)

    fields = payload.replace("\r\n", "\n").split("\n")
    with app.app_context():
        reference = db.session.get(Order, order_id).reference
    assert fields[:3] == ["SPC", "0200", "1"]
    assert fields[3] == QR_IBAN
    assert fields[4:10] == ["S", "Too Pixel", "Rue du Pixel 3", "", "1003", "Lausanne"]
    assert fields[18:20] == ["950.00", "CHF"]
    assert fields[27:29] == ["QRR", reference] and len(reference) == 27


# --- The trial ------------------------------------------------------------------------

def test_the_trial_starts_once_for_a_verified_client(app, client, load, people):
    with app.app_context():
        db.session.scalar(select(User).where(User.email == people["owner"])).email_verified_at = db.func.now()
        db.session.commit()
    login(client, people["owner"])
    assert "Start the free trial" in text(client.get("/checkout/demo-trial"))

    started = post_form(client, "/checkout/demo-trial/trial")
    assert started.status_code == 302
    assert "Your free trial is credited" in text(client.get(started.headers["Location"]))
    assert "30 min" in text(client.get("/portal/"))

    before = snapshot(app)
    again = post_form(client, "/checkout/demo-trial/trial")
    assert again.status_code == 409 and "already been taken" in text(again)
    assert snapshot(app) == before


def test_the_trial_waits_for_a_verified_address(app, client, load, people):
    login(client, people["owner"])
    assert "Please confirm your email address first" in text(client.get("/checkout/demo-trial"))
    before = snapshot(app)
    refused = post_form(client, "/checkout/demo-trial/trial")
    assert refused.status_code == 422 and snapshot(app) == before


def test_a_paid_pack_cannot_be_started_as_a_trial(client, load, people):
    login(client, people["owner"])
    assert post_form(client, "/checkout/demo-hours-5/trial").status_code == 422


# --- One order per click (issue 13.11) ---------------------------------------

def test_the_same_checkout_form_sent_twice_places_one_order(app, client, load, people):
    from tests.conftest import form_token

    login(client, people["owner"])
    token = form_token(client, "/checkout/demo-hours-5")
    assert token, "the checkout form carries a one-time token"
    form = {"method": "transfer", "total": "51000", "token": token}

    first = post_form(client, "/checkout/demo-hours-5", form)
    again = post_form(client, "/checkout/demo-hours-5", form)

    assert first.status_code == again.status_code == 302
    assert first.headers["Location"] == again.headers["Location"]
    with app.app_context():
        assert len(db.session.scalars(select(Order)).all()) == 1
    # The form shown again is a new one: a second order is a second click on a new form.
    assert post_form(client, "/checkout/demo-hours-5", {"method": "transfer", "total": "51000"}).status_code == 302
    with app.app_context():
        assert len(db.session.scalars(select(Order)).all()) == 2


def test_a_checkout_without_its_token_is_refused_and_writes_nothing(app, client, load, people):
    login(client, people["owner"])

    response = post_form(client, "/checkout/demo-hours-5", {"method": "transfer", "total": "51000", "token": ""})

    assert response.status_code == 422
    assert "This form has expired" in text(response)
    with app.app_context():
        assert db.session.scalars(select(Order)).all() == []


@pytest.mark.parametrize("app_config", [{"PROVIDER_IBAN": EUR_IBAN, "SIGNUP_RATE_LIMIT": "2 per hour"}])
def test_a_visitors_orders_are_limited_per_address_as_sign_ups_are_and_a_clients_are_not(app, client, load,
                                                                                          people):
    """A visitor's order opens an account and sends a mail: a script posting
    it in a loop is held as on the sign-up form."""
    data = {"method": "transfer", "total": "51000", **SIGNUP}
    answers = [post_form(client, "/checkout/demo-hours-5", data).status_code for _ in range(3)]
    assert answers == [302, 302, 429]

    login(client, people["owner"])
    answers = [post_form(client, "/checkout/demo-hours-5", {"method": "transfer", "total": "51000"}).status_code
               for _ in range(3)]
    assert answers == [302, 302, 302]
