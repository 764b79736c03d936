"""Who may use the staff home, the team page and the audit log (issue 14.5):
every URL × anonymous, client member, client owner, another account, agent,
admin and deactivated staff; every refused POST writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing.accounts.models import User
from common.extensions import db
from common.identity import accounts, staff
from tests.access import ADMINS, AGENTS, EMAIL, World, covers, matrix

PAGES = {"/staff/": AGENTS, "/staff/team": ADMINS, "/staff/audit": ADMINS}
# Each admin's action is carried out and sends back to the team page.
DONE = {**ADMINS, "admin": "/staff/team"}
POSTS = {"/staff/team/invite": DONE, "/staff/team/{target}/role": DONE, "/staff/team/{target}/deactivate": DONE,
         "/staff/team/{parked}/reactivate": DONE, "/staff/team/{invited}/resend": DONE}
DATA = {"/staff/team/invite": {"name": "Nina", "email": "nina@example.com", "role": "admin", "language": "en"},
        "/staff/team/{target}/role": {"role": "admin"}}
COVERS = covers(PAGES, POSTS)


def make(app) -> dict:
    """An invited staff member, an agent to act on and a deactivated one; their ids."""
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.email == EMAIL["admin"]))
        invited = staff.create(db.session, "ivy@example.com", "Ivy Invited", "agent", password=None, by=admin)
        target = accounts.create_staff(db.session, "Tom Target", "tom@example.com", "a password long enough",
                                       role="agent")
        parked = accounts.create_staff(db.session, "Pat Parked", "pat@example.com", "a password long enough",
                                       role="agent")
        staff.deactivate(db.session, parked, by=admin)
        return {"invited": invited.id, "target": target.id, "parked": parked.id}


@pytest.fixture(scope="module")
def world(databases, tmp_path_factory) -> World:
    return World(databases, tmp_path_factory.mktemp("team-access"), make)


test_who_may_open_each_page, test_who_may_post_and_a_refused_post_writes_nothing = matrix(PAGES, POSTS, DATA)
