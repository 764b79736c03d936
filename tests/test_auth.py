"""Sign-up, login, logout, password reset and email verification, end to end:
the real app on a real database, mail through a real SMTP server on loopback."""

from __future__ import annotations

import re
import threading
import time
from html import unescape
from urllib.parse import urlsplit

import pytest
from argon2 import PasswordHasher, extract_parameters
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.accounts.models import Account, User
from common.config import defaults
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD, login, post_form
from tests.smtp import smtp_server  # noqa: F401 (a fixture)

SIGNUP = {
    "organisation": "Atelier Lumière",
    "name": "Léa Martin",
    "email": "  Lea.Martin@Example.COM ",
    "password": "a long enough secret",
    "confirm": "a long enough secret",
    "language": "fr",
    "country": "CH",
}


@pytest.fixture
def app_config(smtp_server, request):  # noqa: F811 (the fixture imported above)
    """Every mail of this module goes through the loopback SMTP server;
    a test adds settings with indirect parametrisation."""
    return {**smtp_server.config, **getattr(request, "param", {})}


def user_by_email(app, email: str) -> User | None:
    with app.app_context():
        user = accounts.find_user(db.session, email)
        if user is not None:
            db.session.expunge(user)
        return user


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def path_of(link: str) -> str:
    return urlsplit(link).path


# ------------------------------------------------------------ sign-up

@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_signup_mails_a_link_that_verifies_the_email_and_logs_in(app, client, smtp_server):  # noqa: F811
    response = post_form(client, "/signup", SIGNUP)

    assert response.status_code == 302
    assert response.headers["Location"] == "/signup/sent"
    assert "We have sent a message to lea.martin@example.com" in client.get("/signup/sent").get_data(as_text=True)
    assert client.get("/portal/").status_code == 302
    user = user_by_email(app, "lea.martin@example.com")
    assert user.role == "owner" and not user.is_staff
    assert user.language == "fr"
    assert user.email_verified_at is None
    assert user.password_hash.startswith("$argon2id$")
    with app.app_context():
        account = db.session.get(Account, user.account_id)
        assert (account.name, account.country) == ("Atelier Lumière", "CH")

    [mail] = smtp_server.to("lea.martin@example.com")
    assert mail["From"].addresses[0].display_name == app.config["PROVIDER_NAME"]
    assert mail["Reply-To"].addresses[0].addr_spec == app.config["PROVIDER_EMAIL"]
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert '<html lang="fr">' in html
    assert app.config["PROVIDER_NAME"] in html
    link = smtp_server.last_link("lea.martin@example.com", "/verify/")

    # Opened on any device: the link itself is the proof, and opens the account.
    device = app.test_client()
    verified = device.get(path_of(link))
    assert verified.status_code == 302
    assert "Atelier Lumière" in device.get("/portal/").get_data(as_text=True)
    assert user_by_email(app, "lea.martin@example.com").email_verified_at is not None
    assert 'id="verify-email"' not in device.get("/portal/").get_data(as_text=True)

    again = device.get(path_of(link))
    assert again.status_code == 400
    assert "Ce lien n'est pas valide" in unescape(again.get_data(as_text=True))  # in the user's language


@pytest.mark.parametrize(
    "change, field",
    [
        ({"password": "short", "confirm": "short"}, "password"),
        ({"confirm": "another long secret"}, "confirm"),
        ({"email": "not an email"}, "email"),
        ({"organisation": "   "}, "organisation"),
        ({"country": "EU"}, "country"),
        ({"language": "de"}, "language"),
    ],
)
def test_signup_refuses_bad_input_under_the_field(app, client, smtp_server, change, field):  # noqa: F811
    response = post_form(client, "/signup", {**SIGNUP, **change})

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'aria-describedby="{field}-note"' in page
    assert 'aria-invalid="true"' in page
    assert count(app, Account) == count(app, User) == 0
    assert smtp_server.messages == []


