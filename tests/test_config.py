"""Start-up configuration: a wrong setting stops the app with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def flask(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run the real `flask --app app` command with a clean instance folder."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PROVIDER_", "MAIL_", "STRIPE_"))}
    environ.pop("SECRET_KEY", None)
    environ.pop("DATABASE_URL", None)
    # Outside development the public address is required; a test that is about it says otherwise.
    environ.update({"FORFAIT_INSTANCE_PATH": str(tmp_path / "instance"), "FORFAIT_SERVER_NAME": "forfait.example",
                    **env})
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60,
    )


def start_up_error(tmp_path: Path, monkeypatch, **env: str) -> str:
    """What create_app stops with when `flask` starts it from this environment
    (the environment flask() gives), in this process: a process costs a
    second or two of start-up, and test_the_command_prints_the_line_alone_and_fails
    shows what the process makes of it."""
    from app import create_app

    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("PROVIDER_", "MAIL_", "STRIPE_")) and k not in ("SECRET_KEY", "DATABASE_URL")}
    environ.update({"FORFAIT_INSTANCE_PATH": str(tmp_path / "instance"), "FORFAIT_SERVER_NAME": "forfait.example",
                    **env})
    # A copy: what create_app reads, and what a .env would add, stay in this test.
    monkeypatch.setattr(os, "environ", environ)
    with pytest.raises(SystemExit) as stopped:
        create_app()
    return str(stopped.value)


def test_secret_key_is_generated_once_into_the_instance_folder(tmp_path):
    first = flask(tmp_path, "routes")
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "instance" / "secret_key"
    key = key_file.read_text()
    assert len(key) >= 32
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    flask(tmp_path, "routes")
    assert key_file.read_text() == key


def test_default_database_is_sqlite_in_the_instance_folder(tmp_path):
    result = flask(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "instance" / "forfait.sqlite").exists()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("PROVIDER_IBAN", "FR76 3000 6000 0112 3456 7890 188", "PROVIDER_IBAN is not a valid IBAN"),
        ("PROVIDER_CURRENCY", "EURO", "PROVIDER_CURRENCY 'EURO' is not an ISO 4217 currency code"),
        ("PROVIDER_VAT_RATE", "twenty", "PROVIDER_VAT_RATE 'twenty' is not a percentage"),
        ("PROVIDER_VAT_RATE", "120", "PROVIDER_VAT_RATE must be between 0 and 100"),
        ("PROVIDER_COUNTRY", "XX", "PROVIDER_COUNTRY 'XX' is not an ISO 3166 country code"),
        ("SECRET_KEY", "short", "SECRET_KEY must be at least 16 characters"),
        ("MAIL_PORT", "smtp", "MAIL_PORT must be a whole number"),
        ("DATABASE_URL", "nonsense://", "DATABASE_URL: 'nonsense' is not a supported database (sqlite or postgresql)"),
        ("DATABASE_URL", "mysql://u@db.example/forfait", "DATABASE_URL: 'mysql' is not a supported database"),
        ("DATABASE_URL", "db.example/forfait", "DATABASE_URL is not a database URL"),
        ("MAIL_USE_TLS", "maybe", "MAIL_USE_TLS 'maybe' is not a boolean (1/0, true/false, yes/no, on/off)"),
        ("MAIL_DELIVER_AT_ONCE", "sometimes", "MAIL_DELIVER_AT_ONCE 'sometimes' is not a boolean"),
        ("PROVIDER_COUNTRY", "ZZ", "PROVIDER_COUNTRY 'ZZ' is not an ISO 3166 country code"),
        ("PROVIDER_COUNTRY", "eu", "PROVIDER_COUNTRY 'EU' is not an ISO 3166 country code"),
        ("PROVIDER_COUNTRY", "QO", "PROVIDER_COUNTRY 'QO' is not an ISO 3166 country code"),
        ("PROVIDER_COUNTRY", "XA", "PROVIDER_COUNTRY 'XA' is not an ISO 3166 country code"),
        # A limit flask-limiter cannot parse would switch login rate limiting off.
        ("LOGIN_RATE_LIMIT", "garbage", "LOGIN_RATE_LIMIT 'garbage' is not a rate limit (such as '10 per minute')"),
        ("LOGIN_RATE_LIMIT", "", "LOGIN_RATE_LIMIT '' is not a rate limit"),
    ],
)
def test_an_invalid_setting_stops_start_up_with_one_clear_line(tmp_path, monkeypatch, setting, value, message):
    line = start_up_error(tmp_path, monkeypatch, **{setting: value})
    assert "\n" not in line, line
    assert line.startswith("forfait: configuration error: ")
    assert message in line


def test_the_command_prints_the_line_alone_and_fails(tmp_path, monkeypatch):
    """What the operator sees of the line above: it alone on stderr, and a failed exit."""
    result = flask(tmp_path, "routes", PROVIDER_VAT_RATE="twenty")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [start_up_error(tmp_path, monkeypatch, PROVIDER_VAT_RATE="twenty")]


def test_valid_provider_settings_are_normalised(tmp_path):
    from app import create_app

    app = create_app(
        {
            "SECRET_KEY": "x" * 32, "SERVER_NAME": "forfait.example",
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "PROVIDER_IBAN": "ch93 0076 2011 6238 5295 7",
            "PROVIDER_CURRENCY": "chf",
            "PROVIDER_VAT_RATE": "8,1",
            "PROVIDER_COUNTRY": "ch",
        }
    )
    assert app.config["PROVIDER_IBAN"] == "CH9300762011623852957"
    assert app.config["PROVIDER_CURRENCY"] == "CHF"
    assert app.config["PROVIDER_VAT_RATE_BP"] == 810
    assert app.config["PROVIDER_COUNTRY"] == "CH"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("0", False), ("TRUE", True), ("false", False), ("Yes", True), ("no", False),
     ("on", True), ("OFF", False), (" true ", True), (True, True), (False, False)],
)
def test_booleans_accept_the_usual_spellings(value, expected):
    from app import create_app

    app = create_app({"SECRET_KEY": "x" * 32, "SERVER_NAME": "forfait.example", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "MAIL_USE_TLS": value, "MAIL_DELIVER_AT_ONCE": value})
    assert app.config["MAIL_USE_TLS"] is expected
    assert app.config["MAIL_DELIVER_AT_ONCE"] is expected


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///forfait.sqlite", "sqlite+pysqlite:///forfait.sqlite",
     "postgresql+psycopg://u@db.example/forfait"],
)
def test_sqlite_and_postgresql_urls_with_or_without_a_driver_are_accepted(url):
    from app import create_app

    app = create_app({"SECRET_KEY": "x" * 32, "SERVER_NAME": "forfait.example", "DATABASE_URL": url})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == url


def test_the_database_url_never_reaches_the_error_line(tmp_path):
    """The line goes to logs; the URL may hold a password."""
    result = flask(tmp_path, "routes", DATABASE_URL="mysql://forfait:s3cret@db.example/forfait")
    assert result.returncode != 0
    assert "s3cret" not in result.stderr


def test_database_url_from_the_environment_selects_psycopg(tmp_path):
    from app import create_app

    app = create_app({"SECRET_KEY": "x" * 32, "SERVER_NAME": "forfait.example", "DATABASE_URL": "postgres://u@db.example/forfait"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db.example/forfait"


def test_money_keeps_a_currency_code_apart_from_the_digits(app):
    """CLDR's currency spacing, which Babel leaves out: "CHF 950.00", never "CHF950.00"."""
    from flask_babel import force_locale

    from common.i18n import money

    with app.test_request_context():
        with force_locale("en"):
            assert money(95000, "CHF") == "CHF\u00a0950.00"
            assert money(95000, "EUR") == "€950.00"
        with force_locale("fr"):
            assert money(150000, "CHF") == "1\u202f500,00\u00a0CHF"


