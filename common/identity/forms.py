"""The forms of sign-up, login and passwords, and the one-time token of
forms that create something. Field rules that need the database (a taken
email) are the services' and come back as AccountError."""

from __future__ import annotations

import secrets

from babel import Locale
from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Regexp

from billing.text import single_line
from common.identity.accounts import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, countries, normalise_email


def one_time_token() -> HiddenField:
    """The token a form that creates something is shown with: the service
    keys what it creates with it, so the same form sent twice (a double
    click, a reload) creates it once."""
    return HiddenField(validators=[Regexp(r"\A[0-9a-f]{32}\Z",
                                          message=_l("This form has expired: check it and send it again."))])


def draw_token(field: HiddenField) -> None:
    """A new token for the form shown, where none was sent or it was refused."""
    if field.errors or not field.data:
        field.data = secrets.token_hex(16)


def email_field(label=None) -> EmailField:
    return EmailField(
        label or _l("Email"),
        validators=[DataRequired(), Email(), Length(max=254)],
        filters=[lambda value: normalise_email(value) if value else value],
    )


def language_field() -> SelectField:
    """The person's language: each offered in its own name (how a reader
    looks for it), the page's own chosen until they pick another, so that a
    person reading French is not signed up, or let in, in English."""
    return SelectField(
        _l("Language"), validators=[DataRequired()], default=lambda: get_locale().language,
        choices=lambda: [(code, (Locale.parse(code).get_display_name(code) or code).capitalize())
                         for code in current_app.config["LANGUAGES"]],
    )


def new_password_fields(label) -> tuple[PasswordField, PasswordField]:
    password = PasswordField(
        label,
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH)],
        description=_l("At least %(min)d characters.", min=MIN_PASSWORD_LENGTH),
    )
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The two passwords differ."))],
    )
    return password, confirm


class SignupForm(FlaskForm):
    organisation = StringField(_l("Organisation"), validators=[DataRequired(), Length(max=200)], filters=[single_line],
                               description=_l("The company or association the support is for."))
    name = StringField(_l("Your name"), validators=[DataRequired(), Length(max=200)], filters=[single_line])
    email = email_field()
    password, confirm = new_password_fields(_l("Password"))
    language = language_field()
    country = SelectField(_l("Country"), validators=[DataRequired()])

    def __init__(self, *args, **kwargs) -> None:
        locale = get_locale()
        kwargs.setdefault("country", current_app.config["PROVIDER_COUNTRY"])
        super().__init__(*args, **kwargs)
        self.country.choices = countries(locale)


class LoginForm(FlaskForm):
    email = email_field()
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)])
    remember = BooleanField(_l("Keep me logged in on this device"))
    next = HiddenField()


class ForgotPasswordForm(FlaskForm):
    email = email_field(_l("The email you log in with"))


class ResetPasswordForm(FlaskForm):
    password, confirm = new_password_fields(_l("New password"))


class CodeForm(FlaskForm):
    code = StringField(_l("Code from your authenticator app"), validators=[DataRequired(), Length(max=12)],
                       description=_l("Six digits; a new one every 30 seconds."))


class ChangePasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)])
    password, confirm = new_password_fields(_l("New password"))


class InvoicingForm(FlaskForm):
    """What the account's invoices say besides its name and country; the
    rules (lines, the VAT ID per country) are billing.accounts'."""

    address = TextAreaField(_l("Postal address"), render_kw={"rows": 4},
                            description=_l("Street, postcode and town, as they should appear on the invoice."))
    vat_id = StringField(_l("VAT ID"), description=_l(
        "Optional: the intra-community or national VAT number, as it should appear on the invoice."))
