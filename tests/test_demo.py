"""`make run` seeds the demo users the README lists; running it again changes nothing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from billing.models import User
from common.extensions import db
from portal import accounts
from portal.demo import CLIENT, STAFF


def test_demo_users_are_created_once_and_can_log_in(app, runner):
    for _ in range(2):
        result = runner.invoke(args=["demo", "users"])
        assert result.exit_code == 0, result.output
    assert f"staff:  {STAFF['email']} / {STAFF['password']}" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 2
        staff = accounts.authenticate(db.session, STAFF["email"], STAFF["password"])
        client = accounts.authenticate(db.session, CLIENT["email"], CLIENT["password"])
        assert staff.is_staff and staff.account is None
        assert client.is_owner and client.account.name == CLIENT["organisation"]
        assert client.email_verified_at is not None


def test_readme_gives_the_demo_credentials():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for who in (STAFF, CLIENT):
        assert f"`{who['email']}`" in readme and f"`{who['password']}`" in readme
