"""``flask staff create`` (issue 14.1): the first staff member, from the
command line, with a password typed twice or a link by mail."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from billing.accounts.models import User
from billing.audit import AuditEntry
from common.extensions import db
from tests.conftest import login, post_form
from tests.smtp import smtp_server  # noqa: F401 (a fixture)
from tests.test_security import snapshot

NEW = "a long enough password"


@pytest.fixture
def app_config(smtp_server):  # noqa: F811
    return {**smtp_server.config, "SERVER_NAME": "localhost"}


def test_the_first_admin_types_a_password_twice_and_logs_in(app, runner, client):
    done = runner.invoke(args=["staff", "create", "Ada@Example.com", "--name", "Ada Admin", "--role", "admin"],
                         input=f"{NEW}\n{NEW}\n")

    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[-1] == "ada@example.com\tadmin\tactive"
    assert NEW not in done.output  # hidden
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "ada@example.com"))
        assert (user.is_staff, user.role, user.name) == (True, "admin", "Ada Admin")
        [entry] = db.session.scalars(select(AuditEntry))
        assert (entry.actor_id, entry.action, entry.subject_id, entry.after["role"]) == (
            None, "staff.create", user.id, "admin")
    assert login(client, "ada@example.com", NEW).status_code == 302
    assert client.get("/staff/team").status_code == 200


def test_two_passwords_that_differ_are_asked_again(app, runner):
    done = runner.invoke(args=["staff", "create", "abe@example.com", "--name", "Abe", "--role", "agent"],
                         input=f"{NEW}\nsomething else\n{NEW}\n{NEW}\n")
    assert done.exit_code == 0 and "do not match" in done.output
    assert done.stdout.splitlines()[-1] == "abe@example.com\tagent\tactive"


def test_with_mail_link_a_link_is_mailed_to_choose_the_password(app, runner, smtp_server):  # noqa: F811
    done = runner.invoke(args=["staff", "create", "abe@example.com", "--name", "Abe Agent", "--role", "agent",
                               "--mail-link"])

    assert done.exit_code == 0, done.output
    assert done.stdout == "abe@example.com\tagent\tinvited\n"
    [mail] = smtp_server.to("abe@example.com")
    assert mail["Subject"] == "Join the team of Forfait Demo Support"
    link = smtp_server.last_link("abe@example.com", "/password/reset/")
    assert link.startswith("http://localhost/password/reset/")
    client = app.test_client()
    path = urlsplit(link).path
    assert post_form(client, path, {"password": NEW, "confirm": NEW}).status_code == 302
    assert login(client, "abe@example.com", NEW).status_code == 302
    assert client.get("/staff/").status_code == 200 and client.get("/staff/team").status_code == 403


@pytest.mark.parametrize("args, input, message", [
    (["owner@example.com", "--name", "X", "--role", "admin"], f"{NEW}\n{NEW}\n",
     "owner@example.com is already used by an account"),
    (["STAFF@example.com", "--name", "X", "--role", "agent", "--mail-link"], "",
     "staff@example.com is already used by an account"),
    (["new@example.com", "--name", "X", "--role", "owner"], f"{NEW}\n{NEW}\n", "Invalid value for '--role'"),
    (["new@example.com", "--name", "X"], f"{NEW}\n{NEW}\n", "Missing option '--role'"),
    (["new@example.com", "--role", "agent"], f"{NEW}\n{NEW}\n", "Missing option '--name'"),
    (["not an address", "--name", "X", "--role", "agent"], f"{NEW}\n{NEW}\n", "email: Enter a valid email address."),
    (["new@example.com", "--name", "X", "--role", "agent"], "short\nshort\n",
     "password: The password must have 10 to 256 characters."),
    (["new@example.com", "--name", "  ", "--role", "agent"], f"{NEW}\n{NEW}\n", "name: Enter 1 to 200 characters."),
])
def test_a_bad_command_says_why_on_one_line_exits_2_and_writes_nothing(app, runner, people, args, input, message):
    before = snapshot(app)
    done = runner.invoke(args=["staff", "create", *args], input=input)
    assert done.exit_code == 2, done.output
    assert "Error: " in done.stderr and message in done.stderr and not done.stdout
    assert snapshot(app) == before


def test_mail_link_needs_the_sites_address(app, runner):
    app.config["SERVER_NAME"] = None
    before = snapshot(app)
    done = runner.invoke(args=["staff", "create", "abe@example.com", "--name", "Abe", "--role", "agent",
                               "--mail-link"])
    assert done.exit_code == 2 and "SERVER_NAME is not set" in done.stderr
    assert snapshot(app) == before

