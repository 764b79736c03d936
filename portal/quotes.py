"""Quotes in the client space and in the back office.

Clients read their account's quotes and accept one (``/portal/quotes``),
which places its order and asks the chosen method for the money, as the
checkout does. Staff read the requests, set the terms and send them
(``/staff/quotes``). Who may see a quote is decided in ``_visible``: staff,
and the users of its account; anybody else gets a 404. A visitor's quote,
which has no account until it is accepted, is reached by the link mailed
with it (shop.quotes).
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from billing import clock
from billing.errors import BillingError
from billing.orders import services as orders
from billing.quotes import services as quotes
from billing.quotes.models import QUOTE_STATUSES, Quote
from common import payments
from common.extensions import db, login_manager
from common.i18n import refusal, to_decimal
from common.identity.access import INVALID, staff_required
from common.identity.forms import draw_token, one_time_token

bp = Blueprint("quotes", __name__)


class AcceptForm(FlaskForm):
    method = RadioField(_l("Payment method"), validate_choice=False)
    # Drawn when the form is shown: a form sent twice is one acceptance.
    token = HiddenField()

    def token_valid(self) -> bool:
        return bool(re.fullmatch(r"[0-9a-f]{32}", self.token.data or ""))


class SendForm(FlaskForm):
    unit_price = StringField(_l("Price of one item"), validators=[DataRequired(), Length(max=30)])
    quantity = StringField(_l("Items"), validators=[DataRequired(), Length(max=6)])
    validity_months = StringField(_l("Validity of the units, in months"), validators=[Optional(), Length(max=4)],
                                  description=_l("Leave empty for the pack's own validity."))
    valid_until = DateField(_l("The client may accept until"), validators=[DataRequired()])
    note = TextAreaField(_l("Message to the client"), validators=[Length(max=quotes.MAX_MESSAGE)],
                         render_kw={"rows": 3})
    # A second sending draws a new link and breaks the first one mailed: the
    # same form sent twice (a double click) must be one sending.
    token = one_time_token()


def _visible(quote_id: int) -> Quote:
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())
    quote = db.session.get(Quote, quote_id)
    if quote is None or not quotes.visible_to(quote, current_user):
        abort(404)
    return quote


def accept_context(quote: Quote, form: AcceptForm | None = None) -> dict:
    """What the quote's page shows a client: the terms, and the form to
    accept them while that is possible."""
    price = quotes.price(quote)
    form = form or AcceptForm(formdata=None)
    if not form.token_valid():
        form.token.data = secrets.token_hex(16)
    providers = payments.enabled(quote.currency, price.gross) if price else []
    if not form.method.data and providers:
        form.method.data = providers[0].identifier
    form.method.choices = [(p.identifier, p.public_name) for p in providers]
    return {"quote": quote, "price": price, "units": quotes.units(quote), "form": form,
            "expired": quotes.expired(quote, clock.now().date()), "providers": providers}


def pay(order, payment):
    """Ask the chosen method for the money; where to go next."""
    target = url_for("orders.show", order_id=order.id)
    try:
        return redirect(payments.begin(order, payment, now=clock.now(),
                                       return_url=url_for("orders.show", order_id=order.id, _external=True))
                        or target)
    except payments.PaymentError as error:
        flash(str(error), "error")
        return redirect(target)


# --- Client space --------------------------------------------------------------

@bp.get("/portal/quotes")
@login_required
def index():
    if current_user.is_staff:
        return redirect(url_for("quotes.staff"))
    return render_template("quotes/list.html", quotes=quotes.of_account(db.session(), current_user.account_id))


@bp.get("/portal/quotes/<int:quote_id>")
def show(quote_id: int):
    quote = _visible(quote_id)
    if current_user.is_staff:
        return redirect(url_for("quotes.staff_quote", quote_id=quote.id))
    return render_template("quotes/quote.html", action=url_for("quotes.accept", quote_id=quote.id),
                           **accept_context(quote))


@bp.post("/portal/quotes/<int:quote_id>/accept")
def accept(quote_id: int):
    quote = _visible(quote_id)
    if current_user.is_staff:
        abort(403)
    form = AcceptForm()
    price = quotes.price(quote)
    methods = tuple(p.identifier for p in payments.enabled(quote.currency, price.gross)) if price else ()
    problem = None
    # Checked as sent, before the page draws a new token or a default method for the form shown again.
    if not form.validate_on_submit() or not form.token_valid():
        problem = _("This form has expired: check it and send it again.")
    elif form.method.data not in methods:
        form.method.errors = [_("Choose one of the payment methods offered.")]
        problem = ""
    else:
        try:
            order, payment = quotes.accept_quote(db.session(), quote, by=current_user._get_current_object(),
                                                 method=form.method.data, methods=methods, now=clock.now(),
                                                 iban=current_app.config["PROVIDER_IBAN"])
        except BillingError as error:
            problem = refusal(error)
        else:
            return pay(order, payment)
    db.session.rollback()
    return render_template("quotes/quote.html", action=url_for("quotes.accept", quote_id=quote.id),
                           problem=problem, **accept_context(db.session.get_one(Quote, quote_id), form)), INVALID


# --- Staff ---------------------------------------------------------------------

@bp.get("/staff/quotes")
@staff_required
def staff():
    status = request.args.get("status", "")
    if status not in QUOTE_STATUSES:
        status = ""
    return render_template("quotes/staff_list.html", quotes=quotes.for_staff(db.session(), status), status=status,
                           statuses=QUOTE_STATUSES)


def _send_form(quote: Quote) -> SendForm:
    today = clock.now().date()
    typed = f"{to_decimal(quote.unit_price, quote.currency):f}" if quote.unit_price is not None else ""
    return SendForm(formdata=None, unit_price=typed,
                    quantity=str(quote.quantity or quote.requested_quantity),
                    validity_months=str(quote.validity_months or quote.pack.validity_months or ""),
                    valid_until=quote.valid_until if quote.valid_until and quote.valid_until >= today
                    else today + timedelta(days=30),
                    note=quote.note)


def _staff_page(quote: Quote, form: SendForm, status: int = 200):
    draw_token(form.token)
    return render_template("quotes/staff_quote.html", quote=quote, form=form, price=quotes.price(quote),
                           units=quotes.units(quote), expired=quotes.expired(quote, clock.now().date()),
                           allows_quantity=orders.allows_quantity(quote.pack)), status


@bp.route("/staff/quotes/<int:quote_id>", methods=["GET", "POST"])
@staff_required
def staff_quote(quote_id: int):
    quote = _visible(quote_id)
    if request.method == "GET":
        return _staff_page(quote, _send_form(quote))
    form = SendForm()
    if not form.validate_on_submit():
        return _staff_page(quote, form, INVALID)
    values: dict[str, int | None] = {}
    try:
        values["unit_price"] = orders.parse_amount(form.unit_price.data, quote.currency)
    except BillingError as error:
        form.unit_price.errors.append(refusal(error))
    for name in ("quantity", "validity_months"):
        text = (form[name].data or "").strip()
        if name == "validity_months" and not text:
            values[name] = None
        elif text.isdecimal():
            values[name] = int(text)
        else:
            form[name].errors.append(_("Enter a whole number, such as %(example)d.", example=12))
    if form.errors:
        return _staff_page(quote, form, INVALID)
    try:
        sent = quotes.send_quote(db.session(), quote, by=current_user._get_current_object(),
                                 unit_price=values["unit_price"] or 0, quantity=values["quantity"] or 0,
                                 validity_months=values["validity_months"], valid_until=form.valid_until.data,
                                 note=form.note.data or "", now=clock.now(), key=form.token.data)
    except BillingError as error:
        field = {"amount": "unit_price"}.get(error.field or "", error.field or "note")
        form[field if field in form else "note"].errors.append(refusal(error))
        db.session.rollback()
        return _staff_page(db.session.get_one(Quote, quote_id), form, INVALID)
    if sent is None:
        flash(_("Quote %(number)d was already sent from this form: nothing changed.", number=quote.id), "info")
    else:
        flash(_("Quote %(number)d is sent to %(email)s.", number=quote.id, email=quote.email), "success")
    return redirect(url_for("quotes.staff_quote", quote_id=quote.id))


@bp.post("/staff/quotes/<int:quote_id>/withdraw")
@staff_required
def withdraw(quote_id: int):
    quote = _visible(quote_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    try:
        quotes.withdraw_quote(db.session(), quote, by=current_user._get_current_object(), now=clock.now())
    except BillingError as error:
        flash(refusal(error), "error")
        return redirect(url_for("quotes.staff_quote", quote_id=quote.id))
    flash(_("Quote %(number)d is withdrawn: its link no longer works.", number=quote.id), "success")
    return redirect(url_for("quotes.staff"))


@bp.app_template_global()
def quote_expired(quote: Quote) -> bool:
    """The quote was sent and its last day to accept has passed (billing.quotes.expired)."""
    return quotes.expired(quote, clock.now().date())


@bp.app_template_global()
def quote_total(quote: Quote) -> int | None:
    """What the quote's terms come to, VAT included; None before they are set."""
    price = quotes.price(quote)
    return price.gross if price else None

