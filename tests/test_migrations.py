"""The migrations build any empty database, and they match the models."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from common.extensions import db
from tests.conftest import make_app


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request, databases, tmp_path):
    """The app on an empty database: these tests run the migrations themselves
    (every other test gets a copy of a database they built once)."""
    if request.param == "postgresql":
        url = databases.postgresql(empty=True)
        request.addfinalizer(lambda: databases.drop(url))
    else:
        url = databases.sqlite(tmp_path, empty=True)
    app = make_app(url, tmp_path)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_upgrade_builds_the_schema_the_models_describe(app):
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
        assert differences == [], "a model changed without a migration: run `flask db migrate`"
        tables = set(sa.inspect(conn).get_table_names())
    assert {"catalogues", "policies", "request_kinds", "packs", "accounts", "users", "orders"} <= tables


def test_0007_gives_existing_policies_the_20_percent_they_had(app):
    from flask_migrate import downgrade, upgrade

    with app.app_context():
        upgrade()
        downgrade(revision="0006")
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO catalogues (id, slug, name, tagline, currency, language, position) "
                                 "VALUES (1, 'old', 'Old', '{}', 'EUR', 'en', 0)"))
            conn.execute(sa.text("INSERT INTO policies (id, catalogue_id, slug, name, unit, unit_minutes, step, "
                                 "overage_mode) VALUES (1, 1, 'old-credits', '{}', 'credit', 1, 1, 'block')"))
        upgrade()
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT low_balance_percent FROM policies")).scalar_one() == 20
            with pytest.raises(sa.exc.IntegrityError):
                conn.execute(sa.text("UPDATE policies SET low_balance_percent = 101"))


def test_0015_keeps_a_catalogues_name_in_every_language_and_back(app):
    """A name stored as one text becomes that text in each language; going
    back keeps the catalogue's own language's."""
    from flask_migrate import downgrade, upgrade

    with app.app_context():
        upgrade()
        downgrade(revision="0014")
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO catalogues (id, slug, name, tagline, currency, language, position) "
                                 "VALUES (1, 'old', 'Atelier Old', '{}', 'EUR', 'fr', 0)"))
        upgrade()
        with app.app_context(), db.engine.connect() as conn:
            name = conn.execute(sa.select(sa.column("name", sa.JSON)).select_from(sa.table("catalogues"))).scalar_one()
        assert name == {"en": "Atelier Old", "fr": "Atelier Old", "es": "Atelier Old"}
        with db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE catalogues SET name = :name"),
                         {"name": '{"en": "Old workshop", "fr": "Atelier Old", "es": "Taller Old"}'})
        downgrade(revision="0014")
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM catalogues")).scalar_one() == "Atelier Old"


def test_0018_makes_existing_staff_admins_and_keeps_clients_roles(app):
    """Every staff member could do everything before roles: each becomes an
    admin; clients keep theirs; afterwards staff without a staff role are refused."""
    from flask_migrate import downgrade, upgrade

    with app.app_context():
        upgrade()
        downgrade(revision="0017")
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO accounts (id, name, country, address, vat_id, created_at) "
                                 "VALUES (1, 'Acme', 'FR', '', '', '2026-01-01')"))
            for id_, account, role, staff in [(1, None, None, True), (2, 1, "owner", False), (3, 1, None, False)]:
                conn.execute(sa.text("INSERT INTO users (id, account_id, email, name, password_hash, language, role, "
                                     "is_staff, created_at) VALUES (:id, :account, :email, 'X', 'h', 'en', :role, "
                                     ":staff, '2026-01-01')"),
                             {"id": id_, "account": account, "email": f"u{id_}@example.com", "role": role,
                              "staff": staff})
        upgrade()
        with db.engine.connect() as conn:
            roles = dict(conn.execute(sa.text("SELECT id, role FROM users ORDER BY id")).all())
            assert roles == {1: "admin", 2: "owner", 3: None}
            with pytest.raises(sa.exc.IntegrityError):
                conn.execute(sa.text("UPDATE users SET role = 'agent' WHERE id = 2"))
            conn.rollback()
            with pytest.raises(sa.exc.IntegrityError):
                conn.execute(sa.text("UPDATE users SET role = NULL WHERE id = 1"))
            conn.rollback()
        downgrade(revision="0017")
        with db.engine.connect() as conn:
            assert dict(conn.execute(sa.text("SELECT id, role FROM users ORDER BY id")).all()) == {
                1: None, 2: "owner", 3: None}


def test_the_migrations_form_one_line():
    """Helpers land migrations in parallel: two with the same parent would give
    Alembic two heads, and `flask db upgrade` would refuse to run in production.
    Each file's number is its revision and follows its parent's."""
    from pathlib import Path

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parents[1] / "migrations"))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()}"
    for revision in script.walk_revisions():
        assert Path(revision.path).name.startswith(f"{revision.revision}_")
        if revision.down_revision is not None:
            assert int(revision.revision) == int(revision.down_revision) + 1 or revision.revision == "0003"
