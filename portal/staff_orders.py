"""Orders staff place for a client: an order taken by phone (a person of the
account, a pack, a quantity, how it is paid; the price agreed when the pack
is priced on request) and a complimentary lot (a goodwill gesture at zero,
with the reason the client reads). Both reach the client's orders, balance
and statement like any other; both forms carry a one-time token, so a
double click places one. Reached from the staff account page."""

from __future__ import annotations

import re
import secrets

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from billing import clock
from billing.accounts.models import Account, User
from billing.catalogue.models import Pack
from billing.catalogue.offers import active_packs
from billing.errors import BillingError
from billing.models import localized
from billing.orders import services as orders
from common import payments
from common.extensions import db
from common.i18n import current_locale, refusal
from common.identity.access import INVALID, admin_required, staff_required
from portal.clients import get_account
from portal.quotes import pay

bp = Blueprint("staff_orders", __name__, url_prefix="/staff/clients")

PHONE_METHODS = ("transfer", "cheque")


class _StaffOrderForm(FlaskForm):
    buyer = SelectField(_l("For"), validate_choice=False)
    pack = SelectField(_l("Pack"), validate_choice=False)
    quantity = StringField(_l("Quantity"), validators=[DataRequired(), Length(max=6)], default="1")
    token = HiddenField()

    def token_valid(self) -> bool:
        return bool(re.fullmatch(r"[0-9a-f]{32}", self.token.data or ""))


class PhoneOrderForm(_StaffOrderForm):
    method = RadioField(_l("Payment method"), validate_choice=False)
    unit_price = StringField(_l("Price of one item, as agreed"), validators=[Optional(), Length(max=30)],
                             description=_l("Only for a pack priced on request; others sell at the catalogue's price."))


class ComplimentaryForm(_StaffOrderForm):
    reason = TextAreaField(_l("Reason, for the client"), validators=[DataRequired(), Length(max=500)],
                           render_kw={"rows": 2})


def _people(account: Account) -> list[User]:
    return [user for user in account.users if user.removed_at is None]


def _owner_buys(form: _StaffOrderForm, account: Account) -> None:
    """A new form's buyer: the account's first owner, until staff choose another."""
    owners = [u for u in _people(account) if u.role == "owner"]
    form.buyer.data = str(owners[0].id) if owners else None


def _choices(form: _StaffOrderForm, account: Account, packs: list[Pack]) -> None:
    locale = current_locale()
    form.buyer.choices = [(str(u.id), f"{u.name} <{u.email}>") for u in _people(account)]
    form.pack.choices = [(p.slug, f"{localized(p.catalogue.name, locale)} · {localized(p.name, locale)}")
                         for p in packs]
    if not form.token_valid():
        form.token.data = secrets.token_hex(16)


def _chosen(form: _StaffOrderForm, account: Account, packs: list[Pack]) -> tuple[User | None, Pack | None, int]:
    people = {str(u.id): u for u in _people(account)}
    buyer = people.get(form.buyer.data or "")
    pack = next((p for p in packs if p.slug == form.pack.data), None)
    if buyer is None:
        form.buyer.errors = [*form.buyer.errors, _("Choose a person of the account.")]
    if pack is None:
        form.pack.errors = [*form.pack.errors, _("Choose one of the packs in the list.")]
    text = (form.quantity.data or "").strip()
    if not text.isdecimal():
        form.quantity.errors = [*form.quantity.errors, _("Enter a whole number, such as %(example)d.", example=1)]
        return buyer, pack, 0
    return buyer, pack, int(text)


def _orderable() -> list[Pack]:
    return [p for p in active_packs(db.session()) if p.kind != "trial"]


def _grantable() -> list[Pack]:
    return [p for p in active_packs(db.session()) if p.kind != "trial" and not p.unlimited and p.quantity > 0]


def _methods() -> list[payments.PaymentProvider]:
    return [p for p in payments.configured() if p.identifier in PHONE_METHODS and p.unavailable_reason() is None]


def _phone_page(account: Account, form: PhoneOrderForm, status: int = 200):
    _choices(form, account, _orderable())
    form.method.choices = [(p.identifier, p.public_name) for p in _methods()]
    if not form.method.data and form.method.choices:
        form.method.data = form.method.choices[0][0]
    return render_template("quotes/phone_order.html", account=account, form=form), status


@bp.route("/<int:account_id>/orders/new", methods=["GET", "POST"])
@staff_required
def phone_order(account_id: int):
    account = get_account(account_id)
    if request.method == "GET":
        form = PhoneOrderForm(formdata=None)
        _owner_buys(form, account)
        return _phone_page(account, form)
    form = PhoneOrderForm()
    packs = _orderable()
    valid = form.validate_on_submit() and form.token_valid()
    buyer, pack, quantity = _chosen(form, account, packs)
    terms = None
    if pack is not None:
        try:
            if pack.price is None:
                if not (form.unit_price.data or "").strip():
                    raise orders.OrderError("This field is required.", "unit_price")
                terms = orders.Terms(orders.parse_amount(form.unit_price.data, pack.currency), pack.vat_rate_bp,
                                     pack.price_includes_vat)
            else:
                terms = orders.catalogue_terms(pack)
        except BillingError as error:
            form.unit_price.errors = [*form.unit_price.errors, refusal(error)]
    if not valid or form.errors or buyer is None or pack is None or terms is None:
        return _phone_page(account, form, INVALID)
    try:
        order, payment = orders.place_on_terms(
            db.session(), account, pack, buyer=buyer, quantity=quantity, terms=terms, method=form.method.data,
            methods=tuple(p.identifier for p in _methods()), now=clock.now(),
            iban=current_app.config["PROVIDER_IBAN"], by=current_user._get_current_object(),
            key=f"phone:{form.token.data}")
    except BillingError as error:
        field = {"amount": "unit_price"}.get(error.field or "", error.field or "quantity")
        form[field if field in form else "quantity"].errors.append(refusal(error))
        return _phone_page(account, form, INVALID)
    flash(_("Order %(number)d is placed for %(name)s; the payment instructions are mailed to them.",
            number=order.id, name=buyer.name), "success")
    return pay(order, payment)


def _complimentary_page(account: Account, form: ComplimentaryForm, status: int = 200):
    _choices(form, account, _grantable())
    return render_template("quotes/complimentary.html", account=account, form=form), status


@bp.route("/<int:account_id>/complimentary", methods=["GET", "POST"])
@admin_required
def complimentary(account_id: int):
    account = get_account(account_id)
    if request.method == "GET":
        form = ComplimentaryForm(formdata=None)
        _owner_buys(form, account)
        return _complimentary_page(account, form)
    form = ComplimentaryForm()
    valid = form.validate_on_submit() and form.token_valid()
    buyer, pack, quantity = _chosen(form, account, _grantable())
    if not valid or form.errors or buyer is None or pack is None:
        return _complimentary_page(account, form, INVALID)
    try:
        order = orders.grant_complimentary(db.session(), account, pack, quantity=quantity, reason=form.reason.data,
                                           by=current_user._get_current_object(), now=clock.now(), owner=buyer,
                                           key=f"complimentary:{form.token.data}")
    except BillingError as error:
        field = {"buyer": "buyer", "pack": "pack", "reason": "reason"}.get(error.field or "", "quantity")
        form[field].errors.append(refusal(error))
        return _complimentary_page(account, form, INVALID)
    flash(_("%(account)s received a complimentary %(pack)s.", account=account.name,
            pack=localized(pack.name, current_locale())), "success")
    return redirect(url_for("orders.show", order_id=order.id))

