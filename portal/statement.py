"""The credit statement of an account, as a page and as a CSV download.

Who may read it is decided in one place, ``get_account``: the account's own
users and staff; for anybody else the account does not exist (404, as another
account's ticket), an anonymous visitor gets the login page.
"""

from __future__ import annotations

import io
from datetime import date

from flask import Blueprint, abort, make_response, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from billing import clock
from billing.accounts.models import Account
from billing.ledger.statement import CSV_HEADER, StatementError, rows, statement
from common.extensions import db, login_manager
from common.safety import csv_writer

bp = Blueprint("statement", __name__, url_prefix="/portal")


def get_account(account_id: int) -> Account:
    """The account, if the current user may read its ledger; aborts otherwise."""
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())
    account = db.session.get(Account, account_id)
    if account is None or not (current_user.is_staff or current_user.account_id == account.id):
        abort(404)
    return account


def _period(today: date) -> tuple[date, date, str | None]:
    """The period asked for (default: this month so far) and what is wrong with it."""
    start, end = today.replace(day=1), today
    try:
        start = date.fromisoformat(request.args.get("from") or start.isoformat())
        end = date.fromisoformat(request.args.get("to") or end.isoformat())
    except ValueError:
        return start, end, _("Dates are written YYYY-MM-DD, for example %(day)s.", day=today.isoformat())
    if end < start:
        return start, end, _("The period must end on or after the day it starts.")
    return start, end, None


@bp.get("/accounts/<int:account_id>/statement")
def show(account_id: int):
    account = get_account(account_id)
    now = clock.now()
    start, end, problem = _period(now.date())
    if problem:
        return render_template("portal/statement.html", account=account, start=start, end=end,
                               problem=problem, report=None), 400
    try:
        report = statement(db.session(), account, start, end, now=now)
    except StatementError as error:
        return render_template("portal/statement.html", account=account, start=start, end=end,
                               problem=str(error), report=None), 400
    if request.args.get("format") == "csv":
        out = io.StringIO()
        writer = csv_writer(out)
        writer.writerow(CSV_HEADER)
        writer.writerows(rows(report))
        response = make_response(out.getvalue())
        response.headers["Content-Type"] = "text/csv; charset=utf-8"
        response.headers["Content-Disposition"] = (
            f'attachment; filename="statement-{account.id}-{start.isoformat()}-{end.isoformat()}.csv"'
        )
        return response
    return render_template("portal/statement.html", account=account, start=start, end=end, problem=None,
                           report=report)
