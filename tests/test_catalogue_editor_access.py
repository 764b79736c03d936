"""Who may use the catalogue editor (issue 14.5): each of its URLs for an
anonymous visitor, a client's member and owner, the owner of another
account, an agent, an admin, and a staff member deactivated since logging
in. Only the admin gets in; every refused POST writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing.catalogue import versions
from billing.catalogue.models import Catalogue
from billing.catalogue.offers import load_preset
from common.extensions import db
from tests.access import ADMINS, World, covers, matrix

PAGES = {url: ADMINS for url in (
    "/staff/catalogue",
    "/staff/catalogue/new",
    "/staff/catalogue/{catalogue}",
    "/staff/catalogue/{catalogue}/export",
    "/staff/catalogue/{catalogue}/packs/new",
    "/staff/catalogue/packs/{pack}",
    "/staff/catalogue/{catalogue}/policies/new",
    "/staff/catalogue/policies/{policy}",
)}
# What the admin's POST with only the session's CSRF token gets: forms answer
# 422 (nothing to save), previews 200; publishing or restoring a pack already
# on sale is refused with a message on the pack's page; retiring it is carried out.
ADMIN_POSTS = {
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
POSTS = {url: {**ADMINS, "admin": answer} for url, answer in ADMIN_POSTS.items()}
COVERS = covers(PAGES, POSTS)


def make(app) -> dict:
    """The Toopixel catalogue, its pack and its policy."""
    with app.app_context():
        load_preset(db.session, "toopixel")
        return {"catalogue": db.session.scalar(select(Catalogue.id).where(Catalogue.slug == "toopixel")),
                "pack": versions.current_pack(db.session, "toopixel-36").id,
                "policy": versions.current_policy(db.session, "toopixel-credits").id}


@pytest.fixture(scope="module")
def world(databases, tmp_path_factory) -> World:
    return World(databases, tmp_path_factory.mktemp("catalogue-access"), make)


test_who_may_open_each_page, test_who_may_post_and_a_refused_post_writes_nothing = matrix(PAGES, POSTS)
