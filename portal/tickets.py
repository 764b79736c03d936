"""Tickets in the client space: open one, the list with its filters, the
thread, the cost and why, the rating, the attachments, and the intervention
report of a resolved ticket (page and PDF).

Who may see a ticket is decided in one place, ``get_ticket``: the users of
its account and staff. Anybody else gets a 404, as if it did not exist; an
anonymous visitor the login page. Attachments and reports go through it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import MultipleFileField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from billing import clock
from billing.accounts.models import User
from billing.catalogue.models import Policy
from billing.desk import services as desk
from billing.desk.models import CRITICALITIES, TICKET_STATUSES, Attachment, Ticket
from billing.ledger import services as ledger
from billing.models import localized
from billing.subscriptions import services as subscriptions
from billing.subscriptions.models import Subscription
from billing.text import single_line
from common import documents
from common.extensions import db, login_manager
from common.fragments import page_or_fragment, wants_fragment
from common.identity.access import INVALID
from common.identity.forms import draw_token, one_time_token
from common.safety import parse_id
from common.tickets import CRITICALITY_LABELS, already_opened, explanation, report_context, ticket_status

bp = Blueprint("tickets", __name__, url_prefix="/portal")


# ------------------------------------------------------------------ loaders

def get_ticket(ticket_id: int) -> Ticket:
    """The ticket, if the current user may see it; aborts otherwise (404:
    another account's ticket does not exist for you)."""
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None or not desk.may_see(current_user, ticket):
        abort(404)
    return ticket


def get_attachment(ticket_id: int, attachment_id: int) -> Attachment:
    """An attachment of a ticket the user may see; a staff note's only for staff."""
    ticket = get_ticket(ticket_id)
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None or attachment.ticket_id != ticket.id or (
            attachment.message.internal and not current_user.is_staff):
        abort(404)
    return attachment


def get_report(ticket_id: int) -> Ticket:
    """A ticket whose intervention report exists: once it is resolved."""
    ticket = get_ticket(ticket_id)
    if ticket.status not in desk.DONE_STATUSES:
        abort(404)
    return ticket


def _rules() -> desk.AttachmentRules:
    return desk.AttachmentRules.from_settings(current_app.config)


def _uploads(field_name: str = "files") -> list[desk.Upload]:
    """The files sent, each read up to one byte over the limit (enough to refuse it)."""
    limit = current_app.config["ATTACHMENT_MAX_BYTES"] + 1
    return [desk.Upload(f.filename or "", f.stream.read(limit), f.mimetype or "")
            for f in request.files.getlist(field_name) if f and f.filename]


# ------------------------------------------------------------------ forms

def _balance_value(policy_id: int, unit: str) -> str:
    return f"{policy_id}-{unit}"


class TicketForm(FlaskForm):
    subject = StringField(_l("Subject"), validators=[DataRequired(), Length(max=desk.MAX_SUBJECT)],
                          filters=[single_line], description=_l("One subject per ticket."))
    description = TextAreaField(_l("Description"), validators=[DataRequired(), Length(max=desk.MAX_BODY)],
                                description=_l("What happens, since when, what you tried."))
    balance = SelectField(_l("Draw from"), validate_choice=False)
    kind = SelectField(_l("Kind of request"), validate_choice=False, validators=[Optional()])
    criticality = SelectField(_l("Criticality"), default="normal",
                              choices=[SelectChoice(c, CRITICALITY_LABELS[c]) for c in CRITICALITIES])
    files = MultipleFileField(_l("Attachments"))
    # Drawn when the form is shown and the ticket's key: the same form sent
    # twice (a double click, a reload) is one ticket.
    token = one_time_token()


class ReplyForm(FlaskForm):
    body = TextAreaField(_l("Your message"), validators=[DataRequired(), Length(max=desk.MAX_BODY)])
    files = MultipleFileField(_l("Attachments"))


class RatingForm(FlaskForm):
    rating = RadioField(_l("Your rating"), choices=[SelectChoice(str(n), str(n)) for n in range(1, 6)],
                        validators=[DataRequired()])
    comment = TextAreaField(_l("Comment (optional)"), validators=[Length(max=desk.MAX_NOTE)])


# The balance choice that opens the ticket under the account's subscription.
SUBSCRIPTION = "subscription"


def _balances_for(form: TicketForm, now: datetime) -> tuple[list, Policy | None, str | None, Subscription | None]:
    """Fill the balance and kind choices; what the ticket may draw from (the
    choices), the chosen policy and unit, and the subscription when it is
    the choice. A running subscription comes first: its tickets cost nothing."""
    account, user = current_user.account, current_user._get_current_object()
    drawable = desk.drawable(db.session(), account, user, now=now)
    covering = subscriptions.covering(db.session(), account.id, now=now)
    policies = {p.id: p for p in db.session.scalars(
        select(Policy).where(Policy.id.in_({b.policy_id for b in drawable})))}
    locale = str(_current_locale())
    choices = [
        SelectChoice(_balance_value(b.policy_id, b.unit),
         f"{localized(policies[b.policy_id].name, locale)} · {_quantity(b.units, b.unit)}"
         + (" · " + _("first to expire on %(day)s", day=_day(b.next_expiry)) if b.next_expiry else ""))
        for b in drawable
    ]
    if covering is not None:
        choices.insert(0, SelectChoice(SUBSCRIPTION, _("%(name)s · nothing drawn from any balance, until %(day)s",
                                                       name=localized(covering.pack.name, locale),
                                                       day=_day(covering.covered_until))))
    form.balance.choices = choices
    chosen = form.balance.data or request.args.get("balance") or (choices[0].value if choices else None)
    match = next((b for b in drawable if _balance_value(b.policy_id, b.unit) == chosen), None)
    subscription = covering if match is None else None
    if subscription is None and match is None and drawable:
        match = drawable[0]
    policy: Policy | None
    unit: str | None
    if subscription is not None:
        policy, unit = subscription.pack.policy, subscription.pack.unit
        form.balance.data = SUBSCRIPTION
    elif match is not None:
        policy, unit = policies[match.policy_id], match.unit
        form.balance.data = _balance_value(match.policy_id, match.unit)
    else:
        policy = unit = form.balance.data = None
    kinds = policy.kinds if policy else []
    form.kind.choices = [
        SelectChoice(k.slug, localized(k.name, locale) + ("" if k.billable else " · " + _("not charged")))
        for k in kinds]
    if policy is not None and kinds and form.kind.data not in {k.slug for k in kinds}:
        form.kind.data = policy.default_kind or kinds[0].slug
    return choices, policy, unit, subscription


def _current_locale():
    from flask_babel import get_locale
    return get_locale()


def _quantity(amount: int, unit: str) -> str:
    return current_app.jinja_env.filters["quantity"](amount, unit)


def _day(value) -> str:
    return current_app.jinja_env.filters["day"](value)


# ------------------------------------------------------------------ views

@bp.get("/tickets")
@login_required
def index():
    """The account's tickets (all tickets for staff), filtered by status and
    by who opened them; the filter form is a real GET form, and htmx swaps
    just the list."""
    status = request.args.get("status", "")
    status = status if status in TICKET_STATUSES else ""
    # A filter that names nobody filters nothing.
    opened_by = parse_id(request.args.get("user")) or 0
    account_id = None if current_user.is_staff else current_user.account_id
    people = [] if current_user.is_staff else db.session.scalars(
        select(User).where(User.account_id == account_id).order_by(User.name)).all()
    found = desk.tickets(db.session(), account_id, status=status or None, opened_by_id=opened_by or None)
    context = {"tickets": found, "status": status, "user": opened_by, "people": people, "statuses": TICKET_STATUSES}
    return page_or_fragment("portal/tickets.html", "portal/_ticket_list.html", **context)


@bp.route("/tickets/new", methods=["GET", "POST"])
@login_required
def new():
    if current_user.is_staff:
        abort(404)
    now = clock.now()
    form = TicketForm()
    drawable, policy, unit, subscription = _balances_for(form, now)
    if request.method == "GET" and wants_fragment():
        # Another balance was chosen: only the kinds differ.
        return page_or_fragment("portal/ticket_new.html", "portal/_kind_field.html", form=form, policy=policy)
    valid = form.validate_on_submit()
    if request.method == "POST" and not form.token.errors:
        again = already_opened(current_user.account, form, "tickets.show")
        if again is not None:
            return again
        valid = valid and not form.token.errors
    if valid and policy is not None:
        try:
            ticket = desk.open_ticket(
                db.session(), current_user.account, current_user._get_current_object(), form.subject.data,
                form.description.data, now=now, policy=None if subscription else policy, unit=unit,
                subscription=subscription, kind=form.kind.data or None,
                criticality=form.criticality.data, files=_uploads(), rules=_rules(), key=form.token.data)
        except desk.DeskError as error:
            target = form[error.field] if error.field in form else form.subject
            target.errors = [*target.errors, _(error.message, **error.params)]
        except ledger.LedgerError as error:
            form.subject.errors = [*form.subject.errors, _(error.message, **error.params)]
        else:
            flash(_("Ticket #%(number)d is open. We will answer here and by email.", number=ticket.id), "success")
            return redirect(url_for("tickets.show", ticket_id=ticket.id))
    status = INVALID if form.errors else 200
    draw_token(form.token)
    return render_template("portal/ticket_new.html", form=form, policy=policy, drawable=drawable,
                           limits=_limits()), status


def _limits() -> dict:
    config = current_app.config
    return {"max_mb": config["ATTACHMENT_MAX_BYTES"] // 1_000_000, "max_files": config["ATTACHMENT_MAX_FILES"],
            "types": sorted(config["ATTACHMENT_TYPES"])}


def _ticket_page(ticket: Ticket, reply: ReplyForm | None = None, rating: RatingForm | None = None,
                 status: int = 200):
    staff = current_user.is_staff
    messages = desk.thread(db.session(), ticket, internal=staff)
    rating_form = rating or RatingForm(formdata=None, rating=str(ticket.rating) if ticket.rating else None,
                                       comment=ticket.rating_comment)
    return render_template(
        "portal/ticket.html", ticket=ticket, messages=messages, charge=desk.cost(ticket),
        explanation=explanation(ticket), taken=desk.tickets_taken_note(ticket),
        entries=desk.time_entries(db.session(), ticket) if staff else [],
        reply=reply or ReplyForm(formdata=None), rating=rating_form, limits=_limits(),
        # The owners answer an overage where its mail sends them: here.
        answers_overages=not staff and current_user.is_owner,
        opened_for=desk.opened_by_staff(db.session(), ticket),
    ), status


@bp.get("/tickets/<int:ticket_id>")
def show(ticket_id: int):
    return _ticket_page(get_ticket(ticket_id))


@bp.post("/tickets/<int:ticket_id>/messages")
def reply(ticket_id: int):
    ticket = get_ticket(ticket_id)
    form = ReplyForm()
    if form.validate_on_submit():
        try:
            desk.post_message(db.session(), ticket, current_user._get_current_object(), form.body.data, now=clock.now(),
                              internal=current_user.is_staff and request.form.get("internal") == "1",
                              files=_uploads(), rules=_rules())
        except desk.DeskError as error:
            target = form[error.field] if error.field in form else form.body
            target.errors = [*target.errors, _(error.message, **error.params)]
        except ledger.NotAllowed:
            abort(403)
        else:
            return redirect(url_for("tickets.show", ticket_id=ticket.id) + "#thread-end")
    return _ticket_page(ticket, reply=form, status=INVALID)


@bp.post("/tickets/<int:ticket_id>/status")
def set_status(ticket_id: int):
    ticket = get_ticket(ticket_id)
    status = request.form.get("status", "")
    try:
        desk.set_status(db.session(), ticket, status, by=current_user._get_current_object(), now=clock.now())
    except desk.DeskError as error:
        flash(_(error.message, **error.params), "error")
    except ledger.NotAllowed:
        abort(403)
    else:
        flash(_("The ticket is now: %(status)s.", status=ticket_status(ticket.status)), "success")
    return redirect(url_for("tickets.show", ticket_id=ticket.id))


@bp.post("/tickets/<int:ticket_id>/rating")
def rate(ticket_id: int):
    ticket = get_ticket(ticket_id)
    form = RatingForm()
    if form.validate_on_submit():
        try:
            desk.rate(db.session(), ticket, current_user._get_current_object(), int(form.rating.data),
                      form.comment.data or "", now=clock.now())
        except desk.DeskError as error:
            form.rating.errors = [*form.rating.errors, _(error.message, **error.params)]
        except ledger.NotAllowed:
            abort(403)
        else:
            flash(_("Thank you for your rating."), "success")
            return redirect(url_for("tickets.show", ticket_id=ticket.id))
    return _ticket_page(ticket, rating=form, status=INVALID)


@bp.get("/tickets/<int:ticket_id>/files/<int:attachment_id>")
def attachment(ticket_id: int, attachment_id: int):
    found = get_attachment(ticket_id, attachment_id)
    path = desk.attachment_path(found, Path(current_app.config["ATTACHMENT_FOLDER"]))
    if not path.is_file():
        abort(404)
    # Always a download, never rendered by the browser in our origin.
    response = send_file(path, mimetype=found.content_type, as_attachment=True, download_name=found.original_name,
                         max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


# ------------------------------------------------------------------ reports

@bp.get("/reports")
@login_required
def reports():
    """Every intervention report of the account: one per resolved ticket."""
    query = select(Ticket).where(Ticket.status.in_(desk.DONE_STATUSES))
    if not current_user.is_staff:
        query = query.where(Ticket.account_id == current_user.account_id)
    done = db.session.scalars(query.order_by(Ticket.resolved_at.desc(), Ticket.id.desc()).limit(200)).all()
    return render_template("portal/reports.html", tickets=done)


@bp.get("/tickets/<int:ticket_id>/report")
def report(ticket_id: int):
    return render_template("portal/report.html", **report_context(get_report(ticket_id)))


@bp.get("/tickets/<int:ticket_id>/report.pdf")
def report_pdf(ticket_id: int):
    ticket = get_report(ticket_id)
    content = documents.render_pdf("pdf/report.html", **report_context(ticket))
    response = make_response(content)
    response.headers["Content-Type"] = documents.PDF
    response.headers["Content-Disposition"] = f'inline; filename="report-{ticket.id}.pdf"'
    return response
