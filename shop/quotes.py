"""Asking for a quote on a pack priced on request, from the storefront, and
the page a visitor's quote is reached at through the link mailed with it.

A visitor gives a name, an address, a company and a country; the answer is
the same whether that address is known or not (nothing tells who uses
Forfait). A logged-in client asks in the name of their account and reads the
quote in the portal. The visitor's link shows the terms; accepting asks them
to open an account on the same form (or to log in first), and places the
order in the same unit of work (shop.ordering.accept_quote).
"""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length

from billing import clock
from billing.catalogue.models import Pack
from billing.catalogue.offers import active_pack, offer
from billing.errors import BillingError
from billing.orders import services as orders
from billing.quotes import services as quotes
from billing.quotes.models import Quote
from billing.text import single_line
from common import payments
from common.errors import MissingHere
from common.extensions import db
from common.i18n import current_locale, refusal
from common.identity import accounts, sessions
from common.identity.access import INVALID, send_verification
from common.identity.forms import SignupForm, draw_token, normalise_email, one_time_token
from shop import ordering

bp = Blueprint("quote_request", __name__, url_prefix="/quotes")


class RequestForm(FlaskForm):
    name = StringField(_l("Your name"), validators=[DataRequired(), Length(max=200)], filters=[single_line])
    email = StringField(_l("Email"), validators=[DataRequired(), Email(), Length(max=254)],
                        filters=[lambda value: normalise_email(value) if value else value])
    company = StringField(_l("Company"), validators=[Length(max=200)], filters=[single_line],
                          description=_l("Optional: the organisation the support is for."))
    country = SelectField(_l("Country"), validators=[DataRequired()])
    quantity = StringField(_l("Quantity"), validators=[Length(max=6)])
    message = TextAreaField(_l("What do you need?"), validators=[Length(max=quotes.MAX_MESSAGE)],
                            render_kw={"rows": 4},
                            description=_l("Your users, your equipment, how often you expect to need us…"))
    # Drawn when the form is shown and the request's key: the same form sent
    # twice (a double click) is one request and one mail to staff.
    token = one_time_token()

    def __init__(self, *args, visitor: bool, **kwargs) -> None:
        kwargs.setdefault("country", current_app.config["PROVIDER_COUNTRY"])
        super().__init__(*args, **kwargs)
        self.country.choices = accounts.countries(get_locale())
        if not visitor:
            for name in ("name", "email", "company", "country"):
                del self[name]


class LinkForm(FlaskForm):
    method = RadioField(_l("Payment method"), validate_choice=False)
    token = HiddenField()


def _on_request_or_404(slug: str) -> Pack:
    pack = active_pack(db.session(), slug)
    if pack is None or not quotes.on_request(pack):
        raise MissingHere(_("There is no pack to quote at this address. Choose one from the catalogue."))
    return pack


def _client() -> bool:
    return bool(current_user.is_authenticated and not current_user.is_staff)


def _request_page(pack: Pack, form: RequestForm, status: int = 200, problem: str | None = None):
    draw_token(form.token)
    return render_template("quotes/request.html", offer=offer(pack, current_locale()), form=form,
                           allows_quantity=orders.allows_quantity(pack), problem=problem), status


@bp.route("/request/<slug>", methods=["GET", "POST"])
def ask(slug: str):
    pack = _on_request_or_404(slug)
    visitor = not current_user.is_authenticated
    if request.method == "GET":
        form = RequestForm(formdata=None, visitor=visitor, quantity=str(pack.min_quantity))
        return _request_page(pack, form)
    if current_user.is_authenticated and current_user.is_staff:
        abort(403)
    form = RequestForm(visitor=visitor)
    requester = current_user._get_current_object() if not visitor else None
    valid = form.validate_on_submit()
    if not form.token.errors:
        try:
            asked = quotes.requested_under(db.session(), pack, requester, form.token.data)
        except BillingError as error:
            form.token.errors = [*form.token.errors, refusal(error)]
            return _request_page(pack, form, INVALID)
        if asked is not None:
            return _asked(pack, asked)
    if not valid:
        return _request_page(pack, form, INVALID)
    text = (form.quantity.data or "").strip() or str(pack.min_quantity)
    if not text.isdecimal():
        form.quantity.errors.append(_("Enter a whole number of items, such as %(min)d.", min=pack.min_quantity))
        return _request_page(pack, form, INVALID)
    try:
        quote = quotes.request_quote(
            db.session(), pack, requester=requester,
            name=form.name.data if visitor else "", email=form.email.data if visitor else "",
            company=form.company.data if visitor else "", country=form.country.data if visitor else "",
            language=current_locale(), message=form.message.data or "", quantity=int(text), now=clock.now(),
            key=form.token.data)
    except BillingError as error:
        field = form[error.field] if error.field in form else form.message
        field.errors.append(refusal(error))
        return _request_page(pack, form, INVALID)
    return _asked(pack, quote)


