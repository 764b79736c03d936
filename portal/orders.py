"""Orders in the client space (orders, invoices, credit notes, PDFs) and
the staff page of orders awaiting a transfer or a cheque; admins refund a
paid order from its page.

Who may see an order or an invoice is decided in one place each,
``get_order`` and ``get_invoice``: the account's users and staff. Anybody
else gets a 404, as if it did not exist; an anonymous visitor the login page.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, time
from typing import TypeVar

from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Regexp

from billing import clock
from billing.errors import BillingError
from billing.orders import references, refunds
from billing.orders import services as orders
from billing.orders.models import Invoice, Order, Payment
from common import documents, payments
from common.extensions import db, login_manager
from common.i18n import money, to_decimal
from common.identity.access import INVALID, admin_required, staff_required

bp = Blueprint("orders", __name__, url_prefix="/portal")


@bp.app_template_filter("reference")
def reference_filter(reference: str | None) -> str:
    """A payment reference printed in blocks, the way banks print it."""
    return references.pretty(reference) if reference else ""


class ConfirmForm(FlaskForm):
    amount = StringField(_l("Amount received"), validators=[DataRequired()])
    received_on = DateField(_l("Date received"), validators=[DataRequired()])


class CancelForm(FlaskForm):
    reason = TextAreaField(_l("Reason, for the client"), validators=[DataRequired(), Length(max=500)])


class RefundForm(FlaskForm):
    amount = StringField(_l("Amount to refund"), validators=[DataRequired()])
    reason = TextAreaField(_l("Reason, on the credit note"), validators=[DataRequired(), Length(max=500)])
    # Drawn when the form is shown and part of the refund's key: the same
    # form sent twice (a double click, a reload) is one refund.
    token = HiddenField(validators=[Regexp(r"\A[0-9a-f]{32}\Z",
                                           message=_l("This form has expired: check it and send it again."))])



Visible = TypeVar("Visible", Order, Invoice)


def _visible(model: type[Visible], row_id: int) -> Visible:
    """The row, if the current user may see its account's; aborts otherwise
    (404: another account's order or invoice does not exist for you)."""
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())
    row = db.session.get(model, row_id)
    if row is None or not (current_user.is_staff or current_user.account_id == row.account_id):
        abort(404)
    return row


def get_order(order_id: int) -> Order:
    return _visible(Order, order_id)


def get_invoice(invoice_id: int) -> Invoice:
    return _visible(Invoice, invoice_id)


def _pdf(content: bytes, filename: str):
    response = make_response(content)
    response.headers["Content-Type"] = documents.PDF
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


# --- Client space -------------------------------------------------------------

@bp.get("/orders")
@login_required
def index():
    if current_user.is_staff:
        return redirect(url_for("orders.staff"))
    account_id = current_user.account_id
    placed = db.session.scalars(select(Order).where(Order.account_id == account_id)
                                .order_by(Order.created_at.desc(), Order.id.desc())).all()
    documents_ = db.session.scalars(select(Invoice).where(Invoice.account_id == account_id)
                                    .order_by(Invoice.issued_at.desc(), Invoice.id.desc())).all()
    return render_template("portal/orders.html", orders=placed,
                           invoices=[d for d in documents_ if not d.is_credit_note],
                           credit_notes=[d for d in documents_ if d.is_credit_note])


@bp.get("/orders/<int:order_id>")
def show(order_id: int):
    return _order_page(get_order(order_id))


def _order_page(order: Order, confirm_form: ConfirmForm | None = None, cancel_form: CancelForm | None = None,
                status: int = 200, refund_form: RefundForm | None = None):
    """The order, its payments and documents; while it waits, how to pay
    (for the client) or the forms to confirm or cancel it (for staff); once
    paid, the form to refund it (for staff)."""
    payment = orders.awaited_payment(db.session(), order)
    provider = payments.get(payment.provider) if payment else None
    if confirm_form is None:
        confirm_form = ConfirmForm(formdata=None, amount=_plain(payment.amount, payment.currency) if payment else "",
                                   received_on=clock.now().date())
    page = render_template(
        "portal/order.html", order=order, payment=payment, provider=provider,
        pending=provider.pending_context(order, payment) if provider and payment else {},
        received=orders.received(db.session(), order.id), events=orders.events(db.session(), order),
        documents=db.session.scalars(select(Invoice).where(Invoice.order_id == order.id).order_by(Invoice.id)).all(),
        confirm_form=confirm_form, cancel_form=cancel_form or CancelForm(formdata=None),
        refund=_refund_context(order, refund_form) if current_user.is_admin and order.status == "paid" else None,
    )
    return page, status


