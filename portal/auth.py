"""Sign-up, login, logout, password reset and email verification: the pages.
Who may see what is common.identity.access."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_login import current_user, login_required

from billing.accounts.models import User
from common.extensions import db, limiter
from common.identity import accounts, second_factor, sessions, staff, throttle
from common.identity.access import INVALID, admin_required, send_verification, staff_required
from common.identity.forms import (
    ChangePasswordForm,
    CodeForm,
    ForgotPasswordForm,
    LoginForm,
    ResetPasswordForm,
    SignupForm,
)
from common.mail import delivery
from common.safety import safe_next

bp = Blueprint("auth", __name__)

# ------------------------------------------------------------ rate limits

# Logins count their failures (common.identity.throttle); what sends mail or
# creates an account is limited per address, and a reset per email as well.

def _requests_limit() -> str:
    return current_app.config["SIGNUP_RATE_LIMIT"]


def _submitted_email() -> str:
    return "email:" + accounts.normalise_email(request.form.get("email", ""))


def _per_address(view: Callable) -> Callable:
    return limiter.limit(_requests_limit, methods=["POST"])(view)


def _per_address_and_email(view: Callable) -> Callable:
    per_email = limiter.limit(_requests_limit, methods=["POST"], key_func=_submitted_email)
    return _per_address(per_email(view))


# ------------------------------------------------------------ views

@bp.route("/signup", methods=["GET", "POST"])
@_per_address
def signup():
    # Where the person was going (the trial): back there after signing up,
    # and after following the verification link.
    back = safe_next(request.values.get("next"), "") or None
    if current_user.is_authenticated:
        return redirect(back or url_for("portal.home"))
    form = SignupForm()
    if form.validate_on_submit():
        # The page must not tell who has an account: the same answer, with the
        # same work before it, whether the address is new or not. The account
        # (or the mail to the address's owner) is made after the answer; the
        # link in the mail logs in.
        fields = (form.organisation.data, form.name.data, form.email.data, form.password.data, form.language.data,
                  form.country.data)
        delivery.after_answer(lambda: accounts.sign_up(db.session(), *fields, next=back))
        session["signup_email"] = form.email.data
        return redirect(url_for("auth.signup_sent"))
    return render_template("auth/signup.html", form=form, next=back), INVALID if form.errors else 200


@bp.get("/signup/sent")
def signup_sent():
    email = session.get("signup_email")
    if not email:
        return redirect(url_for("auth.signup"))
    return render_template("auth/signup_sent.html", email=email, hours=current_app.config["TOKEN_MAX_AGE_HOURS"])


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm(next=request.args.get("next"))
    target = safe_next(form.next.data, url_for("portal.home"))
    if current_user.is_authenticated:
        return redirect(target)
    if form.validate_on_submit():
        attempt = throttle.attempt(form.email.data)
        wait = throttle.get().refused(attempt)
        if wait is not None:
            # Checked before the password: a guess past the limit learns nothing.
            second_factor.record(form.email.data, accounts.find_user(db.session(), form.email.data),
                                 "throttled")
            form.password.errors.append(_("Too many failed attempts: try again in %(wait)s.",
                                          wait=format_timedelta(timedelta(seconds=wait), threshold=1)))
            return render_template("auth/login.html", form=form), 429
        user = accounts.authenticate(db.session(), form.email.data, form.password.data)
        if user is not None:
            throttle.get().succeeded(attempt)
            if user.totp_secret:
                # The password was right; the login waits for the code.
                session["second_factor"] = {"user": user.id, "email": form.email.data, "at": time.time(),
                                            "remember": bool(form.remember.data), "next": target}
                return redirect(url_for("auth.login_code"))
            second_factor.record(form.email.data, user, "login")
            sessions.log_in(user, remember=form.remember.data)
            response = redirect(target)
            throttle.remember_device(response, attempt)
            return response
        throttle.get().failed(attempt)
        second_factor.record(form.email.data, accounts.find_user(db.session(), form.email.data),
                             "wrong password")
        # One message for an unknown email and a wrong password: the form
        # must not tell who has an account.
        form.password.errors.append(_("Wrong email or password."))
    return render_template("auth/login.html", form=form), INVALID if form.errors else 200


# How long the code step waits after the password.
CODE_STEP_SECONDS = 300


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():
    pending: dict = session.get("second_factor") or {}
    user = db.session().get(User, pending["user"]) if pending else None
    if user is None or not user.totp_secret or time.time() - pending["at"] > CODE_STEP_SECONDS:
        session.pop("second_factor", None)
        flash(_("Please log in again."), "info")
        return redirect(url_for("auth.login"))
    form = CodeForm()
    if form.validate_on_submit():
        attempt = throttle.attempt(pending["email"])
        wait = throttle.get().refused(attempt)
        if wait is not None:
            second_factor.record(pending["email"], user, "throttled")
            form.code.errors.append(_("Too many failed attempts: try again in %(wait)s.",
                                      wait=format_timedelta(timedelta(seconds=wait), threshold=1)))
            return render_template("auth/login_code.html", form=form), 429
        if second_factor.check(db.session(), user, form.code.data):
            session.pop("second_factor", None)
            second_factor.record(pending["email"], user, "login")
            sessions.log_in(user, remember=pending["remember"])
            response = redirect(safe_next(pending["next"], url_for("portal.home")))
            throttle.remember_device(response, attempt)
            return response
        throttle.get().failed(attempt)
        second_factor.record(pending["email"], user, "wrong code")
        form.code.errors.append(_("This code is not right, or it was used already: wait for the next one."))
    return render_template("auth/login_code.html", form=form), INVALID if form.errors else 200


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        sessions.log_out(current_user)
    flash(_("You are logged out."), "success")
    return redirect(url_for("shop.catalogue"))


@bp.route("/account/security", methods=["GET", "POST"])
@login_required
def security():
    """Password and logins: where this user is logged in, "log out
    everywhere", and a new password (the current one required)."""
    user = current_user._get_current_object()
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            accounts.change_password(db.session(), user, form.current.data, form.password.data)
        except accounts.AccountError as error:
            form[error.field].errors.append(error.message)
        else:
            # Every login ended with the old password; this browser goes on as a new one.
            remembered = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
            sessions.log_in(user, remember=remembered)
            flash(_("Your password is changed. You are logged out everywhere else."), "success")
            return redirect(url_for("auth.security"))
    return _security_page(user, form=form)


