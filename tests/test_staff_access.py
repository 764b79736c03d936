"""Who may use the ticket desk, the clients' pages, their credit and
tickets as staff, the service levels and the staff logins (issue 14.5):
every URL × anonymous, a member and the owner of Acme, the owner of another
account, an agent, an admin and a staff member deactivated once logged in.
Every staff member works the desk and the clients; credit, the service
levels and the logins are an admin's. Every refused POST writes nothing."""

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
    "/staff/clients": AGENTS,
    "/staff/clients?q=acme&sort=balance": AGENTS,
    "/staff/clients/{account}": AGENTS,
    # Credit is an admin's to adjust; any staff member opens a ticket for a client or changes its kind.
    "/staff/clients/{account}/adjust": ADMINS,
    "/staff/clients/{account}/tickets/new": AGENTS,
    "/desk/tickets/{ticket}/kind?kind=intervention": AGENTS,
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
    # The forms of DATA: each is carried out for whoever may.
    "/staff/clients/{account}/invoicing": {**AGENTS, "staff": "/staff/clients/{account}#invoicing"},
    "/staff/clients/{account}/adjust": {**ADMINS, "admin": "/staff/clients/{account}"},
    "/staff/clients/{account}/tickets/new": {**AGENTS, "staff": "/desk/tickets/{next_ticket}"},
    "/desk/tickets/{ticket}/kind": {**AGENTS, "staff": "/desk/tickets/{ticket}#kind-change"},
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
# Forms filled in as staff would, for the member's balance.
DATA = {
    "/staff/clients/{account}/invoicing": {"address": "Changed", "vat_id": ""},
    "/staff/clients/{account}/adjust": {"balance": "{policy}-credit", "direction": "remove", "quantity": "2",
                                        "reason": "No", "token": "c" * 32},
    "/staff/clients/{account}/tickets/new": {"person": "{member}", "balance": "{policy}-credit",
                                             "kind": "consultation", "criticality": "normal", "subject": "Not mine",
                                             "description": "No.", "token": "e" * 32},
    "/desk/tickets/{ticket}/kind": {"kind": "intervention", "expected": "consultation", "token": "d" * 32},
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
        return {"ticket": ticket.id, "holiday": holiday.id, "account": member.account_id, "member": member.id,
                "policy": policy.id, "next_ticket": ticket.id + 1}


@pytest.fixture(scope="module")
def world(databases, tmp_path_factory) -> World:
    return World(databases, tmp_path_factory.mktemp("staff-access"), make)


test_who_may_open_each_page, test_who_may_post_and_a_refused_post_writes_nothing = matrix(PAGES, POSTS, DATA)
