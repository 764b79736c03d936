"""A pack or policy that the ledger still points at is never deleted by a reload."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from billing.accounts.models import Account
from billing.catalogue.models import Pack, Policy
from billing.catalogue.offers import load_preset
from billing.ledger import services as ledger
from billing.ledger.models import Lot
from common.extensions import db
from tests.test_catalogue import TINY, tiny_pack, write_tiny

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_pack_and_policy_with_lots_are_retired_and_kept(app, tmp_path):
    with app.app_context():
        write_tiny(tmp_path, TINY + tiny_pack("a") + tiny_pack("c", 'policy = "tiny-tickets"'))
        load_preset(db.session, "tiny", tmp_path)
        account = Account(name="Acme", country="FR")
        db.session.add(account)
        db.session.commit()
        pack = db.session.scalar(select(Pack).where(Pack.slug == "tiny-c"))
        ledger.grant(db.session, account, pack, key="trial-grant", now=NOW)

        # The file drops both the pack and its policy; a lot still uses them.
        write_tiny(tmp_path, TINY.split("[[policies]]\nslug = \"tiny-tickets\"")[0]
                   + TINY[TINY.index("[pack_defaults]"):] + tiny_pack("a"))
        report = load_preset(db.session, "tiny", tmp_path)

        assert report.rows("retired") == ["pack tiny-c"]
        assert "policy tiny-tickets" not in report.rows("deleted")
        lot = db.session.scalar(select(Lot))
        assert lot.pack.slug == "tiny-c" and lot.pack.retired_at is not None
        assert db.session.scalar(select(Policy).where(Policy.slug == "tiny-tickets")) is not None
