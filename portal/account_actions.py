"""What staff do for a client from the account page (/staff/clients/<id>):
admins adjust credit (units added to or removed from a balance, with the
reason the client reads on the statement), and any staff member opens a
ticket on a person's behalf (a phone call), choosing the person and the
balance it draws from; the person is told by mail.

Who may: ``admin_required`` for credit, ``staff_required`` for tickets;
the account through clients.get_account (404). The services
(billing.ledger.adjustments, billing.desk) own the transactions and say why
they refuse; the views put those words beside the field.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import IntegerField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from billing import clock
from billing.accounts.models import Account, User
from billing.catalogue.models import Policy
from billing.desk import services as desk
from billing.desk.models import CRITICALITIES
from billing.errors import BillingError
from billing.ledger import adjustments
from billing.ledger import services as ledger
from billing.models import localized
from billing.subscriptions import services as subscriptions
from billing.subscriptions.models import Subscription
from billing.text import single_line
from common.extensions import db
from common.fragments import page_or_fragment, wants_fragment
from common.identity.access import INVALID, admin_required, staff_required
from common.identity.forms import draw_token, one_time_token
from common.safety import parse_id
from common.tickets import CRITICALITY_LABELS, already_opened
from portal.clients import get_account

bp = Blueprint("account_actions", __name__, url_prefix="/staff/clients")

# The balance choice that opens the ticket under the account's subscription.
SUBSCRIPTION = "subscription"


def _me() -> User:
    return current_user._get_current_object()


def _quantity(amount: int, unit: str) -> str:
    return current_app.jinja_env.filters["quantity"](amount, unit)


def _day(value: datetime) -> str:
    return current_app.jinja_env.filters["day"](value)


def balance_value(policy_id: int, unit: str) -> str:
    return f"{policy_id}-{unit}"


# ------------------------------------------------------------------ credit

class AdjustForm(FlaskForm):
    balance = SelectField(_l("Balance"), validate_choice=False)
    direction = RadioField(_l("Adjustment"), default="remove",
                           choices=[SelectChoice("add", _l("Add units")), SelectChoice("remove", _l("Remove units"))])
    owner = SelectField(_l("Units added serve"), validate_choice=False)
    quantity = IntegerField(_l("Units"), validators=[DataRequired(_l("Enter a whole number of units.")),
                                                     NumberRange(1, adjustments.MAX_UNITS)])
    reason = StringField(_l("Reason, shown to the client on the statement"),
                         validators=[DataRequired(_l("Give the reason: the client reads it on the statement.")),
                                     Length(max=adjustments.MAX_REASON)], filters=[single_line])
    # Drawn when the form is shown and part of the ledger's key: the same
    # form sent twice (a double click, a reload) is one adjustment.
    token = one_time_token()


def _adjust_page(account: Account, form: AdjustForm, status: int = 200):
    now = clock.now()
    found = adjustments.adjustable(db.session(), account, now=now)
    locale = str(get_locale())
    form.balance.choices = [
        SelectChoice(balance_value(policy.id, unit), f"{localized(policy.name, locale)} · {_quantity(held.net, unit)}")
        for policy, unit, held in found]
    form.owner.choices = [SelectChoice("", _("Everybody on the account (pooled)")),
                          *(SelectChoice(str(p.id), _("Only %(name)s", name=p.name))
                            for p in desk.pool(db.session(), account))]
    draw_token(form.token)
    return render_template("account_actions/adjust.html", account=account, form=form, balances=found), status


@bp.get("/<int:account_id>/adjust")
@admin_required
def adjust_form(account_id: int):
    return _adjust_page(get_account(account_id), AdjustForm(formdata=None))


@bp.post("/<int:account_id>/adjust")
@admin_required
def adjust(account_id: int):
    account = get_account(account_id)
    form = AdjustForm()
    chosen = {balance_value(p.id, u): (p, u) for p, u, _held in
              adjustments.adjustable(db.session(), account, now=clock.now())}.get(form.balance.data or "")
    valid = form.validate()
    if chosen is None:
        form.balance.errors = [*form.balance.errors, _("Choose a balance of this account.")]
    if not valid or chosen is None:
        return _adjust_page(account, form, INVALID)
    policy, unit = chosen
    signed = form.quantity.data if form.direction.data == "add" else -form.quantity.data
    owner = None
    if form.owner.data:
        owner = next((p for p in desk.pool(db.session(), account) if str(p.id) == form.owner.data), None)
        if owner is None:
            form.owner.errors = [*form.owner.errors, _("Choose a person of this account.")]
            return _adjust_page(account, form, INVALID)
    try:
        done = adjustments.adjust_credit(db.session(), account, policy, unit, signed, form.reason.data, by=_me(),
                                         key=f"{account.id}:{form.token.data}", now=clock.now(), owner=owner)
    except adjustments.BeyondBalance as error:
        form.quantity.errors = [*form.quantity.errors, _(
            "Only %(available)s can be removed: what the balance holds now. Units already consumed stay consumed.",
            available=_quantity(error.available, error.unit))]
        return _adjust_page(account, form, INVALID)
    except BillingError as error:
        target = form[error.field] if error.field in ("balance", "owner", "quantity", "reason") else form.quantity
        target.errors = [*target.errors, _(error.message, **error.params)]
        return _adjust_page(account, form, INVALID)
    if done.duplicate:
        flash(_("This adjustment was already recorded: nothing changed."), "info")
    else:
        change = ("+" if signed > 0 else "−") + _quantity(abs(signed), unit)
        flash(_("%(change)s on %(balance)s (%(reason)s): the balance now holds %(after)s.", change=change,
                balance=localized(policy.name, str(get_locale())), reason=form.reason.data,
                after=_quantity(done.after, unit)), "success")
    return redirect(url_for("clients.account", account_id=account.id))


# ------------------------------------------------------------------ tickets

class TicketForm(FlaskForm):
    person = SelectField(_l("For"), validate_choice=False)
    balance = SelectField(_l("Draw from"), validate_choice=False)
    kind = SelectField(_l("Kind of request"), validate_choice=False, validators=[Optional()])
    criticality = SelectField(_l("Criticality"), default="normal",
                              choices=[SelectChoice(c, CRITICALITY_LABELS[c]) for c in CRITICALITIES])
    subject = StringField(_l("Subject"), validators=[DataRequired(), Length(max=desk.MAX_SUBJECT)],
                          filters=[single_line])
    description = TextAreaField(_l("Message"), validators=[DataRequired(), Length(max=desk.MAX_BODY)],
                                description=_l("What the client asked, in their words: they read it on the ticket."))
    # Drawn when the form is shown and the ticket's key: the same form sent
    # twice (a double click, a reload) is one ticket.
    token = one_time_token()


class Choice:
    """What the form's person and balance choices resolve to."""

    def __init__(self) -> None:
        self.person: User | None = None
        self.policy: Policy | None = None
        self.unit: str | None = None
        self.subscription: Subscription | None = None
        self.drawable: list[ledger.Balance] = []


