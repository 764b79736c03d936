"""Who may use the catalogue editor (issue 14.5): each of its URLs for an
anonymous visitor, a client's member and owner, the owner of another
account, an agent, an admin, and a staff member deactivated since logging
in. Only the admin gets in; every refused POST writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from billing.accounts.models import User
from billing.catalogue import versions
from billing.catalogue.models import Catalogue
from billing.catalogue.offers import load_preset
from common.extensions import db
from common.identity import accounts
from tests.access import covers
from tests.conftest import PASSWORD, csrf_token, login
from tests.test_catalogue import snapshot

ROLES = ["anon", "member", "owner", "other", "agent", "admin", "deactivated"]
EMAILS = {"member": "member@example.com", "owner": "owner@example.com", "other": "other@example.com",
          "agent": "agent@example.com", "admin": "staff@example.com", "deactivated": "gone@example.com"}
REFUSED = {"anon": "login", "member": 403, "owner": 403, "other": 403, "agent": 403, "deactivated": "login"}

GETS = {
    "/staff/catalogue": 200,
    "/staff/catalogue/new": 200,
    "/staff/catalogue/{catalogue}": 200,
    "/staff/catalogue/{catalogue}/export": 200,
    "/staff/catalogue/{catalogue}/packs/new": 200,
    "/staff/catalogue/packs/{pack}": 200,
    "/staff/catalogue/{catalogue}/policies/new": 200,
    "/staff/catalogue/policies/{policy}": 200,
}
# A POST with only the session's CSRF token: forms answer 422 (nothing to
# save), previews 200; publishing or restoring a pack already on sale is
# refused with a message on the pack's page; retiring it is carried out (last).
POSTS = {
    "/staff/catalogue/new": 422,
    "/staff/catalogue/{catalogue}": 422,
    "/staff/catalogue/import": 422,
    "/staff/catalogue/{catalogue}/packs/new": 422,
    "/staff/catalogue/packs/{pack}": 422,
    "/staff/catalogue/{catalogue}/packs/preview": 200,
    "/staff/catalogue/{catalogue}/packs/{pack}/preview": 200,
    "/staff/catalogue/{catalogue}/policies/new": 422,
    "/staff/catalogue/policies/{policy}": 422,
    "/staff/catalogue/{catalogue}/policies/preview": 200,
    "/staff/catalogue/{catalogue}/policies/{policy}/preview": 200,
    "/staff/catalogue/packs/{pack}/publish": "/staff/catalogue/packs/{pack}",
    "/staff/catalogue/packs/{pack}/restore": "/staff/catalogue/packs/{pack}",
    "/staff/catalogue/packs/{pack}/retire": "/staff/catalogue/packs/{pack}",
}
COVERS = covers(GETS, POSTS)


@pytest.fixture
def world(app) -> dict[str, int]:
    with app.app_context():
        load_preset(db.session, "toopixel")
        owner = accounts.register(db.session, "Acme", "Olive Owner", EMAILS["owner"], PASSWORD, "en", "FR")
        db.session.add(User(account=owner.account, role="member", email=EMAILS["member"], name="Max Member",
                            password_hash=accounts.hasher.hash(PASSWORD)))
        db.session.commit()
        accounts.register(db.session, "Other", "Otto Other", EMAILS["other"], PASSWORD, "en", "FR")
        accounts.create_staff(db.session, "Sam Staff", EMAILS["admin"], PASSWORD)
        accounts.create_staff(db.session, "Ann Agent", EMAILS["agent"], PASSWORD, role="agent")
        accounts.create_staff(db.session, "Gus Gone", EMAILS["deactivated"], PASSWORD)
        return {"catalogue": db.session.scalar(select(Catalogue.id).where(Catalogue.slug == "toopixel")),
                "pack": versions.current_pack(db.session, "toopixel-36").id,
                "policy": versions.current_policy(db.session, "toopixel-credits").id}


def check(response, wanted, values) -> None:
    if wanted == "login":
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), response.status
    elif isinstance(wanted, str):
        assert response.status_code in (302, 303) and response.headers["Location"] == wanted.format(**values)
    else:
        assert response.status_code == wanted, response.status


@pytest.mark.parametrize("role", ROLES)
def test_only_an_admin_uses_the_catalogue_editor(app, client, world, role):
    if role != "anon":
        assert login(client, EMAILS[role]).status_code == 302
    token = csrf_token(client)
    if role == "deactivated":
        with app.app_context():
            gone = db.session.scalar(select(User).where(User.email == EMAILS["deactivated"]))
            gone.removed_at = datetime.now(UTC)
            db.session.commit()
    for url, allowed in GETS.items():
        with client.get(url.format(**world)) as response:
            check(response, allowed if role == "admin" else REFUSED[role], world)
    for url, allowed in POSTS.items():
        with app.app_context():
            before = snapshot()
        response = client.post(url.format(**world), data={"csrf_token": token})
        check(response, allowed if role == "admin" else REFUSED[role], world)
        with app.app_context():
            if role != "admin" or not url.endswith("/retire"):
                assert snapshot() == before, url  # refused, or nothing to save: nothing written
            else:
                assert versions.current_pack(db.session, "toopixel-36").status == "retired"
