"""Checkout: from a pack to an order, for a client who is logged in or a
visitor who creates the account on the same form (the order then waits for
the link mailed to confirm the address); and the free trial.

The price never comes from the browser: the summary is computed by
billing.catalogue.pricing, and the total it showed comes back only to be compared
(billing.orders refuses an order whose total changed meanwhile). Every
refusal is a message under its field and a 4xx, with nothing written.
"""

from __future__ import annotations

import re
import secrets
from datetime import date

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, StringField

from billing import clock
from billing.accounts import invoicing as billing_accounts
from billing.catalogue.models import Pack
from billing.catalogue.offers import active_pack, offer
from billing.errors import N_, BillingError
from billing.orders import services as orders
from billing.subscriptions import services as subscriptions
from common import payments
from common.errors import MissingHere
from common.extensions import db, htmx, limiter, login_manager
from common.fragments import page_or_fragment
from common.identity.access import INVALID
from common.identity.forms import InvoicingForm, SignupForm
from common.mail import delivery
from shop import ordering

bp = Blueprint("checkout", __name__, url_prefix="/checkout")


class CheckoutForm(FlaskForm):
    quantity = StringField(_l("Quantity"))
    method = RadioField(_l("Payment method"), validate_choice=False)
    # The total the summary showed, in minor units: compared, never used.
    total = HiddenField()
    # Drawn when the form is shown and the order's key: the same form sent
    # twice (a double click, a reload) places one order, as a refund form does.
    token = HiddenField()

    def token_valid(self) -> bool:
        return bool(re.fullmatch(r"[0-9a-f]{32}", self.token.data or ""))



def _pack_or_404(slug: str) -> Pack:
    pack = active_pack(db.session(), slug)
    if pack is None:
        raise MissingHere(_("There is no pack on sale at this address. Choose one from the catalogue."))
    return pack


def _translated(error: BillingError) -> str:
    # Dates (a subscription's end) are written the reader's way.
    params = {name: format_date(value, "long") if isinstance(value, date) else value
              for name, value in error.params.items()}
    return _(error.message, **params)


def _quantity(pack: Pack, text: str | None) -> int:
    """The quantity typed, checked against the pack; OrderError if wrong."""
    if not orders.allows_quantity(pack) and not text:
        return 1
    text = (text or str(pack.min_quantity)).strip()
    if not text.isdecimal() or len(text) > 6:
        raise orders.OrderError(N_("Enter a whole number of items, such as %(min)d."), "quantity",
                                min=pack.min_quantity)
    return orders.check_quantity(pack, int(text))


def _invoicing_form(formdata: bool) -> InvoicingForm | None:
    """The address and VAT ID fields for an owner whose invoices would carry
    no address yet: filled in at checkout, they are saved with the order."""
    if not (current_user.is_authenticated and current_user.is_owner) or current_user.account.address:
        return None
    if formdata:
        # The outer form checks the CSRF token, as for the account fields.
        return InvoicingForm(prefix="invoice", meta={"csrf": False})
    return InvoicingForm(formdata=None, prefix="invoice", vat_id=current_user.account.vat_id)


def _subscription_refused(pack: Pack, account) -> str | None:
    """Why this account may not subscribe now (it does already, or waits
    after cancelling), shown before any form is filled in."""
    if not pack.unlimited or account is None:
        return None
    refused = subscriptions.refusal(db.session(), account, pack, now=clock.now())
    return _translated(orders.OrderError(refused[0], None, **refused[1])) if refused else None


def _page(pack: Pack, form: CheckoutForm, signup: SignupForm | None, quantity: int, status: int = 200,
          invoicing: InvoicingForm | None = None):
    account = current_user.account if current_user.is_authenticated and not current_user.is_staff else None
    if not form.token_valid():
        form.token.data = secrets.token_hex(16)
    price = orders.quote(pack, quantity) if quantity else None
    providers = payments.enabled(pack.currency, price.gross) if price else []
    context = {
        "offer": offer(pack, str(get_locale())),
        "form": form,
        "signup": signup,
        "account": account,
        "invoicing": invoicing or _invoicing_form(formdata=False),
        "quantity": quantity,
        "price": price,
        "providers": providers,
        "registration_pack": pack.registration_first and orders.is_first_purchase(db.session(), account, pack),
        "allows_quantity": orders.allows_quantity(pack),
        "refused": _subscription_refused(pack, account),
    }
    summary = "shop/_checkout_summary.html" if htmx.target == "checkout-summary" else None
    return page_or_fragment("shop/checkout.html", summary, status, **context)


@bp.get("/<slug>")
def start(slug: str):
    pack = _pack_or_404(slug)
    if pack.kind == "trial":
        return render_template("shop/checkout_trial.html", offer=offer(pack, str(get_locale())),
                               taken=_trial_taken(pack))
    form = CheckoutForm(formdata=None)
    if pack.price is None:
        return _page(pack, form, None, 0)
    signup = None if current_user.is_authenticated else SignupForm(formdata=None, prefix="account")
    form.method.data = request.args.get("method")
    try:
        quantity = _quantity(pack, request.args.get("quantity"))
    except orders.OrderError as error:
        form.quantity.data = request.args.get("quantity")
        form.quantity.errors = [_translated(error)]
        return _page(pack, form, signup, 0, 400)
    form.quantity.data = str(quantity)
    return _page(pack, form, signup, quantity)


def _signup_limit() -> str:
    return current_app.config["SIGNUP_RATE_LIMIT"]