def _choices(account: Account, form: TicketForm, now: datetime) -> Choice:
    """Fill the person, balance and kind choices from what was chosen so
    far (a person without a balance is shown with none to choose)."""
    session = db.session()
    found = Choice()
    people = desk.pool(session, account)
    form.person.choices = [SelectChoice(str(p.id), f"{p.name} ({p.email})") for p in people]
    chosen_id = parse_id(form.person.data or request.args.get("person"))
    found.person = next((p for p in people if p.id == chosen_id), people[0] if people else None)
    if found.person is None:
        form.balance.choices, form.kind.choices = [], []
        return found
    form.person.data = str(found.person.id)
    found.drawable = desk.drawable(session, account, found.person, now=now)
    covering = subscriptions.covering(session, account.id, now=now)
    policies = {p.id: p for p in session.scalars(select(Policy).where(
        Policy.id.in_({b.policy_id for b in found.drawable})))}
    locale = str(get_locale())
    choices = [SelectChoice(balance_value(b.policy_id, b.unit),
                            f"{localized(policies[b.policy_id].name, locale)} · {_quantity(b.units, b.unit)}"
                            + (" · " + _("first to expire on %(day)s", day=_day(b.next_expiry))
                               if b.next_expiry else ""))
               for b in found.drawable]
    if covering is not None:
        choices.insert(0, SelectChoice(SUBSCRIPTION, _("%(name)s · nothing drawn from any balance, until %(day)s",
                                                       name=localized(covering.pack.name, locale),
                                                       day=_day(covering.covered_until))))
    form.balance.choices = choices
    wanted = form.balance.data or request.args.get("balance")
    match = next((b for b in found.drawable if balance_value(b.policy_id, b.unit) == wanted), None)
    if match is None and covering is not None and (wanted == SUBSCRIPTION or not wanted or not found.drawable):
        found.subscription = covering
        found.policy, found.unit = covering.pack.policy, covering.pack.unit
        form.balance.data = SUBSCRIPTION
    else:
        match = match or (found.drawable[0] if found.drawable else None)
        if match is not None:
            found.policy, found.unit = policies[match.policy_id], match.unit
            form.balance.data = balance_value(match.policy_id, match.unit)
    kinds = found.policy.kinds if found.policy is not None else []
    form.kind.choices = [
        SelectChoice(k.slug, localized(k.name, locale) + ("" if k.billable else " · " + _("not charged")))
        for k in kinds]
    if found.policy is not None and kinds and form.kind.data not in {k.slug for k in kinds}:
        form.kind.data = found.policy.default_kind or kinds[0].slug
    return found


