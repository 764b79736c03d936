"""The account's subscription (seed 004's unlimited tickets): what it
covers, its periods and their invoices, the renewal awaiting payment, and
the owner's cancellation. Every user of the account reads it; owners
cancel it; staff have no account of their own here."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from billing import clock
from billing.catalogue.models import Pack
from billing.catalogue.offers import offer
from billing.errors import BillingError
from billing.orders import services as orders
from billing.orders.models import Invoice
from billing.subscriptions import services as subscriptions
from common.extensions import db

bp = Blueprint("subscription", __name__, url_prefix="/portal/subscription")



def _client():
    if current_user.is_staff:
        abort(403)
    return current_user.account


def _page(status: int = 200):
    account = _client()
    now = clock.now()
    session = db.session()
    running = subscriptions.current(session, account.id, now=now)
    locale = str(get_locale())
    on_sale = list(session.scalars(select(Pack).where(Pack.unlimited, Pack.retired_at.is_(None),
                                                       Pack.price.is_not(None)).order_by(Pack.id)))
    waits = {pack.id: subscriptions.may_subscribe_from(session, account.id, pack) for pack in on_sale}
    invoices = {}
    if running is not None:
        order_ids = [period.order_id for period in running.periods]
        invoices = {i.order_id: i for i in session.scalars(
            select(Invoice).where(Invoice.order_id.in_(order_ids), Invoice.kind == "invoice"))}
    return render_template(
        "portal/subscription.html", subscription=running, now=now, invoices=invoices,
        covered=running is not None and running.covers(now),
        cancel_end=running and subscriptions.end_if_cancelled(running, now),
        offers=[(pack, offer(pack, locale), waits[pack.id]) for pack in on_sale],
    ), status


@bp.get("")
@login_required
def show():
    return _page()


@bp.post("/cancel")
@login_required
def cancel():
    account = _client()
    if not current_user.is_owner:
        abort(403)
    running = subscriptions.current(db.session(), account.id, now=clock.now())
    if running is None:
        abort(404)
    try:
        done = orders.cancel_subscription(db.session(), running, by=current_user._get_current_object(), now=clock.now(),
                                          reason=_("The subscription was cancelled."))
    except BillingError as error:
        flash(_(error.message, **error.params), "error")
        return _page(409)
    flash(_("Your subscription is cancelled. Your tickets stay covered until %(date)s.",
            date=format_date(done.ends_at, "long")), "success")
    return redirect(url_for("subscription.show"))