@bp.post("/<slug>")
# A visitor's order opens an account and sends a mail, as the sign-up form
# does: limited per address as that form is. Clients order as they like.
@limiter.limit(_signup_limit, exempt_when=lambda: current_user.is_authenticated)
def order(slug: str):
    pack = _pack_or_404(slug)
    if pack.kind == "trial" or pack.price is None:
        abort(400)
    if current_user.is_authenticated and current_user.is_staff:
        abort(403)
    form = CheckoutForm()
    # The outer form checks the CSRF token; the account fields ride along in the same POST.
    signup = None if current_user.is_authenticated else SignupForm(prefix="account", meta={"csrf": False})
    invoicing = _invoicing_form(formdata=True)
    quantity = 0
    problems: list[tuple[str, str]] = []
    try:
        quantity = _quantity(pack, form.quantity.data)
        price = orders.quote(pack, quantity)
        offered = [provider.identifier for provider in payments.enabled(pack.currency, price.gross)]
        if form.method.data not in offered:
            raise orders.OrderError(N_("Choose one of the payment methods offered."), "method")
        if not (form.total.data or "").isdecimal() or int(form.total.data) != price.gross:
            raise orders.OrderError(
                N_("The total has changed: please check the summary and order again."), "total")
    except orders.OrderError as error:
        problems.append((error.field or "total", _translated(error)))
    if not form.token_valid():
        problems.append(("total", _("This form has expired: check it and send it again.")))
    form_valid = form.validate_on_submit()
    signup_valid = signup is None or signup.validate()
    invoicing_valid = invoicing is None or _invoicing_valid(invoicing)
    if problems or not form_valid or not signup_valid or not invoicing_valid:
        for field, message in problems:
            form[field].errors = [*form[field].errors, message]
        return _page(pack, form, signup, quantity if not form.quantity.errors else 0, INVALID, invoicing)

    if signup is not None:
        return _sign_up_to_order(pack, form, signup, quantity)
    try:
        placed, payment = ordering.order(
            db.session(), pack, buyer=current_user._get_current_object(),
            invoicing=None if invoicing is None else ordering.Invoicing(invoicing.address.data, invoicing.vat_id.data),
            quantity=quantity, method=form.method.data, methods=tuple(offered), now=clock.now(),
            iban=current_app.config["PROVIDER_IBAN"], expected_total=int(form.total.data),
            key=f"checkout:{form.token.data}")
    except BillingError as error:
        # A refusal of the pack itself (a subscription already running) shows by the total.
        form[error.field if error.field in form else "total"].errors = [_translated(error)]
        return _page(pack, form, signup, quantity, INVALID, invoicing)
    if payment.status != "created":
        # This form placed the order already: its page says where it stands.
        return redirect(url_for("orders.show", order_id=placed.id))
    try:
        provider = payments.provider_of(payment)
        provider.prepare(placed, payment)
        target = provider.execute(db.session(), payment, now=clock.now(),
                                  return_url=url_for("orders.show", order_id=placed.id, _external=True))
    except payments.PaymentError as error:
        flash(str(error), "error")
        return redirect(url_for("orders.show", order_id=placed.id))
    return redirect(target or url_for("orders.show", order_id=placed.id))


def _sign_up_to_order(pack: Pack, form: CheckoutForm, signup: SignupForm, quantity: int):
    """A visitor's order waits for their address (shop.ordering): the same
    answer whether an account uses it or not, with the same work before it
    (the account, or the owner's mail, comes after the answer)."""
    back = url_for("checkout.start", slug=pack.slug, method=form.method.data,
                   quantity=quantity if orders.allows_quantity(pack) else None)
    new_account = ordering.NewAccount(signup.organisation.data, signup.name.data, signup.email.data,
                                      signup.password.data, signup.language.data, signup.country.data)
    pack_id, key = pack.id, f"checkout-signup:{form.token.data}"
    delivery.after_answer(lambda: ordering.sign_up_to_order(db.session(), new_account, pack_id=pack_id, back=back,
                                                            key=key, now=clock.now()))
    session["checkout_email"] = signup.email.data
    return redirect(url_for("checkout.sent", slug=pack.slug))


@bp.get("/<slug>/sent")
def sent(slug: str):
    pack = _pack_or_404(slug)
    email = session.get("checkout_email")
    if not email or current_user.is_authenticated:
        return redirect(url_for("checkout.start", slug=pack.slug))
    return render_template("shop/checkout_sent.html", offer=offer(pack, str(get_locale())), email=email,
                           hours=current_app.config["TOKEN_MAX_AGE_HOURS"])


def _invoicing_valid(invoicing: InvoicingForm) -> bool:
    """Whether the address and VAT ID typed would be saved; if not, the
    reason is under its field."""
    try:
        billing_accounts.invoicing_details(current_user.account.country, invoicing.address.data,
                                           invoicing.vat_id.data)
    except billing_accounts.InvoicingError as error:
        invoicing[error.field].errors = [*invoicing[error.field].errors, _(error.message, **error.params)]
        return False
    return True


def _trial_taken(pack):
    """When this account or this address took ``pack``'s trial, if it did."""
    if not current_user.is_authenticated or current_user.is_staff:
        return None
    return orders.trials_taken(db.session(), current_user.account_id, current_user.email).get(pack.catalogue_id)


@bp.post("/<slug>/trial")
def trial(slug: str):
    pack = _pack_or_404(slug)
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.is_staff:
        abort(403)
    try:
        started = orders.start_trial(db.session(), current_user.account, pack, by=current_user._get_current_object(),
                                     now=clock.now())
    except orders.OrderError as error:
        status = 409 if isinstance(error, orders.TrialTaken) else INVALID
        return render_template("shop/checkout_trial.html", offer=offer(pack, str(get_locale())),
                               problem=_translated(error), taken=_trial_taken(pack)), status
    flash(_("Your free trial has started: %(name)s is credited to your account.",
            name=offer(pack, str(get_locale())).name), "success")
    return redirect(url_for("orders.show", order_id=started.id))
