"""The unlimited-tickets subscription is not sold online until subscriptions
have their own cycle: paid through checkout it would buy nothing."""

from __future__ import annotations

from html import unescape

import pytest

from billing.catalogue import load_preset
from common.extensions import db
from tests.conftest import login, post_form
from tests.test_security import snapshot

CONTACT = "Subscriptions are set up with us directly for now"


@pytest.fixture
def demo(app):
    with app.app_context():
        load_preset(db.session, "demo")


def test_pack_and_checkout_pages_send_subscribers_to_write(client, demo):
    pack_page = unescape(client.get("/packs/demo-unlimited").get_data(as_text=True))
    assert "Write to us to subscribe" in pack_page
    checkout = unescape(client.get("/checkout/demo-unlimited").get_data(as_text=True))
    assert CONTACT in checkout and 'name="method"' not in checkout


def test_ordering_a_subscription_is_refused_and_writes_nothing(app, client, demo, people):
    login(client, people["owner"])
    before = snapshot(app)
    answer = post_form(client, "/checkout/demo-unlimited", {"method": "transfer", "quantity": "1"})
    assert answer.status_code == 400
    assert snapshot(app) == before

