"""Settings: defaults, then a .env beside app.py, then the environment.

Every setting a deployment must get right is checked at start-up; a wrong one
stops the app with one line that says which and why (ConfigError)."""

from __future__ import annotations

import os
import secrets
import sys
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from argon2 import DEFAULT_MEMORY_COST, DEFAULT_PARALLELISM, DEFAULT_TIME_COST
from babel import Locale
from babel.numbers import list_currencies
from limits import parse_many
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

LANGUAGES = ("en", "fr", "es")
# The payment methods a deployment can offer (common.payments' providers).
PAYMENT_METHODS = ("transfer", "cheque", "card")
# The engines Forfait runs on (its tests cover both); any driver of theirs.
DATABASE_BACKENDS = ("sqlite", "postgresql")
# Groupings and placeholders that CLDR lists among its territories: not where an organisation can be.
NOT_COUNTRIES = frozenset({"EU", "EZ", "QO", "UN", "XA", "XB", "ZZ"})
BOOLEANS = {"1": True, "true": True, "yes": True, "on": True,
            "0": False, "false": False, "no": False, "off": False}


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names it."""


def defaults(instance_path: str) -> dict[str, Any]:
    return {
        "SQLALCHEMY_DATABASE_URI": "sqlite:///" + os.path.join(instance_path, "forfait.sqlite"),
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_TRANSLATION_DIRECTORIES": str(Path(__file__).resolve().parent.parent / "translations"),
        "LANGUAGES": LANGUAGES,
        "PROVIDER_NAME": "Forfait Demo Support",
        "PROVIDER_ADDRESS": "12 rue des Exemples\n75011 Paris\nFrance",
        "PROVIDER_EMAIL": "support@forfait.example",
        "PROVIDER_IBAN": "",
        "PROVIDER_CURRENCY": "EUR",
        "PROVIDER_VAT_RATE": "20.0",
        "PROVIDER_COUNTRY": "FR",
        # Printed on invoices; empty when the provider has none.
        "PROVIDER_VAT_ID": "",
        # How clients may pay, in the order the checkout offers them; card
        # is offered only once a Stripe key is set.
        "PAYMENT_METHODS": "transfer,cheque,card",
        # Cheques are made out to the payee and sent to the address
        # (default: the provider's name and address).
        "CHEQUE_PAYEE": "",
        "CHEQUE_ADDRESS": "",
        # An order awaiting a transfer or a cheque is reminded after N days
        # and cancelled after M.
        "TRANSFER_REMIND_DAYS": 7,
        "TRANSFER_CANCEL_DAYS": 14,
        "MAIL_SERVER": "",
        "MAIL_PORT": 25,
        "MAIL_USE_TLS": False,
        "MAIL_USERNAME": "",
        "MAIL_PASSWORD": "",
        "MAIL_DEFAULT_SENDER": "Forfait <no-reply@forfait.example>",
        "MAIL_FOLDER": os.path.join(instance_path, "mail"),
        # Try each queued message as soon as the action that queued it is
        # over; off, only `flask jobs run` delivers (billing.notifications.outbox).
        "MAIL_DELIVER_AT_ONCE": True,
        # Where "at once" happens for a request: a background thread of the
        # process (the answer never waits for SMTP), or, off, the request
        # itself before it answers (what some tests want).
        "MAIL_DELIVER_IN_BACKGROUND": True,
        # Seconds an SMTP exchange may take before the try fails and waits
        # for its retry.
        "MAIL_TIMEOUT": 10,
        # Days before a lot expires that its users are warned.
        "EXPIRY_WARNING_DAYS": 30,
        # Days before a subscription's period ends that the next one is ordered.
        "SUBSCRIPTION_RENEW_DAYS": 7,
        "STRIPE_SECRET_KEY": "",
        "STRIPE_PUBLISHABLE_KEY": "",
        "STRIPE_WEBHOOK_SECRET": "",
        # Where the stripe library sends its requests: tests point it at a
        # local server that answers like Stripe.
        "STRIPE_API_BASE": "https://api.stripe.com",
        "RATELIMIT_STORAGE_URI": "memory://",
        # Failed logins (common.identity.throttle): per email and address, and
        # per device cookie, with waits that grow; per address whatever the
        # email; per email from the addresses that failed on it. A known
        # device is held by none but the first.
        "LOGIN_RATE_LIMIT": "5 per minute; 20 per hour; 100 per day",
        "LOGIN_ADDRESS_RATE_LIMIT": "30 per minute; 300 per day",
        "LOGIN_ACCOUNT_RATE_LIMIT": "20 per hour; 100 per day",
        # Sign-ups and password-reset requests, per address (and per email for resets).
        "SIGNUP_RATE_LIMIT": "10 per hour",
        # Staff must set up a second factor (TOTP) before anything else.
        "STAFF_TOTP_REQUIRED": False,
        "TOKEN_MAX_AGE_HOURS": 24,
        # argon2's cost for password hashes: passes, memory in KiB, lanes
        # (argon2-cffi's defaults, RFC 9106's low-memory choice). Lower only
        # where hashing time matters more than guessing cost (the tests).
        "PASSWORD_HASH_TIME_COST": DEFAULT_TIME_COST,
        "PASSWORD_HASH_MEMORY_COST": DEFAULT_MEMORY_COST,
        "PASSWORD_HASH_PARALLELISM": DEFAULT_PARALLELISM,
        # Ticket attachments (billing.desk): stored outside the web root,
        # served only to who may see the ticket.
        "ATTACHMENT_FOLDER": os.path.join(instance_path, "attachments"),
        "ATTACHMENT_MAX_BYTES": 10_000_000,
        "ATTACHMENT_MAX_FILES": 5,
        # What the files of one account may take together.
        "ATTACHMENT_QUOTA_BYTES": 500_000_000,
        # The largest request body read; by default (None) every attachment
        # at its limit plus 1 MB for the form (normalise). Werkzeug answers a
        # bigger one 413 before it spools anything to disk.
        "MAX_CONTENT_LENGTH": None,
        "ATTACHMENT_TYPES": "image/png,image/jpeg,image/gif,application/pdf,text/plain,text/csv,application/zip",
        # How long a pool invitation's link works.
        "INVITATION_MAX_AGE_HOURS": 72,
        # How often an open dashboard asks whether the balance moved.
        "BALANCE_POLL_SECONDS": 3,
        # The public address every absolute link is built from (mail, PDF,
        # Stripe's return): FORFAIT_SERVER_NAME=support.example.com and
        # FORFAIT_PREFERRED_URL_SCHEME=https. Required outside development;
        # requests for any other host are refused (TRUSTED_HOSTS).
        "SERVER_NAME": None,
        "PREFERRED_URL_SCHEME": "http",
        # How many reverse proxies stand in front (each adds X-Forwarded-*);
        # 0 trusts no X-Forwarded-* header.
        "PROXY_COUNT": 0,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_HTTPONLY": True,
        # "Keep me logged in" lasts 30 days (Flask-Login's default is a year);
        # a login unused that long ends on the server too.
        "REMEMBER_COOKIE_DURATION": timedelta(days=30),
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "WTF_CSRF_TIME_LIMIT": None,
    }


def secret_key(instance_path: str) -> str:
    """The key from instance/secret_key, generated once when absent, so that
    sessions survive restarts without anybody having to invent a key."""
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def normalise(config: dict[str, Any]) -> None:
    """Turn environment strings into the types the app uses; raise ConfigError."""
    url = config.get("DATABASE_URL")
    if url:
        # Heroku-style URLs name the driver "postgres"; SQLAlchemy wants psycopg 3.
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                url = "postgresql+psycopg://" + url[len(prefix):]
        config["SQLALCHEMY_DATABASE_URI"] = url
    database(config["SQLALCHEMY_DATABASE_URI"], "DATABASE_URL" if url else "SQLALCHEMY_DATABASE_URI")

    if not config.get("SECRET_KEY") or len(str(config["SECRET_KEY"])) < 16:
        raise ConfigError("SECRET_KEY must be at least 16 characters")

    currency = str(config["PROVIDER_CURRENCY"]).upper()
    if currency not in list_currencies():
        raise ConfigError(f"PROVIDER_CURRENCY {currency!r} is not an ISO 4217 currency code")
    config["PROVIDER_CURRENCY"] = currency

    try:
        vat = Decimal(str(config["PROVIDER_VAT_RATE"]).replace(",", "."))
    except InvalidOperation:
        raise ConfigError(f"PROVIDER_VAT_RATE {config['PROVIDER_VAT_RATE']!r} is not a percentage") from None
    if not vat.is_finite() or not 0 <= vat < 100 or (vat * 100) % 1:
        raise ConfigError("PROVIDER_VAT_RATE must be between 0 and 100, with at most two decimals")
    # Stored as basis points so that VAT arithmetic stays in integers.
    config["PROVIDER_VAT_RATE_BP"] = int(vat * 100)

    iban = str(config.get("PROVIDER_IBAN") or "").strip()
    if iban:
        try:
            config["PROVIDER_IBAN"] = IBAN(iban).compact
        except SchwiftyException as error:
            raise ConfigError(f"PROVIDER_IBAN is not a valid IBAN: {error}") from None

    country = str(config["PROVIDER_COUNTRY"]).upper()
    if len(country) != 2 or country in NOT_COUNTRIES or country not in Locale("en").territories:
        raise ConfigError(f"PROVIDER_COUNTRY {country!r} is not an ISO 3166 country code")
    config["PROVIDER_COUNTRY"] = country

    methods = config["PAYMENT_METHODS"]
    if isinstance(methods, str):
        methods = [name.strip() for name in methods.split(",") if name.strip()]
    unknown = sorted(set(methods) - set(PAYMENT_METHODS))
    if unknown:
        raise ConfigError(f"PAYMENT_METHODS: unknown method {unknown[0]!r} (known: {', '.join(PAYMENT_METHODS)})")
    config["PAYMENT_METHODS"] = tuple(methods)
    config["CHEQUE_PAYEE"] = config["CHEQUE_PAYEE"] or config["PROVIDER_NAME"]
    config["CHEQUE_ADDRESS"] = config["CHEQUE_ADDRESS"] or config["PROVIDER_ADDRESS"]

    types = config["ATTACHMENT_TYPES"]
    if isinstance(types, str):
        types = [name.strip().lower() for name in types.split(",") if name.strip()]
    config["ATTACHMENT_TYPES"] = frozenset(types)
    for key in ("MAIL_PORT", "MAIL_TIMEOUT", "TOKEN_MAX_AGE_HOURS", "TRANSFER_REMIND_DAYS", "TRANSFER_CANCEL_DAYS",
                "ATTACHMENT_MAX_BYTES", "ATTACHMENT_MAX_FILES", "ATTACHMENT_QUOTA_BYTES", "INVITATION_MAX_AGE_HOURS",
                "BALANCE_POLL_SECONDS", "EXPIRY_WARNING_DAYS", "SUBSCRIPTION_RENEW_DAYS",
                "MAX_CONTENT_LENGTH", "PASSWORD_HASH_TIME_COST", "PASSWORD_HASH_MEMORY_COST",
                "PASSWORD_HASH_PARALLELISM", "PROXY_COUNT"):
        if key == "MAX_CONTENT_LENGTH" and config[key] in (None, ""):
            config[key] = config["ATTACHMENT_MAX_BYTES"] * config["ATTACHMENT_MAX_FILES"] + 1_000_000
        try:
            config[key] = int(config[key])
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a whole number") from None
    if not 1 <= config["TRANSFER_REMIND_DAYS"] < config["TRANSFER_CANCEL_DAYS"]:
        raise ConfigError("TRANSFER_REMIND_DAYS must be at least 1 and less than TRANSFER_CANCEL_DAYS")
    if config["PASSWORD_HASH_TIME_COST"] < 1 or config["PASSWORD_HASH_PARALLELISM"] < 1:
        raise ConfigError("PASSWORD_HASH_TIME_COST and PASSWORD_HASH_PARALLELISM must be at least 1")
    if config["PASSWORD_HASH_MEMORY_COST"] < 8 * config["PASSWORD_HASH_PARALLELISM"]:
        raise ConfigError("PASSWORD_HASH_MEMORY_COST must be at least 8 KiB per lane (PASSWORD_HASH_PARALLELISM)")
    if not isinstance(config["REMEMBER_COOKIE_DURATION"], timedelta):
        try:
            config["REMEMBER_COOKIE_DURATION"] = timedelta(seconds=int(config["REMEMBER_COOKIE_DURATION"]))
        except (TypeError, ValueError):
            raise ConfigError("REMEMBER_COOKIE_DURATION must be a whole number of seconds") from None
    for key in ("MAIL_USE_TLS", "MAIL_DELIVER_AT_ONCE", "MAIL_DELIVER_IN_BACKGROUND", "STAFF_TOTP_REQUIRED"):
        config[key] = boolean(key, config[key])

    # flask-limiter logs a limit it cannot parse and lets every request through:
    # a typo here would switch off the brake on password guessing.
    for key in ("LOGIN_RATE_LIMIT", "LOGIN_ADDRESS_RATE_LIMIT", "LOGIN_ACCOUNT_RATE_LIMIT", "SIGNUP_RATE_LIMIT"):
        limit = config[key]
        try:
            parse_many(limit)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} {limit!r} is not a rate limit (such as '10 per minute')") from None


def several_processes() -> bool:
    """Whether this process is likely one of several serving the app: gunicorn
    or uWSGI, or WEB_CONCURRENCY (the worker count they read) above 1."""
    try:
        workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    except ValueError:
        workers = 1
    return workers > 1 or "gunicorn" in sys.modules or "uwsgi" in sys.modules


def public_address(config: dict[str, Any], *, development: bool) -> None:
    """Check SERVER_NAME and PREFERRED_URL_SCHEME, the public address links
    are built from, and derive what follows from it: the only host requests
    may name (TRUSTED_HOSTS) and cookies sent over https only when it is https."""
    server = str(config.get("SERVER_NAME") or "").strip()
    scheme = str(config.get("PREFERRED_URL_SCHEME") or "http").strip().lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"PREFERRED_URL_SCHEME {scheme!r} must be http or https")
    config["PREFERRED_URL_SCHEME"] = scheme
    if not server:
        if not development:
            raise ConfigError("FORFAIT_SERVER_NAME must be set to the public host name (such as support.example.com): "
                              "every link in mail and PDFs is built from it")
        config["SERVER_NAME"] = None
        return
    if "/" in server or any(c.isspace() for c in server) or server.startswith(":"):
        raise ConfigError(f"FORFAIT_SERVER_NAME {server!r} is a host name and optional port, such as "
                          "support.example.com (the scheme goes in FORFAIT_PREFERRED_URL_SCHEME)")
    config["SERVER_NAME"] = server
    if config.get("TRUSTED_HOSTS") is None:
        config["TRUSTED_HOSTS"] = [server]
    if scheme == "https":
        config["SESSION_COOKIE_SECURE"] = config["REMEMBER_COOKIE_SECURE"] = True


def database(url: Any, key: str) -> None:
    """Refuse a URL SQLAlchemy cannot read or an engine Forfait does not run on.
    The message never quotes the URL: it may hold a password."""
    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, TypeError, ValueError):
        raise ConfigError(f"{key} is not a database URL (such as postgresql://user@host/forfait)") from None
    if backend not in DATABASE_BACKENDS:
        raise ConfigError(f"{key}: {backend!r} is not a supported database ({' or '.join(DATABASE_BACKENDS)})")


def boolean(key: str, value: Any) -> bool:
    """True or False from a setting; anything but the usual spellings is refused
    rather than read as False."""
    if isinstance(value, bool):
        return value
    spelling = str(value).strip().lower()
    if spelling not in BOOLEANS:
        raise ConfigError(f"{key} {value!r} is not a boolean (1/0, true/false, yes/no, on/off)")
    return BOOLEANS[spelling]
