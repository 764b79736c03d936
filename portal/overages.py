"""The owner's answer to an overage request (seed 002: the client is told
before, and buys a pack or accepts billing at the hourly rate).

Staff log time beyond an ``ask`` balance: billing.ledger records a pending
request and the desk mails the account's owners. Here an owner approves it
(billed at the request's hourly rate: billing.orders.overage_bills places the
order, which the owner pays from its page like any other) or declines it;
buying a pack covers it by itself (billing.ledger.grant settles pending
requests first).
``get_overage`` is the one loader: anonymous → login, another account's
request → 404, a member who is not an owner → 403.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from billing import clock
from billing.errors import BillingError
from billing.ledger import services as ledger
from billing.ledger.models import Overage
from billing.orders import overage_bills as overage_billing
from billing.orders import wording
from billing.orders.models import Order, Payment
from common import payments
from common.extensions import db, login_manager
from common.i18n import money
from common.safety import safe_next

bp = Blueprint("overages", __name__, url_prefix="/portal/overages")


@bp.app_template_filter("order_title")
def order_title_filter(order: Order) -> str:
    """What the order is for (a pack, an overage's bill), in the page's or the mail's language."""
    return wording.title(order, str(get_locale()))


@bp.app_template_global()
def overage_bill(overage: Overage) -> Order | None:
    """The order billing an approved overage, for the pages that link to it."""
    return overage_billing.current_bill(db.session(), overage.id)


@bp.app_template_global()
def overage_cost(overage: Overage | int) -> str | None:
    """The price of approving ``overage`` as the owner decides on it: gross,
    and net when VAT applies ("€13.00 incl. VAT (€10.83 excl. VAT)"), so the
    button and the bill say the same figure. None without an hourly rate."""
    found_overage = db.session.get(Overage, overage) if isinstance(overage, int) else overage
    found = overage_billing.price(db.session(), found_overage) if found_overage is not None else None
    if found is None:
        return None
    if not found.vat:
        return _("%(price)s, no VAT", price=money(found.gross, found.currency))
    return _("%(gross)s incl. VAT (%(net)s excl. VAT)", gross=money(found.gross, found.currency),
             net=money(found.net, found.currency))


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
    return safe_next(request.form.get("next"), url_for("tickets.show", ticket_id=overage.ticket_id))


def _answer(overage_id: int, decide, done):
    overage = get_overage(overage_id)
    try:
        decide(db.session, overage, by=current_user._get_current_object(), now=clock.now())
    except BillingError as error:
        flash(_(error.message, **error.params), "error")
    else:
        flash(done(overage), "success")
    return redirect(_back(overage))


def _approve(session, overage: Overage, *, by, now: datetime) -> None:
    offered = tuple(provider.identifier for provider in payments.enabled(overage.currency or "", overage.price or 0))
    iban = current_app.config["PROVIDER_IBAN"]
    overage_billing.approve(session, overage, by=by, now=now, methods=offered, iban=iban)
    order = overage_billing.current_bill(session, overage.id)
    if order is None:
        return
    payment = session.scalar(select(Payment).where(Payment.order_id == order.id, Payment.status == "created"))
    if payment is None:
        return
    # A card bill: its Stripe session is opened now, so that the order page offers to pay.
    provider = payments.provider_of(payment)
    try:
        provider.prepare(order, payment)
        provider.execute(session, payment, now=now, return_url=url_for("orders.show", order_id=order.id,
                                                                      _external=True))
    except payments.PaymentError:
        # Stripe could not be asked, which cancelled that order: the bill is paid by transfer instead.
        overage_billing.bill_by_transfer(session, overage, by=by, now=now, iban=iban)


def _approved(overage: Overage) -> str:
    order = overage_billing.current_bill(db.session(), overage.id)
    if order is None:
        return _("Approved: no hourly rate is set for this balance, so we will quote the time beyond it and "
                 "send you the bill.")
    link = Markup('<a href="{}">{}</a>').format(
        url_for("orders.show", order_id=order.id),
        _("Pay %(amount)s for ticket #%(number)d", amount=money(order.total, order.currency),
          number=overage.ticket_id))
    return Markup("{} {}").format(_("Approved: the time beyond your balance is billed at the hourly rate."), link)


@bp.post("/<int:overage_id>/approve")
def approve(overage_id: int):
    return _answer(overage_id, _approve, _approved)


@bp.post("/<int:overage_id>/decline")
def decline(overage_id: int):
    return _answer(overage_id, ledger.decline_overage,
                   lambda _overage: _("Declined: nothing beyond your balance will be charged for this ticket."))
