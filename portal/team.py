"""The team page (``/staff/team``: invite staff, change a role, deactivate
and reactivate) and the audit log (``/staff/audit``), both for admins only.
The rules and the audit entries are common.identity.staff's; a view only
shows what it refused beside what it concerns."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from billing import audit as trail
from billing.accounts.models import STAFF_ROLES, User
from billing.text import single_line
from common.extensions import db
from common.identity import staff
from common.identity.access import INVALID, admin_required
from common.identity.forms import email_field, language_field
from common.mail import delivery

bp = Blueprint("team", __name__, url_prefix="/staff")

ROLE_LABELS = {"admin": _l("Administrator"), "agent": _l("Agent")}
ROLE_HELP = _l("Agents work the desk and confirm payments; administrators also edit the catalogue, refund, "
               "adjust credit and manage the team.")
STATUS_LABELS = {"active": _l("Active"), "invited": _l("Invited"), "deactivated": _l("Deactivated")}


def _role_field(default: str = "agent") -> SelectField:
    return SelectField(_l("Role"), choices=[SelectChoice(role, ROLE_LABELS[role]) for role in STAFF_ROLES],
                       default=default, validators=[DataRequired()])


class InviteForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)], filters=[single_line])
    email = email_field()
    role = _role_field()
    language = language_field()


class RoleForm(FlaskForm):
    role = _role_field()


class ActionForm(FlaskForm):
    """Deactivate, reactivate, send the link again: the CSRF token is all."""


def get_staff(user_id: int) -> User:
    user = staff.get(db.session(), user_id)
    if user is None:
        abort(404)
    return user


def _page(form: InviteForm | None = None, status: int = 200, refused: dict[int, str] | None = None):
    return render_template("staff/team.html", members=staff.team(db.session()),
                           form=form or InviteForm(formdata=None), role_form=RoleForm, action_form=ActionForm(),
                           roles=ROLE_LABELS, role_help=ROLE_HELP, statuses=STATUS_LABELS,
                           refused=refused or {}), status


@bp.get("/team")
@admin_required
def index():
    return _page()


@bp.post("/team/invite")
@admin_required
def invite():
    form = InviteForm()
    if not form.validate_on_submit():
        return _page(form, INVALID)
    try:
        user = staff.create(db.session(), form.email.data, form.name.data, form.role.data, password=None,
                            language=form.language.data, by=current_user._get_current_object())
    except staff.EmailTaken:
        form.email.errors = [*form.email.errors, _("Someone already uses this address (staff or client).")]
        return _page(form, INVALID)
    except staff.AccountError as error:
        form[error.field].errors = [*form[error.field].errors, str(error.message)]
        return _page(form, INVALID)
    _sent(delivery.deliver_now(delivery.queued(f"staff-invite:{user.id}")), user)
    return redirect(url_for("team.index"))


def _sent(sent: bool, user: User) -> None:
    if sent:
        flash(_("Invitation sent to %(email)s: the link to choose a password works for %(hours)d hours.",
                email=user.email, hours=current_app.config["TOKEN_MAX_AGE_HOURS"]), "success")
    else:
        flash(_("%(name)s is on the team, but the email could not be sent just now: we will try again shortly.",
                name=user.name), "error")


@bp.post("/team/<int:user_id>/resend")
@admin_required
def resend(user_id: int):
    user = get_staff(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        keys = staff.resend(db.session(), user, by=current_user._get_current_object())
    except staff.StaffError as error:
        return _page(status=INVALID, refused={user.id: str(error.message)})
    _sent(delivery.deliver_now(keys), user)
    return redirect(url_for("team.index"))


@bp.post("/team/<int:user_id>/role")
@admin_required
def change_role(user_id: int):
    user = get_staff(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return _page(status=INVALID, refused={user.id: " ".join(map(str, form.role.errors or form.errors))})
    try:
        changed = staff.change_role(db.session(), user, form.role.data, by=current_user._get_current_object())
    except staff.StaffError as error:
        return _page(status=INVALID, refused={user.id: str(error.message)})
    if changed:
        flash(_("%(name)s is now %(role)s.", name=user.name, role=str(ROLE_LABELS[form.role.data]).lower()), "success")
    return redirect(url_for("team.index"))


@bp.post("/team/<int:user_id>/deactivate")
@admin_required
def deactivate(user_id: int):
    user = get_staff(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    myself = user.id == current_user.id
    try:
        staff.deactivate(db.session(), user, by=current_user._get_current_object())
    except staff.StaffError as error:
        return _page(status=INVALID, refused={user.id: str(error.message)})
    if myself:
        # This login ended with the others.
        logout_user()
        flash(_("You deactivated your own access: you are logged out."), "info")
        return redirect(url_for("auth.login"))
    flash(_("%(name)s is deactivated: their logins are ended and they can no longer log in.", name=user.name),
          "success")
    return redirect(url_for("team.index"))


@bp.post("/team/<int:user_id>/reactivate")
@admin_required
def reactivate(user_id: int):
    user = get_staff(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    if staff.reactivate(db.session(), user, by=current_user._get_current_object()):
        flash(_("%(name)s can log in again.", name=user.name), "success")
    return redirect(url_for("team.index"))


# ------------------------------------------------------------ the audit log

ACTION_LABELS = {
    "staff.create": _l("Staff member created"),
    "staff.invite": _l("Staff member invited"),
    "staff.resend": _l("Invitation sent again"),
    "staff.role": _l("Role changed"),
    "staff.deactivate": _l("Staff member deactivated"),
    "staff.reactivate": _l("Staff member reactivated"),
    "credit.adjust": _l("Credit adjusted"),
    "ticket.kind": _l("Request kind changed"),
    "bank.assign": _l("Bank line assigned to an order"),
    "bank.discard": _l("Bank line set aside"),
    "bank.mapping.create": _l("Bank CSV mapping created"),
    "bank.mapping.update": _l("Bank CSV mapping changed"),
    "bank.mapping.delete": _l("Bank CSV mapping deleted"),
    "staff.second_factor_reset": _l("Second factor reset"),
    "account.invoicing": _l("Invoicing details changed"),
    "service.levels": _l("Service levels changed"),
    "service.holiday.add": _l("Holiday added"),
    "service.holiday.remove": _l("Holiday removed"),
    "catalogue.create": _l("Catalogue created"),
    "catalogue.update": _l("Catalogue changed"),
    "catalogue.import": _l("Catalogue imported"),
    "policy.create": _l("Billing policy created"),
    "policy.update": _l("Billing policy changed"),
    "policy.version": _l("Billing policy: new version"),
    "pack.create": _l("Pack created"),
    "pack.update": _l("Pack changed"),
    "pack.version": _l("Pack: new version"),
    "pack.publish": _l("Pack published"),
    "pack.retire": _l("Pack retired"),
    "pack.restore": _l("Pack restored"),
}
# The kinds of object the log names, and the page that opens one (which checks who may see it).
KIND_LABELS = {
    "user": _l("Person"), "account": _l("Account"), "ticket": _l("Ticket"), "catalogue": _l("Catalogue"),
    "policy": _l("Billing policy"), "pack": _l("Pack"), "bank_line": _l("Bank statement line"),
    "holiday": _l("Holiday"), "service_levels": _l("Service levels"), "bank_mapping": _l("CSV column mapping"),
}
OBJECT_PAGES = {
    "user": ("team.index", None), "account": ("clients.account", "account_id"), "ticket": ("desk.show", "ticket_id"),
    "catalogue": ("catalogue_editor.edit_catalogue", "catalogue_id"),
    "policy": ("catalogue_editor.edit_policy", "policy_id"), "pack": ("catalogue_editor.edit_pack", "pack_id"),
}
FIELD_LABELS = {
    "email": _l("Email"), "name": _l("Name"), "role": _l("Role"), "active": _l("Active"),
    "logins_ended": _l("Logins ended"),
    # Credit adjustments and request kinds (portal.account_actions, the desk).
    "policy": _l("Balance"), "unit": _l("Unit"), "balance": _l("Balance held"), "quantity": _l("Units moved"),
    "reason": _l("Reason"), "kind": _l("Kind of request"), "units": _l("Units charged"),
    # A bank's CSV mapping (portal.bank), in the words of its form.
    "delimiter": _l("Separator"), "date_column": _l("Date column"), "date_format": _l("Date format"),
    "amount_column": _l("Amount column (signed)"), "credit_column": _l("Credit column"),
    "debit_column": _l("Debit column"), "decimal_comma": _l("Amounts are written with a decimal comma (1.234,50)"),
    "currency_column": _l("Currency column"), "currency": _l("Currency"), "text_column": _l("Text column"),
    "payer_column": _l("Payer column"), "reference_column": _l("Reference column"),
    "bank_ref_column": _l("Bank's own line reference column"),
}


def object_page(entry: trail.AuditEntry) -> str | None:
    """Where the entry's object is opened, if it has a page."""
    endpoint, argument = OBJECT_PAGES.get(entry.subject_kind, (None, None))
    if endpoint is None or endpoint not in current_app.view_functions or entry.subject_id is None:
        return None
    values: dict[str, Any] = {argument: entry.subject_id} if argument else {}
    page = url_for(endpoint, **values)
    return page + f"#member-{entry.subject_id}" if entry.subject_kind == "user" else page


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None


