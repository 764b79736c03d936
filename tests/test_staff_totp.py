"""Staff accounts (issue 13, point 13): a TOTP second factor staff set up on
their security page, asked at each login, a code never accepted twice, a
setting that makes it mandatory, and a log of staff logins and failures."""

from __future__ import annotations

import re
import time
from html import unescape

import pyotp
import pytest

from billing.accounts.models import User
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD, csrf_token, login, post_form


@pytest.fixture
def app_config(request):
    return getattr(request, "param", {})


def enrol(client) -> str:
    """Set up the second factor as staff do; returns the key the page showed."""
    # The security page's token: when the second factor is required, it is the only page open.
    token = csrf_token(client, "/account/security")
    client.post("/account/security/second-factor/start", data={"csrf_token": token})
    page = client.get("/account/security").get_data(as_text=True)
    assert 'src="data:image/svg+xml;base64,' in page  # the QR code
    secret = re.search(r'<code id="totp-key">([A-Z2-7]+)</code>', page).group(1)
    done = client.post("/account/security/second-factor/confirm",
                       data={"code": pyotp.TOTP(secret).now(), "csrf_token": token})
    assert done.headers["Location"] == "/account/security"
    return secret


def next_code(secret: str) -> str:
    """A code of the next time step (accepted: one step of drift either side)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def test_with_a_second_factor_the_password_alone_does_not_log_in(app, client, people):
    login(client, people["staff"])
    secret = enrol(client)
    post_form(client, "/logout")

    browser = app.test_client()
    step = login(browser, people["staff"])
    assert step.headers["Location"] == "/login/code"
    assert browser.get("/portal/staff/logins").status_code == 302  # not logged in yet

    wrong = post_form(browser, "/login/code", {"code": "000000"})
    assert wrong.status_code == 422
    code = next_code(secret)
    right = post_form(browser, "/login/code", {"code": code})
    assert right.headers["Location"] == "/portal/"
    assert browser.get("/portal/staff/logins").status_code == 200

    # The same code, seen over a shoulder, opens nothing a second time.
    other = app.test_client()
    login(other, people["staff"])
    replayed = post_form(other, "/login/code", {"code": code})
    assert replayed.status_code == 422
    assert "used already" in unescape(replayed.get_data(as_text=True))
    assert other.get("/portal/staff/logins").status_code == 302


def test_a_wrong_code_at_enrolment_leaves_the_second_factor_off(app, client, people):
    login(client, people["staff"])
    post_form(client, "/account/security/second-factor/start")

    refused = post_form(client, "/account/security/second-factor/confirm", {"code": "123456"})

    assert refused.status_code == 422
    with app.app_context():
        assert db.session.query(User).filter_by(email=people["staff"]).one().totp_secret is None


@pytest.mark.parametrize("app_config", [{"STAFF_TOTP_REQUIRED": True}], indirect=True)
def test_when_required_staff_without_a_second_factor_must_set_it_up_first(app, client, people):
    login(client, people["staff"])

    sent = client.get("/portal/staff/logins")
    assert sent.status_code == 302 and sent.headers["Location"] == "/account/security#second-factor"
    enrol(client)
    assert client.get("/portal/staff/logins").status_code == 200
    # Clients are not concerned.
    owner = app.test_client()
    login(owner, people["owner"])
    assert owner.get("/portal/").status_code == 200


def test_staff_logins_and_failures_are_logged_with_where_from(app, people):
    guesser = app.test_client()
    guesser.environ_base["REMOTE_ADDR"] = "203.0.113.66"
    login(guesser, people["staff"], "a wrong guess")
    login(guesser, people["owner"], "a wrong guess")  # not staff: not in the staff log
    staff = app.test_client()
    staff.environ_base.update(REMOTE_ADDR="198.51.100.4", HTTP_USER_AGENT="StaffBrowser/1.0")
    login(staff, people["staff"])

    page = staff.get("/portal/staff/logins").get_data(as_text=True)
    rows = re.findall(r'<tr class="login-([a-z-]+)">(.*?)</tr>', page, re.S)
    assert [outcome for outcome, _ in rows] == ["login", "wrong-password"]
    assert "198.51.100.4" in rows[0][1] and "StaffBrowser/1.0" in rows[0][1]
    assert "203.0.113.66" in rows[1][1] and people["staff"] in rows[1][1]
    assert people["owner"] not in page

    owner = app.test_client()
    login(owner, people["owner"], PASSWORD)
    assert owner.get("/portal/staff/logins").status_code == 403
    with app.app_context():
        accounts.create_staff(db.session, "Abe Agent", "agent@example.com", PASSWORD, role="agent")
    agent = app.test_client()
    login(agent, "agent@example.com", PASSWORD)
    assert agent.get("/portal/staff/logins").status_code == 403
    assert "/portal/staff/logins" not in agent.get("/staff/").get_data(as_text=True)


# --- A lost phone: the operator clears the second factor ----------------------

@pytest.mark.parametrize("app_config", [{"STAFF_TOTP_REQUIRED": True}], indirect=True)
def test_resetting_a_staff_members_second_factor_ends_their_logins_and_asks_for_a_new_one(app, client, people,
                                                                                           runner):
    from sqlalchemy import select

    from billing.audit import AuditEntry

    login(client, people["staff"])
    secret = enrol(client)
    post_form(client, "/logout")
    # Logged in on another device (password and code), which may be the lost phone.
    lost = app.test_client()
    login(lost, people["staff"])
    assert post_form(lost, "/login/code", {"code": next_code(secret)}).headers["Location"] == "/portal/"
    assert lost.get("/portal/staff/logins").status_code == 200

    done = runner.invoke(args=["staff", "reset-totp", people["staff"].upper()])

    assert (done.exit_code, done.output) == (0, f"{people['staff']}\t1\n")
    assert lost.get("/portal/staff/logins").status_code == 302  # that login is over
    with app.app_context():
        staff = db.session.scalar(select(User).where(User.email == people["staff"]))
        assert (staff.totp_secret, staff.totp_last_step) == (None, None)
        [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "staff.second_factor_reset"))
        assert (entry.actor_id, entry.subject_id, entry.before, entry.after) == (
            None, staff.id, {"second_factor": True}, {"second_factor": False, "logins_ended": 1})
    # The password alone opens a login again, which must set up a new second factor first.
    fresh = app.test_client()
    assert login(fresh, people["staff"]).headers["Location"] == "/portal/"
    assert fresh.get("/portal/staff/logins").headers["Location"] == "/account/security#second-factor"
    enrol(fresh)
    assert fresh.get("/portal/staff/logins").status_code == 200


@pytest.mark.parametrize("email", ["owner@example.com", "nobody@example.com"])
def test_only_a_staff_members_second_factor_is_reset_from_the_command_line(app, people, runner, email):
    done = runner.invoke(args=["staff", "reset-totp", email])

    assert done.exit_code == 2 and done.stdout == ""
    assert done.stderr == f"Error: no staff member uses {email!r}\n"
