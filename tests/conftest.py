"""Fixtures shared by the whole suite: the real app on a real database.

SQLite is the default engine; PostgreSQL tests use TEST_DATABASE_URL. Outside
CI they skip, with the reason, when no server answers; under CI=true they fail,
so a broken database can never pass for a green run."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import jinja2
import jinja2.bccache
import pytest
import sqlalchemy as sa
import werkzeug.routing
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from app import Forfait, create_app
from common.extensions import db

IN_CI = os.environ.get("CI", "").lower() == "true"
# Each xdist worker is a process of its own, with its own databases and live server.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
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


class Databases:
    """Migrated databases for this pytest process (each xdist worker has its
    own): the migrations run once per engine into a template, and each test
    gets a copy of it, a file copy for SQLite and CREATE DATABASE … TEMPLATE
    on PostgreSQL. Names carry a random part: other runs may share the server."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.run = f"{WORKER}_{uuid.uuid4().hex[:8]}"
        self.sqlite_template: Path | None = None
        self.admin: sa.Engine | None = None
        self.pg_template: str | None = None
        self.copies: list[str] = []

    def sqlite(self, folder: Path, name: str = "forfait.sqlite", empty: bool = False) -> str:
        if empty:
            return f"sqlite:///{folder / name}"
        if self.sqlite_template is None:
            template = self.folder / "template.sqlite"
            migrate(f"sqlite:///{template}", self.folder)
            self.sqlite_template = template
        shutil.copyfile(self.sqlite_template, folder / name)
        return f"sqlite:///{folder / name}"

    def postgresql(self, empty: bool = False) -> str:
        admin = self._admin()
        if empty:
            name = f"forfait_test_{self.run}_{len(self.copies)}"
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                conn.execute(sa.text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
            self.copies.append(name)
            return self._url(name)
        if self.pg_template is None:
            template = f"forfait_template_{self.run}"
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{template}"'))
                conn.execute(sa.text(f'ALTER DATABASE "{template}" SET synchronous_commit = off'))
            self.pg_template = template
            migrate(self._url(template), self.folder)
        name = f"forfait_test_{self.run}_{len(self.copies)}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{self.pg_template}"'))
            conn.execute(sa.text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
        self.copies.append(name)
        return self._url(name)

    def drop(self, url: str) -> None:
        """Drop a PostgreSQL copy at once (a SQLite copy goes with its tmp_path)."""
        name = sa.engine.make_url(url).database
        if url.startswith("postgresql") and name in self.copies:
            self.copies.remove(name)
            self._drop(name)

    def close(self) -> None:
        for name in [*self.copies, self.pg_template]:
            if name:
                self._drop(name)
        if self.admin is not None:
            self.admin.dispose()

    def _admin(self) -> sa.Engine:
        if self.admin is None:
            admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
            except sa.exc.OperationalError as error:
                admin.dispose()
                unavailable(f"PostgreSQL not reachable at {PG_URL}: {error.orig}")
            self.admin = admin
        return self.admin

    def _url(self, name: str) -> str:
        return sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def _drop(self, name: str) -> None:
        with self._admin().connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate(database_url: str, folder: Path) -> None:
    """Run every migration on the empty database at ``database_url``."""
    app = create_app(base_settings(database_url, folder))
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory) -> Iterator[Databases]:
    found = Databases(tmp_path_factory.mktemp("templates"))
    yield found
    found.close()


def base_settings(database_url: str, tmp_path) -> dict:
    """What every test app runs with. Password hashing is cheap here (argon2's
    least cost): a test that is about the cost sets PASSWORD_HASH_* itself."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_FOLDER": str(tmp_path / "mail"),
        "ATTACHMENT_FOLDER": str(tmp_path / "attachments"),
        "RATELIMIT_STORAGE_URI": "memory://",
        "SERVER_NAME": None,
        # Mail is sent before the request answers, so a test reads the inbox
        # right after; tests/test_mail_silent_smtp.py covers the sender thread.
        "MAIL_DELIVER_IN_BACKGROUND": False,
        "PASSWORD_HASH_TIME_COST": 1,
        "PASSWORD_HASH_MEMORY_COST": 8,
        "PASSWORD_HASH_PARALLELISM": 1,
    }


class TemplateCache(jinja2.BytecodeCache):
    """Jinja's compiled templates kept for the process, shared by every test
    app instead of compiled again by each (keyed by the template's source)."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = TemplateCache()


class SharedBuilderRule(werkzeug.routing.Rule):
    """A URL rule whose url_for builders are compiled once for the process.

    Werkzeug compiles two Python functions for each rule of each app (source
    built as an AST, then compile()): nine tenths of creating an app, which
    every test does. A builder depends only on the rule's parsed parts, its
    defaults and its converters' kinds, and takes the rule as its first
    argument: the one of an earlier app's identical rule serves as it is."""

    builders: dict[tuple, Callable[..., tuple[str, str]]] = {}

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        key = (tuple(self._trace), repr(sorted((self.defaults or {}).items())),
               tuple((name, type(converter)) for name, converter in self._converters.items()), append_unknown)
        if key not in self.builders:
            self.builders[key] = super()._compile_builder(append_unknown)
        return self.builders[key]


# Every app the tests create, through create_app, builds its rules with it.
Forfait.url_rule_class = SharedBuilderRule


def no_fsync(connection, _record) -> None:
    """A test's SQLite file is thrown away: no fsync at each commit (what
    PostgreSQL's copies get from synchronous_commit = off). Locking and
    transactions are unchanged."""
    connection.execute("PRAGMA synchronous = OFF")


def make_app(database_url: str, tmp_path, **overrides) -> Flask:
    """The app on an already migrated database (``databases`` gives one)."""
    app = create_app({**base_settings(database_url, tmp_path), **overrides})
    app.jinja_env.bytecode_cache = TEMPLATES
    if database_url.startswith("sqlite"):
        with app.app_context():
            sa.event.listen(db.engine, "connect", no_fsync)
    return app


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path, databases) -> str:
    """A migrated database of the test's own: SQLite by default; tests that
    must hold on both engines parametrise this fixture indirectly with
    ["sqlite", "postgresql"] (and are marked ``postgres`` for it)."""
    if request.param == "postgresql":
        url = databases.postgresql()
        request.addfinalizer(lambda: databases.drop(url))
        return url
    return databases.sqlite(tmp_path)


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


# A small page anyone may open (its GET is not rate-limited): the session's
# token is the same on every page, and the home page renders the whole
# catalogue, a tenth of a second where several are loaded.
TOKEN_PAGE = "/password/forgot"


def csrf_token(client: FlaskClient, path: str = TOKEN_PAGE) -> str:
    """The token the page at ``path`` gives this client's session, as a browser gets it."""
    page = client.get(path)
    found = CSRF_META.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {path} ({page.status_code})"
    return found.group(1)


# The forms shown with a one-time token: the checkout's, the request for a
# quote and the client's new ticket.
ONE_TIME_FORM = re.compile(r"/checkout/[^/?]+|/quotes/request/[^/?]+|/portal/tickets/new")
FORM_TOKEN = re.compile(r'<input[^>]* name="token" type="hidden" value="([0-9a-f]+)"|'
                        r'<input[^>]* name="token" value="([0-9a-f]+)"')


def form_token(client: FlaskClient, path: str) -> str | None:
    """The one-time token the form at ``path`` is shown with, if it has one."""
    found = FORM_TOKEN.search(client.get(path).get_data(as_text=True))
    return (found.group(1) or found.group(2)) if found else None


def post_form(client: FlaskClient, path: str, data: dict | None = None, **kwargs):
    """POST a form the way a browser does: with the CSRF token of the session,
    and the one-time token a form that creates something is shown with."""
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client))
    if ONE_TIME_FORM.fullmatch(path.split("?")[0]) and "token" not in data:
        token = form_token(client, path)
        if token:
            data["token"] = token
    return client.post(path, data=data, **kwargs)


