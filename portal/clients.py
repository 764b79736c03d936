"""The provider's clients, for staff: the list of accounts (search, sort,
pages) and one account's page, which other areas of the back office extend
with their own sections and buttons (adjust credit, open a ticket, quotes).

Who may see them is decided here, once: any active staff member
(``staff_required``); for a client the pages do not exist to ask for."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_babel import get_locale

from billing.accounts.models import Account
from common.extensions import db
from common.identity.access import staff_required

bp = Blueprint("clients", __name__, url_prefix="/staff/clients")


def get_account(account_id: int) -> Account:
    """The account a staff member asked for; 404 when there is none."""
    account = db.session.get(Account, account_id)
    if account is None:
        abort(404)
    return account


@bp.get("")
@staff_required
def index():
    accounts = db.session.scalars(db.select(Account).order_by(Account.name, Account.id).limit(50)).all()
    return render_template("clients/index.html", accounts=accounts)


@bp.get("/<int:account_id>")
@staff_required
def account(account_id: int):
    found = get_account(account_id)
    country = get_locale().territories.get(found.country, found.country)
    return render_template("clients/account.html", account=found, country=country)