@bp.get("/orders/<int:order_id>/instructions.pdf")
def instructions(order_id: int):
    order = get_order(order_id)
    payment = orders.awaited_payment(db.session(), order)
    provider = payments.get(payment.provider) if payment else None
    if provider is None or payment is None or not provider.manual:
        abort(404)
    return _pdf(documents.instructions_pdf(order, payment, provider), documents.instructions_filename(order))


@bp.get("/invoices/<int:invoice_id>.pdf")
def invoice_pdf(invoice_id: int):
    invoice = get_invoice(invoice_id)
    return _pdf(documents.invoice_pdf(invoice), documents.invoice_filename(invoice))


# --- Staff ----------------------------------------------------------------------

def _plain(minor: int, currency: str) -> str:
    """An amount as staff type it back: 425.00, no currency, no grouping."""
    return f"{to_decimal(minor, currency):f}"


@bp.get("/staff/orders")
@staff_required
def staff():
    search = request.args.get("q", "").strip()[:100]
    return render_template("portal/orders_staff.html", search=search,
                           awaited=orders.awaited(db.session(), search), overpaid=orders.overpaid(db.session()),
                           flagged=orders.flagged(db.session()),
                           confirmed=orders.recently_confirmed(db.session(), search),
                           methods=payments.statuses(), today=clock.now().date(), plain=_plain)


def _amount_of(form: ConfirmForm | RefundForm, currency: str) -> int | None:
    """The amount typed in a staff form, in minor units; None when the form
    or the amount is wrong (the form then carries the errors)."""
    if not form.validate_on_submit():
        return None
    try:
        return orders.parse_amount(form.amount.data, currency)
    except BillingError as error:
        form.amount.errors.append(_(error.message, **error.params))
        return None


@bp.post("/staff/payments/<int:payment_id>/confirm")
@staff_required
def confirm(payment_id: int):
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        abort(404)
    form = ConfirmForm()
    amount = _amount_of(form, payment.currency)
    if amount is None or form.errors:
        return _order_page(payment.order, confirm_form=_dated(form), status=INVALID)
    # Noon of the day received, or now when that is today and noon is still
    # ahead: one clock reading, so that "received" is never a microsecond
    # after "now". A later day stays as typed, for the service to refuse.
    now = clock.now()
    received_at = datetime.combine(form.received_on.data, time(12), tzinfo=UTC)
    if form.received_on.data <= now.date():
        received_at = min(received_at, now)
    try:
        outcome = payments.confirm(payment, now=now, amount=amount, received_at=received_at,
                                   by=current_user._get_current_object())
    except BillingError as error:
        target = form.received_on if error.field == "received_at" else form.amount
        target.errors.append(_(error.message, **error.params))
        return _order_page(payment.order, confirm_form=form, status=INVALID)
    flash(_outcome_message(outcome), "success" if outcome.status in ("paid", "partial") else "info")
    return redirect(url_for("orders.staff"))


def _dated(form: ConfirmForm) -> ConfirmForm:
    """WTForms' own message for a date it cannot read says nothing of the format."""
    if form.received_on.errors and form.received_on.data is None:
        form.received_on.errors = [_("Enter the date as on the bank statement, such as %(day)s.",
                                     day=clock.now().date().isoformat())]
    return form


def _outcome_message(outcome: orders.Outcome) -> str:
    order, payment = outcome.order, outcome.payment
    amount = money(payment.amount, payment.currency)
    if outcome.status == "duplicate":
        who = payment.confirmed_by.name if payment.confirmed_by else _("the payment provider")
        return _("This payment was already confirmed by %(who)s: nothing changed.", who=who)
    if outcome.status == "partial":
        return _("Order %(number)d: %(amount)s recorded; %(missing)s still awaited.", number=order.id, amount=amount,
                 missing=money(outcome.missing, order.currency))
    if outcome.status == "overpaid":
        return _("Order %(number)d: %(amount)s recorded, %(excess)s more than the total. Flagged below: "
                 "refund or credit the difference.", number=order.id, amount=amount,
                 excess=money(outcome.excess, order.currency))
    if order.overage_id is not None:
        return _("Order %(number)d is paid: invoiced.", number=order.id)
    if order.ordered_pack.unlimited:
        return _("Order %(number)d is paid: its subscription period has started, and it is invoiced.", number=order.id)
    return _("Order %(number)d is paid: credited and invoiced.", number=order.id)