PASSWORD = "correct horse battery staple"


PEOPLE = {"owner": "owner@example.com", "member": "member@example.com", "staff": "staff@example.com"}


@pytest.fixture
def people(app) -> dict[str, str]:
    """The email of each role: an account's owner and pool user, and a staff member (password PASSWORD)."""
    return make_people(app)


def make_people(app: Flask) -> dict[str, str]:
    """What the ``people`` fixture makes, for a set-up shared by several tests."""
    from billing.accounts.models import User
    from common.identity import accounts

    with app.app_context():
        owner = accounts.register(db.session, "Acme", "Olive Owner", "owner@example.com", PASSWORD, "en", "FR")
        db.session.add(User(account=owner.account, role="member", email="member@example.com", name="Max Member",
                            password_hash=accounts.hasher.hash(PASSWORD)))
        db.session.commit()
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    return dict(PEOPLE)


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


class Dispatcher:
    """The WSGI app of a worker's live server: whichever app the running test put there."""

    def __init__(self) -> None:
        self.app: Flask | None = None

    def __call__(self, environ, start_response):
        app = self.app
        if app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"no test is running"]
        return app(environ, start_response)


@pytest.fixture(scope="session")
def live_server_thread() -> Iterator[tuple[str, Dispatcher]]:
    """One threaded HTTP server per worker, on a free loopback port."""
    from threading import Thread

    from werkzeug.serving import make_server

    dispatcher = Dispatcher()
    server = make_server("127.0.0.1", 0, dispatcher, threaded=True)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", dispatcher
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def live_server(live_server_thread, databases, tmp_path) -> Iterator[tuple[str, Flask]]:
    """The real app served over HTTP for the browser: the worker's server,
    serving an app of this test's own on a fresh copy of the migrated
    database, so a test may change ``app.config`` and the rows as it likes."""
    url, dispatcher = live_server_thread
    app = make_app(databases.sqlite(tmp_path, "live.sqlite"), tmp_path)
    dispatcher.app = app
    try:
        yield url, app
    finally:
        dispatcher.app = None
        with app.app_context():
            db.engine.dispose()


# ---------------------------------------------------------------- markers

BROWSER_FIXTURES = {"page", "context", "browser", "live_server"}


def pytest_collection_modifyitems(config, items) -> None:
    """Mark what needs Chromium (``browser``) or the PostgreSQL server
    (``postgres``) from the fixtures it uses, so that `make check` can leave
    them out without anybody having to remember a decorator."""
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)
        # database_url, ledger_app, or a module's own fixture parametrised by engine
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(isinstance(value, str) and value == "postgresql" for value in params.values()):
            item.add_marker(pytest.mark.postgres)
