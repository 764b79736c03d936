"""Logins end when they should (issue 13, point 2): after logging out, a
new password or "log out everywhere", a copy of the old session cookie or
of the remember-me cookie opens nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, csrf_token, login, post_form
from tests.smtp import smtp_server  # noqa: F401 (a fixture)

NEW = "a brand new passphrase"


@pytest.fixture
def app_config(smtp_server):  # noqa: F811 (the fixture imported above)
    return smtp_server.config


def cookies(client: FlaskClient) -> dict[str, str]:
    return {name: client.get_cookie(name).value for name in ("session", "remember_token") if client.get_cookie(name)}


def browser_with(app, **held: str) -> FlaskClient:
    """Another browser into which someone copied these cookies."""
    other = app.test_client()
    for name, value in held.items():
        other.set_cookie(name, value)
    return other


def logged_in(client: FlaskClient) -> bool:
    # A page every logged-in user sees (staff are sent on from /portal/ to /staff/).
    return client.get("/account/security").status_code == 200


def test_after_logout_neither_the_old_session_cookie_nor_the_remember_cookie_works(app, client, people):
    login(client, people["owner"], remember="y")
    held = cookies(client)
    assert set(held) == {"session", "remember_token"}
    assert logged_in(browser_with(app, session=held["session"]))
    assert logged_in(browser_with(app, remember_token=held["remember_token"]))

    post_form(client, "/logout")

    assert not logged_in(client)
    assert not logged_in(browser_with(app, session=held["session"]))
    assert not logged_in(browser_with(app, remember_token=held["remember_token"]))


def test_a_password_reset_ends_every_login_of_the_user(app, client, people, smtp_server):  # noqa: F811
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, people["member"], remember="y")
    login(phone, people["member"])
    held = cookies(laptop)

    post_form(client, "/password/forgot", {"email": people["member"]})
    link = urlsplit(smtp_server.last_link(people["member"], "/password/reset/")).path
    assert post_form(client, link, {"password": NEW, "confirm": NEW}).status_code == 302

    assert not logged_in(laptop)
    assert not logged_in(phone)
    assert not logged_in(browser_with(app, remember_token=held["remember_token"]))
    assert login(app.test_client(), people["member"], NEW).status_code == 302


def test_changing_the_password_needs_the_current_one_and_ends_the_other_logins(app, client, people):
    other = app.test_client()
    login(other, people["owner"])
    login(client, people["owner"])

    wrong = post_form(client, "/account/security", {"current": "not my password", "password": NEW, "confirm": NEW})
    assert wrong.status_code == 422
    assert "This is not your current password." in wrong.get_data(as_text=True)
    assert logged_in(other)

    changed = post_form(client, "/account/security", {"current": PASSWORD, "password": NEW, "confirm": NEW})

    assert changed.headers["Location"] == "/account/security"
    assert logged_in(client)
    assert not logged_in(other)
    assert login(app.test_client(), people["owner"], PASSWORD).status_code == 422
    assert login(app.test_client(), people["owner"], NEW).status_code == 302


def test_the_security_page_lists_the_logins_and_logs_out_everywhere(app, client, people):
    phone = app.test_client()
    phone.environ_base["HTTP_USER_AGENT"] = "PhoneBrowser/1.0"
    login(phone, people["staff"], remember="y")
    held = cookies(phone)
    client.environ_base["HTTP_USER_AGENT"] = "DeskBrowser/2.0"
    login(client, people["staff"])

    page = client.get("/account/security").get_data(as_text=True)
    assert "Password and logins" in page
    assert "PhoneBrowser/1.0" in page and "DeskBrowser/2.0" in page
    assert re.search(r"DeskBrowser/2.0\s*<strong>\(this browser\)</strong>", page)

    response = post_form(client, "/account/security/logout-everywhere")

    assert response.headers["Location"] == "/login"
    assert not logged_in(client)
    assert not logged_in(phone)
    assert not logged_in(browser_with(app, remember_token=held["remember_token"]))


def test_the_csrf_secret_is_drawn_anew_at_login(app, client, people):
    before = csrf_token(client, "/login")
    login(client, people["owner"])

    after = csrf_token(client, "/portal/")
    assert after != before
    # A token someone read before the login (a shared computer, a planted one) no longer passes.
    response = client.post("/account/security", data={"csrf_token": before, "current": PASSWORD,
                                                       "password": NEW, "confirm": NEW})
    assert response.status_code == 400
    assert login(app.test_client(), people["owner"], PASSWORD).status_code == 302


def test_session_and_remember_cookies_are_httponly_lax_and_remembered_thirty_days(client, people):
    response = login(client, people["owner"], remember="y")

    set_cookies = {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}
    assert {"session", "remember_token"} <= set(set_cookies)
    for header in (set_cookies["session"], set_cookies["remember_token"]):
        assert "HttpOnly" in header and "SameSite=Lax" in header, header
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", set_cookies["remember_token"]).group(1))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
