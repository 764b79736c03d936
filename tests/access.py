"""Access matrices: who may use each URL, for every audience.

A matrix module declares a table per method, {URL: what each audience
gets}, and its tests run every cell of it. ``COVERS``, built with ``covers``
from those very tables, is what tests/test_access_coverage.py reads to prove
every URL rule of the app is in some matrix.

The helpers below serve the matrices written on the seven audiences of
issue 14.5: a world built once per module, each cell on a copy of it."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from billing.accounts.models import User
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD, csrf_token, login, make_app, make_people
from tests.test_security import snapshot

Covered = list[tuple[str, str]]

AUDIENCES = ("anonymous", "member", "owner", "another", "agent", "admin", "deactivated")
EMAIL = {"member": "member@example.com", "owner": "owner@example.com", "another": "other@example.com",
         "agent": "agent@example.com", "admin": "staff@example.com", "deactivated": "gone@example.com"}
CLIENTS = ("member", "owner", "another")
STAFF = ("agent", "admin")
# What a row says for an audience it leaves out: a deactivated staff member
# is anonymous at once; clients are refused a staff page.
STAFF_ONLY = {"anonymous": "login", "client": 403}
AGENTS = {**STAFF_ONLY, "staff": 200}
ADMINS = {**AGENTS, "agent": 403}


def covers(gets: Iterable[str] = (), posts: Iterable[str] = ()) -> Covered:
    """The pairs of a matrix's GET and POST tables; a URL may hold
    ``{placeholders}`` and a query string, as the tables write them."""
    return [("GET", url) for url in gets] + [("POST", url) for url in posts]


def want(row: dict, audience: str):
    """What ``audience`` gets from a row written with the keys it needs:
    an audience itself, else "client" or "staff", else what anonymous gets."""
    if audience in row:
        return row[audience]
    group = "client" if audience in CLIENTS else "staff" if audience in STAFF else "anonymous"
    return row.get(group, row.get("anonymous"))


class World:
    """The seven audiences and what a module adds to them, built once; each
    cell runs on a fresh copy of that database, in one app for the module
    (an app made per cell would cost more than the cell)."""

    def __init__(self, databases, folder: Path, make: Callable[[Flask], dict], **config) -> None:
        self.pristine = Path(databases.sqlite(folder, "world.sqlite").removeprefix("sqlite:///"))
        self.copy = folder / "cell.sqlite"
        shutil.copyfile(self.pristine, self.copy)
        self.app = make_app(f"sqlite:///{self.copy}", folder, **config)
        make_people(self.app)  # Acme's owner and member, and the admin
        with self.app.app_context():
            accounts.register(db.session, "Other", "Otto Other", EMAIL["another"], PASSWORD, "en", "FR")
            accounts.create_staff(db.session, "Agnes Agent", EMAIL["agent"], PASSWORD, role="agent")
            # An admin: deactivated, the widest role goes with the login.
            accounts.create_staff(db.session, "Gus Gone", EMAIL["deactivated"], PASSWORD, role="admin")
            self.values = make(self.app)
        self._close()
        shutil.copyfile(self.copy, self.pristine)

    def fresh(self) -> Flask:
        """The module's app on the world as built, whatever earlier cells wrote."""
        self._close()
        shutil.copyfile(self.pristine, self.copy)
        return self.app

    def _close(self) -> None:
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()


def sign_in(app: Flask, client: FlaskClient, audience: str) -> str:
    """Log ``audience`` in (a deactivated staff member is deactivated once
    logged in: their session ends at once); the CSRF token of the session."""
    if audience != "anonymous":
        assert login(client, EMAIL[audience]).status_code == 302
    if audience == "deactivated":
        with app.app_context():
            db.session.scalar(select(User).where(User.email == EMAIL[audience])).removed_at = datetime.now(UTC)
            db.session.commit()
    return csrf_token(client)


def judge(response, wanted, values: dict) -> None:
    """"login": sent to log in; a path: a redirect to exactly that place; a number: that status."""
    if wanted == "login":
        assert response.status_code == 302 and response.location.startswith("/login"), response.location
    elif isinstance(wanted, str):
        assert response.status_code in (302, 303), response.status_code  # 303: see the page after a POST
        assert response.location == wanted.format(**values)
    else:
        assert response.status_code == wanted, (response.status_code, response.location)
    if wanted == 403:
        assert "You do not have access to this page." in response.get_data(as_text=True)


def open_cell(world: World, url: str, row: dict, audience: str) -> None:
    # A fragment asked by htmx is the same page's: it gets the same answer
    # (asked on a world of its own: a link mailed to a person works once).
    for headers in ({}, {"HX-Request": "true"}):
        app = world.fresh()
        client = app.test_client()
        sign_in(app, client, audience)
        with client.get(url.format(**world.values), headers=headers) as response:
            judge(response, want(row, audience), world.values)


def post_cell(world: World, url: str, row: dict, audience: str, data: dict | None = None) -> None:
    """POST with the session's CSRF token and ``data`` (its ``{placeholders}``
    filled as the URL's); a refusal, or a form refused, writes nothing."""
    app, values = world.fresh(), world.values
    client = app.test_client()
    token = sign_in(app, client, audience)
    before = snapshot(app)
    wanted = want(row, audience)
    fields = {name: value.format(**values) for name, value in (data or {}).items()}
    judge(client.post(url.format(**values), data={**fields, "csrf_token": token}), wanted, values)
    # Refused, a form refused, or a page shown (a preview): a write answers with a redirect.
    if wanted in ("login", 200, 400, 403, 404, 409, 422):
        assert snapshot(app) == before


def matrix(pages: dict[str, dict], posts: dict[str, dict],
           data: dict[str, dict] | None = None) -> tuple[Callable, Callable]:
    """The two tests of a module's tables, every URL × every audience, on
    the module's ``world`` fixture (a World): assign them to test_ names.
    ``data``: the fields a POST carries besides the CSRF token, by URL."""

    @pytest.mark.parametrize("audience", AUDIENCES)
    @pytest.mark.parametrize("url", sorted(pages))
    def test_who_may_open_each_page(world: World, url: str, audience: str) -> None:
        open_cell(world, url, pages[url], audience)

    @pytest.mark.parametrize("audience", AUDIENCES)
    @pytest.mark.parametrize("url", sorted(posts))
    def test_who_may_post_and_a_refused_post_writes_nothing(world: World, url: str, audience: str) -> None:
        post_cell(world, url, posts[url], audience, (data or {}).get(url))

    return test_who_may_open_each_page, test_who_may_post_and_a_refused_post_writes_nothing
