"""The client portal and the staff back office, behind login."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, render_template
from flask_babel import get_locale
from flask_login import current_user, login_required

from billing import ledger
from common.extensions import db

bp = Blueprint("portal", __name__, url_prefix="/portal")


@bp.get("/")
@login_required
def home():
    if current_user.is_staff:
        return render_template("portal/staff_home.html")
    account = current_user.account
    country = get_locale().territories.get(account.country, account.country)
    balances = ledger.balances(db.session, account.id, now=datetime.now(timezone.utc))
    return render_template("portal/home.html", account=account, country=country, balances=balances)
