"""The audit log (billing.audit): an entry is written with its action or
not at all, and reads back newest first, filtered by person and object."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from billing import audit
from billing.accounts.models import User
from billing.audit import AuditEntry
from billing.transaction import atomic
from common.extensions import db
from common.identity import accounts
from tests.conftest import PASSWORD


@pytest.fixture
def admin(app):
    with app.app_context():
        return accounts.create_staff(db.session, "Ada Admin", "ada@example.com", PASSWORD).id


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEntry))


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_an_entry_is_written_with_its_action_in_one_unit_of_work(app, admin):
    with app.app_context():
        actor = db.session.get(User, admin)
        agent = accounts.create_staff(db.session, "Abe Agent", "abe@example.com", PASSWORD, role="agent")
        agent_id = agent.id
        with atomic(db.session):
            before = {"role": agent.role}
            agent.role = "admin"
            audit.record(actor, "staff.role", "user", agent.id, before=before, after={"role": agent.role})
        db.session.expunge_all()
        entry = db.session.scalars(select(AuditEntry)).one()
        assert (entry.actor.email, entry.action, entry.subject_kind, entry.subject_id) == (
            "ada@example.com", "staff.role", "user", agent_id)
        assert (entry.before, entry.after) == ({"role": "agent"}, {"role": "admin"})
        assert entry.at.tzinfo is not None


def test_a_unit_that_fails_keeps_neither_the_change_nor_its_entry(app, admin):
    with app.app_context():
        actor = db.session.get(User, admin)
        with pytest.raises(ZeroDivisionError), atomic(db.session):
            actor.name = "Changed"
            audit.record(actor, "staff.name", "user", actor.id, before={"name": "Ada Admin"}, after={"name": "Changed"})
            db.session.flush()
            1 / 0  # noqa: B018
        assert count() == 0
        assert db.session.get(User, admin).name == "Ada Admin"


def test_outside_a_unit_of_work_it_refuses(app, admin):
    with app.app_context():
        actor = db.session.get(User, admin)
        with pytest.raises(RuntimeError, match="unit of work"):
            audit.record(actor, "staff.role", "user", actor.id)
        with pytest.raises(RuntimeError, match="session"), atomic(db.session):
            audit.record(None, "staff.create", "user", actor.id)
        assert count() == 0


def test_values_are_kept_as_json_keeps_them(app, admin):
    with app.app_context():
        actor = db.session.get(User, admin)
        with atomic(db.session):
            audit.record(actor, "pack.update", "pack", 7,
                         before={"price": Decimal("12.50"), "from": date(2026, 1, 2), "kinds": {"b", "a"}},
                         after={"at": datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "items": ("x", 1)})
        db.session.expunge_all()
        entry = db.session.scalars(select(AuditEntry)).one()
        assert entry.before == {"price": "12.50", "from": "2026-01-02", "kinds": ["a", "b"]}
        assert entry.after == {"at": "2026-01-02T03:04:00+00:00", "items": ["x", 1]}


def test_entries_read_newest_first_by_person_and_object_a_page_at_a_time(app, admin):
    with app.app_context():
        ada = db.session.get(User, admin)
        bob = accounts.create_staff(db.session, "Bob Boss", "bob@example.com", PASSWORD)
        with atomic(db.session):
            for n in range(5):
                audit.record(ada, "staff.role", "user", n)
            audit.record(bob, "pack.update", "pack", 1)
            audit.record(None, "staff.create", "user", 3, session=db.session)
        page = audit.entries(db.session, per_page=3)
        assert (page.total, page.pages, page.number, page.previous, page.next) == (7, 3, 1, None, 2)
        ids = [e.id for e in page.entries]
        assert ids == sorted(ids, reverse=True) and page.entries[0].action == "staff.create"
        assert audit.entries(db.session, page=99, per_page=3).number == 3
        assert [e.subject_id for e in audit.entries(db.session, actor_id=ada.id).entries] == [4, 3, 2, 1, 0]
        assert [e.actor_id for e in audit.entries(db.session, subject_kind="user", subject_id=3).entries] == [
            None, ada.id]
        assert [e.action for e in audit.entries(db.session, subject_kind="pack").entries] == ["pack.update"]
        assert audit.subject_kinds(db.session) == ["pack", "user"]
        assert [u.name for u in audit.actors(db.session)] == ["Ada Admin", "Bob Boss"]


def test_the_database_refuses_a_staff_role_on_a_client_and_a_client_role_on_staff(app, admin):
    with app.app_context():
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(sa.update(User).where(User.id == admin).values(role="owner"))
        db.session.rollback()
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(sa.update(User).where(User.id == admin).values(role=None))
        db.session.rollback()
        with pytest.raises(accounts.AccountError):
            accounts.create_staff(db.session, "Eve", "eve@example.com", PASSWORD, role="owner")