def _ticket_page(account: Account, form: TicketForm, choice: Choice, status: int = 200):
    draw_token(form.token)
    return page_or_fragment("account_actions/ticket_new.html", None, status, account=account, form=form,
                            choice=choice)


@bp.route("/<int:account_id>/tickets/new", methods=["GET", "POST"])
@staff_required
def new_ticket(account_id: int):
    """The form, its balance and kind fields again for the person and the
    balance chosen (htmx: #ticket-balance), and the ticket opened."""
    account = get_account(account_id)
    now = clock.now()
    form = TicketForm(formdata=request.form if request.method == "POST" else request.args or None)
    choice = _choices(account, form, now)
    if request.method == "GET":
        if wants_fragment():
            return page_or_fragment("account_actions/ticket_new.html", "account_actions/_ticket_balance.html",
                                    account=account, form=form, choice=choice)
        return _ticket_page(account, form, choice)
    valid = form.validate()
    if not form.token.errors:
        again = already_opened(account, form, "desk.show")
        if again is not None:
            return again
        if form.token.errors:
            return _ticket_page(account, form, choice, INVALID)
    if not valid or choice.person is None or choice.policy is None:
        if choice.person is not None and choice.policy is None:
            form.balance.errors = [*form.balance.errors, _("This person has no balance to draw from.")]
        return _ticket_page(account, form, choice, INVALID)
    try:
        ticket = desk.open_ticket(
            db.session(), account, choice.person, form.subject.data, form.description.data, now=now,
            policy=None if choice.subscription else choice.policy, unit=choice.unit,
            subscription=choice.subscription, kind=form.kind.data or None, criticality=form.criticality.data,
            by=_me(), key=form.token.data)
    except BillingError as error:
        target = form[error.field] if error.field in form else form.subject
        target.errors = [*target.errors, _(error.message, **error.params)]
        return _ticket_page(account, form, choice, INVALID)
    flash(_("Ticket #%(number)d is open for %(name)s, who was told by email.", number=ticket.id,
            name=choice.person.name), "success")
    return redirect(url_for("desk.show", ticket_id=ticket.id))

