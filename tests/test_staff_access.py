"""Who may use the ticket desk, the service levels and the staff logins
(issue 14.5): every URL × anonymous, a member and the owner of Acme, the
owner of another account, an agent, an admin and a staff member deactivated
once logged in. The desk is every staff member's, the other two an admin's;
every refused POST writes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from ledger_support import pack
from sqlalchemy import select

from billing.accounts.models import User
from billing.desk import services as desk
from billing.ledger import services as ledger
from billing.service import levels
from common.extensions import db
from tests.access import ADMINS, AGENTS, EMAIL, World, covers, matrix

NOW = datetime.now(UTC)
PAGES = {
    "/desk/": AGENTS,
    "/desk/tickets/{ticket}": AGENTS,
    "/desk/tickets/{ticket}/preview?minutes=10&billable=1": AGENTS,
    "/staff/service-levels": ADMINS,
    # Where colleagues log in from is not an agent's to read.
    "/portal/staff/logins": ADMINS,
}
# A POST with only the session's CSRF token: a form that needs fields
# answers 422, an action that needs none is carried out.
POSTS = {
    "/desk/tickets/{ticket}/assign": {**AGENTS, "staff": "/desk/tickets/{ticket}"},
    "/desk/tickets/{ticket}/time": {**AGENTS, "staff": 422},
    "/desk/tickets/{ticket}/messages": {**AGENTS, "staff": 422},
    # No status chosen: nothing changes. No note: the report goes without one.
    "/desk/tickets/{ticket}/status": {**AGENTS, "staff": "/desk/tickets/{ticket}"},
    "/desk/tickets/{ticket}/resolve": {**AGENTS, "staff": "/desk/tickets/{ticket}"},
    "/staff/service-levels": {**ADMINS, "admin": 422},
    "/staff/service-levels/holidays": {**ADMINS, "admin": 422},
    "/staff/service-levels/holidays/{holiday}/remove": {**ADMINS, "admin": "/staff/service-levels#holidays"},
}
COVERS = covers(PAGES, POSTS)


def make(app) -> dict:
    """Acme's member's ticket, on Innova credits; a holiday."""
    with app.app_context():
        member = db.session.scalar(select(User).where(User.email == EMAIL["member"]))
        policy = pack(db.session, "innova-120").policy
        ledger.grant(db.session, member.account, pack(db.session, "innova-120"), key="acme-innova", now=NOW)
        ticket = desk.open_ticket(db.session, member.account, member, "Site slow", "Since this morning.", now=NOW,
                                  policy=policy, kind="consultation")
        holiday = levels.add_holiday(db.session, date(NOW.year + 1, 12, 25).isoformat(), "Christmas", by=None,
                                     now=NOW)
        return {"ticket": ticket.id, "holiday": holiday.id}


@pytest.fixture(scope="module")
def world(databases, tmp_path_factory) -> World:
    return World(databases, tmp_path_factory.mktemp("staff-access"), make)


test_who_may_open_each_page, test_who_may_post_and_a_refused_post_writes_nothing = matrix(PAGES, POSTS)