@bp.post("/staff/orders/<int:order_id>/cancel")
@staff_required
def cancel(order_id: int):
    order = get_order(order_id)
    form = CancelForm()
    if form.validate_on_submit():
        try:
            payments.cancel(order, reason=form.reason.data, now=clock.now(), by=current_user._get_current_object())
        except orders.MoneyReceived:
            pass  # the page says so in place of the form, from what was received
        except BillingError as error:
            form.reason.errors.append(_(error.message, **error.params))
        else:
            flash(_("Order %(number)d is cancelled; the client was told why.", number=order.id), "success")
            return redirect(url_for("orders.staff"))
    return _order_page(order, cancel_form=form, status=INVALID)


def _refund_context(order: Order, form: RefundForm | None) -> dict | None:
    """The refund form of a paid order and what it would take back; None once all is credited."""
    left = refunds.left_to_credit(db.session(), order)
    if not left:
        return None
    if form is None:
        form = RefundForm(formdata=None, amount=_plain(left, order.currency))
    if form.token.errors or not form.token.data:
        form.token.data = secrets.token_hex(16)
    return {"form": form, "left": left, "by_card": order.method == "card",
            **_units(order, form.amount.data or "")}


def _units(order: Order, typed: str) -> dict:
    """What the refund's units line says for the amount typed: the units it
    takes back (``unit`` None: the order granted none), or why that amount
    cannot be refunded."""
    lot = refunds.lot_of(db.session(), order)
    found = {"unit": lot.unit if lot is not None else None, "units": 0, "units_error": None}
    try:
        amount = orders.parse_amount(typed, order.currency)
        refunds.check_amount(db.session(), order, amount)
    except BillingError as error:
        found["units_error"] = _(error.message, **error.params)
        return found
    found["units"] = refunds.revocable(db.session(), order, amount, now=clock.now())
    return found


@bp.get("/staff/orders/<int:order_id>/refund/units")
@admin_required
def refund_units(order_id: int):
    """The units line again for the amount being typed (htmx)."""
    order = get_order(order_id)
    return render_template("portal/order_refund_units.html", order=order,
                           **_units(order, request.args.get("amount", "")[:50]))


@bp.post("/staff/orders/<int:order_id>/refund")
@admin_required
def refund(order_id: int):
    order = get_order(order_id)
    form = RefundForm()
    amount = _amount_of(form, order.currency)
    if amount is None or form.errors:
        return _order_page(order, refund_form=form, status=INVALID)
    try:
        done = payments.refund(order, amount, form.reason.data, key=f"order:{order.id}:refund:{form.token.data}",
                               now=clock.now(), by=current_user._get_current_object())
    except BillingError as error:
        if error.field is None:  # about the order, which may show no refund form to say it on
            flash(_(error.message, **error.params), "error")
        else:
            (form.reason if error.field == "reason" else form.amount).errors.append(_(error.message, **error.params))
        return _order_page(order, refund_form=form, status=INVALID)
    except payments.PaymentError as error:
        form.amount.errors.append(str(error))
        return _order_page(order, refund_form=form, status=INVALID)
    flash(_refund_message(order, done), "info" if done.duplicate else "success")
    return redirect(url_for("orders.show", order_id=order.id))


def _refund_message(order: Order, done: refunds.Refund) -> str:
    note = done.note
    if done.duplicate:
        return _("This refund was already recorded (credit note %(number)s): nothing changed.", number=note.number)
    amount = money(note.gross, note.currency)
    lot = refunds.lot_of(db.session(), order)
    if not done.units or lot is None:  # units are only taken back from a lot
        return _("Order %(number)d: %(amount)s refunded, credit note %(note)s issued; no units taken back.",
                 number=order.id, amount=amount, note=note.number)
    units = current_app.jinja_env.filters["quantity"](done.units, lot.unit)
    return _("Order %(number)d: %(amount)s refunded, credit note %(note)s issued; %(units)s taken back.",
             number=order.id, amount=amount, note=note.number, units=units)
