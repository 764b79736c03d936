"""Nobody learns from our answers who has an account (issue 13, point 10):
sign-up, invitations and password resets answer alike for a known and an
unknown address; the person who owns the address is told by mail."""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event, func, select

from billing.accounts.models import Account, User
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD, login, post_form
from tests.smtp import smtp_server  # noqa: F401 (a fixture)


@pytest.fixture
def app_config(smtp_server, request):  # noqa: F811 (the fixture imported above)
    return {**smtp_server.config, **getattr(request, "param", {})}


def signup_data(email: str) -> dict:
    return {"organisation": "Another shop", "name": "Someone", "email": email, "password": "a long enough secret",
            "confirm": "a long enough secret", "language": "en", "country": "FR"}


def page_after(client, response) -> tuple[int, str, str]:
    """What the person sees: the answer, where it leads, the page there."""
    location = response.headers.get("Location", "")
    page = client.get(location).get_data(as_text=True) if location else ""
    # The CSRF tokens (signed, so different in every session) aside.
    return response.status_code, location, re.sub(r"[\w-]{20,}\.[\w-]+\.[\w-]+", "TOKEN", page)


def test_signing_up_with_a_known_address_looks_the_same_and_mails_its_owner(app, people, smtp_server):  # noqa: F811
    known, new = app.test_client(), app.test_client()

    seen_known = page_after(known, post_form(known, "/signup", signup_data(people["owner"])))
    seen_new = page_after(new, post_form(new, "/signup", signup_data("newcomer@example.com")))

    assert seen_known[:2] == seen_new[:2] == (302, "/signup/sent")
    assert seen_known[2].replace(people["owner"], "EMAIL") == seen_new[2].replace("newcomer@example.com", "EMAIL")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account)) == 2  # Acme and the newcomer's
    [told] = smtp_server.to(people["owner"])
    assert told["Subject"] == "You already have an account"
    assert "tried to sign up with owner@example.com" in told.get_body(preferencelist=("plain",)).get_content()
    assert smtp_server.last_link(people["owner"], "/password/reset/")
    [welcome] = smtp_server.to("newcomer@example.com")
    assert welcome["Subject"] == "Please confirm your email address"


def test_inviting_an_address_with_access_elsewhere_is_answered_like_any_other(app, client, people, smtp_server):  # noqa: F811
    with app.app_context():
        accounts.register(db.session, "Other shop", "Otto Other", "otto@example.com", PASSWORD, "en", "FR")
    login(client, people["owner"])

    elsewhere = post_form(client, "/portal/people/invitations", {"email": "otto@example.com", "role": "member"})
    fresh = post_form(client, "/portal/people/invitations", {"email": "fresh@example.com", "role": "member"})

    assert (elsewhere.status_code, elsewhere.headers["Location"]) == (fresh.status_code, fresh.headers["Location"])
    link = urlsplit(smtp_server.last_link("otto@example.com", "/invitations/")).path
    page = app.test_client().get(link).get_data(as_text=True)
    assert "otto@example.com already has access to Forfait with another account" in page
    with app.app_context():
        otto = db.session.scalar(select(User).where(User.email == "otto@example.com"))
        assert otto.account.name == "Other shop"


def statements_on_this_thread(app, action) -> int:
    """How many SQL statements ``action`` runs on the calling thread, which
    is the request's with the test client: the work the answer waits for."""
    me, count = threading.get_ident(), [0]

    def counted(*args):
        if threading.get_ident() == me:
            count[0] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", counted)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count[0]


@pytest.mark.parametrize("app_config", [{"MAIL_DELIVER_IN_BACKGROUND": True}], indirect=True)
def test_a_reset_asked_for_a_known_or_an_unknown_address_does_the_same_work_before_answering(
        app, people, smtp_server):  # noqa: F811
    def ask(email):
        client = app.test_client()
        client.get("/password/forgot")
        return lambda: post_form(client, "/password/forgot", {"email": email})

    known = statements_on_this_thread(app, ask(people["member"]))
    unknown = statements_on_this_thread(app, ask("nobody@example.com"))

    assert known == unknown
    deadline = time.monotonic() + 10
    while not smtp_server.to(people["member"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert smtp_server.last_link(people["member"], "/password/reset/")
    assert not smtp_server.to("nobody@example.com")
