"""The migrations build any empty database, and they match the models."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from common.extensions import db


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_upgrade_builds_the_schema_the_models_describe(app):
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
        assert differences == [], "a model changed without a migration: run `flask db migrate`"
        tables = set(sa.inspect(conn).get_table_names())
    assert {"catalogues", "policies", "request_kinds", "packs", "accounts", "users", "orders"} <= tables