def _security_page(user: User, *, form=None, code_form=None, status: int = 200):
    logins = sessions.running(db.session(), user, max_idle=sessions.max_idle())
    enrolling = session.get("totp_enrol") if user.is_staff and not user.totp_secret else None
    qr = second_factor.qr_data_uri(second_factor.provisioning_uri(user, enrolling)) if enrolling else None
    form = form or ChangePasswordForm(formdata=None)
    status = INVALID if form.errors else status
    return render_template("auth/security.html", form=form, logins=logins, this_login=g.get("login_session_id"),
                           code_form=code_form or CodeForm(formdata=None), enrolling=enrolling, qr=qr,
                           totp_required=current_app.config["STAFF_TOTP_REQUIRED"]), status


@bp.post("/account/security/second-factor/start")
@staff_required
def second_factor_start():
    if not current_user.totp_secret:
        session["totp_enrol"] = second_factor.new_secret()
    return redirect(url_for("auth.security") + "#second-factor")


@bp.post("/account/security/second-factor/confirm")
@staff_required
def second_factor_confirm():
    user = current_user._get_current_object()
    form = CodeForm()
    secret = session.get("totp_enrol")
    if secret and form.validate_on_submit():
        if second_factor.enable(db.session(), user, secret, form.code.data):
            session.pop("totp_enrol", None)
            flash(_("The second factor is on: each login will ask for a code from your app."), "success")
            return redirect(url_for("auth.security"))
        form.code.errors.append(_("This code is not right: check the time on your phone, and type the code shown now."))
    return _security_page(user, code_form=form, status=INVALID)


@bp.post("/account/security/second-factor/off")
@staff_required
def second_factor_off():
    user = current_user._get_current_object()
    form = CodeForm()
    if current_app.config["STAFF_TOTP_REQUIRED"]:
        abort(403)
    if form.validate_on_submit() and second_factor.check(db.session(), user, form.code.data):
        second_factor.disable(db.session(), user)
        flash(_("The second factor is off."), "success")
        return redirect(url_for("auth.security"))
    form.code.errors.append(_("This code is not right, or it was used already: wait for the next one."))
    return _security_page(user, code_form=form, status=INVALID)


