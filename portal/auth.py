"""Sign-up, login, logout, password reset and email verification: the pages.
Who may see what is common.identity.access."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_login import current_user, login_required

from common.extensions import db, limiter
from common.identity import accounts, sessions, throttle
from common.identity.access import INVALID, send_verification
from common.identity.forms import ChangePasswordForm, ForgotPasswordForm, LoginForm, ResetPasswordForm, SignupForm
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
        try:
            user = accounts.register(db.session(), form.organisation.data, form.name.data, form.email.data,
                                     form.password.data, form.language.data, form.country.data)
        except accounts.EmailTaken as taken:
            # The page must not tell who has an account: the address is told instead.
            accounts.queue_already_registered(taken.email)
        except accounts.AccountError as error:
            form[error.field].errors.append(error.message)
        else:
            accounts.queue_verification(user, back)
        if not form.errors:
            # The same page whether the address was new or not; the link in the mail logs in.
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
            form.password.errors.append(_("Too many failed attempts: try again in %(wait)s.",
                                          wait=format_timedelta(timedelta(seconds=wait), threshold=1)))
            return render_template("auth/login.html", form=form), 429
        user = accounts.authenticate(db.session(), form.email.data, form.password.data)
        if user is not None:
            throttle.get().succeeded(attempt)
            sessions.log_in(user, remember=form.remember.data)
            response = redirect(target)
            throttle.remember_device(response, attempt)
            return response
        throttle.get().failed(attempt)
        # One message for an unknown email and a wrong password: the form
        # must not tell who has an account.
        form.password.errors.append(_("Wrong email or password."))
    return render_template("auth/login.html", form=form), INVALID if form.errors else 200


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
    logins = sessions.running(db.session(), user, max_idle=sessions.max_idle())
    return render_template("auth/security.html", form=form, logins=logins,
                           this_login=g.get("login_session_id")), INVALID if form.errors else 200


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
    return render_template("auth/reset_password.html", form=form, user=user), INVALID if form.errors else 200


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