def _asked(pack: Pack, quote: Quote):
    """Where a request lands, the first time and when its form is sent again:
    a client's quote in the portal, a visitor's confirmation."""
    if quote.account_id is not None:
        return redirect(url_for("quotes.show", quote_id=quote.id))
    return redirect(url_for("quote_request.asked", slug=pack.slug))


@bp.get("/request/<slug>/sent")
def asked(slug: str):
    pack = _on_request_or_404(slug)
    return render_template("quotes/requested.html", offer=offer(pack, current_locale()))


def _quote_by_link(token: str) -> Quote:
    quote = quotes.by_token(db.session(), token)
    if quote is None:
        abort(404)
    return quote


def _link_page(quote: Quote, token: str, form: LinkForm | None = None, signup: SignupForm | None = None,
               status: int = 200, problem: str | None = None):
    price = quotes.price(quote)
    form = form or LinkForm(formdata=None)
    if not form.token.data or len(form.token.data) != 32:
        form.token.data = secrets.token_hex(16)
    providers = payments.enabled(quote.currency, price.gross) if price else []
    form.method.choices = [(p.identifier, p.public_name) for p in providers]
    if not form.method.data and providers:
        form.method.data = providers[0].identifier
    if signup is None and not current_user.is_authenticated:
        signup = SignupForm(formdata=None, prefix="account", organisation=quote.company or quote.name,
                            name=quote.name, email=quote.email, country=quote.country, language=quote.language)
    return render_template("quotes/link.html", quote=quote, price=price, units=quotes.units(quote), form=form,
                           signup=signup, providers=providers, link=url_for("quote_request.link", token=token),
                           expired=quotes.expired(quote, clock.now().date()), problem=problem), status


@bp.get("/<token>")
def link(token: str):
    quote = _quote_by_link(token)
    mine = _client() and quote.account_id is not None and quote.account_id == current_user.account_id
    if mine:
        return redirect(url_for("quotes.show", quote_id=quote.id))
    return _link_page(quote, token)


@bp.post("/<token>")
def accept(token: str):
    quote = _quote_by_link(token)
    if current_user.is_authenticated and current_user.is_staff:
        abort(403)
    form = LinkForm()
    signup = None if current_user.is_authenticated else SignupForm(prefix="account", meta={"csrf": False})
    price = quotes.price(quote)
    methods = tuple(p.identifier for p in payments.enabled(quote.currency, price.gross)) if price else ()
    valid = form.validate_on_submit()
    if signup is not None and not signup.validate():
        valid = False
    if form.method.data not in methods:
        form.method.errors = [_("Choose one of the payment methods offered.")]
        valid = False
    if not valid:
        return _link_page(quote, token, form, signup, INVALID)
    # The account opens under the address the quote was mailed to, whatever
    # was typed: the link proves that address, and no other is tried here.
    new_account = None if signup is None else ordering.NewAccount(
        signup.organisation.data, signup.name.data, quote.email, signup.password.data, signup.language.data,
        signup.country.data)
    try:
        buyer, order, payment = ordering.accept_quote(
            db.session(), quote, buyer=current_user._get_current_object() if signup is None else None,
            new_account=new_account, method=form.method.data, methods=methods, now=clock.now(),
            iban=current_app.config["PROVIDER_IBAN"])
    except accounts.EmailTaken:
        db.session.rollback()
        return _link_page(db.session.get_one(Quote, quote.id), token, form, signup, INVALID, problem=_(
            "An account already uses %(email)s: log in to accept the quote.", email=quote.email))
    except accounts.AccountError as error:
        db.session.rollback()
        assert signup is not None
        signup[error.field].errors.append(error.message)
        return _link_page(db.session.get_one(Quote, quote.id), token, form, signup, INVALID)
    except BillingError as error:
        db.session.rollback()
        return _link_page(db.session.get_one(Quote, quote.id), token, form, signup, INVALID, problem=refusal(error))
    if signup is not None:
        sessions.log_in(buyer)
        send_verification(buyer)
    target = url_for("orders.show", order_id=order.id)
    try:
        return redirect(payments.begin(order, payment, now=clock.now(),
                                       return_url=url_for("orders.show", order_id=order.id, _external=True))
                        or target)
    except payments.PaymentError:
        return redirect(target)
