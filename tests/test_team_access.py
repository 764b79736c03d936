"""Who may use the staff home, the team page and the audit log (issue 14.5):
every URL × anonymous, client member, client owner, another account, agent,
admin and deactivated staff; every refused POST writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing.accounts.models import User
from common.extensions import db
from common.identity import accounts, staff
from tests.access import covers
from tests.conftest import PASSWORD, csrf_token, login
from tests.test_security import snapshot

ROLES = ("anonymous", "member", "owner", "another", "agent", "admin", "deactivated")
EMAIL = {"member": "member@example.com", "owner": "owner@example.com", "another": "other@example.com",
         "agent": "agent@example.com", "admin": "staff@example.com", "deactivated": "gone@example.com"}
# What each URL answers each role: 200 (or 302 for a POST done), 403 refused; anonymous and
# deactivated staff are sent to log in.
PAGES = {"hub": {"agent": 200, "admin": 200}, "team": {"admin": 200}, "audit": {"admin": 200}}
ACTIONS = ("invite", "role", "deactivate", "reactivate", "resend")


@pytest.fixture
def cast(app, people) -> dict:
    """The people fixture, another account's owner, an agent, a deactivated
    staff member, an invited one and a deactivated target; their ids."""
    with app.app_context():
        accounts.register(db.session, "Other Co", "Oscar Other", EMAIL["another"], PASSWORD, "en", "FR")
        accounts.create_staff(db.session, "Abe Agent", EMAIL["agent"], PASSWORD, role="agent")
        accounts.create_staff(db.session, "Gus Gone", EMAIL["deactivated"], PASSWORD, role="admin")
        admin = db.session.scalar(select(User).where(User.email == EMAIL["admin"]))
        invited = staff.create(db.session, "ivy@example.com", "Ivy Invited", "agent", password=None, by=admin)
        target = accounts.create_staff(db.session, "Tom Target", "tom@example.com", PASSWORD, role="agent")
        parked = accounts.create_staff(db.session, "Pat Parked", "pat@example.com", PASSWORD, role="agent")
        staff.deactivate(db.session, parked, by=admin)
        return {"invited": invited.id, "target": target.id, "parked": parked.id}


URLS = {"hub": "/staff/", "team": "/staff/team", "audit": "/staff/audit", "invite": "/staff/team/invite",
        "role": "/staff/team/{target}/role", "deactivate": "/staff/team/{target}/deactivate",
        "reactivate": "/staff/team/{parked}/reactivate", "resend": "/staff/team/{invited}/resend"}
COVERS = covers([URLS[page] for page in PAGES], [URLS[action] for action in ACTIONS])


def expected(what: str, role: str):
    if role in ("anonymous", "deactivated"):
        return "login"
    if what in PAGES:
        return PAGES[what].get(role, 403)
    return 302 if role == "admin" else 403


def signed_in(app, client, role: str):
    if role == "anonymous":
        return client
    assert login(client, EMAIL[role]).status_code == 302
    if role == "deactivated":
        # Deactivated by an admin while logged in: this login ends at once.
        with app.app_context():
            admin = db.session.scalar(select(User).where(User.email == EMAIL["admin"]))
            gone = db.session.scalar(select(User).where(User.email == EMAIL["deactivated"]))
            staff.deactivate(db.session, gone, by=admin)
    return client


def judge(answer, want) -> None:
    if want == "login":
        assert answer.status_code == 302 and answer.location.startswith("/login"), answer.location
    else:
        assert answer.status_code == want
        if want == 403:
            assert "You do not have access to this page." in answer.get_data(as_text=True)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", sorted(PAGES))
def test_who_may_open_each_page(app, client, cast, page, role):
    client = signed_in(app, client, role)
    judge(client.get(URLS[page].format(**cast)), expected(page, role))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
def test_who_may_act_and_a_refused_post_writes_nothing(app, client, cast, action, role):
    client = signed_in(app, client, role)
    data = {"invite": {"name": "Nina", "email": "nina@example.com", "role": "admin", "language": "en"},
            "role": {"role": "admin"}}.get(action, {})
    before = snapshot(app)
    answer = client.post(URLS[action].format(**cast), data={**data, "csrf_token": csrf_token(client)})
    want = expected(action, role)
    judge(answer, want)
    if want != 302:
        assert snapshot(app) == before
    else:
        assert snapshot(app) != before
