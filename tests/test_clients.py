"""The staff's clients: the list of accounts and one account's page."""

from __future__ import annotations

from sqlalchemy import select

from billing.accounts.models import Account
from common.extensions import db
from tests.conftest import login


def text(response) -> str:
    return response.get_data(as_text=True)


def test_staff_reach_an_account_from_the_hub(app, client, people):
    login(client, people["staff"])
    hub = text(client.get("/portal/"))
    assert 'href="/staff/clients"' in hub
    with app.app_context():
        acme = db.session.scalar(select(Account.id).where(Account.name == "Acme"))
    listing = text(client.get("/staff/clients"))
    assert f'href="/staff/clients/{acme}"' in listing
    page = client.get(f"/staff/clients/{acme}")
    assert page.status_code == 200 and "<h1>Acme</h1>" in text(page)


def test_an_account_that_does_not_exist_is_404(client, people):
    login(client, people["staff"])
    assert client.get("/staff/clients/999999").status_code == 404


def test_clients_see_no_list(client, people):
    login(client, people["owner"])
    assert client.get("/staff/clients").status_code == 403
