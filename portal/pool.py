"""The people of an account's pool: the list, the owner's invitations (a
link by email that expires) and removals, and the page where an invited
person accepts. A removed user is refused from their next request on
(common.identity.access.load_user)."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from billing import clock
from billing.accounts.models import User
from billing.desk import services as desk
from billing.desk.models import Invitation
from billing.ledger import services as ledger
from billing.text import single_line
from common.config import LANGUAGES
from common.extensions import db
from common.identity import accounts, sessions
from common.identity.access import INVALID, owner_required
from common.identity.forms import email_field, language_field, new_password_fields
from common.mail import delivery

bp = Blueprint("pool", __name__)

ROLE_LABELS = {"owner": _l("Owner"), "member": _l("Member")}



class InviteForm(FlaskForm):
    email = email_field()
    role = SelectField(_l("Role"),
                       choices=[SelectChoice("member", ROLE_LABELS["member"]),
                                SelectChoice("owner", ROLE_LABELS["owner"])],
                       default="member",
                       description=_l("Owners also invite and remove people and answer overage requests."))


class AcceptForm(FlaskForm):
    name = StringField(_l("Your name"), validators=[DataRequired(), Length(max=200)], filters=[single_line])
    password, confirm = new_password_fields(_l("Choose a password"))
    language = language_field()


def get_member(user_id: int) -> User:
    """A person of the current owner's account; 404 for anybody else."""
    user = db.session.get(User, user_id)
    if user is None or user.account_id != current_user.account_id or user.removed_at is not None:
        abort(404)
    return user


def get_invitation(invitation_id: int) -> Invitation:
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None or invitation.account_id != current_user.account_id:
        abort(404)
    return invitation


def _page(form: InviteForm | None = None, status: int = 200):
    account = current_user.account
    return render_template("portal/people.html", account=account, people=desk.pool(db.session(), account),
                           invitations=desk.invitations(db.session(), account, now=clock.now()),
                           form=form or InviteForm(formdata=None), roles=ROLE_LABELS), status


@bp.get("/portal/people")
@login_required
def index():
    if current_user.is_staff:
        abort(404)
    return _page()


@bp.post("/portal/people/invitations")
@owner_required
def invite():
    form = InviteForm()
    if not form.validate_on_submit():
        return _page(form, INVALID)
    max_age = timedelta(hours=current_app.config["INVITATION_MAX_AGE_HOURS"])
    try:
        invitation, token = desk.invite(db.session(), current_user.account, current_user._get_current_object(),
                                        form.email.data, form.role.data, now=clock.now(), max_age=max_age)
    except desk.DeskError as error:
        form.email.errors = [*form.email.errors, _(error.message, **error.params)]
        return _page(form, INVALID)
    if not delivery.deliver_now(delivery.queued(f"invitation:{invitation.id}")):
        flash(_("The invitation is saved but the email could not be sent just now: we will try again shortly."),
              "error")
    else:
        flash(_("Invitation sent to %(email)s. The link works for %(hours)d hours.", email=invitation.email,
                hours=current_app.config["INVITATION_MAX_AGE_HOURS"]), "success")
    return redirect(url_for("pool.index"))


@bp.post("/portal/people/invitations/<int:invitation_id>/revoke")
@owner_required
def revoke(invitation_id: int):
    invitation = get_invitation(invitation_id)
    desk.revoke(db.session(), invitation, by=current_user._get_current_object(), now=clock.now())
    if invitation.accepted_at is not None:
        # Accepted while the owner's page was open: too late to withdraw.
        flash(_("%(email)s already accepted this invitation: remove them from the list if they should not be "
                "here.", email=invitation.email), "error")
    else:
        flash(_("The invitation to %(email)s is withdrawn.", email=invitation.email), "success")
    return redirect(url_for("pool.index"))


@bp.post("/portal/people/<int:user_id>/remove")
@owner_required
def remove(user_id: int):
    user = get_member(user_id)
    try:
        desk.remove_user(db.session(), current_user.account, user, by=current_user._get_current_object(),
                         now=clock.now())
    except desk.DeskError as error:
        flash(_(error.message, **error.params), "error")
    except ledger.NotAllowed:
        abort(404)
    else:
        flash(_("%(name)s no longer has access to this account.", name=user.name), "success")
    return redirect(url_for("pool.index"))


@bp.route("/invitations/<token>", methods=["GET", "POST"])
def accept(token: str):
    now = clock.now()
    try:
        invitation = desk.invitation_for(db.session(), token, now=now)
    except desk.InvitationInvalid as error:
        messages = {
            "expired": _("This invitation has expired: ask for a new one."),
            "accepted": _("This invitation was already accepted. Log in with your email and password."),
            "revoked": _("This invitation was withdrawn."),
        }
        return render_template("auth/bad_link.html", title=_("This link is not valid"),
                               message=messages.get(error.reason, _("It was not copied completely.")),
                               label=_("Log in"), where=url_for("auth.login")), 400
    if current_user.is_authenticated and current_user.email != invitation.email:
        return render_template("portal/invitation.html", invitation=invitation, form=None, other=True), 409
    existing = db.session.scalar(db.select(User).where(User.email == invitation.email))
    if existing is not None and existing.account_id != invitation.account_id:
        # The owner was not told this address has access elsewhere; the invitee is, here.
        return render_template("portal/invitation.html", invitation=invitation, form=None, other=False,
                               elsewhere=True)
    form = AcceptForm()
    # Someone removed before comes back with their own password: nothing to fill in.
    ready = form.is_submitted() and form.csrf_token.validate(form) if existing is not None \
        else form.validate_on_submit()
    if ready:
        try:
            user = desk.accept(db.session(), token, now=now, new_user=lambda inv: accounts.new_user(
                inv.email, form.name.data, form.password.data, form.language.data
                if form.language.data in LANGUAGES else "en"))
        except accounts.AccountError as error:
            form[error.field].errors = [*form[error.field].errors, error.message]
        except desk.DeskError as error:
            form.name.errors = [*form.name.errors, _(error.message, **error.params)]
        else:
            sessions.log_in(user)
            flash(_("Welcome to %(account)s.", account=user.client_account.name), "success")
            return redirect(url_for("portal.home"))
    status = INVALID if form.errors else 200
    return render_template("portal/invitation.html", invitation=invitation, form=form, other=False,
                           returning=existing is not None), status