def test_a_taken_email_writes_nothing_and_mails_its_owner(app, client, smtp_server):  # noqa: F811
    post_form(client, "/signup", SIGNUP)
    other = app.test_client()

    response = post_form(other, "/signup", {**SIGNUP, "organisation": "Other", "email": "LEA.martin@example.com"})

    assert response.headers["Location"] == "/signup/sent"
    assert count(app, Account) == count(app, User) == 1
    assert [m["Subject"] for m in smtp_server.to("lea.martin@example.com")] == [
        "Confirmez votre adresse e-mail", "Vous avez déjà un compte"]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_two_simultaneous_signups_with_one_email_make_one_account(app):
    """Both pass any check made before writing; the unique index decides."""
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def sign_up(organisation: str) -> None:
        with app.app_context(), Session(db.engine) as session:
            start.wait()
            try:
                accounts.register(session, organisation, "Léa", "lea@example.com", PASSWORD, "en", "FR")
                outcomes.append("created")
            except accounts.AccountError as error:
                outcomes.append(error.field)

    threads = [threading.Thread(target=sign_up, args=(name,)) for name in ("First", "Second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["created", "email"]
    assert count(app, Account) == count(app, User) == 1


@pytest.mark.parametrize(
    "name, email, password, field",
    [
        ("Sam", "not-an-address", PASSWORD, "email"),
        ("  ", "sam@example.com", PASSWORD, "name"),
        ("Sam", "sam@example.com", "short", "password"),
    ],
)
def test_services_check_their_input_without_a_form(app, name, email, password, field):
    """As the command line calls them: an app context, no request."""
    with app.app_context():
        with pytest.raises(accounts.AccountError) as refused:
            accounts.create_staff(db.session, name, email, password)

    assert refused.value.field == field
    assert count(app, User) == 0


def test_a_mail_server_that_is_down_does_not_lose_the_signup(app, client, smtp_server):  # noqa: F811
    app.config["MAIL_PORT"] = smtp_server.port + 1 if smtp_server.port < 65535 else 1

    response = post_form(client, "/signup", SIGNUP, follow_redirects=True)

    assert response.status_code == 200
    # The same page as always (it must not tell more); the mail waits in the outbox for the job.
    assert "We have sent a message to lea.martin@example.com" in response.get_data(as_text=True)
    assert count(app, User) == 1
    with app.app_context():
        from billing.notifications.outbox import OutboxMessage

        [waiting] = db.session.scalars(select(OutboxMessage)).all()
        assert (waiting.kind, waiting.status) == ("verify_email", "pending")


def test_resend_sends_a_new_verification_link(app, client, people, smtp_server):  # noqa: F811
    login(client, people["owner"])

    response = post_form(client, "/verify/resend")

    assert response.headers["Location"] == "/portal/"
    link = smtp_server.last_link(people["owner"], "/verify/")
    assert client.get(path_of(link)).status_code == 302
    assert user_by_email(app, people["owner"]).email_verified_at is not None


# ------------------------------------------------------------ login, logout

def test_login_then_logout(app, client, people):
    response = login(client, people["owner"])

    assert response.status_code == 302
    assert response.headers["Location"] == "/portal/"
    assert client.get("/portal/").status_code == 200

    response = post_form(client, "/logout")

    assert response.status_code == 302
    assert client.get("/portal/").status_code == 302


def test_login_accepts_the_email_as_typed(client, people):
    assert login(client, "  OWNER@example.com").status_code == 302


@pytest.mark.parametrize("email, password", [("owner@example.com", "wrong password"), ("nobody@example.com", PASSWORD)])
def test_wrong_password_and_unknown_email_get_the_same_answer(client, people, email, password):
    response = login(client, email, password)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Wrong email or password." in page
    assert client.get("/portal/").status_code == 302


def test_remember_me_sets_a_lasting_cookie(client, people):
    login(client, people["owner"], remember="y")

    assert client.get_cookie("remember_token") is not None


@pytest.mark.parametrize(
    "target, landing",
    [
        ("/portal/?tab=tickets", "/portal/?tab=tickets"),
        ("https://evil.example/", "/portal/"),
        ("//evil.example/", "/portal/"),
        ("/\\evil.example/", "/portal/"),
        ("/\t/evil.example/", "/portal/"),
        ("javascript:alert(1)", "/portal/"),
    ],
)
def test_next_only_leads_to_a_path_of_this_site(client, people, target, landing):
    response = login(client, people["owner"], next=target)

    assert response.headers["Location"] == landing


def test_the_login_page_carries_next_into_its_form(client):
    page = client.get("/login?next=/portal/").get_data(as_text=True)

    assert 'name="next" type="hidden" value="/portal/"' in page


# The cost production runs with (the settings' defaults), not the tests' cheap one.
PRODUCTION_HASHING = {key: value for key, value in defaults("").items() if key.startswith("PASSWORD_HASH_")}


@pytest.mark.parametrize("app_config", [PRODUCTION_HASHING], indirect=True)
def test_a_hash_made_with_old_parameters_is_upgraded_at_login(app, client, people):
    with app.app_context():
        user = accounts.find_user(db.session, people["member"])
        user.password_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
        db.session.commit()

    assert login(client, people["member"]).status_code == 302

    upgraded = user_by_email(app, people["member"]).password_hash
    made, default = extract_parameters(upgraded), PasswordHasher()  # argon2-cffi's defaults
    assert (made.time_cost, made.memory_cost, made.parallelism) == (
        default.time_cost, default.memory_cost, default.parallelism)
    with app.app_context():
        assert not accounts.hasher.check_needs_rehash(upgraded)
        assert accounts.hasher.verify(upgraded, PASSWORD)


@pytest.mark.parametrize("app_config", [{"LOGIN_ADDRESS_RATE_LIMIT": "3 per minute"}], indirect=True)
def test_failed_logins_are_limited_per_address(client, people):
    for attempt in range(3):
        assert login(client, f"guess{attempt}@example.com", "wrong password").status_code == 422

    response = login(client, people["owner"])

    assert response.status_code == 429
    assert "Too many failed attempts" in response.get_data(as_text=True)
    # Looking at the form is not an attempt.
    assert client.get("/login").status_code == 200


@pytest.mark.parametrize("app_config", [{"LOGIN_RATE_LIMIT": "3 per minute"}], indirect=True)
def test_failed_logins_are_limited_per_email_and_address_but_not_for_another_address(app, people):
    def from_ip(number: int):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"192.0.2.{number}"
        return client

    for _ in range(3):
        assert login(from_ip(1), people["owner"], "wrong password").status_code == 422

    assert login(from_ip(1), " Owner@Example.com", PASSWORD).status_code == 429
    assert login(from_ip(99), " Owner@Example.com", PASSWORD).status_code == 302
    assert login(from_ip(1), people["member"]).status_code == 302


# ------------------------------------------------------------ password reset

def test_password_reset_by_mail(app, client, people, smtp_server):  # noqa: F811
    response = post_form(client, "/password/forgot", {"email": people["member"]})

    assert response.headers["Location"] == "/login"
    link = path_of(smtp_server.last_link(people["member"], "/password/reset/"))
    assert client.get(link).status_code == 200

    new = "a brand new passphrase"
    response = post_form(client, link, {"password": new, "confirm": new})

    assert response.headers["Location"] == "/login"
    assert login(app.test_client(), people["member"], PASSWORD).status_code == 422
    assert login(app.test_client(), people["member"], new).status_code == 302
    used = client.get(link)
    assert used.status_code == 400
    assert 'href="/password/forgot"' in used.get_data(as_text=True)
    again = {"password": "yet another secret", "confirm": "yet another secret"}
    assert post_form(client, link, again).status_code == 400
    assert login(app.test_client(), people["member"], new).status_code == 302


def test_reset_request_answers_the_same_for_an_unknown_email(client, people, smtp_server):  # noqa: F811
    known = post_form(client, "/password/forgot", {"email": people["owner"]}, follow_redirects=True)
    unknown = post_form(client, "/password/forgot", {"email": "nobody@example.com"}, follow_redirects=True)

    def answer(response) -> str:
        # The CSRF token is signed with the second it was made: two answers a
        # second apart differ there, whoever asked.
        page = re.sub(r"[\w-]{20,}\.[\w-]{6}\.[\w-]{20,}", "TOKEN", response.get_data(as_text=True))
        return page.replace(people["owner"], "EMAIL").replace("nobody@example.com", "EMAIL")

    assert known.status_code == unknown.status_code == 200
    assert answer(known) == answer(unknown)
    assert [m["To"] for m in smtp_server.messages] == [people["owner"]]


def test_new_password_form_checks_the_passwords(client, people, smtp_server):  # noqa: F811
    post_form(client, "/password/forgot", {"email": people["owner"]})
    link = path_of(smtp_server.last_link(people["owner"], "/password/reset/"))

    response = post_form(client, link, {"password": "short", "confirm": "short"})

    assert response.status_code == 422
    assert login(client, people["owner"]).status_code == 302


def test_an_expired_reset_link_is_refused(app, client, people):
    max_age = app.config["TOKEN_MAX_AGE_HOURS"] * 3600
    with app.test_request_context():
        user = accounts.find_user(db.session, people["owner"])
        token = accounts.make_token(user, accounts.RESET, now=lambda: time.time() - max_age - 5)

    response = client.get(f"/password/reset/{token}")

    assert response.status_code == 400
    assert "This link has expired" in response.get_data(as_text=True)


def test_a_tampered_or_misused_link_is_refused(app, client, people):
    with app.test_request_context():
        user = accounts.find_user(db.session, people["owner"])
        verify_token = accounts.make_token(user, accounts.VERIFY)
        reset_token = accounts.make_token(user, accounts.RESET)

    assert client.get(f"/password/reset/{verify_token}").status_code == 400
    assert client.get(f"/verify/{reset_token}").status_code == 400
    assert client.get(f"/password/reset/{reset_token[:-2]}xx").status_code == 400
    assert client.get("/password/reset/garbage").status_code == 400
    assert user_by_email(app, people["owner"]).email_verified_at is None