def describe(value: object) -> str:
    """A value of an entry as a person reads it."""
    if value is None or value == "":
        return "—"
    if value is True:
        return _("yes")
    if value is False:
        return _("no")
    if isinstance(value, str) and value in ROLE_LABELS:
        return str(ROLE_LABELS[value])
    if isinstance(value, list):
        return ", ".join(describe(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {describe(item)}" for key, item in value.items())
    return str(value)


def changes(entry: trail.AuditEntry) -> list[tuple[str, str | None, str | None]]:
    """(field, before, after) for each field the entry names; None where a side has no value."""
    before, after = entry.before or {}, entry.after or {}
    keys = list(before) + [key for key in after if key not in before]
    return [(str(FIELD_LABELS.get(key, key)), describe(before[key]) if key in before else None,
             describe(after[key]) if key in after else None) for key in keys]


@bp.get("/audit")
@admin_required
def audit():
    actor_id, subject_id = _int_arg("person"), _int_arg("id")
    kind = request.args.get("kind", "").strip()[:40] or None
    page = trail.entries(db.session(), actor_id=actor_id, subject_kind=kind, subject_id=subject_id,
                         page=_int_arg("page") or 1)
    subjects = {entry.subject_id for entry in page.entries if entry.subject_kind == "user" and entry.subject_id}
    names = {user.id: user for user in db.session.scalars(select(User).where(User.id.in_(subjects)))}
    filters = {key: value for key, value in (("person", actor_id), ("kind", kind), ("id", subject_id))
               if value is not None}
    return render_template("staff/audit.html", page=page, actors=trail.actors(db.session()),
                           kinds=trail.subject_kinds(db.session()), filters=filters, actions=ACTION_LABELS,
                           kind_labels=KIND_LABELS, changes=changes, users=names, object_page=object_page)