# What a staff member who must set up a second factor may still open.
BEFORE_SECOND_FACTOR = {"auth.security", "auth.second_factor_start", "auth.second_factor_confirm", "auth.logout",
                        "auth.logout_everywhere", "static", "i18n.set_language"}


@bp.before_app_request
def second_factor_first():
    """STAFF_TOTP_REQUIRED: staff without a second factor set it up before anything else."""
    if request.endpoint is None or request.endpoint in BEFORE_SECOND_FACTOR:
        return None
    if current_user.is_authenticated and second_factor.required(current_user):
        flash(_("Set up a second factor to go on: your role requires it."), "info")
        return redirect(url_for("auth.security") + "#second-factor")
    return None


@bp.get("/portal/staff/logins")
@admin_required
def staff_logins():
    """Staff logins and failed logins: who, when, from where. Admins', like the
    audit log: where colleagues log in from is not an agent's to read."""
    return render_template("auth/staff_logins.html", events=second_factor.recent(db.session()))


@bp.post("/account/security/logout-everywhere")
@login_required
def logout_everywhere():
    sessions.end_all(db.session(), current_user)
    sessions.log_out(current_user)
    flash(_("You are logged out everywhere, in this browser too."), "success")
    return redirect(url_for("auth.login"))


@bp.route("/password/forgot", methods=["GET", "POST"])
@_per_address_and_email
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        email = form.email.data
        # The lookup and the mail happen off the request: the answer takes as
        # long whether an account uses the address or not.
        delivery.after_answer(lambda: accounts.queue_password_reset(email))
        flash(_("If an account uses %(email)s, we have sent it a link to choose a new password. "
                "The link works once, within %(hours)d hours.",
                email=form.email.data, hours=current_app.config["TOKEN_MAX_AGE_HOURS"]), "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot_password.html", form=form), INVALID if form.errors else 200


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    try:
        user = accounts.user_for_token(db.session(), token, accounts.RESET)
    except accounts.TokenError as error:
        return _bad_link(error, _("Ask for a new link"), url_for("auth.forgot_password"))
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            accounts.set_password(db.session(), user, form.password.data)
        except accounts.AccountError as error:
            form[error.field].errors.append(error.message)
        else:
            flash(_("Your password is changed. You can log in with it now."), "success")
            return redirect(url_for("auth.login"))
    # An invited staff member chooses their first password (common.identity.staff).
    return render_template("auth/reset_password.html", form=form, user=user, first=staff.invited(user)), (
        INVALID if form.errors else 200)


@bp.get("/verify/<token>")
def verify_email(token: str):
    try:
        user = accounts.user_for_token(db.session(), token, accounts.VERIFY)
    except accounts.TokenError as error:
        # The account page tells whether the address is verified and offers a new link if not.
        return _bad_link(error, _("Go to your account"), url_for("portal.home"))
    accounts.mark_email_verified(db.session(), user)
    if not (current_user.is_authenticated and current_user.id == user.id) and user.removed_at is None:
        # The link proves the address, once: it is how a new account is first opened.
        sessions.log_in(user)
    flash(_("Thank you: %(email)s is verified.", email=user.email), "success")
    return redirect(safe_next(request.args.get("next"), url_for("portal.home")))


@bp.post("/verify/resend")
@login_required
@limiter.limit(_requests_limit)
def resend_verification():
    if current_user.email_verified_at is not None:
        flash(_("Your email address is already verified."), "success")
    back = safe_next(request.form.get("next"), "") or None
    if current_user.email_verified_at is None:
        send_verification(current_user, back)
    return redirect(back or url_for("portal.home"))


def _bad_link(error: accounts.TokenError, label: str, where: str):
    if isinstance(error, accounts.TokenExpired):
        title = _("This link has expired")
        message = _("For your security, links we send by email work for %(hours)d hours.",
                    hours=current_app.config["TOKEN_MAX_AGE_HOURS"])
    else:
        title = _("This link is not valid")
        message = _("It has already been used, or it was not copied completely.")
    return render_template("auth/bad_link.html", title=title, message=message, label=label, where=where), 400
