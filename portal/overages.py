"""The owner's answer to an overage request (seed 002: the client is told
before, and buys a pack or accepts billing at the hourly rate).

Staff log time beyond an ``ask`` balance: billing.ledger records a pending
request and the desk mails the account's owners. Here an owner approves it
(billed at the request's hourly rate) or declines it; buying a pack covers
it by itself (billing.ledger.grant settles pending requests first).
``get_overage`` is the one loader: anonymous → login, another account's
request → 404, a member who is not an owner → 403.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from billing import ledger
from billing.ledger_models import Overage
from common.extensions import db, login_manager

bp = Blueprint("overages", __name__, url_prefix="/portal/overages")


def get_overage(overage_id: int) -> Overage:
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())
    overage = db.session.get(Overage, overage_id)
    if overage is None or current_user.account_id != overage.account_id:
        abort(404)
    if not current_user.is_owner:
        abort(403)
    return overage


def _back(overage: Overage) -> str:
    target = request.form.get("next", "")
    if target.startswith("/") and not target.startswith(("//", "/\\")) and target.isprintable():
        return target
    return url_for("tickets.show", ticket_id=overage.ticket_id)


def _answer(overage_id: int, decide, done: str):
    overage = get_overage(overage_id)
    try:
        decide(db.session, overage, by=current_user._get_current_object(), now=datetime.now(timezone.utc))
    except ledger.LedgerError as error:
        flash(_(error.message, **error.params), "error")
    else:
        flash(done, "success")
    return redirect(_back(overage))


@bp.post("/<int:overage_id>/approve")
def approve(overage_id: int):
    return _answer(overage_id, ledger.approve_overage,
                   _("Approved: the time beyond your balance will be billed at the hourly rate."))


@bp.post("/<int:overage_id>/decline")
def decline(overage_id: int):
    return _answer(overage_id, ledger.decline_overage,
                   _("Declined: nothing beyond your balance will be charged for this ticket."))