@pytest.mark.parametrize("settings, limit", [
    ({}, 10_000_000 * 5 + 1_000_000),
    ({"ATTACHMENT_MAX_BYTES": "2000000", "ATTACHMENT_MAX_FILES": "3"}, 2_000_000 * 3 + 1_000_000),
    ({"MAX_CONTENT_LENGTH": "123456"}, 123_456),
])
def test_the_request_size_limit_follows_the_attachment_settings(settings, limit):
    from app import create_app

    app = create_app({"SECRET_KEY": "x" * 32, "SERVER_NAME": "forfait.example", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      **settings})
    assert app.config["MAX_CONTENT_LENGTH"] == limit


def test_password_hashes_cost_what_the_settings_say_and_argon2s_defaults_unless_set():
    from argon2 import PasswordHasher, extract_parameters

    from app import create_app
    from common.identity import accounts

    production = create_app({"SECRET_KEY": "x" * 32, "SERVER_NAME": "forfait.example", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    with production.app_context():
        made, default = extract_parameters(accounts.hasher.hash("a long enough secret")), PasswordHasher()
    assert (made.time_cost, made.memory_cost, made.parallelism) == (
        default.time_cost, default.memory_cost, default.parallelism)
    cheap = create_app({"SECRET_KEY": "x" * 32, "SERVER_NAME": "forfait.example", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                        "PASSWORD_HASH_TIME_COST": "1", "PASSWORD_HASH_MEMORY_COST": "16",
                        "PASSWORD_HASH_PARALLELISM": "2"})
    with cheap.app_context():
        made = extract_parameters(accounts.hasher.hash("a long enough secret"))
    assert (made.time_cost, made.memory_cost, made.parallelism) == (1, 16, 2)


@pytest.mark.parametrize("settings, message", [
    ({"PASSWORD_HASH_TIME_COST": "0"}, "PASSWORD_HASH_TIME_COST and PASSWORD_HASH_PARALLELISM must be at least 1"),
    ({"PASSWORD_HASH_PARALLELISM": "0"}, "PASSWORD_HASH_TIME_COST and PASSWORD_HASH_PARALLELISM must be at least 1"),
    ({"PASSWORD_HASH_MEMORY_COST": "15", "PASSWORD_HASH_PARALLELISM": "2"},
     "PASSWORD_HASH_MEMORY_COST must be at least 8 KiB per lane"),
    ({"PASSWORD_HASH_MEMORY_COST": "lots"}, "PASSWORD_HASH_MEMORY_COST must be a whole number"),
])
def test_a_password_hash_cost_argon2_refuses_stops_start_up(settings, message):
    from app import create_app

    with pytest.raises(SystemExit, match=f"^forfait: configuration error: {message}"):
        create_app({"SECRET_KEY": "x" * 32, "SERVER_NAME": "forfait.example", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    **settings})
