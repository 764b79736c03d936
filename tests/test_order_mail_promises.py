"""The order mail promises only what it carries (issue 12.6): a CHF order
paid to a non-Swiss IBAN has no QR code, so its mail does not announce one."""

from __future__ import annotations

import re

import pytest
from checkout_support import EUR_IBAN, QR_IBAN

from billing.catalogue.offers import load_preset
from common.extensions import db
from common.identity import accounts
from tests.conftest import login, post_form
from tests.smtp import smtp_server  # noqa: F401 - a fixture

PROMISE = {"en": "the QR code your banking app scans", "fr": "QR code"}


@pytest.fixture
def app_config(smtp_server, request):  # noqa: F811
    return {**smtp_server.config, "PROVIDER_IBAN": request.param, "PAYMENT_METHODS": "transfer,cheque"}


@pytest.mark.parametrize("app_config, lang, qr", [(QR_IBAN, "en", True), (EUR_IBAN, "en", False),
                                                   (QR_IBAN, "fr", True), (EUR_IBAN, "fr", False)],
                         indirect=["app_config"])
def test_the_qr_code_is_promised_only_when_attached(app, client, smtp_server, people, lang, qr):  # noqa: F811
    with app.app_context():
        load_preset(db.session, "toopixel")
        owner = accounts.find_user(db.session, people["owner"])
        owner.language = lang
        db.session.commit()
    login(client, people["owner"])
    total = re.search(r'name="total" value="(\d+)"', client.get("/checkout/toopixel-36").get_data(as_text=True))
    placed = post_form(client, "/checkout/toopixel-36", {"method": "transfer", "total": total.group(1)})
    assert placed.status_code == 302, placed.get_data(as_text=True)[:2000]
    [mail] = [m for m in smtp_server.to(people["owner"]) if "36" in m.get_body(("plain",)).get_content()
              and "CHF" in m.get_body(("plain",)).get_content()]
    body = mail.get_body(("plain",)).get_content()
    inline = [part for part in mail.walk() if part.get("Content-ID") == "<payment-code>"]
    assert bool(inline) == qr
    assert (PROMISE[lang] in body) == qr, body
