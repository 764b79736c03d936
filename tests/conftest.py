"""Fixtures shared by the whole suite: the real app on a real database.

SQLite is the default engine; PostgreSQL tests use TEST_DATABASE_URL. Outside
CI they skip, with the reason, when no server answers; under CI=true they fail,
so a broken database can never pass for a green run."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from app import create_app
from common.extensions import db

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"


def compile_stale_catalogues(root: Path = TRANSLATIONS) -> list[Path]:
    """Compile each .po whose .mo is missing or older, as `make translations`
    does (fuzzy entries included), so that pytest run on its own never
    renders pages from stale catalogues. Returns the .mo files written."""
    written = []
    for po_path in sorted(root.glob("*/LC_MESSAGES/*.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po:
            catalog = read_po(po, locale=po_path.parent.parent.name)
        partial = mo_path.with_suffix(".mo.tmp")
        with partial.open("wb") as mo:
            write_mo(mo, catalog, use_fuzzy=True)
        partial.replace(mo_path)  # never a half-written .mo, even if interrupted
        written.append(mo_path)
    return written


def pytest_configure(config) -> None:
    compile_stale_catalogues()


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must never pass by skipping."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A throw-away database on the PostgreSQL server, dropped at the end."""
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        admin.dispose()
        unavailable(f"PostgreSQL not reachable at {PG_URL}: {error.orig}")
    name = f"forfait_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_app(database_url: str, tmp_path, **overrides) -> Flask:
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_FOLDER": str(tmp_path / "mail"),
        "ATTACHMENT_FOLDER": str(tmp_path / "attachments"),
        "RATELIMIT_STORAGE_URI": "memory://",
        "SERVER_NAME": None,
    }
    config.update(overrides)
    app = create_app(config)
    with app.app_context():
        if database_url.startswith("postgresql"):
            with db.engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE"))
                conn.execute(sa.text("CREATE SCHEMA public"))
        upgrade()
    return app


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path) -> str:
    """SQLite by default; tests that must hold on both engines parametrise
    this fixture indirectly with ["sqlite", "postgresql"]."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_server")
    return f"sqlite:///{tmp_path / 'forfait.sqlite'}"


@pytest.fixture
def app_config() -> dict:
    """Settings on top of make_app's: a module overrides this fixture to change them."""
    return {}


@pytest.fixture
def app(database_url, tmp_path, app_config) -> Iterator[Flask]:
    app = make_app(database_url, tmp_path, **app_config)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/") -> str:
    """The token the page at ``path`` gives this client's session, as a browser gets it."""
    page = client.get(path)
    found = CSRF_META.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {path} ({page.status_code})"
    return found.group(1)


def post_form(client: FlaskClient, path: str, data: dict | None = None, **kwargs):
    """POST a form the way a browser does: with the CSRF token of the session."""
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client))
    return client.post(path, data=data, **kwargs)


PASSWORD = "correct horse battery staple"


@pytest.fixture
def people(app) -> dict[str, str]:
    """The email of each role: an account's owner and pool user, and a staff member (password PASSWORD)."""
    from billing.models import User
    from portal import accounts

    with app.app_context():
        owner = accounts.register(db.session, "Acme", "Olive Owner", "owner@example.com", PASSWORD, "en", "FR")
        db.session.add(User(account=owner.account, role="member", email="member@example.com", name="Max Member",
                            password_hash=accounts.hasher.hash(PASSWORD)))
        db.session.commit()
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    return {"owner": "owner@example.com", "member": "member@example.com", "staff": "staff@example.com"}


def login(client: FlaskClient, email: str, password: str = PASSWORD, **fields):
    return post_form(client, "/login", {"email": email, "password": password, **fields})


# ---------------------------------------------------------------- browser

DEBIAN_CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path(downloaded: str | None = None) -> str | None:
    """Debian's Chromium when installed, else Playwright's own download
    (``downloaded``) when present, else None."""
    for candidate in (*DEBIAN_CHROMIUM, downloaded):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def chromium_launch_args(base: dict, downloaded: str) -> dict:
    """``base`` plus the Chromium to start and the flags this closed network
    needs. Under CI=true, no Chromium at all fails rather than skips."""
    path = chromium_path(downloaded)
    if path is None and IN_CI:
        pytest.fail(f"no Chromium: neither Debian's at {DEBIAN_CHROMIUM[0]} nor Playwright's at {downloaded}"
                    " (CI=true: `make browser` installs one)")
    args = dict(base)
    if path:
        args["executable_path"] = path
    args["args"] = list(BROWSER_ARGS)
    return args


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args, playwright):
    """Debian's Chromium, or the one `make browser` downloaded where apt-get
    could not run. Playwright's session (the plugin's fixture, the same
    sync_playwright() the browser will use) tells where its download lives."""
    return chromium_launch_args(browser_type_launch_args, playwright.chromium.executable_path)


@pytest.fixture
def live_server(tmp_path) -> Iterator[tuple[str, Flask]]:
    """The real app served over HTTP on a free loopback port, for the browser."""
    from threading import Thread

    from werkzeug.serving import make_server

    app = make_app(f"sqlite:///{tmp_path / 'live.sqlite'}", tmp_path)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        thread.join(timeout=5)
        with app.app_context():
            db.engine.dispose()
